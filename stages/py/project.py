#!/usr/bin/env python3
"""Reads a Python project's layout and pytest configuration.

Usage: python3 project.py ROOT

Prints one JSON object on stdout; never writes to ROOT. dsbuild's validate
kind runs it in the sandbox (the environment's python3, standard library
only, Python 3.11 for tomllib) to install the project the way
`pip install -e .` would for its authors and to run its tests the way a
bare `pytest` would:

- "name", "version": the distribution's name and version from
  pyproject.toml [project] or [tool.poetry], setup.cfg [metadata] or a
  literal name=/version= in setup.py ("" when none is found; a dynamic
  version becomes the package's literal __version__, else "0").
- "import_roots": directories (relative to ROOT) that go on sys.path: those
  that pyproject.toml or setup.cfg name (setuptools package-dir and
  packages.find where, poetry packages from, hatch wheel packages), else
  "src" when it holds a package or module, else "." when ROOT holds a
  package (the flat layout).
- "config": the file pytest takes its configuration from, in pytest's
  order: pytest.ini, pyproject.toml with [tool.pytest.ini_options], tox.ini
  with [pytest], setup.cfg with [tool:pytest] ("" for none).
- "testpaths": the configuration's testpaths, globs expanded, existing
  paths only; pytest would collect exactly these when run without paths.
- "test_dirs": without testpaths, the directories where tests probably
  are: "tests" and "test" at ROOT, else such directories inside the import
  roots' packages ("src/pkg/tests", "pkg/tests"); empty means pytest's own
  discovery from ROOT.
- "addopts": the configuration's addopts as pytest splits them (a TOML
  list as is, a string with shlex), for validate to drop the options of
  plugins the environment lacks.
- "site": the site-packages directory where a .pth file takes effect.
"""

import ast
import configparser
import glob
import json
import os
import re
import shlex
import site
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11: no pyproject.toml support
    tomllib = None


def read_toml(root):
    path = os.path.join(root, "pyproject.toml")
    if tomllib is None or not os.path.isfile(path):
        return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, ValueError) as err:
        sys.stderr.write("project.py: pyproject.toml: %s\n" % err)
        return {}


def read_ini(root, name):
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        return None
    cp = configparser.RawConfigParser(strict=False)
    try:
        cp.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as err:
        sys.stderr.write("project.py: %s: %s\n" % (name, err))
        return None
    return cp


def holds_package(d):
    """Report whether directory d holds a Python package or module."""
    if not os.path.isdir(d):
        return False
    for name in os.listdir(d):
        full = os.path.join(d, name)
        if name.endswith(".py") and name not in ("setup.py", "conftest.py", "noxfile.py") and not name.startswith("test"):
            return True
        if os.path.isdir(full) and not name.startswith((".", "test")) and os.path.isfile(os.path.join(full, "__init__.py")):
            return True
    return False


def import_roots(root, toml, setup_cfg):
    named = []
    tool = toml.get("tool", {})
    st = tool.get("setuptools", {})
    pkg_dir = st.get("package-dir", {})
    if isinstance(pkg_dir, dict) and isinstance(pkg_dir.get(""), str):
        named.append(pkg_dir[""])
    find = st.get("packages", {})
    if isinstance(find, dict):
        where = find.get("find", {}).get("where", [])
        named.extend(w for w in where if isinstance(w, str))
    for p in tool.get("poetry", {}).get("packages", []) or []:
        if isinstance(p, dict) and isinstance(p.get("from"), str):
            named.append(p["from"])
    wheel = tool.get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    for p in wheel.get("packages", []) or []:
        if isinstance(p, str) and "/" in p.strip("/"):
            named.append(os.path.dirname(p.strip("/")))
    if setup_cfg is not None and setup_cfg.has_option("options", "package_dir"):
        for line in setup_cfg.get("options", "package_dir").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "" and value.strip():
                named.append(value.strip())
    out = []
    for d in named:
        d = os.path.normpath(d).replace(os.sep, "/")
        if d not in out and not d.startswith("..") and os.path.isdir(os.path.join(root, d)):
            out.append(d)
    if out:
        return out
    if holds_package(os.path.join(root, "src")):
        return ["src"]
    if holds_package(root):
        return ["."]
    return []


def literal(setup_py, key):
    m = re.search(r"\b%s\s*=\s*['\"]([^'\"]+)['\"]" % key, setup_py)
    return m.group(1) if m else ""


