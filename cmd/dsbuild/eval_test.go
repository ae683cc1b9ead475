package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/harness"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
)

// evalBaseLayout is testenv.PythonLayout: the test Debian rootfs as an OCI layout.
func evalBaseLayout(t *testing.T) string { t.Helper(); return testenv.PythonLayout(t) }

// evalRecipe makes fix and implement tasks from the quickstart's mathx
// project and exports them with their images.
const evalRecipe = `name: evaltest
environments:
  python: {layout: %q}
sandbox: {timeout: 120s}
stages:
  repos:
    uses: repo
    with: {paths: [%q], allow_outside: true}
  checked: {uses: validate, foreach: repos, with: {runs: 1}}
  bugs:
    uses: inject_bugs
    foreach: checked
    with: {per_repo: 3, candidates: 12, combine: 1, seed: 3, test_timeout: 10s}
  stubs:
    uses: stub_tasks
    foreach: checked
    with: {group: module, test_timeout: 10s}
  dataset:
    uses: export
    from: [bugs, stubs]
    with: {name: eval test}
`

// evalFixture is a built and exported dataset shared by the eval tests.
type evalFixture struct {
	dir, cache, dataset string
	instances           []schema.TaskInstance
}

var (
	evalOnce sync.Once
	evalFix  *evalFixture
	evalErr  string
)

func buildEvalDataset(t *testing.T) *evalFixture {
	t.Helper()
	evalOnce.Do(func() {
		base := evalBaseLayout(t)
		// Beside the test binary, which TestMain removes at the end; the
		// sandbox's unprivileged uid must reach the store in it.
		dir := filepath.Join(filepath.Dir(binary), "eval")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			evalErr = err.Error()
			return
		}
		os.Chmod(filepath.Dir(binary), 0o755)
		mathx, err := filepath.Abs("../../recipes/quickstart/projects/mathx")
		if err != nil {
			evalErr = err.Error()
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "recipe.yaml"), []byte(fmt.Sprintf(evalRecipe, base, mathx)), 0o644); err != nil {
			evalErr = err.Error()
			return
		}
		fx := &evalFixture{dir: dir, cache: filepath.Join(dir, "cache"), dataset: filepath.Join(dir, "out")}
		r := dsbuild(t, dir, "--cache", fx.cache, "--out", "out", "recipe.yaml")
		if r.code != 0 {
			evalErr = fmt.Sprintf("build: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			return
		}
		body, err := os.ReadFile(filepath.Join(fx.dataset, harness.InstancesFile))
		if err != nil {
			evalErr = err.Error()
			return
		}
		for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			inst, err := schema.ParseSWEBenchJSON([]byte(line))
			if err != nil {
				evalErr = err.Error()
				return
			}
			fx.instances = append(fx.instances, inst)
		}
		evalFix = fx
	})
	if evalFix == nil {
		t.Fatalf("eval dataset: %s", evalErr)
	}
	return evalFix
}

