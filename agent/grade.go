package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// TestReport is the outcome of one test run: the report the task's
// language profile read from its output (Status maps test ids to
// lang.StatusPassed, StatusFailed, StatusError or StatusSkipped;
// CollectionErrors name what could not be loaded), and the run itself.
type TestReport struct {
	lang.Report
	// ExitCode is the test command's exit status.
	ExitCode int
	// Output is stdout followed by stderr.
	Output string
	// LimitHit names the sandbox limit the run hit, if any.
	LimitHit string
}

// RunTests runs testCmd, narrowed to tests (see TestArgs), in a sandbox
// from image on tree (mounted at /testbed), with the language's TestEnv,
// and reads the output with prof.ParseReport. The run is memoised by the
// sandbox. The error is for infrastructure failures only; failing tests and
// limits are in the report.
func RunTests(ctx context.Context, env Env, prof lang.Profile, image schema.Image, tree cache.Digest, testCmd []string, tests []string) (*TestReport, error) {
	if env.Sandbox == nil {
		return nil, errors.New("agent: RunTests: Env.Sandbox is nil")
	}
	if len(testCmd) == 0 {
		return nil, errors.New("agent: RunTests: empty test command")
	}
	argv := append(append([]string(nil), testCmd...), TestArgs(prof, tests)...)
	res, err := env.Sandbox.Run(ctx, sandbox.Spec{
		Image:     image,
		Workspace: tree,
		Argv:      argv,
		Env:       TestEnv(prof),
		Dir:       Workdir,
		Limits:    env.SandboxLimits,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: running tests %q: %w", strings.Join(testCmd, " "), err)
	}
	out := Normalize(string(res.Stdout) + string(res.Stderr))
	return &TestReport{Report: prof.ParseReport(out), ExitCode: res.ExitCode, Output: out, LimitHit: res.LimitHit}, nil
}

// TestArgs are the arguments appended to a test command to run only tests
// (test ids or test paths). pytest takes node ids and paths as arguments,
// so for Python they are tests themselves. The test commands of other
// languages are made whole for the paths they cover when a repository is
// validated (Profile.TestCommand) and take no ids: they run as they are,
// and graders read the tests they need from the full report.
func TestArgs(prof lang.Profile, tests []string) []string {
	if prof.Name() == lang.Python {
		return tests
	}
	return nil
}

// TestTargets returns, sorted, the files among paths that the language's
// test runner runs as test files when named: for Python the modules pytest
// collects by default (test_*.py, *_test.py), for Go *_test.go files, for
// JavaScript the test files (prof.IsTestFile) that are .js, .cjs or .mjs,
// for Rust the integration-test targets (tests/x.rs, tests/x/main.rs), and
// for any other language its test files. Helpers beside them (conftest.py,
// testdata, tests/common/mod.rs) are left out: they are overlaid, not run.
func TestTargets(prof lang.Profile, paths []string) []string {
	var out []string
	for _, p := range paths {
		base := path.Base(p)
		var ok bool
		switch prof.Name() {
		case lang.Python:
			ok = strings.HasSuffix(base, ".py") && (strings.HasPrefix(base, "test_") || strings.HasSuffix(base, "_test.py"))
		case "go":
			ok = strings.HasSuffix(base, "_test.go")
		case "javascript":
			ext := path.Ext(p)
			ok = prof.IsTestFile(p) && (ext == ".js" || ext == ".cjs" || ext == ".mjs")
		case "rust":
			rest, under := strings.CutPrefix(p, "tests/")
			ok = under && strings.HasSuffix(rest, ".rs") && (!strings.Contains(rest, "/") || (path.Base(rest) == "main.rs" && strings.Count(rest, "/") == 1))
		default:
			ok = prof.IsTestFile(p)
		}
		if ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// RunTestFiles runs only the tests of the given test files (TestTargets)
// on tree: testCmd with the files appended for Python (pytest takes
// paths), the profile's own command narrowed to the files for other
// languages (prof.TestCommand: go test on their packages, node on each
// file, cargo test --test on each target), whose task test commands take
// no arguments. Reproduce and testgen grading run the tests an agent
// wrote this way.
func RunTestFiles(ctx context.Context, env Env, prof lang.Profile, image schema.Image, tree cache.Digest, testCmd []string, files []string) (*TestReport, error) {
	if prof.Name() == lang.Python {
		return RunTests(ctx, env, prof, image, tree, testCmd, files)
	}
	return RunTests(ctx, env, prof, image, tree, prof.TestCommand(files), nil)
}

// TestEnv is the environment of test runs and execute_bash commands in the
// language of prof: BashEnv and the profile's TestEnv (less what BashEnv
// already sets).
func TestEnv(prof lang.Profile) []string {
	env := slices.Clone(BashEnv)
	for _, v := range prof.TestEnv() {
		if !slices.Contains(env, v) {
			env = append(env, v)
		}
	}
	return env
}

// Grading is the verdict on a rollout's final workspace, as Grade returns
// it. (Go allows only one of a function and a type to be called Grade; the
// function has the name.)
type Grading struct {
	// Resolved is true when every FAIL_TO_PASS and PASS_TO_PASS test PASSED
	// (and there is at least one such test).
	Resolved bool
	// Reward is the fraction of FAIL_TO_PASS ∪ PASS_TO_PASS tests that
	// PASSED.
	Reward float64
	// Status is the status of every test the run reported.
	Status map[string]string
	// Patch is the diff from the task's workspace to the final tree as the
	// agent left it (test edits included; they were undone for grading).
	Patch string
	// Tree is the tree that was tested: the final tree with the protected
	// paths restored.
	Tree cache.Digest
	// Report is the test run.
	Report *TestReport
}

// Grade restores the task's protected paths in final from the task's
// workspace (so edits to tests are undone), runs the FAIL_TO_PASS and
// PASS_TO_PASS tests in a fresh sandbox from the task image, and scores
// them.
func Grade(ctx context.Context, env Env, task Task, final cache.Digest) (*Grading, error) {
	prof, err := lang.Get(task.Language)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", task.InstanceID, err)
	}
	restored, err := RestoreProtected(env.Store, prof, task.Workspace, final, task.Protected)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: restoring protected paths: %w", task.InstanceID, err)
	}
	tests := unique(append(append([]string(nil), task.FailToPass...), task.PassToPass...))
	rep, err := RunTests(ctx, env, prof, task.Image, restored, task.TestCmd, tests)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", task.InstanceID, err)
	}
	p, err := patch.Diff(env.Store, task.Workspace, final)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: computing the patch: %w", task.InstanceID, err)
	}
	passed := 0
	for _, t := range tests {
		if rep.Status[t] == lang.StatusPassed {
			passed++
		}
	}
	g := &Grading{Status: rep.Status, Patch: p, Tree: restored, Report: rep}
	if len(tests) > 0 {
		g.Reward = float64(passed) / float64(len(tests))
		g.Resolved = passed == len(tests)
	}
	return g, nil
}

