package stages_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/stages"
)

// Fixture repositories laid out like real ones: none of them puts itself
// on sys.path, so their tests pass only if validate installs them.

// srcProject has the src/ layout with pyproject.toml (name, version,
// testpaths, markers and --strict-markers in addopts), a conftest that
// imports the package, a module that calls its own functions at import
// time, a module that passes one of its functions to map() at import time
// (which mutate.py cannot see, so stubbing the whole module breaks
// collection), a test module that cannot be imported, and parametrised
// tests whose ids hold spaces.
var srcProject = map[string]string{
	"pyproject.toml": `[project]
name = "srcpkg"
version = "1.2.3"

[tool.pytest.ini_options]
testpaths = ["tests"]
markers = ["slow: a slow test"]
addopts = "--strict-markers"
`,
	"src/srcpkg/__init__.py": `from importlib.metadata import version

__version__ = version("srcpkg")
`,
	"src/srcpkg/tables.py": `def square(x):
    y = x * x
    return y


def build_table(n):
    t = {}
    for i in range(n):
        t[i] = square(i)
    return t


TABLE = build_table(5)
`,
	"src/srcpkg/words.py": `def shout(s):
    out = s.upper()
    return out + "!"


def count_words(s):
    n = len(s.split())
    return n
`,
	"src/srcpkg/names.py": `def normalize(s):
    t = s.strip()
    return t.lower()


def join_names(names):
    out = ", ".join(names)
    return out


def initials(names):
    letters = [n[0] for n in names]
    return "".join(letters).upper()


KNOWN = list(map(normalize, [" Ann ", "Bob"]))
`,
	"tests/test_names.py": `from srcpkg.names import KNOWN, initials, join_names


def test_known():
    assert KNOWN == ["ann", "bob"]


def test_join():
    assert join_names(["a", "b"]) == "a, b"


def test_initials():
    assert initials(["ann", "bob"]) == "AB"
`,
	"tests/conftest.py": `import pytest
import srcpkg


@pytest.fixture
def pkg_version():
    return srcpkg.__version__
`,
	"tests/test_tables.py": `from srcpkg.tables import TABLE, square


def test_table():
    assert TABLE[4] == 16


def test_square():
    assert square(3) == 9


def test_version(pkg_version):
    assert pkg_version == "1.2.3"
`,
	"tests/test_words.py": `import pytest
from srcpkg.words import shout, count_words


@pytest.mark.slow
def test_shout():
    assert shout("hi") == "HI!"


@pytest.mark.parametrize("text,n", [("a b", 2), ("one", 1), ("x y z", 3)])
def test_count(text, n):
    assert count_words(text) == n


def test_count_plain():
    assert count_words("p q") == 2
`,
	"tests/test_needs_plugin.py": "import frobnicate_plugin_xyz\n\n\ndef test_never():\n    pass\n",
}

// inpkgProject keeps its tests inside the package, found through
// setup.cfg's testpaths and python_files.
var inpkgProject = map[string]string{
	"setup.cfg": `[metadata]
name = inpkg

[tool:pytest]
testpaths = inpkg
python_files = check_*.py
`,
	"inpkg/__init__.py": "",
	"inpkg/ops.py": `def add(a, b):
    s = a + b
    return s


def mul(a, b):
    p = a * b
    return p
`,
	"inpkg/tests/__init__.py": "",
	"inpkg/tests/check_ops.py": `from inpkg.ops import add, mul


def test_add():
    assert add(2, 3) == 5


def test_mul():
    assert mul(2, 3) == 6


def test_both():
    assert add(mul(2, 2), 1) == 5
`,
}

