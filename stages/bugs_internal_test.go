package stages

import (
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
)

func TestMergeEdits(t *testing.T) {
	old := "def a():\n    return 1\n\n\ndef b():\n    return 2\n"
	va := "def a():\n    return 0\n\n\ndef b():\n    return 2\n"
	vb := "def a():\n    return 1\n\n\ndef b():\n    x = 1\n    return x + 2\n"
	got, err := mergeEdits([]byte(old), []byte(va), []byte(vb))
	if err != nil {
		t.Fatal(err)
	}
	want := "def a():\n    return 0\n\n\ndef b():\n    x = 1\n    return x + 2\n"
	if string(got) != want {
		t.Errorf("merged:\n%s\nwant:\n%s", got, want)
	}
	// Two edits of the same line conflict.
	vc := "def a():\n    return 5\n\n\ndef b():\n    return 2\n"
	if _, err := mergeEdits([]byte(old), []byte(va), []byte(vc)); err == nil {
		t.Error("overlapping edits merged without error")
	}
	// No trailing newline, an edit on the last line.
	got, err = mergeEdits([]byte("a\nb"), []byte("A\nb"), []byte("a\nB"))
	if err != nil || string(got) != "A\nB" {
		t.Errorf("merged %q, %v", got, err)
	}
}

// A real pytest -rA failure report (pytest 7, Debian bookworm).
const pytestOutput = `..F.F                                                                    [100%]
=================================== FAILURES ===================================
________________________________ test_to_roman _________________________________

    def test_to_roman():
>       assert to_roman(4) == "IV"
E       AssertionError: assert 'IIII' == 'IV'
E         - IV
E         + IIII

tests/test_roman.py:5: AssertionError
____________________________ TestGcd.test_negative _____________________________

self = <test_nt.TestGcd object at 0x7f>

    def test_negative(self):
>       assert gcd(-4, 6) == 2
E       assert -2 == 2
E        +  where -2 = gcd(-4, 6)

tests/test_nt.py:9: AssertionError
==================================== PASSES ====================================
=========================== short test summary info ============================
PASSED tests/test_nt.py::test_a
FAILED tests/test_roman.py::test_to_roman - AssertionError: assert 'IIII' == 'IV'
FAILED tests/test_nt.py::TestGcd::test_negative - assert -2 == 2
========================= 2 failed, 3 passed in 0.05s ==========================
`

func TestFixStatement(t *testing.T) {
	cd := &candidate{
		transform: "swap_arith",
		f2p:       []string{"tests/test_nt.py::TestGcd::test_negative", "tests/test_roman.py::test_to_roman"},
		output:    pytestOutput,
		gold:      "diff --git a/src/x.py b/src/x.py\n",
	}
	s := fixStatement(pythonProfile, "mathx", nil, cd)
	for _, want := range []string{
		"mathx: 2 tests fail in tests/test_nt.py, tests/test_roman.py\n",
		"`tests/test_nt.py::TestGcd::test_negative`",
		"assert -2 == 2",
		"Expected `gcd(-4, 6)` to give `2`, but it gave `-2`.",
		"AssertionError: assert 'IIII' == 'IV'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("statement lacks %q:\n%s", want, s)
		}
	}
	for _, bad := range []string{"swap_arith", "diff --git", "0.05s", "0x7f"} {
		if strings.Contains(s, bad) {
			t.Errorf("statement reveals %q:\n%s", bad, s)
		}
	}
}

func TestTaskParamsValidate(t *testing.T) {
	for _, p := range []*InjectBugsParams{
		{PerRepo: 0, Candidates: 4, TestTimeout: "5s"},
		{PerRepo: 2, Candidates: 4, Combine: 3, TestTimeout: "5s"},
		{PerRepo: 2, Candidates: 4, TestTimeout: "soon"},
		{PerRepo: 2, Candidates: 4, TestTimeout: "5s", Transforms: []string{"Bad-Name"}},
		{PerRepo: 2, Candidates: 4, TestTimeout: "5s", Include: []string{"/abs/**"}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v validated", p)
		}
	}
	if err := (&StubTasksParams{Group: "class", TestTimeout: "5s"}).Validate(); err == nil {
		t.Error("group class validated")
	}
	if err := (&ValidateParams{Runs: 0}).Validate(); err == nil {
		t.Error("runs 0 validated")
	}
	v := &ValidateParams{Runs: 3}
	// No default test command or paths: the repository's language (its
	// profile's command), the project's own pytest configuration, or the
	// test directories found, decide when the node runs.
	if err := v.Validate(); err != nil || len(v.TestCmd) != 0 || len(v.TestPaths) != 0 {
		t.Errorf("defaults %+v, %v", v, err)
	}
}

// protectedPaths protects the tests/ directories under the test paths
// whole and every other test file of the language on its own: conftest.py
// and pytest.ini for Python wherever they are, and a Go repository's
// *_test.go files, which sit next to the code in no test directory.
func TestProtectedPaths(t *testing.T) {
	files := func(paths ...string) map[string]cache.TreeEntry {
		m := map[string]cache.TreeEntry{}
		for _, p := range paths {
			m[p] = cache.TreeEntry{Type: cache.TypeFile}
		}
		return m
	}
	py := files("conftest.py", "pytest.ini", "src/pkg/mod.py", "src/pkg/conftest.py", "tests/test_a.py",
		"tests/conftest.py", "tests/data/in.json", "docs/example/test_example.py")
	got := strings.Join(protectedPaths(pythonProfile, []string{"tests"}, py), " ")
	if want := "conftest.py docs/example/test_example.py pytest.ini src/pkg/conftest.py tests/"; got != want {
		t.Errorf("python: protected %q, want %q", got, want)
	}
	goProf, err := lang.Get("go")
	if err != nil {
		t.Fatal(err)
	}
	gosrc := files("go.mod", "calc/calc.go", "calc/calc_test.go", "calc/testdata/in.txt", "main.go")
	got = strings.Join(protectedPaths(goProf, nil, gosrc), " ")
	if want := "calc/calc_test.go calc/testdata/in.txt"; got != want {
		t.Errorf("go: protected %q, want %q", got, want)
	}
}
