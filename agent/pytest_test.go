package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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

func TestParsePytestRealOutput(t *testing.T) {
	out := realPytest(t, map[string]string{"tests/test_mixed.py": mixedSuite})
	status, collect := ParsePytest(out)
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
	status, _ = ParsePytest(out)
	if status["tests/test_mixed.py::test_skip"] != StatusSkipped || status["tests/test_mixed.py::test_fail"] != StatusFailed || len(status) != len(want)+1 {
		t.Fatalf("verbose: %v\n%s", status, out)
	}
}

func TestParsePytestCollectionErrors(t *testing.T) {
	out := realPytest(t, map[string]string{
		"tests/test_ok.py":  "def test_ok():\n    pass\n",
		"tests/test_bad.py": "import does_not_exist\n\ndef test_never():\n    pass\n",
		"tests/test_syn.py": "def test_x(:\n",
	})
	status, collect := ParsePytest(out)
	if !reflect.DeepEqual(collect, []string{"tests/test_bad.py", "tests/test_syn.py"}) || len(status) != 0 {
		t.Fatalf("status %v, collection errors %v\n%s", status, collect, out)
	}
	if !strings.Contains(out, "Interrupted: 2 errors during collection") {
		t.Fatalf("unexpected pytest output:\n%s", out)
	}
}

func TestRunTestsInSandbox(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	rep, err := RunTests(t.Context(), env, task.Image, task.Workspace, task.TestCmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"tests/test_calc.py::test_add":         StatusPassed,
		"tests/test_calc.py::test_total":       StatusFailed,
		"tests/test_calc.py::test_total_empty": StatusPassed,
	}
	if !reflect.DeepEqual(rep.Status, want) || rep.ExitCode != 1 || rep.LimitHit != "" {
		t.Fatalf("report %+v", rep)
	}
	rep, err = RunTests(t.Context(), env, task.Image, task.Workspace, task.TestCmd, []string{"tests/test_calc.py::test_add"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.Status, map[string]string{"tests/test_calc.py::test_add": StatusPassed}) || rep.ExitCode != 0 {
		t.Fatalf("selected test: %+v", rep)
	}
}

func TestPrompts(t *testing.T) {
	p := DefaultPrompts()
	if got := strings.Join(p.TaskTypes(), ","); got != "fix,implement,reproduce,testgen" {
		t.Fatalf("task types %s", got)
	}
	for _, tt := range p.TaskTypes() {
		sys, user, err := Prompt(context.Background(), tt, map[string]string{"problem_statement": "PROBLEM-TEXT", "test_cmd": "pytest"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(user, "PROBLEM-TEXT") || !strings.Contains(sys, "/testbed") || strings.Contains(sys+user, "{{") {
			t.Fatalf("%s: system %q user %q", tt, sys, user)
		}
	}
	if _, _, err := Prompt(context.Background(), "fix", nil); err == nil || !strings.Contains(err.Error(), "problem_statement") {
		t.Fatalf("missing variable: err = %v", err)
	}
	if _, _, err := Prompt(context.Background(), "poetry", nil); err == nil || !strings.Contains(err.Error(), `"poetry"`) {
		t.Fatalf("unknown task type: err = %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fix.system.md"), []byte("Custom system for {{.workdir}}.\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "poetry.system.md"), []byte("Be a poet."), 0o644)
	os.WriteFile(filepath.Join(dir, "poetry.user.md"), []byte("Write about {{.topic}}."), 0o644)
	over, err := PromptsFrom(dir)
	if err != nil {
		t.Fatal(err)
	}
	sys, user, err := over.Render("fix", map[string]string{"problem_statement": "P"})
	if err != nil || sys != "Custom system for /testbed." || !strings.Contains(user, "<issue_description>\nP\n</issue_description>") {
		t.Fatalf("override: %q %q %v", sys, user, err)
	}
	if _, u, err := over.Render("poetry", map[string]string{"topic": "tests"}); err != nil || u != "Write about tests." {
		t.Fatalf("new task type: %q %v", u, err)
	}
	if st, _, _ := over.Text("fix"); st != "Custom system for {{.workdir}}.\n" {
		t.Fatalf("Text gives the raw template, got %q", st)
	}
	os.WriteFile(filepath.Join(dir, "bad.user.md"), []byte("{{.oops"), 0o644)
	if _, err := PromptsFrom(dir); err == nil || !strings.Contains(err.Error(), "bad.user.md") {
		t.Fatalf("broken template: err = %v", err)
	}
}