// toxProject is a flat module whose tests are in checks/, named by
// tox.ini's [pytest] testpaths, and whose addopts name plugins the
// environment lacks (pytest-xdist, pytest-cov).
var toxProject = map[string]string{
	"tox.ini": "[tox]\nenvlist = py3\n\n[pytest]\ntestpaths = checks\naddopts = -p xdist --cov=toxmod --cov-report term -n auto --strict-markers\n",
	"toxmod.py": `def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x
`,
	"checks/test_clamp.py": `from toxmod import clamp


def test_low():
    assert clamp(-1, 0, 5) == 0


def test_high():
    assert clamp(9, 0, 5) == 5


def test_mid():
    assert clamp(3, 0, 5) == 3
`,
}

// needsDepProject's tests import a module the environment lacks.
var needsDepProject = map[string]string{
	"src/needsdep/__init__.py": "def one():\n    return 1\n",
	"tests/test_one.py":        "import frobnicate_lib\nfrom needsdep import one\n\n\ndef test_one():\n    assert one() == 1\n",
}

// envProject needs its per-repository settings: an environment variable
// and a deselected test that would fail.
var envProject = map[string]string{
	"envproj/__init__.py": "import os\n\n\ndef greeting():\n    word = os.environ['GREETING']\n    return word.title()\n",
	"tests/test_env.py": `from envproj import greeting


def test_greeting():
    assert greeting() == "Hi"


def test_greeting_is_a_word():
    assert greeting().isalpha()


def test_broken_elsewhere():
    assert False
`,
}

const layoutRecipe = `name: layouttest
environments:
  python: {layout: %q}
sandbox: {timeout: 60s}
stages:
  repos:
    uses: repo
    with:
      paths: ["projects/*"]
      repos:
        - {path: extra/envproj, env: {GREETING: hi}, deselect: ["tests/test_env.py::test_broken_elsewhere"], test_timeout: 4s}
  checked:
    uses: validate
    foreach: repos
    with: {runs: 2}
  bugs:
    uses: inject_bugs
    foreach: checked
    with: {per_repo: 6, candidates: 30, combine: 2, seed: 1, test_timeout: 3s}
  stubs:
    uses: stub_tasks
    foreach: checked
    with: {test_timeout: 3s}
`

