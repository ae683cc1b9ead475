package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// Test statuses in TestReport.Status.
const (
	StatusPassed  = "PASSED"
	StatusFailed  = "FAILED"
	StatusError   = "ERROR"
	StatusSkipped = "SKIPPED"
)

// TestReport is the outcome of one test run.
type TestReport struct {
	// Status maps pytest node ids to PASSED, FAILED, ERROR or SKIPPED.
	Status map[string]string
	// CollectionErrors are the files (or other collectors) pytest could not
	// collect.
	CollectionErrors []string
	// ExitCode is the test command's exit status.
	ExitCode int
	// Output is stdout followed by stderr.
	Output string
	// LimitHit names the sandbox limit the run hit, if any.
	LimitHit string
}

// RunTests runs testCmd, with the test ids appended, in a sandbox from image
// on tree (mounted at /testbed), and parses pytest's report. The run is
// memoised by the sandbox. The error is for infrastructure failures only;
// failing tests and limits are in the report.
func RunTests(ctx context.Context, env Env, image schema.Image, tree cache.Digest, testCmd []string, tests []string) (*TestReport, error) {
	if env.Sandbox == nil {
		return nil, errors.New("agent: RunTests: Env.Sandbox is nil")
	}
	if len(testCmd) == 0 {
		return nil, errors.New("agent: RunTests: empty test command")
	}
	argv := append(append([]string(nil), testCmd...), tests...)
	res, err := env.Sandbox.Run(ctx, sandbox.Spec{
		Image:     image,
		Workspace: tree,
		Argv:      argv,
		Env:       BashEnv,
		Dir:       Workdir,
		Limits:    env.SandboxLimits,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: running tests %q: %w", strings.Join(testCmd, " "), err)
	}
	out := Normalize(string(res.Stdout) + string(res.Stderr))
	status, collect := ParsePytest(out)
	return &TestReport{Status: status, CollectionErrors: collect, ExitCode: res.ExitCode, Output: out, LimitHit: res.LimitHit}, nil
}

var (
	// "PASSED tests/t.py::test_a", "FAILED tests/t.py::test_b - assert 1 == 2"
	summaryLine = regexp.MustCompile(`^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED) (.+)$`)
	// "tests/t.py::test_a PASSED [ 50%]" (verbose mode)
	verboseLine = regexp.MustCompile(`^(\S+::\S.*?) (PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED)(?: .*)?$`)
	// "SKIPPED [1] tests/t.py:12: reason"
	skipLocation = regexp.MustCompile(`^\[\d+\] `)
)

// severity orders statuses so that the worst report of a test wins (a test
// that passed and then errored in teardown is an error).
var severity = map[string]int{StatusPassed: 1, StatusSkipped: 2, StatusFailed: 3, StatusError: 4}

// normalise maps pytest outcomes to the four statuses: an expected failure
// (XFAIL) and a non-strict unexpected pass (XPASS) count as PASSED, as
// pytest's own exit code does.
func normalise(s string) string {
	switch s {
	case "XFAIL", "XPASS":
		return StatusPassed
	}
	return s
}

// ParsePytest reads pytest output run with -rA (the short test summary
// info lines) and, when present, verbose "node PASSED" lines. It returns
// each node id's status and the collectors that failed to collect (ERROR
// lines naming a file rather than a test). Skips reported only by location
// ("SKIPPED [1] file:line: reason") have no node id and are left out.
func ParsePytest(output string) (map[string]string, []string) {
	status := map[string]string{}
	set := func(id, st string) {
		st = normalise(st)
		if old, ok := status[id]; !ok || severity[st] > severity[old] {
			status[id] = st
		}
	}
	var collect []string
	seenCollect := map[string]bool{}
	verbose := map[string]string{}
	for _, line := range strings.Split(output, "\n") {
		line = strings.TrimRight(line, "\r")
		if m := summaryLine.FindStringSubmatch(line); m != nil {
			if m[1] == "SKIPPED" && skipLocation.MatchString(m[2]) {
				continue
			}
			id := nodeID(m[2])
			if id == "" {
				continue
			}
			if !strings.Contains(id, "::") {
				if m[1] == "ERROR" && !seenCollect[id] {
					seenCollect[id] = true
					collect = append(collect, id)
				}
				continue
			}
			set(id, m[1])
			continue
		}
		if m := verboseLine.FindStringSubmatch(line); m != nil {
			if _, ok := verbose[m[1]]; !ok || severity[normalise(m[2])] > severity[verbose[m[1]]] {
				verbose[m[1]] = normalise(m[2])
			}
		}
	}
	for id, st := range verbose {
		if _, ok := status[id]; !ok {
			status[id] = st
		}
	}
	sort.Strings(collect)
	return status, collect
}

// nodeID cuts the node id from the rest of a summary line ("id - message",
// "id reason" for XPASS): it ends at the first space outside the brackets
// of a parametrised id, whose parameters may hold spaces.
func nodeID(rest string) string {
	depth := 0
	for i, c := range rest {
		switch c {
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case ' ':
			if depth == 0 {
				return rest[:i]
			}
		}
	}
	return rest
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
	restored, err := RestoreProtected(env.Store, task.Workspace, final, task.Protected)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: restoring protected paths: %w", task.InstanceID, err)
	}
	tests := unique(append(append([]string(nil), task.FailToPass...), task.PassToPass...))
	rep, err := RunTests(ctx, env, task.Image, restored, task.TestCmd, tests)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", task.InstanceID, err)
	}
	p, err := patch.Diff(env.Store, task.Workspace, final)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: computing the patch: %w", task.InstanceID, err)
	}
	passed := 0
	for _, t := range tests {
		if rep.Status[t] == StatusPassed {
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
// anything is protected, every conftest.py and the top-level pytest.ini,
// through which a patch could change how pytest reports results without
// touching a test file.
func IsProtected(p string, protected []string) bool {
	if len(protected) == 0 {
		return false
	}
	if path.Base(p) == "conftest.py" || p == "pytest.ini" {
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
func RestoreProtected(store *cache.Store, orig, final cache.Digest, protected []string) (cache.Digest, error) {
	changed, err := ProtectedChanges(store, orig, final, protected)
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
func ProtectedChanges(store *cache.Store, orig, final cache.Digest, protected []string) ([]string, error) {
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
		if w, ok := want[p]; (!ok || w != e) && IsProtected(p, protected) {
			out = append(out, p)
		}
	}
	for p := range want {
		if _, ok := have[p]; !ok && IsProtected(p, protected) {
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
