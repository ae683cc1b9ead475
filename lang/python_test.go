package lang

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// realPytest runs Debian's pytest on a generated suite and returns its
// output, so the parser is tested on real text.
func realPytest(t *testing.T, files map[string]string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	for p, s := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"-m", "pytest", "-rA", "-p", "no:cacheprovider"}, extra...)
	cmd := exec.Command("/usr/bin/python3", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running pytest (apt-get install python3-pytest): %v", err)
	}
	return string(out)
}

const mixedSuite = `import pytest


@pytest.fixture
def broken():
    raise RuntimeError("setup fails")


@pytest.fixture
def bad_teardown():
    yield 1
    raise RuntimeError("teardown fails")


def test_pass():
    assert True


def test_fail():
    assert 1 == 2, "one is not two - really"


def test_setup_error(broken):
    pass


def test_teardown_error(bad_teardown):
    pass


@pytest.mark.skip(reason="not today")
def test_skip():
    pass


@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False


@pytest.mark.xfail(reason="fixed already")
def test_xpass():
    pass


@pytest.mark.parametrize("v", ["a b", "c - d", "x"])
def test_param(v):
    assert v != "x"


class TestGroup:
    def test_method(self):
        assert True
`

func TestPythonParseReportRealOutput(t *testing.T) {
	out := realPytest(t, map[string]string{"tests/test_mixed.py": mixedSuite})
	rep := python{}.ParseReport(out)
	status, collect := rep.Status, rep.CollectionErrors
	want := map[string]string{
		"tests/test_mixed.py::test_pass":              StatusPassed,
		"tests/test_mixed.py::test_fail":              StatusFailed,
		"tests/test_mixed.py::test_setup_error":       StatusError,
		"tests/test_mixed.py::test_teardown_error":    StatusError, // passed, then errored: the worse wins
		"tests/test_mixed.py::test_xfail":             StatusPassed,
		"tests/test_mixed.py::test_xpass":             StatusPassed,
		"tests/test_mixed.py::test_param[a b]":        StatusPassed,
		"tests/test_mixed.py::test_param[c - d]":      StatusPassed,
		"tests/test_mixed.py::test_param[x]":          StatusFailed,
		"tests/test_mixed.py::TestGroup::test_method": StatusPassed,
	}
	if !reflect.DeepEqual(status, want) || len(collect) != 0 {
		t.Fatalf("parsed %v, collection errors %v\nwant %v\noutput:\n%s", status, collect, want, out)
	}
	// Verbose output also names skipped tests.
	out = realPytest(t, map[string]string{"tests/test_mixed.py": mixedSuite}, "-v")
	status = python{}.ParseReport(out).Status
	if status["tests/test_mixed.py::test_skip"] != StatusSkipped || status["tests/test_mixed.py::test_fail"] != StatusFailed || len(status) != len(want)+1 {
		t.Fatalf("verbose: %v\n%s", status, out)
	}
}

func TestPythonParseReportCollectionErrors(t *testing.T) {
	out := realPytest(t, map[string]string{
		"tests/test_ok.py":  "def test_ok():\n    pass\n",
		"tests/test_bad.py": "import does_not_exist\n\ndef test_never():\n    pass\n",
		"tests/test_syn.py": "def test_x(:\n",
	})
	rep := python{}.ParseReport(out)
	status, collect := rep.Status, rep.CollectionErrors
	if !reflect.DeepEqual(collect, []string{"tests/test_bad.py", "tests/test_syn.py"}) || len(status) != 0 {
		t.Fatalf("status %v, collection errors %v\n%s", status, collect, out)
	}
	if !strings.Contains(out, "Interrupted: 2 errors during collection") {
		t.Fatalf("unexpected pytest output:\n%s", out)
	}
}