// TestRealLayouts runs repositories laid out like real ones through
// validate, inject_bugs and stub_tasks with default settings: each is
// installed and tested as its authors' pytest would, a missing dependency
// is named, a test module that cannot be imported is ignored, ids with
// spaces stay out of the task lists, and combined bugs do not reuse
// instances.
func TestRealLayouts(t *testing.T) {
	base := taskBaseLayout(t)
	dir := t.TempDir()
	for name, files := range map[string]map[string]string{"srcpkg": srcProject, "inpkg": inpkgProject, "toxproj": toxProject, "needsdep": needsDepProject} {
		writeProject(t, filepath.Join(dir, "projects"), name, files)
	}
	writeProject(t, filepath.Join(dir, "extra"), "envproj", envProject)
	p := filepath.Join(dir, "recipe.yaml")
	text := fmt.Sprintf(layoutRecipe, base)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	store := testenv.Store(t)
	rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")})
	if err != nil {
		t.Fatal(err)
	}
	b := &taskBuild{dir: dir, text: []byte(text), store: store, rec: rec, r: r}
	validated := func(repo string) *stages.Validated {
		items := b.items(t, "checked", repo)
		if len(items) != 1 {
			t.Fatalf("%s was not kept by validate (counters %v)", repo, b.nodeCounts(t, "checked", repo))
		}
		var v stages.Validated
		if err := build.GetJSON(store, items[0].Value, &v); err != nil {
			t.Fatal(err)
		}
		return &v
	}

	t.Run("validate", func(t *testing.T) {
		src := validated("srcpkg")
		if !slices.Equal(src.TestPaths, []string{"tests"}) || !slices.Equal(src.Ignored, []string{"tests/test_needs_plugin.py"}) ||
			!slices.Contains(src.TestCmd, "--ignore=tests/test_needs_plugin.py") {
			t.Errorf("srcpkg: test paths %v, ignored %v, command %v", src.TestPaths, src.Ignored, src.TestCmd)
		}
		// Installed with its metadata (version() at import), the marker
		// accepted under --strict-markers, the conftest importing it.
		for _, id := range []string{"tests/test_tables.py::test_version", "tests/test_words.py::test_shout", "tests/test_words.py::test_count[a b-2]"} {
			if src.Status[id] != "PASSED" {
				t.Errorf("srcpkg: %s is %q; status %v", id, src.Status[id], src.Status)
			}
		}
		if len(src.Image.Layers) != len(src.Base.Layers)+1 || len(src.Base.Layers) < 2 {
			t.Errorf("srcpkg: image layers %d on a base of %d (the install layer)", len(src.Image.Layers), len(src.Base.Layers))
		}
		if c := b.nodeCounts(t, "checked", "srcpkg"); c["test modules ignored: cannot be collected"] != 1 {
			t.Errorf("srcpkg counters %v", c)
		}
		inpkg := validated("inpkg")
		if !slices.Equal(inpkg.TestPaths, []string{"inpkg"}) || len(inpkg.Status) != 3 || inpkg.Status["inpkg/tests/check_ops.py::test_add"] != "PASSED" {
			t.Errorf("inpkg: test paths %v, status %v", inpkg.TestPaths, inpkg.Status)
		}
		tox := validated("toxproj")
		if !slices.Equal(tox.TestPaths, []string{"checks"}) || len(tox.Status) != 3 {
			t.Errorf("toxproj: test paths %v, status %v", tox.TestPaths, tox.Status)
		}
		// The options of the missing plugins are dropped, the rest of
		// addopts is kept.
		if !slices.Contains(tox.TestCmd, "addopts=--strict-markers") {
			t.Errorf("toxproj: command %v", tox.TestCmd)
		}
		if c := b.nodeCounts(t, "checked", "toxproj"); c["addopts options dropped: plugin missing"] != 7 {
			t.Errorf("toxproj counters %v", c)
		}
		env := validated("envproj")
		if len(env.Status) != 2 || env.Status["tests/test_env.py::test_greeting"] != "PASSED" || env.TestTimeout != "4s" {
			t.Errorf("envproj: status %v, test timeout %q", env.Status, env.TestTimeout)
		}
		c := b.nodeCounts(t, "checked", "needsdep")
		want := "rejected:no passing test: ModuleNotFoundError: No module named 'frobnicate_lib' (the Debian package python3-frobnicate-lib may provide it: add it to the environment's packages)"
		if c[want] != 1 {
			t.Errorf("needsdep counters %v; want %q", c, want)
		}
	})

	t.Run("inject_bugs", func(t *testing.T) {
		for _, repo := range []string{"srcpkg", "inpkg", "toxproj"} {
			bundles := b.bundles(t, "bugs", repo)
			if len(bundles) == 0 {
				t.Errorf("%s: no bug kept (counters %v)", repo, b.nodeCounts(t, "bugs", repo))
			}
			for _, tb := range bundles {
				for _, id := range append(slices.Clone(tb.Instance.FailToPass), tb.Instance.PassToPass...) {
					if strings.Contains(id, " ") {
						t.Errorf("%s: test id with a space %q in %s", repo, id, tb.Instance.InstanceID)
					}
				}
				for _, p := range tb.Protected {
					if p == "inpkg" || p == "inpkg/" {
						t.Errorf("%s: the whole package is protected: %v", repo, tb.Protected)
					}
				}
			}
		}
		if c := b.nodeCounts(t, "bugs", "srcpkg"); c["tests left out: id with spaces"] != 2 || c["rejected:breaks collection"] == c["kept"]+c["rejected:no failing test"] {
			t.Errorf("srcpkg bug counters %v", c)
		}
		inpkg := b.bundles(t, "bugs", "inpkg")
		if len(inpkg) > 0 && !slices.Contains(inpkg[0].Protected, "inpkg/tests/") {
			t.Errorf("inpkg protected %v", inpkg[0].Protected)
		}
		// No single bug is also part of a combined one.
		for _, repo := range []string{"srcpkg", "inpkg", "toxproj"} {
			var patches []string
			var combined []string
			for _, tb := range b.bundles(t, "bugs", repo) {
				if strings.Contains(tb.Instance.InstanceID, "__combine-") {
					combined = append(combined, tb.Instance.Patch)
				} else {
					patches = append(patches, tb.Instance.Patch)
				}
			}
			for _, cp := range combined {
				for _, sp := range patches {
					if hunk := sp[strings.Index(sp, "@@"):]; strings.Contains(cp, hunk) {
						t.Errorf("%s: a single bug is also part of a combined one:\n%s", repo, sp)
					}
				}
			}
		}
	})

	t.Run("stub_tasks", func(t *testing.T) {
		// words.py is stubbed whole; names.py breaks collection whole
		// (normalize runs at import time through map()), so its functions
		// are tried one by one and the two that can be stubbed make one
		// task; normalize alone is rejected.
		c := b.nodeCounts(t, "stubs", "srcpkg")
		if c["stubs tried: modules"] != 2 || c["stubs kept: modules"] != 1 || c["stubs broke collection: modules (their functions tried one by one)"] != 1 ||
			c["stubs tried: functions of those modules"] != 3 || c["stubs kept: modules less the functions that broke collection"] != 1 ||
			c["rejected:breaks collection"] != 1 || c["kept"] != 2 {
			t.Errorf("srcpkg stub counters %v", c)
		}
		lessBroken := 0
		for _, tb := range b.bundles(t, "stubs", "srcpkg") {
			st := tb.Instance.ProblemStatement
			if strings.Contains(st, "square") || strings.Contains(st, "build_table") || strings.Contains(st, "normalize") {
				t.Errorf("%s stubs a function run at import time:\n%s", tb.Instance.InstanceID, st)
			}
			if strings.Contains(st, "`join_names`") && strings.Contains(st, "`initials`") {
				lessBroken++
			}
		}
		if lessBroken != 1 {
			t.Errorf("srcpkg: %d tasks stub names.py less normalize, want 1", lessBroken)
		}

		// inpkg has one module, so one module task: fewer than min_tasks
		// (default 2), so its functions are tried alone (add and mul, both
		// noticed by the tests) and the first one that passes
		// re-verification is added.
		c = b.nodeCounts(t, "stubs", "inpkg")
		if c["stubs tried: modules"] != 1 || c["stubs kept: modules"] != 1 || c["stubs tried: functions (too few module tasks)"] != 2 ||
			c["stubs kept: functions (too few module tasks)"] != 2 || c["kept"] != 2 {
			t.Errorf("inpkg stub counters %v", c)
		}
		bundles := b.bundles(t, "stubs", "inpkg")
		var whole, single int
		for _, tb := range bundles {
			in := tb.Instance
			st := in.ProblemStatement
			switch {
			case strings.Contains(st, "`add`") && strings.Contains(st, "`mul`"):
				whole++
			case strings.Contains(st, "implement add in inpkg/ops.py") || strings.Contains(st, "implement mul in inpkg/ops.py"):
				single++
			}
			if in.TaskType != "implement" || len(in.FailToPass) == 0 || !strings.Contains(in.Patch, "-    raise NotImplementedError") {
				t.Errorf("%s: type %s, F2P %v, patch:\n%s", in.InstanceID, in.TaskType, in.FailToPass, in.Patch)
			}
		}
		if len(bundles) != 2 || whole != 1 || single != 1 {
			t.Errorf("inpkg: %d stub tasks (%d of the module, %d of one function), want 2 (1, 1)", len(bundles), whole, single)
		}
		// toxproj's only module has one function: the function alone is
		// the same task, so nothing is tried again.
		c = b.nodeCounts(t, "stubs", "toxproj")
		if c["kept"] != 1 || c["stubs tried: functions (too few module tasks)"] != 0 {
			t.Errorf("toxproj stub counters %v", c)
		}
	})
}
