"""Tests of mutate.py: every transform on a small snippet, locality, determinism, stubs, CLI."""
import ast
import difflib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MUTATE = os.path.join(HERE, "mutate.py")
PROJECTS = os.path.normpath(os.path.join(HERE, "..", "..", "recipes", "quickstart", "projects"))

_spec = importlib.util.spec_from_file_location("mutate", MUTATE)
mutate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutate)

ALL = {name for name, _ in mutate.TRANSFORMS}


def make_repo(tmp_path, source, relpath="src/pkg/mod.py"):
    path = tmp_path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return str(tmp_path)


def changes(root, cand):
    """Return the candidate's diff as a list of (removed lines, added lines) hunks."""
    with open(os.path.join(root, cand["file"]), encoding="utf-8") as f:
        old = f.read().splitlines()
    new = cand["new_source"].splitlines()
    hunks = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag != "equal":
            hunks.append((old[i1:i2], new[j1:j2]))
    return hunks


def run_transform(root, name):
    cands = mutate.bug_candidates(root, [], {name})
    assert all(c["transform"] == name for c in cands)
    return [(changes(root, c), c) for c in cands]


def only_hunks(root, name):
    return [h for h, _ in run_transform(root, name)]


def test_invert_if(tmp_path):
    root = make_repo(tmp_path, """
        def f(a, b):
            if a < b and b > 0:
                return a
            while not a:
                a = 1
            return a if a == b else b
    """)
    assert only_hunks(root, "invert_if") == [
        [(["    if a < b and b > 0:"], ["    if not (a < b and b > 0):"])],
        [(["    while not a:"], ["    while a:"])],
        [(["    return a if a == b else b"], ["    return a if a != b else b"])],
    ]


def test_swap_comparison(tmp_path):
    root = make_repo(tmp_path, """
        def f(a, b):
            return a < b or a == b
    """)
    assert only_hunks(root, "swap_comparison") == [
        [(["    return a < b or a == b"], ["    return a <= b or a == b"])],
        [(["    return a < b or a == b"], ["    return a > b or a == b"])],
        [(["    return a < b or a == b"], ["    return a < b or a != b"])],
    ]


def test_swap_arith(tmp_path):
    root = make_repo(tmp_path, """
        def f(a, b):
            a += 2
            c = a * b - 1
            return "%d" % c
    """)
    assert only_hunks(root, "swap_arith") == [
        [(["    a += 2"], ["    a -= 2"])],
        [(["    c = a * b - 1"], ["    c = a * b + 1"])],
        [(["    c = a * b - 1"], ["    c = a // b - 1"])],
    ]


def test_swap_arith_keeps_precedence(tmp_path):
    root = make_repo(tmp_path, """
        def f(a, b, c):
            return a - b * c
    """)
    hunks = only_hunks(root, "swap_arith")
    assert [(["    return a - b * c"], ["    return a + b * c"])] in hunks
    # b * c -> b // c; a - b + c would also be wrong, so the splice must keep the grouping.
    assert [(["    return a - b * c"], ["    return a - b // c"])] in hunks
    # ** -> * lowers the precedence: the splice must add parentheses to keep the tree
    root2 = make_repo(tmp_path / "two", """
        def g(a, b, c):
            return a - b ** c
    """)
    assert only_hunks(root2, "swap_arith") == [
        [(["    return a - b ** c"], ["    return a + b ** c"])],
        [(["    return a - b ** c"], ["    return a - b * c"])],
    ]
    root3 = make_repo(tmp_path / "three", """
        def g(a, b, c):
            return a * b ** c
    """)
    assert only_hunks(root3, "swap_arith") == [
        [(["    return a * b ** c"], ["    return a // b ** c"])],
        [(["    return a * b ** c"], ["    return a * (b * c)"])],
    ]


def test_swap_operands(tmp_path):
    root = make_repo(tmp_path, """
        def f(a, b):
            if a <= b:
                return a - b
            return a + b
    """)
    assert only_hunks(root, "swap_operands") == [
        [(["    if a <= b:"], ["    if b <= a:"])],
        [(["        return a - b"], ["        return b - a"])],
    ]