// BenchmarkParsePytest parses a 2,000-test -rA report.
func BenchmarkParsePytest(b *testing.B) {
	var out []byte
	for i := 0; i < 2000; i++ {
		out = append(out, "PASSED tests/test_mod.py::test_case_"...)
		out = append(out, byte('a'+i%26), byte('a'+i/26%26), byte('a'+i/676%26))
		out = append(out, "[param 1]\n"...)
	}
	s := string(out)
	b.SetBytes(int64(len(s)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if st, _ := parsePytest(s); len(st) != 2000 {
			b.Fatal(len(st))
		}
	}
}

// The Python profile is the default language and holds today's rules.
func TestPythonProfileBasics(t *testing.T) {
	p, err := Get("")
	if err != nil || p.Name() != Python {
		t.Fatalf("Get(\"\") = %v, %v", p, err)
	}
	if got := p.Packages(); !slices.Equal(got, []string{"python3", "python3-pytest"}) {
		t.Errorf("packages %v", got)
	}
	for files, want := range map[string]bool{
		"pyproject.toml":            true,
		"setup.cfg README.md":       true,
		"src/pkg/mod.py":            true,
		"go.mod main.go":            false,
		"docs/setup.cfg README.md":  false,
		"package.json lib/index.js": false,
	} {
		if got := p.Detect(strings.Fields(files)); got != want {
			t.Errorf("Detect(%s) = %v", files, got)
		}
	}
	if d := Detect([]string{"setup.py", "pkg/__init__.py"}); d == nil || d.Name() != Python {
		t.Errorf("lang.Detect of a Python tree = %v", d)
	}
	if got := strings.Join(p.TestCommand([]string{"tests/test_a.py"}), " "); got != "python3 -m pytest -rA -p no:cacheprovider -q tests/test_a.py" {
		t.Errorf("test command %q", got)
	}
	if got := strings.Join(p.TestCommand(nil), " "); got != "python3 -m pytest -rA -p no:cacheprovider -q" {
		t.Errorf("bare test command %q", got)
	}
	if !slices.Contains(p.TestEnv(), "PYTHONDONTWRITEBYTECODE=1") {
		t.Errorf("test env %v", p.TestEnv())
	}
	for path, want := range map[string]bool{
		"tests/test_a.py":         true,
		"tests/data/input.json":   true,
		"pkg/test/helpers.py":     true,
		"pkg/test_util.py":        true,
		"pkg/util_test.py":        true,
		"conftest.py":             true,
		"pkg/conftest.py":         true,
		"pytest.ini":              true,
		"pkg/pytest.ini":          false,
		"pkg/mod.py":              false,
		"pkg/testing.py":          false,
		"pkg/test_data.json":      false,
		"contests/mod.py":         false,
		"src/pkg/attestations.py": false,
	} {
		if got := p.IsTestFile(path); got != want {
			t.Errorf("IsTestFile(%s) = %v", path, got)
		}
	}
	ids := []string{"tests/test_b.py::test_x[1 2]", "tests/test_a.py::TestC::test_y", "tests/test_b.py::test_z"}
	if got := p.TestFiles(ids, nil); !slices.Equal(got, []string{"tests/test_a.py", "tests/test_b.py"}) {
		t.Errorf("test files %v", got)
	}
}

// Candidates runs the real mutate.py through Source.Run, with the script
// on stdin, and returns edits that apply to the files it names; the same
// seed gives the same list, and a bad transform is ErrBadOptions.
func TestPythonCandidates(t *testing.T) {
	root, err := filepath.Abs("../recipes/quickstart/projects/mathx")
	if err != nil {
		t.Fatal(err)
	}
	var argvs [][]string
	src := Source{
		ReadFile: func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(root, p)) },
		Run: func(ctx context.Context, argv []string, stdin []byte) ([]byte, []byte, int, error) {
			argvs = append(argvs, argv)
			args := slices.Clone(argv[1:])
			for i, a := range args {
				if a == workdir {
					args[i] = root
				}
			}
			cmd := exec.CommandContext(ctx, "/usr/bin/python3", args...)
			cmd.Dir = root
			cmd.Stdin = strings.NewReader(string(stdin))
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			exit := 0
			if ee, ok := err.(*exec.ExitError); ok {
				exit, err = ee.ExitCode(), nil
			}
			return []byte(stdout.String()), []byte(stderr.String()), exit, err
		},
	}
	p, _ := Get(Python)
	opts := CandidateOptions{Seed: 1, Max: 12, Transforms: []string{"swap_arith", "off_by_one"}}
	cands, err := p.Candidates(t.Context(), src, ModeBugs, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"python3", "-", "bugs", "/testbed", "--edits", "--seed", "1", "--max", "12", "--transforms", "swap_arith,off_by_one"}
	if !slices.Equal(argvs[0], want) {
		t.Errorf("argv %q, want %q", argvs[0], want)
	}
	if len(cands) != 12 {
		t.Fatalf("%d candidates, want 12", len(cands))
	}
	for _, c := range cands {
		if c.Transform != "swap_arith" && c.Transform != "off_by_one" || p.IsTestFile(c.File) || c.Function == "" || c.Line < 1 {
			t.Errorf("candidate %+v", c)
		}
		old, err := src.ReadFile(c.File)
		if err != nil || c.Edit.Start < 0 || c.Edit.Start > c.Edit.End || c.Edit.End > len(old) {
			t.Fatalf("candidate %s edits bytes %d-%d of %s (%v)", c.ID, c.Edit.Start, c.Edit.End, c.File, err)
		}
		if string(old[c.Edit.Start:c.Edit.End]) == c.Edit.Replacement {
			t.Errorf("candidate %s changes nothing", c.ID)
		}
	}
	again, err := p.Candidates(t.Context(), src, ModeBugs, opts)
	if err != nil || !reflect.DeepEqual(again, cands) {
		t.Errorf("second enumeration differs (%v)", err)
	}
	stubs, err := p.Candidates(t.Context(), src, ModeStub, CandidateOptions{Include: []string{"src/**"}})
	if err != nil || len(stubs) == 0 {
		t.Fatalf("stubs: %d, %v", len(stubs), err)
	}
	for _, c := range stubs {
		if c.Transform != "stub" || !strings.Contains(c.Edit.Replacement, "NotImplementedError") {
			t.Errorf("stub %+v", c)
		}
	}
	_, err = p.Candidates(t.Context(), src, ModeBugs, CandidateOptions{Transforms: []string{"no_such_transform"}})
	if !errors.Is(err, ErrBadOptions) {
		t.Errorf("unknown transform: err = %v", err)
	}
}