func unique(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// IsProtected reports whether a path relative to /testbed is one grading
// restores: a path under one of the protected prefixes (relative to
// /testbed, or written as /testbed/tests/ or ./tests/), and, whenever
// anything is protected, every test file of the language (prof.IsTestFile:
// for Python also every conftest.py and the top-level pytest.ini, through
// which a patch could change how pytest reports results without touching a
// test), wherever it is and whether or not the start tree has it.
func IsProtected(prof lang.Profile, p string, protected []string) bool {
	if len(protected) == 0 {
		return false
	}
	if prof.IsTestFile(p) {
		return true
	}
	for _, pre := range protected {
		if patch.Selected(p, []string{strings.TrimPrefix(strings.TrimPrefix(pre, Workdir+"/"), "./")}) {
			return true
		}
	}
	return false
}

// RestoreProtected returns final with every protected path (IsProtected)
// made as in orig: files the agent added there are removed, changed or
// deleted ones put back.
func RestoreProtected(store *cache.Store, prof lang.Profile, orig, final cache.Digest, protected []string) (cache.Digest, error) {
	changed, err := ProtectedChanges(store, prof, orig, final, protected)
	if err != nil || len(changed) == 0 {
		return final, err
	}
	want, err := store.Files(orig)
	if err != nil {
		return cache.Digest{}, err
	}
	changes := map[string]*cache.TreeEntry{}
	for _, p := range changed {
		if e, ok := want[p]; ok {
			changes[p] = &e
		} else {
			changes[p] = nil
		}
	}
	return patch.Edit(store, final, changes)
}

// ProtectedChanges lists, sorted, the protected paths (IsProtected) that
// differ between orig and final: added, changed or deleted.
func ProtectedChanges(store *cache.Store, prof lang.Profile, orig, final cache.Digest, protected []string) ([]string, error) {
	if len(protected) == 0 || orig == final {
		return nil, nil
	}
	want, err := store.Files(orig)
	if err != nil {
		return nil, err
	}
	have, err := store.Files(final)
	if err != nil {
		return nil, err
	}
	var out []string
	for p, e := range have {
		if w, ok := want[p]; (!ok || w != e) && IsProtected(prof, p, protected) {
			out = append(out, p)
		}
	}
	for p := range want {
		if _, ok := have[p]; !ok && IsProtected(prof, p, protected) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// jsonMarshal encodes v without HTML escaping and without a trailing newline.
func jsonMarshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