def test_off_by_one(tmp_path):
    root = make_repo(tmp_path, """
        def f(n, xs):
            total = 0
            for i in range(1, n):
                total += xs[:n][i]
            return total
    """)
    assert only_hunks(root, "off_by_one") == [
        [(["    total = 0"], ["    total = 1"])],
        [(["    total = 0"], ["    total = -1"])],
        [(["    for i in range(1, n):"], ["    for i in range(2, n):"])],
        [(["    for i in range(1, n):"], ["    for i in range(0, n):"])],
        [(["    for i in range(1, n):"], ["    for i in range(1, n + 1):"])],
        [(["    for i in range(1, n):"], ["    for i in range(1, n - 1):"])],
        [(["        total += xs[:n][i]"], ["        total += xs[:n + 1][i]"])],
        [(["        total += xs[:n][i]"], ["        total += xs[:n - 1][i]"])],
    ]


def test_off_by_one_folds_into_existing_offset(tmp_path):
    root = make_repo(tmp_path, """
        def f(n):
            return list(range(n + 1))
    """)
    # the range bound n + 1 is left to the constant site: 1 -> 2 and 1 -> 0 (folded to n)
    assert only_hunks(root, "off_by_one") == [
        [(["    return list(range(n + 1))"], ["    return list(range(n + 2))"])],
        [(["    return list(range(n + 1))"], ["    return list(range(n + 0))"])],
    ]
    assert mutate._shift(ast.parse("n + 1", mode="eval").body, -1).id == "n"
    assert ast.unparse(mutate._shift(ast.parse("n - 1", mode="eval").body, -1)) == "n - 2"


def test_remove_statement(tmp_path):
    root = make_repo(tmp_path, """
        def f(xs):
            \"\"\"Docstring stays.\"\"\"
            out = []
            for x in xs:
                if x < 0:
                    continue
                out.append(x)  # keep
            return out
    """)
    assert only_hunks(root, "remove_statement") == [
        [(["    out = []"], [])],
        [(["            continue"], ["            pass"])],
        [(["        out.append(x)  # keep"], [])],
    ]


def test_remove_statement_keeps_final_return_but_drops_early_ones(tmp_path):
    root = make_repo(tmp_path, """
        def f(x):
            if x:
                return 1
            raise ValueError("no")
    """)
    assert only_hunks(root, "remove_statement") == [
        [(["        return 1"], ["        pass"])],
        [(['    raise ValueError("no")'], [])],
    ]


def test_remove_branch(tmp_path):
    root = make_repo(tmp_path, """
        def f(x):
            if x < 0:
                s = -1
            elif x == 0:
                s = 0
            else:
                s = 1
            return s
    """)
    sources = [c["new_source"] for _, c in run_transform(root, "remove_branch")]
    expected = [
        # drop the elif branch, keep the else
        "def f(x):\n    if x < 0:\n        s = -1\n    else:\n        s = 1\n    return s\n",
        # drop the first if body: the elif becomes the if
        "def f(x):\n    if x == 0:\n        s = 0\n    else:\n        s = 1\n    return s\n",
        # drop the else of the elif
        "def f(x):\n    if x < 0:\n        s = -1\n    elif x == 0:\n        s = 0\n    return s\n",
    ]
    for src in expected:
        assert ast.dump(ast.parse(src)) in [ast.dump(ast.parse(s)) for s in sources]
    assert len(sources) == len(set(sources))


def test_remove_branch_without_else_drops_if(tmp_path):
    root = make_repo(tmp_path, """
        def f(x):
            if x < 0:
                x = -x
            return x
    """)
    assert only_hunks(root, "remove_branch") == [[(["    if x < 0:", "        x = -x"], [])]]


def test_remove_loop(tmp_path):
    root = make_repo(tmp_path, """
        def f(xs):
            t = 0
            for x in xs:
                t += x
            while t > 10:
                t -= 10
            return t
    """)
    assert only_hunks(root, "remove_loop") == [
        [(["    for x in xs:", "        t += x"], [])],
        [(["    while t > 10:", "        t -= 10"], [])],
    ]


def test_remove_loop_leaves_pass_in_empty_body(tmp_path):
    root = make_repo(tmp_path, """
        def f(xs):
            if xs:
                for x in xs:
                    print(x)
            return xs
    """)
    assert only_hunks(root, "remove_loop") == [[(["        for x in xs:", "            print(x)"], ["        pass"])]]


