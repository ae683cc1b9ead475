package stages_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/harness"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
)

// TestPlaygroundEndToEnd runs recipes/swe-playground.yaml against the
// scripted model: a calculator project and a second project (tally) are
// proposed (with a near-duplicate and a project whose plan has a cycle),
// decomposed, scaffolded, developed task by task, turned into fix,
// reproduce, implement and testgen tasks, rolled out (two samples each) and
// exported; then the build is replayed offline with no model call and
// identical outputs. Along the way: no rollout call is a cache hit of the
// derivation that made its task and the samples send different calls;
// every reference patch applies to its start tree with git apply and with
// patch.Apply; tally's implementation agent disputes a wrong test (revised),
// leaves scratch files (dropped) and makes a malformed call (its trajectory
// dropped by the keep policy); the bug proposer is shown the project's
// tests; the export splits by project, and every exported instance of every
// task type is graded from the exported files alone (pgGradeExport).
func TestPlaygroundEndToEnd(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("git not installed: apt-get install git")
	}
	store := testenv.Store(t)
	srv := llmtest.New()
	defer srv.Close()
	var mu sync.Mutex
	var bugPrompts []string
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		if len(r.Messages) > 0 && strings.Contains(r.Messages[0].Content, "You propose realistic bugs") {
			mu.Lock()
			bugPrompts = append(bugPrompts, r.LastUserMessage())
			mu.Unlock()
		}
		return playgroundModel(r)
	})
	t.Setenv("PLAYGROUND_TEST_KEY", "sk-test-not-a-secret")
	vars := map[string]string{
		"OPENAI_BASE_URL":          srv.URL(),
		"PLAYGROUND_MODEL":         "scripted",
		"PLAYGROUND_API_KEY_ENV":   "PLAYGROUND_TEST_KEY",
		"PLAYGROUND_MIN_TASKS":     "2",
		"PLAYGROUND_BUGS":          "3",
		"PLAYGROUND_SAMPLES":       "2",
		"PLAYGROUND_EXPORT_IMAGES": "true",
	}
	getenv := func(k string) string { return vars[k] }
	r, err := build.LoadRecipe(filepath.Join("..", "recipes", "swe-playground.yaml"), getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	out1 := t.TempDir()
	rec, err := build.Build(ctx, r, store, build.Options{Jobs: 2, OutDir: out1})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	calls := srv.Requests()
	sum := map[string]build.StageSummary{}
	for _, s := range rec.Stages {
		sum[s.Stage] = s
		t.Logf("%-18s items=%d counts=%v", s.Stage, s.Items, s.Counts)
	}
	expect := func(stage, counter string, want float64) {
		t.Helper()
		if got := sum[stage].Counts[counter]; got != want {
			t.Errorf("stage %s: counter %q = %v, want %v (all: %v)", stage, counter, got, want, sum[stage].Counts)
		}
	}
	// Proposals: calc, loopy and tally kept, rpn_calc dropped as a
	// near-duplicate, the same ids from the other themes' calls dropped.
	expect("projects", "kept", 3)
	expect("projects", "rejected:near-duplicate", 6)
	expect("projects", "rejected:duplicate id", 15)
	// loopy's plan has a cycle: re-asked, then rejected.
	expect("plans", "kept", 2)
	expect("plans", "rejected:invalid plan", 1)
	// calc's first scaffold has a non-stub body.
	expect("scaffolds", "kept", 2)
	expect("scaffolds", "retry:scaffold check failed", 1)
	// Develop, calc: tests passing on stubs rejected, an implementation
	// editing tests rejected, task 2.1 keeps failing, 2.2 is skipped.
	// tally: a disputed test revised, scratch files dropped, a trajectory
	// with a malformed call kept out of the dataset.
	expect("developed", "retry:tests pass before implementation", 1)
	expect("developed", "retry:implementation edited tests", 1)
	expect("developed", "retry:tests fail after implementation", 3)
	expect("developed", "tasks:done", 4)
	expect("developed", "tasks:failed", 1)
	expect("developed", "tasks:skipped", 1)
	expect("developed", "disputes", 1)
	expect("developed", "dispute:revised", 1)
	expect("developed", "scratch dropped:binary", 1)
	expect("developed", "scratch dropped:outside layout", 1)
	expect("developed", "trajectory rejected:parse_failures", 1)
	expect("developed", "trajectory kept", 7)
	expect("develop_trajs", "kept", 7)
	// Derived tasks.
	expect("fix_tasks", "kept", 2)
	expect("fix_tasks", "rejected:no failing test", 1)
	expect("fix_tasks", "rejected:bug edits tests", 1)
	expect("reproduce_tasks", "kept", 2)
	expect("reproduce_tasks", "retry:reproduction fails on fixed code", 2)
	expect("implement_tasks", "kept", 2)
	expect("testgen_tasks", "kept", 4)
	expect("fix_rollouts", "kept", 4)
	expect("implement_rollouts", "kept", 4)
	// Reproduce: sample 0 writes a test that also fails on the fixed code.
	expect("reproduce_rollouts", "kept", 2)
	expect("reproduce_rollouts", "rejected:unresolved", 2)
	// Testgen: both samples of every task write tests that catch the mutants.
	expect("testgen_rollouts", "kept", 8)
	// The bug proposer sees the tests that decide whether a bug is kept.
	if len(bugPrompts) == 0 {
		t.Error("no bug proposal was asked for")
	}
	for _, u := range bugPrompts {
		if !strings.Contains(u, "--- tests/test_task_1_1.py") || !strings.Contains(u, "def test_") {
			t.Errorf("the bug proposer's prompt holds no tests:\n%s", u)
		}
	}
	if sum["developed"].Spent["llm.calls"] == 0 || sum["projects"].Spent["llm.prompt_tokens"] == 0 {
		t.Errorf("model calls are not counted: %v / %v", sum["developed"].Spent, sum["projects"].Spent)
	}

	// Rollouts are fresh attempts: no call of theirs is a cache hit (of the
	// derivation that made the task, or of another sample), and the
	// samples of a task send different first calls.
	for _, st := range []string{"fix_rollouts", "implement_rollouts", "reproduce_rollouts", "testgen_rollouts"} {
		if sum[st].Counts["llm.calls"] == 0 || sum[st].Counts["llm.cache_hits"] != 0 || sum[st].Spent["llm.cache_hits"] != 0 {
			t.Errorf("stage %s: %v calls, %v cache hits: a rollout replayed a recorded call", st, sum[st].Counts["llm.calls"], sum[st].Counts["llm.cache_hits"]+sum[st].Spent["llm.cache_hits"])
		}
	}
	firstCalls := map[string]map[int64]bool{} // rollout prompt -> seeds of its first calls
	for _, req := range srv.Log() {
		if req.Seed == nil || *req.Seed < 1+stages.RolloutSampleBase || len(req.Messages) != 2 {
			continue
		}
		u := req.Messages[1].Content
		if firstCalls[u] == nil {
			firstCalls[u] = map[int64]bool{}
		}
		if firstCalls[u][*req.Seed] {
			t.Errorf("two first calls of one rollout sample (seed %d): %.80q", *req.Seed, u)
		}
		firstCalls[u][*req.Seed] = true
	}
	// 10 rollout tasks, one prompt each (a project's fix and reproduce
	// prompts come from the same issue but different templates).
	if len(firstCalls) != 10 {
		t.Errorf("%d rollout prompts seen, want 10", len(firstCalls))
	}
	for u, seeds := range firstCalls {
		if len(seeds) != 2 {
			t.Errorf("rollout prompt %.80q: first calls with seeds %v, want one per sample", u, seeds)
		}
	}

	// The developed projects record per-task outcomes.
	projs := map[string]stages.PlaygroundProject{}
	for _, p := range pgNodeValues[stages.PlaygroundProject](t, store, rec, "developed") {
		projs[p.Plan.Project.ID] = p
	}
	proj := projs["calc"]
	got := map[string]string{}
	for _, o := range proj.Outcomes {
		got[o.Task] = o.Status
		if o.Status != stages.OutcomeDone && o.Reason == "" {
			t.Errorf("task %s is %s without a reason", o.Task, o.Status)
		}
	}
	want := map[string]string{"1.1": "done", "1.2": "done", "2.1": "failed", "2.2": "skipped"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("task %s: %s, want %s (outcomes %+v)", k, got[k], v, proj.Outcomes)
		}
	}
	if len(proj.Status) != 6 {
		t.Errorf("final test status has %d tests, want 6: %v", len(proj.Status), proj.Status)
	}
	for id, st := range proj.Status {
		if st != "PASSED" {
			t.Errorf("final repository: %s %s", id, st)
		}
	}
	if _, err := store.ReadFile(proj.Final, "tests/test_task_2_1.py"); err == nil {
		t.Errorf("the failed task's tests are in the final repository")
	}
	// tally: the dispute is recorded and the revised test is in the final
	// repository; the scratch files are not.
	tp := projs["tally"]
	if len(tp.Outcomes) != 2 || tp.Outcomes[1].Status != stages.OutcomeDone || len(tp.Outcomes[1].Disputes) != 1 ||
		tp.Outcomes[1].Disputes[0].Outcome != stages.DisputeRevised || tp.Outcomes[1].Disputes[0].Test != "tests/test_task_1_2.py::test_nested" {
		t.Errorf("tally outcomes: %+v", tp.Outcomes)
	}
	if ds := tp.Outcomes[len(tp.Outcomes)-1].Disputes; len(ds) == 1 {
		var dt schema.Trajectory
		if err := build.GetJSON(store, ds[0].Trajectory, &dt); err != nil {
			t.Fatalf("the dispute's trajectory: %v", err)
		}
		last := dt.Messages[len(dt.Messages)-2]
		if dt.ExitStatus != "disputed" || len(last.ToolCalls) != 1 || last.ToolCalls[0].Function.Name != "dispute_test" {
			t.Errorf("the dispute's trajectory ends %q with %+v", dt.ExitStatus, last)
		}
	}
	var impl12 schema.Trajectory
	for _, td := range tp.Trajectories {
		var tr schema.Trajectory
		if err := build.GetJSON(store, td, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.InstanceID == "tally.1.2.impl" {
			impl12 = tr
		}
		if tr.InstanceID == "tally.1.1.impl" {
			t.Errorf("tally 1.1's implementation trajectory has a malformed call, yet the project carries it")
		}
	}
	if len(impl12.Messages) < 2 || !strings.Contains(impl12.Messages[1].Content, "you disputed tests/test_task_1_2.py::test_nested") {
		t.Errorf("tally 1.2's kept implementation trajectory does not show what became of the dispute: %+v", impl12.Messages)
	}
	if b, err := store.ReadFile(tp.Final, "tests/test_task_1_2.py"); err != nil || !strings.Contains(string(b), "== 14") {
		t.Errorf("tally's revised test: %v\n%s", err, b)
	}
	for _, p := range []string{"tally/scratch.bin", "notes.txt"} {
		if _, err := store.ReadFile(tp.Final, p); err == nil {
			t.Errorf("the agent's scratch file %s is in tally's repository", p)
		}
	}

	// The fix task: real FAIL_TO_PASS and PASS_TO_PASS lists.
	byType := map[schema.TaskType][]stages.TaskBundle{}
	for _, st := range []string{"fix_tasks", "reproduce_tasks", "implement_tasks", "testgen_tasks"} {
		for _, b := range pgNodeItems[stages.TaskBundle](t, store, rec, st) {
			byType[b.Instance.TaskType] = append(byType[b.Instance.TaskType], b)
		}
	}
	fix := byType[schema.TaskFix]
	sort.Slice(fix, func(i, j int) bool { return fix[i].Instance.InstanceID < fix[j].Instance.InstanceID })
	if len(fix) != 2 || fix[0].Instance.SourceProject != "calc" || len(fix[0].Instance.FailToPass) != 2 || len(fix[0].Instance.PassToPass) != 4 {
		t.Fatalf("fix tasks: %+v", fix)
	}
	for _, b := range byType[schema.TaskReproduce] {
		if _, err := store.ReadFile(b.Start, "tests/test_task_1_2.py"); err == nil {
			t.Errorf("the reproduce task %s shows the tests that catch its bug", b.Instance.InstanceID)
		}
	}
	// Every reference patch applies to its task's start tree, with real git
	// and with patch.Apply, and gives the solution tree.
	n := 0
	for _, bs := range byType {
		for _, b := range bs {
			n++
			pgCheckReferencePatch(t, git, store, b)
		}
	}
	if n != 10 {
		t.Errorf("%d derived tasks, want 10", n)
	}

	// The export holds the derived tasks and the trajectories, split by
	// project: no project in both splits.
	man := pgFindManifest(t, out1)
	if man.Tasks != 10 || man.Trajectories != 7+4+4+2+8 {
		t.Errorf("export: %d tasks, %d trajectories; want 10 and 25 (%+v)", man.Tasks, man.Trajectories, man)
	}
	for _, typ := range []string{"testgen", "implement", "fix", "reproduce"} {
		if man.TrajectoriesPerTaskType[typ] == 0 {
			t.Errorf("export has no %s trajectories: %v", typ, man.TrajectoriesPerTaskType)
		}
	}
	split := map[string]string{}
	for sp, ps := range man.ProjectsPerSplit {
		for _, p := range ps {
			if split[p] != "" {
				t.Errorf("project %s is in splits %s and %s", p, split[p], sp)
			}
			split[p] = sp
		}
	}
	if len(split) != 2 || split["calc"] == "" || split["tally"] == "" || split["calc"] == split["tally"] {
		t.Errorf("projects per split: %v; want calc and tally, one in each split", man.ProjectsPerSplit)
	}

	// Every exported instance of every type is graded from the exported
	// files alone, as `dsbuild eval` grades it.
	pgGradeExport(ctx, t, store, out1, map[schema.TaskType]int{schema.TaskFix: 2, schema.TaskReproduce: 2, schema.TaskImplement: 2, schema.TaskTestgen: 4}, weakTestPatch, "tests/test_weak.py")

	// Offline replay: zero model calls, the same outputs.
	out2 := t.TempDir()
	rec2, err := build.Build(ctx, r, store, build.Options{Jobs: 2, OutDir: out2, Offline: true})
	if err != nil {
		t.Fatalf("offline build: %v", err)
	}
	if srv.Requests() != calls {
		t.Errorf("offline replay made %d model calls", srv.Requests()-calls)
	}
	if a, b := pgNodeResults(rec), pgNodeResults(rec2); !pgEqualMaps(a, b) {
		t.Errorf("offline replay gave other node results:\n%v\n%v", a, b)
	}
}