// writePredictions writes one prediction line per instance, the patch
// chosen by patchOf (nil: null).
func writePredictions(t *testing.T, path, model string, insts []schema.TaskInstance, patchOf func(schema.TaskInstance) *string) {
	t.Helper()
	var b strings.Builder
	for _, inst := range insts {
		line, err := json.Marshal(map[string]any{"instance_id": inst.InstanceID, "model_name_or_path": model, "model_patch": patchOf(inst)})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readEvalReport(t *testing.T, path string) *harness.Report {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r harness.Report
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func taskTypes(insts []schema.TaskInstance) []string {
	seen := map[string]bool{}
	var out []string
	for _, inst := range insts {
		if !seen[string(inst.TaskType)] {
			seen[string(inst.TaskType)] = true
			out = append(out, string(inst.TaskType))
		}
	}
	sort.Strings(out)
	return out
}

// Every exported instance carries a test specification a harness can run:
// test files that exist in its image and a test command naming the test
// files of its FAIL_TO_PASS and PASS_TO_PASS tests.
func TestExportedInstancesCarryATestSpec(t *testing.T) {
	fx := buildEvalDataset(t)
	if got := taskTypes(fx.instances); strings.Join(got, ",") != "fix,implement" {
		t.Fatalf("task types %v, want fix and implement", got)
	}
	for _, inst := range fx.instances {
		if len(inst.TestFiles) == 0 {
			t.Errorf("%s: no test_files", inst.InstanceID)
		}
		for _, id := range append(append([]string(nil), inst.FailToPass...), inst.PassToPass...) {
			file, _, _ := strings.Cut(id, "::")
			if !strings.Contains(inst.TestCmd, " "+file) {
				t.Errorf("%s: test_cmd %q does not run %s", inst.InstanceID, inst.TestCmd, file)
			}
			found := false
			for _, f := range inst.TestFiles {
				found = found || f == file
			}
			if !found {
				t.Errorf("%s: %s is not among test_files %q", inst.InstanceID, file, inst.TestFiles)
			}
		}
	}
}

// Gold patches resolve every instance, of every task type; empty and null
// patches resolve none and count as empty patches. The reports have
// SWE-bench's per-test shape.
func TestEvalGoldAndEmptyPatches(t *testing.T) {
	fx := buildEvalDataset(t)
	gold := filepath.Join(fx.dir, "gold.jsonl")
	writePredictions(t, gold, "gold/model", fx.instances, func(inst schema.TaskInstance) *string { return &inst.Patch })
	r := dsbuild(t, fx.dir, "--cache", fx.cache, "-j", "2", "eval", fx.dataset, gold)
	if r.code != 0 {
		t.Fatalf("eval gold: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := readEvalReport(t, filepath.Join(fx.dir, "eval", "gold__model.gold.json"))
	n := len(fx.instances)
	if rep.SubmittedInstances != n || rep.ResolvedInstances != n || rep.ErrorInstances != 0 || rep.TotalInstances != n {
		t.Fatalf("gold: %d of %d submitted, %d resolved, %d errors (%v)\n%s", rep.SubmittedInstances, n, rep.ResolvedInstances, rep.ErrorInstances, rep.ErrorIDs, r.stdout)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("%d resolved (100.0%%)", n)) {
		t.Errorf("summary does not say all resolved:\n%s", r.stdout)
	}
	for _, typ := range taskTypes(fx.instances) {
		if c := rep.ByTaskType[typ]; c.Resolved == 0 || c.Resolved != c.Submitted {
			t.Errorf("gold %s: %+v", typ, c)
		}
	}
	for _, inst := range fx.instances {
		v := rep.Instances[inst.InstanceID]
		if v == nil || !v.PatchSuccessfullyApplied || v.AppliedWith != harness.AppliedExactly || len(v.TouchedTestFiles) > 0 {
			t.Fatalf("%s: %+v", inst.InstanceID, v)
		}
		st := v.TestsStatus["FAIL_TO_PASS"]
		if len(st.Success) != len(inst.FailToPass) || len(st.Failure) != 0 || len(v.TestsStatus["PASS_TO_PASS"].Success) != len(inst.PassToPass) {
			t.Errorf("%s: tests_status %+v", inst.InstanceID, v.TestsStatus)
		}
	}

	empty := filepath.Join(fx.dir, "empty.jsonl")
	i := 0
	writePredictions(t, empty, "empty", fx.instances, func(schema.TaskInstance) *string {
		i++
		if i%2 == 0 {
			return nil
		}
		s := ""
		return &s
	})
	out := filepath.Join(fx.dir, "reports", "empty.json")
	r = dsbuild(t, fx.dir, "--cache", fx.cache, "eval", filepath.Join(fx.dataset, harness.InstancesFile), empty, "--report", out, "--run-id", "e1")
	if r.code != 0 {
		t.Fatalf("eval empty: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep = readEvalReport(t, out)
	if rep.ResolvedInstances != 0 || rep.EmptyPatchInstances != n || rep.CompletedInstances != 0 || rep.RunID != "e1" {
		t.Fatalf("empty: %d resolved, %d empty patch, %d completed of %d", rep.ResolvedInstances, rep.EmptyPatchInstances, rep.CompletedInstances, n)
	}
	for _, typ := range taskTypes(fx.instances) {
		if c := rep.ByTaskType[typ]; c.Resolved != 0 || c.EmptyPatch != c.Submitted || c.Submitted == 0 {
			t.Errorf("empty %s: %+v", typ, c)
		}
	}
}

// A patch that rewrites a failing test so that it passes is graded with
// the test restored: unresolved, and reported as touching the test file.
// A patch that does not apply is an error. --instance-ids grades only the
// instances named.
func TestEvalTestEditsAndBadPatches(t *testing.T) {
	fx := buildEvalDataset(t)
	var fix schema.TaskInstance
	for _, inst := range fx.instances {
		if inst.TaskType == schema.TaskFix && len(inst.FailToPass) > 0 {
			fix = inst
			break
		}
	}
	if fix.InstanceID == "" {
		t.Fatal("no fix instance")
	}
	cheat := cheatingPatch(t, fix)
	bad := "diff --git a/src/mathx/roman.py b/src/mathx/roman.py\n--- a/src/mathx/roman.py\n+++ b/src/mathx/roman.py\n@@ -1,1 +1,1 @@\n-this line is not in the file\n+x = 1\n"
	var other schema.TaskInstance
	for _, inst := range fx.instances {
		if inst.InstanceID != fix.InstanceID {
			other = inst
			break
		}
	}
	preds := filepath.Join(fx.dir, "cheat.jsonl")
	writePredictions(t, preds, "cheat", []schema.TaskInstance{fix, other}, func(inst schema.TaskInstance) *string {
		if inst.InstanceID == fix.InstanceID {
			return &cheat
		}
		return &bad
	})
	r := dsbuild(t, fx.dir, "--cache", fx.cache, "eval", fx.dataset, preds)
	if r.code != 0 {
		t.Fatalf("eval: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := readEvalReport(t, filepath.Join(fx.dir, "eval", "cheat.cheat.json"))
	v := rep.Instances[fix.InstanceID]
	file, _, _ := strings.Cut(fix.FailToPass[0], "::")
	if v.Resolved || v.Status != harness.Unresolved || strings.Join(v.TouchedTestFiles, ",") != file || rep.TouchedTestInstances != 1 {
		t.Errorf("test-editing patch: %+v", v)
	}
	if len(v.TestsStatus["FAIL_TO_PASS"].Failure) == 0 {
		t.Errorf("test-editing patch: FAIL_TO_PASS %+v; the restored tests should fail on the buggy code", v.TestsStatus["FAIL_TO_PASS"])
	}
	if !strings.Contains(r.stdout, "tests reset "+fix.InstanceID) {
		t.Errorf("summary does not name the test edit:\n%s", r.stdout)
	}
	w := rep.Instances[other.InstanceID]
	if w.Status != harness.Error || w.PatchSuccessfullyApplied || !strings.Contains(w.Error, "does not apply") || rep.ErrorInstances != 1 {
		t.Errorf("patch that does not apply: %+v", w)
	}
	if !strings.Contains(r.stdout, "error       "+other.InstanceID) {
		t.Errorf("summary does not name the error:\n%s", r.stdout)
	}

	out := filepath.Join(fx.dir, "one.json")
	r = dsbuild(t, fx.dir, "--cache", fx.cache, "eval", fx.dataset, preds, "--instance-ids", fix.InstanceID, "--report", out)
	if r.code != 0 {
		t.Fatalf("eval --instance-ids: exit %d\n%s", r.code, r.stderr)
	}
	if rep := readEvalReport(t, out); rep.SubmittedInstances != 1 || rep.Instances[fix.InstanceID] == nil {
		t.Errorf("--instance-ids %s: submitted %v", fix.InstanceID, rep.SubmittedIDs)
	}
}

// cheatingPatch rewrites the file of inst's first FAIL_TO_PASS test so
// that every test of the instance in that file passes without checking
// anything.
func cheatingPatch(t *testing.T, inst schema.TaskInstance) string {
	t.Helper()
	file, _, _ := strings.Cut(inst.FailToPass[0], "::")
	old, err := os.ReadFile(filepath.Join("../../recipes/quickstart/projects/mathx", file))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, id := range append(append([]string(nil), inst.FailToPass...), inst.PassToPass...) {
		if f, name, _ := strings.Cut(id, "::"); f == file {
			fmt.Fprintf(&b, "def %s():\n    pass\n\n\n", name)
		}
	}
	store, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	before, err := store.PutFiles(map[string]cache.File{file: {Data: old}})
	if err != nil {
		t.Fatal(err)
	}
	after, err := store.PutFiles(map[string]cache.File{file: {Data: []byte(b.String())}})
	if err != nil {
		t.Fatal(err)
	}
	diff, err := patch.Diff(store, before, after)
	if err != nil {
		t.Fatal(err)
	}
	return diff
}

// Malformed predictions and predictions of unknown instances exit 2
// naming the file and line, and write no report.
func TestEvalBadPredictionsExit2(t *testing.T) {
	fx := buildEvalDataset(t)
	id := fx.instances[0].InstanceID
	good := fmt.Sprintf(`{"instance_id": %q, "model_name_or_path": "m", "model_patch": ""}`, id)
	for name, c := range map[string]struct{ body, want string }{
		"notjson": {good + "\n{not json\n", "bad.jsonl:2: not a JSON object"},
		"unknown": {good + "\n\n" + `{"instance_id": "no-such-task", "model_name_or_path": "m", "model_patch": ""}` + "\n", `bad.jsonl:3: instance "no-such-task" is not in`},
		"nopatch": {`{"instance_id": "x", "model_name_or_path": "m"}` + "\n", `bad.jsonl:1: no "model_patch"`},
		"twice":   {good + "\n" + good + "\n", "bad.jsonl:2: instance " + fmt.Sprintf("%q", id) + " was already predicted at bad.jsonl:1"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "bad.jsonl"), []byte(c.body), 0o644); err != nil {
				t.Fatal(err)
			}
			r := dsbuild(t, dir, "--cache", fx.cache, "eval", fx.dataset, "bad.jsonl")
			if r.code != 2 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, c.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "eval")); err == nil {
				t.Error("a report was written")
			}
		})
	}
	r := dsbuild(t, fx.dir, "--cache", fx.cache, "eval", filepath.Join(fx.dir, "recipe.yaml"), filepath.Join(fx.dir, "gold.jsonl"))
	if r.code != 2 {
		t.Errorf("eval of a recipe file: exit %d, stderr %q; want 2", r.code, r.stderr)
	}
}