def test_swap_args(tmp_path):
    root = make_repo(tmp_path, """
        def f(a, b, c):
            g(a, b, c)
            max(a, b)
            h(a, a)
    """)
    assert only_hunks(root, "swap_args") == [
        [(["    g(a, b, c)"], ["    g(b, a, c)"])],
        [(["    g(a, b, c)"], ["    g(a, c, b)"])],
    ]


def test_change_return(tmp_path):
    root = make_repo(tmp_path, """
        def f(x):
            if x == 1:
                return True
            if x == 2:
                return 0
            if x == 3:
                return None
            return x * 2
    """)
    assert only_hunks(root, "change_return") == [
        [(["        return True"], ["        return False"])],
        [(["        return 0"], ["        return 1"])],
        [(["    return x * 2"], ["    return None"])],
    ]


def test_swap_bool_op(tmp_path):
    root = make_repo(tmp_path, """
        def f(a, b, c):
            return a and (b or c)
    """)
    assert only_hunks(root, "swap_bool_op") == [
        [(["    return a and (b or c)"], ["    return a or (b or c)"])],
        [(["    return a and (b or c)"], ["    return a and (b and c)"])],
    ]


def test_break_chained_comparison(tmp_path):
    root = make_repo(tmp_path, """
        def f(a, b, c):
            return a < b <= c
    """)
    assert only_hunks(root, "break_chained_comparison") == [
        [(["    return a < b <= c"], ["    return a < b"])],
        [(["    return a < b <= c"], ["    return b <= c"])],
    ]


def test_every_transform_has_a_test():
    tested = {name[len("test_"):] for name in globals() if name.startswith("test_")}
    missing = [name for name in sorted(ALL) if not any(t.startswith(name) for t in tested)]
    assert missing == []


def test_methods_nested_classes_and_locality(tmp_path):
    source = """
        import functools


        class Outer:
            \"\"\"A class.\"\"\"

            limit = 3  # class attributes are never touched

            class Inner:
                def deep(self, x):
                    return x < 2  # deep


            @functools.lru_cache(maxsize=None)
            def method(self, n):
                \"\"\"Multi-line
                docstring.\"\"\"
                # a comment that must survive
                total = 0
                for i in range(n):
                    total += i * 2
                return total


        def tail(x):
            return x - 1
    """
    root = make_repo(tmp_path, source)
    cands = mutate.bug_candidates(root, [], ALL)
    assert {c["function"] for c in cands} == {"Outer.Inner.deep", "Outer.method", "tail"}
    with open(os.path.join(root, "src/pkg/mod.py")) as f:
        original = f.read()
    orig_tree = ast.parse(original)
    units = {u.qualname: u.node for u in mutate.collect_units(orig_tree)}
    for c in cands:
        node = units[c["function"]]
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        old_lines = original.splitlines()
        new_lines = c["new_source"].splitlines()
        # lines before the function and after it are unchanged
        assert new_lines[: first - 1] == old_lines[: first - 1], c["id"]
        after = len(old_lines) - node.end_lineno
        assert after == 0 or new_lines[-after:] == old_lines[-after:], c["id"]
        # other functions parse to the same trees
        new_units = {u.qualname: ast.dump(u.node) for u in mutate.collect_units(ast.parse(c["new_source"]))}
        for name, other in units.items():
            if name != c["function"]:
                assert new_units[name] == ast.dump(other), c["id"]
        assert c["line"] >= first and c["line"] <= node.end_lineno
        assert c["id"].startswith("%s-src/pkg/mod.py-%s-%d-" % (c["transform"], c["function"], c["line"]))
        assert "pkg.mod." + c["function"] in c["description"]
        if c["function"] == "Outer.method":
            assert "        # a comment that must survive" in new_lines
            assert ast.get_docstring(ast.parse(c["new_source"]).body[1].body[3]) == "Multi-line\ndocstring."
    assert len({c["id"] for c in cands}) == len(cands)
    assert len({c["new_source"] for c in cands}) == len(cands)


def test_unicode_columns(tmp_path):
    root = make_repo(tmp_path, """
        def f(s):
            return "é—ü" + s if len(s) > 2 else s
    """)
    hunks = only_hunks(root, "swap_comparison")
    assert hunks[0] == [(['    return "é—ü" + s if len(s) > 2 else s'], ['    return "é—ü" + s if len(s) >= 2 else s'])]