// weakTestPatch adds a test that asserts nothing: it passes on the buggy
// code (no reproduction) and kills no mutant (no test generation).
const weakTestPatch = `diff --git a/tests/test_weak.py b/tests/test_weak.py
new file mode 100644
--- /dev/null
+++ b/tests/test_weak.py
@@ -0,0 +1,2 @@
+def test_nothing():
+    assert True
`

// noopPatch adds a file no test reads: graded, it runs the tests on the
// task's start state.
const noopPatch = `diff --git a/NOTES.md b/NOTES.md
new file mode 100644
--- /dev/null
+++ b/NOTES.md
@@ -0,0 +1 @@
+Nothing to see here.
`

// pgGradeExport grades every instance of the dataset exported under out
// with the harness, as `dsbuild eval` does, from the exported files alone
// (instances.jsonl, build.json and the OCI layout; the store only memoises
// imports and test runs): each instance's reference patch resolves, an empty
// patch is empty_patch and not resolved, a patch that changes no code
// leaves the fix and implement tasks unresolved, and for the task types
// answered with tests, a test that asserts nothing (weakPatch, adding
// weakFile) is unresolved. want counts the instances expected per task
// type.
func pgGradeExport(ctx context.Context, t *testing.T, store *cache.Store, out string, want map[schema.TaskType]int, weakPatch, weakFile string) {
	t.Helper()
	var manifests []string
	filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "manifest.json" {
			manifests = append(manifests, p)
		}
		return nil
	})
	if len(manifests) != 1 {
		t.Fatalf("want one exported dataset under %s, found %q", out, manifests)
	}
	data, err := harness.OpenDataset(filepath.Dir(manifests[0]))
	if err != nil {
		t.Fatal(err)
	}
	types := map[schema.TaskType]int{}
	for id, inst := range data.Instances {
		types[inst.TaskType]++
		if _, ok := data.Images[id]; !ok {
			t.Errorf("%s: no image in the export", id)
		}
		switch inst.TaskType {
		case schema.TaskReproduce:
			if inst.GoldenCodePatch == "" || inst.GoldenTestPatch != inst.Patch || strings.Contains(inst.GoldenCodePatch, "tests/") {
				t.Errorf("%s: golden_code_patch %q, golden_test_patch equal to patch: %v", id, inst.GoldenCodePatch, inst.GoldenTestPatch == inst.Patch)
			}
		case schema.TaskTestgen:
			if len(inst.MutantPatches) == 0 {
				t.Errorf("%s: no mutant_patches", id)
			}
			for k, m := range inst.MutantPatches {
				if strings.Contains(m, "tests/") {
					t.Errorf("%s: mutant_patches[%d] touches tests:\n%s", id, k, m)
				}
			}
		default:
			if len(inst.TestFiles) == 0 || len(inst.FailToPass) == 0 {
				t.Errorf("%s: test_files %v, FAIL_TO_PASS %v", id, inst.TestFiles, inst.FailToPass)
			}
		}
	}
	if !maps.Equal(types, want) {
		t.Fatalf("exported task types %v, want %v", types, want)
	}
	g, err := harness.NewGrader(store, data, harness.Options{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Each model's patches go through a predictions file and into a report,
	// as `dsbuild eval INSTANCES PREDICTIONS.jsonl` takes them.
	grade := func(name string, patchOf func(schema.TaskInstance) (string, bool)) map[string]*harness.InstanceReport {
		var lines []byte
		for _, id := range slices.Sorted(maps.Keys(data.Instances)) {
			if p, ok := patchOf(data.Instances[id]); ok {
				line, err := json.Marshal(harness.Prediction{InstanceID: id, Model: name, Patch: &p})
				if err != nil {
					t.Fatal(err)
				}
				lines = append(append(lines, line...), '\n')
			}
		}
		path := filepath.Join(t.TempDir(), name+".jsonl")
		if err := os.WriteFile(path, lines, 0o644); err != nil {
			t.Fatal(err)
		}
		preds, err := harness.ReadPredictions(path, data)
		if err != nil {
			t.Fatal(err)
		}
		got, err := g.GradeAll(ctx, preds)
		if err != nil {
			t.Fatal(err)
		}
		rep := harness.NewReport(data, name, name, got)
		if rep.SubmittedInstances != len(preds) || len(rep.Instances) != len(preds) {
			t.Fatalf("%s: %d verdicts for %d predictions", name, len(rep.Instances), len(preds))
		}
		t.Logf("%s: %d resolved, %d unresolved, %d empty patch, %d error; by type %v", name,
			rep.ResolvedInstances, rep.UnresolvedInstances, rep.EmptyPatchInstances, rep.ErrorInstances, rep.ByTaskType)
		return rep.Instances
	}
	gold := grade("gold", func(inst schema.TaskInstance) (string, bool) { return inst.Patch, true })
	for _, id := range slices.Sorted(maps.Keys(gold)) {
		v := gold[id]
		if v.Status != harness.Resolved || !v.Resolved || v.AppliedWith != harness.AppliedExactly {
			t.Errorf("gold %s (%s): %s %s (applied %q); tests %v, mutants killed %d of %d", id, v.TaskType, v.Status, v.Error, v.AppliedWith, v.TestsStatus, v.MutantsKilled, v.Mutants)
		}
		switch schema.TaskType(v.TaskType) {
		case schema.TaskReproduce, schema.TaskTestgen:
			if len(v.ModelTestFiles) == 0 {
				t.Errorf("gold %s (%s): no test file graded", id, v.TaskType)
			}
		default:
			if len(v.TouchedTestFiles) != 0 {
				t.Errorf("gold %s (%s): the reference patch edits the tests %v", id, v.TaskType, v.TouchedTestFiles)
			}
		}
		if v.TaskType == string(schema.TaskTestgen) && (v.Mutants == 0 || !schema.TestgenKillsEnough(v.MutantsKilled, v.Mutants)) {
			t.Errorf("gold %s: killed %d of %d mutants", id, v.MutantsKilled, v.Mutants)
		}
	}
	for id, v := range grade("empty", func(schema.TaskInstance) (string, bool) { return "", true }) {
		if v.Status != harness.EmptyPatch || v.Resolved {
			t.Errorf("empty %s (%s): %s resolved=%v", id, v.TaskType, v.Status, v.Resolved)
		}
	}
	// An empty patch is not even run; a patch that changes nothing the
	// tests see runs them on the start state in the image, where the fix
	// and implement tasks' FAIL_TO_PASS tests fail.
	answeredWithCode := func(inst schema.TaskInstance) (string, bool) {
		return noopPatch, inst.TaskType == schema.TaskFix || inst.TaskType == schema.TaskImplement
	}
	for id, v := range grade("noop", answeredWithCode) {
		if v.Status != harness.Unresolved || len(v.TestsStatus["FAIL_TO_PASS"].Failure) == 0 || len(v.TestsStatus["PASS_TO_PASS"].Failure) != 0 {
			t.Errorf("noop %s (%s): %s %s; tests %v", id, v.TaskType, v.Status, v.Error, v.TestsStatus)
		}
	}
	if want[schema.TaskReproduce]+want[schema.TaskTestgen] == 0 {
		return
	}
	answeredWithTests := func(inst schema.TaskInstance) (string, bool) {
		return weakPatch, inst.TaskType == schema.TaskReproduce || inst.TaskType == schema.TaskTestgen
	}
	for id, v := range grade("weak", answeredWithTests) {
		if v.Status != harness.Unresolved || strings.Join(v.ModelTestFiles, ",") != weakFile {
			t.Errorf("weak %s (%s): %s %s; tests %v, mutants killed %d of %d", id, v.TaskType, v.Status, v.Error, v.TestsStatus, v.MutantsKilled, v.Mutants)
		}
		if v.TaskType == string(schema.TaskReproduce) && len(v.TestsStatus["PASS_TO_PASS"].Success) != 1 {
			t.Errorf("weak %s: the test that asserts nothing should pass before and after the fix: %v", id, v.TestsStatus)
		}
	}
}

// pgCheckReferencePatch checks that the instance's reference patch turns
// its start tree into its solution tree, applied by `git apply` to the
// materialised tree and by patch.Apply.
func pgCheckReferencePatch(t *testing.T, git string, store *cache.Store, b stages.TaskBundle) {
	t.Helper()
	id := b.Instance.InstanceID
	if got, err := patch.Apply(store, b.Start, b.Instance.Patch); err != nil || got != b.Solution {
		t.Errorf("%s: patch.Apply of the reference patch: %v (tree %s, solution %s)", id, err, got.Short(), b.Solution.Short())
	}
	dir := filepath.Join(t.TempDir(), "w")
	if err := store.Materialize(b.Start, dir); err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(t.TempDir(), "ref.diff")
	if err := os.WriteFile(pf, []byte(b.Instance.Patch), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(git, "apply", "--whitespace=nowarn", pf)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: git apply of the reference patch: %v\n%s", id, err, out)
		return
	}
	if got, err := store.Snapshot(dir); err != nil || got != b.Solution {
		rest, _ := patch.Diff(store, got, b.Solution)
		t.Errorf("%s: git apply gave another tree than the solution (%v):\n%.2000s", id, err, rest)
	}
}

func pgNodeResults(rec *build.Record) map[string]string {
	m := map[string]string{}
	for _, n := range rec.Nodes {
		m[n.ID] = n.Result.String()
	}
	return m
}

func pgEqualMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

type pgNodeResultJSON struct {
	Output build.Output `json:"output"`
}

// pgOutputsOf returns the outputs of every node of stage.
func pgOutputsOf(t *testing.T, store *cache.Store, rec *build.Record, stage string) []build.Output {
	t.Helper()
	var outs []build.Output
	for _, n := range rec.Nodes {
		if n.Stage != stage || n.Result.IsZero() {
			continue
		}
		var nr pgNodeResultJSON
		if err := build.GetJSON(store, n.Result, &nr); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, nr.Output)
	}
	return outs
}

// pgNodeValues returns the value outputs of every node of stage.
func pgNodeValues[T any](t *testing.T, store *cache.Store, rec *build.Record, stage string) []T {
	t.Helper()
	var vs []T
	for _, o := range pgOutputsOf(t, store, rec, stage) {
		if !o.IsCollection {
			var v T
			if err := build.GetJSON(store, o.Value, &v); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
	}
	return vs
}

func pgNodeItems[T any](t *testing.T, store *cache.Store, rec *build.Record, stage string) []T {
	t.Helper()
	var out []T
	for _, o := range pgOutputsOf(t, store, rec, stage) {
		for _, it := range o.Items {
			var v T
			if err := build.GetJSON(store, it.Value, &v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
	}
	return out
}

func pgFindManifest(t *testing.T, dir string) schema.DatasetManifest {
	t.Helper()
	var found []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "manifest.json" {
			found = append(found, p)
		}
		return nil
	})
	sort.Strings(found)
	if len(found) == 0 {
		t.Fatalf("no manifest.json under %s", dir)
	}
	var m schema.DatasetManifest
	b, err := os.ReadFile(found[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", found[0], err)
	}
	return m
}
