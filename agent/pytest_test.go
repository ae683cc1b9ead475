package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/lang"
)

// python returns the Python profile.
func python(t *testing.T) lang.Profile {
	t.Helper()
	p, err := lang.Get(lang.Python)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunTestsInSandbox(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	rep, err := RunTests(t.Context(), env, python(t), task.Image, task.Workspace, task.TestCmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"tests/test_calc.py::test_add":         lang.StatusPassed,
		"tests/test_calc.py::test_total":       lang.StatusFailed,
		"tests/test_calc.py::test_total_empty": lang.StatusPassed,
	}
	if !reflect.DeepEqual(rep.Status, want) || rep.ExitCode != 1 || rep.LimitHit != "" {
		t.Fatalf("report %+v", rep)
	}
	rep, err = RunTests(t.Context(), env, python(t), task.Image, task.Workspace, task.TestCmd, []string{"tests/test_calc.py::test_add"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.Status, map[string]string{"tests/test_calc.py::test_add": lang.StatusPassed}) || rep.ExitCode != 0 {
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