def test_skips_tests_and_respects_include(tmp_path):
    make_repo(tmp_path, "def a(x):\n    return x + 1\n", "src/pkg/a.py")
    make_repo(tmp_path, "def b(x):\n    return x + 1\n", "src/pkg/sub/b.py")
    make_repo(tmp_path, "def t(x):\n    return x + 1\n", "tests/test_a.py")
    make_repo(tmp_path, "def t(x):\n    return x + 1\n", "src/pkg/test_x.py")
    make_repo(tmp_path, "def t(x):\n    return x + 1\n", "conftest.py")
    make_repo(tmp_path, "def t(x):\n    return x + 1\n", ".venv/lib.py")
    make_repo(tmp_path, "def broken(:\n", "src/pkg/broken.py")
    root = str(tmp_path)
    assert mutate.source_files(root, []) == ["src/pkg/a.py", "src/pkg/broken.py", "src/pkg/sub/b.py"]
    assert mutate.source_files(root, ["src/**/*.py"]) == ["src/pkg/a.py", "src/pkg/broken.py", "src/pkg/sub/b.py"]
    assert mutate.source_files(root, ["src/*/*.py"]) == ["src/pkg/a.py", "src/pkg/broken.py"]
    assert mutate.source_files(root, ["**/b.py"]) == ["src/pkg/sub/b.py"]
    files = {c["file"] for c in mutate.bug_candidates(root, [], ALL)}
    assert files == {"src/pkg/a.py", "src/pkg/sub/b.py"}


def run_cli(*args):
    proc = subprocess.run([sys.executable, MUTATE, *args], capture_output=True)
    return proc.returncode, proc.stdout, proc.stderr.decode()


def test_cli_determinism_and_seed():
    root = os.path.join(PROJECTS, "mathx")
    code, out1, _ = run_cli("bugs", root, "--seed", "7")
    assert code == 0
    _, out2, _ = run_cli("bugs", root, "--seed", "7")
    assert out1 == out2
    _, out3, _ = run_cli("bugs", root, "--seed", "8")
    c1 = json.loads(out1)["candidates"]
    c3 = json.loads(out3)["candidates"]
    assert [c["id"] for c in c1] != [c["id"] for c in c3]
    assert sorted(c["id"] for c in c1) == sorted(c["id"] for c in c3)
    _, out4, _ = run_cli("bugs", root, "--seed", "7", "--max", "5")
    assert [c["id"] for c in json.loads(out4)["candidates"]] == [c["id"] for c in c1[:5]]
    for c in c1:
        assert set(c) == {"id", "transform", "file", "function", "line", "description", "new_source"}
        compile(c["new_source"], c["file"], "exec")


def test_cli_transform_filter_and_errors(tmp_path):
    root = os.path.join(PROJECTS, "textkit")
    code, out, _ = run_cli("bugs", root, "--transforms", "swap_bool_op,break_chained_comparison")
    assert code == 0
    assert {c["transform"] for c in json.loads(out)["candidates"]} == {"swap_bool_op", "break_chained_comparison"}
    code, out, err = run_cli("bugs", root, "--transforms", "nope")
    assert code == 2 and out == b"" and "nope" in err
    code, out, err = run_cli("bugs", str(tmp_path / "missing"))
    assert code == 2 and out == b"" and "not a directory" in err
    code, out, err = run_cli("stub", root, "--max", "-1")
    assert code == 2 and "--max" in err


def test_stub(tmp_path):
    root = make_repo(tmp_path, """
        class C:
            def __init__(self):
                self.x = 1

            @property
            def value(self):
                return self.x * 2

            def double(self, y):
                \"\"\"Return twice y.\"\"\"
                z = y * 2
                return z

            def trivial(self):
                return self.x


        def free(a):
            if a:
                return 1
            return 2


        def empty():
            pass
    """)
    cands = mutate.stub_candidates(root, [])
    assert [c["function"] for c in cands] == ["C.double", "free"]
    double = cands[0]
    assert double["id"] == "stub-src/pkg/mod.py-C.double"
    assert double["line"] == 10
    assert changes(root, double) == [(["        z = y * 2", "        return z"], ["        raise NotImplementedError"])]
    assert changes(root, cands[1]) == [(["    if a:", "        return 1", "    return 2"], ["    raise NotImplementedError"])]
    tree = ast.parse(double["new_source"])
    assert ast.get_docstring(tree.body[0].body[2]) == "Return twice y."