def package_version(root, roots, name):
    """Return a literal __version__ of the project's package, or ""."""
    mod = name.replace("-", "_").lower()
    for r in roots:
        for cand in (os.path.join(root, r, mod, "__init__.py"), os.path.join(root, r, mod, "_version.py"), os.path.join(root, r, mod, "__about__.py")):
            try:
                with open(cand, encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (OSError, SyntaxError, ValueError):
                continue
            for node in tree.body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    if any(isinstance(t, ast.Name) and t.id in ("__version__", "version", "VERSION") for t in node.targets):
                        return node.value.value
    return ""


def pytest_config(root, toml):
    """Return (config file name, testpaths list, addopts list) as pytest
    would find them."""
    if os.path.isfile(os.path.join(root, "pytest.ini")):
        cp = read_ini(root, "pytest.ini")
        return "pytest.ini", split_ini(cp, "pytest", "testpaths"), split_ini(cp, "pytest", "addopts")
    opts = toml.get("tool", {}).get("pytest", {}).get("ini_options")
    if isinstance(opts, dict):
        return "pyproject.toml", toml_args(opts.get("testpaths", []), str.split), toml_args(opts.get("addopts", []), split_args)
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        cp = read_ini(root, name)
        if cp is not None and cp.has_section(section):
            return name, split_ini(cp, section, "testpaths"), split_ini(cp, section, "addopts")
    return "", [], []


def split_args(text):
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def toml_args(value, split):
    """Return a TOML ini option of pytest's "args" type as a list: a
    string split, a list as is."""
    if isinstance(value, str):
        return split(value)
    return [x for x in value if isinstance(x, str)] if isinstance(value, list) else []


def split_ini(cp, section, key):
    if cp is None or not cp.has_option(section, key):
        return []
    value = cp.get(section, key)
    return split_args(value) if key == "addopts" else value.split()


def expand(root, paths):
    out = []
    for p in paths:
        hits = sorted(glob.glob(os.path.join(root, p))) or []
        for h in hits:
            rel = os.path.relpath(h, root).replace(os.sep, "/")
            if rel not in out and not rel.startswith(".."):
                out.append(rel)
    return out


def test_dirs(root, roots):
    out = [d for d in ("tests", "test") if os.path.isdir(os.path.join(root, d))]
    if out:
        return out
    for r in roots:
        base = os.path.join(root, r)
        for pkg in sorted(os.listdir(base)):
            for t in ("tests", "test"):
                d = os.path.join(base, pkg, t)
                if os.path.isdir(d) and not pkg.startswith("."):
                    out.append(os.path.relpath(d, root).replace(os.sep, "/"))
    return out


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        sys.stderr.write("usage: project.py ROOT\n")
        return 2
    root = argv[1]
    toml = read_toml(root)
    setup_cfg = read_ini(root, "setup.cfg")
    setup_py = ""
    try:
        with open(os.path.join(root, "setup.py"), encoding="utf-8") as f:
            setup_py = f.read()
    except (OSError, UnicodeDecodeError):
        pass
    project = toml.get("project", {})
    poetry = toml.get("tool", {}).get("poetry", {})
    name = project.get("name") or poetry.get("name") or ""
    version = project.get("version") or poetry.get("version") or ""
    if setup_cfg is not None and setup_cfg.has_section("metadata"):
        name = name or setup_cfg.get("metadata", "name", fallback="")
        v = setup_cfg.get("metadata", "version", fallback="")
        version = version or ("" if v.startswith(("attr:", "file:")) else v)
    name = name or literal(setup_py, "name")
    version = version or literal(setup_py, "version")
    roots = import_roots(root, toml, setup_cfg)
    if name and not version:
        version = package_version(root, roots, name) or "0"
    config, testpaths, addopts = pytest_config(root, toml)
    testpaths = expand(root, testpaths)
    packages = site.getsitepackages() if hasattr(site, "getsitepackages") else []
    out = {
        "name": name if isinstance(name, str) else "",
        "version": str(version),
        "import_roots": roots,
        "config": config,
        "testpaths": testpaths,
        "addopts": addopts,
        "test_dirs": [] if testpaths else test_dirs(root, [r for r in roots if r != "."] + ["."]),
        "site": packages[0] if packages else "",
    }
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
