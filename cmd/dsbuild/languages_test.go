package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/harness"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/schema"
)

// languagesRecipe is recipes/languages.yaml without the oracle rollouts,
// with one validation run and each toolchain's test layout (testenv) as
// its environment: the quickstart projects in Go, JavaScript and Rust
// through validate, inject_bugs, stub_tasks and export.
const languagesRecipe = `name: languagestest
environments:
  go: {layout: %q}
  javascript: {layout: %q}
  rust: {layout: %q}
sandbox: {timeout: 300s}
stages:
  repos:
    uses: repo
    with:
      allow_outside: true
      repos:
        - {path: %q, language: go, environment: go, test_timeout: 30s}
        - {path: %q, language: javascript, environment: javascript, test_timeout: 10s}
        - {path: %q, language: rust, environment: rust, test_timeout: 60s, env: {CARGO_PROFILE_DEV_DEBUG: "0"}}
  checked: {uses: validate, foreach: repos, with: {runs: 1}}
  bugs:
    uses: inject_bugs
    foreach: checked
    with: {per_repo: 11, candidates: 18, combine: 1, seed: 1, test_timeout: 30s}
  stubs:
    uses: stub_tasks
    foreach: checked
    # One source file of each project: every function of the files
    # included is tried.
    with: {group: function, per_repo: 2, seed: 1, test_timeout: 30s, include: [text/*.go, src/text.js, src/codec.rs]}
  dataset:
    uses: export
    from: [bugs, stubs]
    with: {name: languages test}
`

// The quickstart projects of the new languages (recipes/languages) each
// give at least 10 fix and 2 implement instances, re-verified from their
// images by the pipeline; their exported test specification names the
// language, a complete test command and the language's test files; and
// dsbuild eval grades them from the exported images: every gold patch
// resolves, every empty patch is an empty patch, and a patch that changes
// no code (a note beside it) resolves none of the instances it is tried on.
func TestLanguagesQuickstart(t *testing.T) {
	layouts := map[string]string{"go": testenv.GoLayout(t), "javascript": testenv.NodeLayout(t), "rust": testenv.RustLayout(t)}
	// Beside the test binary, which TestMain removes at the end; the
	// sandbox's unprivileged uid must reach the store in it.
	dir := filepath.Join(filepath.Dir(binary), "languages")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(binary), 0o755)
	var projects []any
	for _, l := range []string{"go", "javascript", "rust"} {
		p, err := filepath.Abs(filepath.Join("..", "..", "recipes", "languages", l))
		if err != nil {
			t.Fatal(err)
		}
		projects = append(projects, p)
	}
	args := append([]any{layouts["go"], layouts["javascript"], layouts["rust"]}, projects...)
	writeRecipe(t, dir, fmt.Sprintf(languagesRecipe, args...))
	cacheDir := filepath.Join(dir, "cache")
	r := dsbuild(t, dir, "--cache", cacheDir, "--out", "out", "recipe.yaml")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	dataset := filepath.Join(dir, "out")
	body, err := os.ReadFile(filepath.Join(dataset, harness.InstancesFile))
	if err != nil {
		t.Fatal(err)
	}
	var insts []schema.TaskInstance
	count := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		inst, err := schema.ParseSWEBenchJSON([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, inst)
		count[inst.Language+" "+string(inst.TaskType)]++
		prof, err := lang.Get(inst.Language)
		if err != nil {
			t.Fatalf("%s: %v", inst.InstanceID, err)
		}
		// A complete command (no test ids appended for these languages),
		// and test files the grader restores that are the language's.
		if !strings.HasPrefix(inst.TestCmd, "sh -c ") {
			t.Errorf("%s: test_cmd %q is not the language's whole command", inst.InstanceID, inst.TestCmd)
		}
		if len(inst.TestFiles) == 0 {
			t.Errorf("%s: no test_files", inst.InstanceID)
		}
		for _, f := range inst.TestFiles {
			if !prof.IsTestFile(f) {
				t.Errorf("%s: test_files holds %s, not a %s test file", inst.InstanceID, f, inst.Language)
			}
		}
	}
	t.Logf("instances: %v", count)
	for _, l := range []string{"go", "javascript", "rust"} {
		if count[l+" fix"] < 10 || count[l+" implement"] < 2 {
			t.Errorf("%s: %d fix and %d implement instances, want at least 10 and 2", l, count[l+" fix"], count[l+" implement"])
		}
	}

	gold := filepath.Join(dir, "gold.jsonl")
	writePredictions(t, gold, "gold", insts, func(inst schema.TaskInstance) *string { return &inst.Patch })
	r = dsbuild(t, dir, "--cache", cacheDir, "-j", "2", "eval", dataset, gold, "--report", filepath.Join(dir, "gold.json"))
	if r.code != 0 {
		t.Fatalf("eval gold: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := readEvalReport(t, filepath.Join(dir, "gold.json"))
	if rep.ResolvedInstances != len(insts) || rep.ErrorInstances != 0 {
		var bad []string
		for id, v := range rep.Instances {
			if !v.Resolved {
				bad = append(bad, fmt.Sprintf("%s: %s %s %v", id, v.Status, v.Error, v.TestsStatus))
			}
		}
		sort.Strings(bad)
		t.Fatalf("gold: %d of %d resolved, %d errors:\n%s", rep.ResolvedInstances, len(insts), rep.ErrorInstances, strings.Join(bad, "\n"))
	}

	// Empty patches, and a note that changes no code on the first fix and
	// implement instance of each language: the tests run on the start
	// tree and fail.
	noop := "diff --git a/NOTES.md b/NOTES.md\nnew file mode 100644\n--- /dev/null\n+++ b/NOTES.md\n@@ -0,0 +1 @@\n+looked at it\n"
	tried := map[string]bool{}
	var noopIDs []string
	empty := filepath.Join(dir, "empty.jsonl")
	writePredictions(t, empty, "empty", insts, func(inst schema.TaskInstance) *string {
		if k := inst.Language + " " + string(inst.TaskType); !tried[k] {
			tried[k] = true
			noopIDs = append(noopIDs, inst.InstanceID)
			return &noop
		}
		s := ""
		return &s
	})
	r = dsbuild(t, dir, "--cache", cacheDir, "-j", "2", "eval", dataset, empty, "--report", filepath.Join(dir, "empty.json"))
	if r.code != 0 {
		t.Fatalf("eval empty: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep = readEvalReport(t, filepath.Join(dir, "empty.json"))
	if rep.ResolvedInstances != 0 || rep.EmptyPatchInstances != len(insts)-len(noopIDs) || rep.ErrorInstances != 0 {
		t.Fatalf("empty: %d resolved, %d empty patches of %d, %d errors (%v)", rep.ResolvedInstances, rep.EmptyPatchInstances, len(insts)-len(noopIDs), rep.ErrorInstances, rep.ErrorIDs)
	}
	for _, id := range noopIDs {
		v := rep.Instances[id]
		if v == nil || v.Status != harness.Unresolved || !v.PatchSuccessfullyApplied || len(v.TestsStatus["FAIL_TO_PASS"].Failure) == 0 {
			t.Errorf("%s with a note only: %+v", id, v)
		}
	}
}