def test_stub_cli_on_project():
    root = os.path.join(PROJECTS, "minicalc")
    code, out, _ = run_cli("stub", root, "--seed", "3")
    assert code == 0
    cands = json.loads(out)["candidates"]
    names = {c["function"] for c in cands}
    assert {"tokenize", "to_rpn", "evaluate_rpn", "Calculator.evaluate", "_apply"} <= names
    assert "Calculator.__init__" not in names and "CalcError.__init__" not in names
    for c in cands:
        assert "raise NotImplementedError" in c["new_source"]
        compile(c["new_source"], c["file"], "exec")


@pytest.mark.parametrize("project", ["mathx", "textkit", "minicalc"])
def test_projects_yield_enough_candidates(project):
    root = os.path.join(PROJECTS, project)
    cands = mutate.bug_candidates(root, [], ALL)
    assert len(cands) >= 200
    transforms = {c["transform"] for c in cands}
    assert len(transforms) >= 10
    assert len({c["function"] for c in cands}) >= 8
    assert len(mutate.stub_candidates(root, [])) >= 8


def test_crlf_line_endings_are_kept(tmp_path):
    path = tmp_path / "m.py"
    path.write_bytes(b"def f(xs):\r\n    out = []\r\n    for x in xs:\r\n        out.append(x + 1)\r\n    return out\r\n")
    cands = mutate.bug_candidates(str(tmp_path), [], ALL)
    assert len(cands) >= 5
    for c in cands:
        assert "\n" not in c["new_source"].replace("\r\n", ""), c["id"]
    loop = [c for c in cands if c["transform"] == "remove_loop"]
    assert [c["new_source"] for c in loop] == ["def f(xs):\r\n    out = []\r\n    return out\r\n"]


def test_edits_rebuild_the_new_sources(tmp_path):
    # --edits gives each change as a byte span of the file and its
    # replacement, whole lines only; applied to the file they give exactly
    # the new_source of the plain output, for files with non-ASCII text too.
    root = make_repo(tmp_path, """
        NAME = "héllo €"


        def f(xs):
            out = []
            for x in xs:
                if x > 1:
                    out.append(x + 1)
            return out  # ünïcode
    """)
    for mode in ("bugs", "stub"):
        code, plain, _ = run_cli(mode, root, "--seed", "2")
        assert code == 0
        code, edits, _ = run_cli(mode, root, "--seed", "2", "--edits")
        assert code == 0
        plain, edits = json.loads(plain)["candidates"], json.loads(edits)["candidates"]
        assert plain and [c["id"] for c in plain] == [c["id"] for c in edits]
        for p, e in zip(plain, edits):
            assert "new_source" not in e
            with open(os.path.join(root, e["file"]), "rb") as f:
                old = f.read()
            ed = e["edit"]
            assert ed["start"] == 0 or old[ed["start"] - 1:ed["start"]] == b"\n"
            assert ed["end"] == len(old) or old[ed["end"] - 1:ed["end"]] == b"\n"
            assert old[: ed["start"]] + ed["replacement"].encode() + old[ed["end"]:] == p["new_source"].encode()
            assert len(ed["replacement"]) < len(p["new_source"])


def test_stub_skips_functions_run_at_import_time(tmp_path):
    # A function that a module calls while it is imported (directly, as a
    # decorator, through another function, from a test module, or as the
    # constructor of a class instantiated at import) would break collection
    # when stubbed; stub mode leaves those alone and stubs the rest.
    root = make_repo(tmp_path, """
        def helper(x):
            y = x * 2
            return y


        def build():
            t = {}
            t["a"] = helper(1)
            return t


        TABLE = build()


        def register(f):
            REGISTRY.append(f)
            return f


        REGISTRY = []


        @register
        def plugin():
            a = 1
            return a + 1


        class Config:
            def __init__(self):
                self.v = self.load()

            def load(self):
                v = 3
                return v

            def unused(self):
                v = 4
                return v


        DEFAULT = Config()


        def used_by_tests_at_import():
            z = 5
            return z


        def free():
            q = 6
            return q
    """)
    tests = tmp_path / "tests" / "test_mod.py"
    tests.parent.mkdir()
    tests.write_text("from pkg.mod import used_by_tests_at_import\nVALUE = used_by_tests_at_import()\n")
    names = {c["function"] for c in mutate.stub_candidates(root, [])}
    assert names == {"plugin", "Config.unused", "free"}
