package stages_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
)

// TestPlaygroundEndToEnd runs recipes/swe-playground.yaml against the
// scripted model: a calculator project is proposed (with a near-duplicate
// and a project whose plan has a cycle), decomposed, scaffolded, developed
// task by task, turned into fix, reproduce and implement tasks, rolled out
// and exported; then the build is replayed offline with no model call and
// identical outputs.
func TestPlaygroundEndToEnd(t *testing.T) {
	store := testenv.Store(t)
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(playgroundModel)
	t.Setenv("PLAYGROUND_TEST_KEY", "sk-test-not-a-secret")
	vars := map[string]string{
		"OPENAI_BASE_URL":          srv.URL(),
		"PLAYGROUND_MODEL":         "scripted",
		"PLAYGROUND_API_KEY_ENV":   "PLAYGROUND_TEST_KEY",
		"PLAYGROUND_MIN_TASKS":     "3",
		"PLAYGROUND_BUGS":          "3",
		"PLAYGROUND_SAMPLES":       "2",
		"PLAYGROUND_EXPORT_IMAGES": "false",
	}
	getenv := func(k string) string { return vars[k] }
	r, err := build.LoadRecipe(filepath.Join("..", "recipes", "swe-playground.yaml"), getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
	// Proposals: calc and loopy kept, rpn_calc dropped as a near-duplicate,
	// the same ids from the other themes' calls dropped.
	expect("projects", "kept", 2)
	expect("projects", "rejected:near-duplicate", 6)
	expect("projects", "rejected:duplicate id", 10)
	// loopy's plan has a cycle: re-asked, then rejected.
	expect("plans", "kept", 1)
	expect("plans", "rejected:invalid plan", 1)
	// The first scaffold has a non-pgStub body.
	expect("scaffolds", "kept", 1)
	expect("scaffolds", "retry:scaffold check failed", 1)
	// Develop: tests passing on stubs rejected, an implementation editing
	// tests rejected, task 2.1 keeps failing, 2.2 is skipped.
	expect("developed", "retry:tests pass before implementation", 1)
	expect("developed", "retry:implementation edited tests", 1)
	expect("developed", "retry:tests fail after implementation", 3)
	expect("developed", "tasks:done", 2)
	expect("developed", "tasks:failed", 1)
	expect("developed", "tasks:skipped", 1)
	expect("develop_trajs", "kept", 4)
	// Derived tasks.
	expect("fix_tasks", "kept", 1)
	expect("fix_tasks", "rejected:no failing test", 1)
	expect("fix_tasks", "rejected:bug edits tests", 1)
	expect("reproduce_tasks", "kept", 1)
	expect("reproduce_tasks", "retry:reproduction fails on fixed code", 1)
	expect("implement_tasks", "kept", 1)
	expect("testgen_tasks", "kept", 2)
	expect("fix_rollouts", "kept", 2)
	expect("implement_rollouts", "kept", 2)
	// Reproduce: sample 0 writes a test that also fails on the fixed code.
	expect("reproduce_rollouts", "kept", 1)
	expect("reproduce_rollouts", "rejected:unresolved", 1)
	// Testgen: both samples of both tasks write tests that catch the mutants.
	expect("testgen_rollouts", "kept", 4)
	if sum["developed"].Spent["llm.calls"] == 0 || sum["projects"].Spent["llm.prompt_tokens"] == 0 {
		t.Errorf("model calls are not counted: %v / %v", sum["developed"].Spent, sum["projects"].Spent)
	}

	// The developed project records per-task outcomes.
	proj := pgNodeValue[stages.PlaygroundProject](t, store, rec, "developed")
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

	// The fix task: real FAIL_TO_PASS and PASS_TO_PASS lists.
	fix := pgNodeItems[stages.TaskBundle](t, store, rec, "fix_tasks")
	if len(fix) != 1 || len(fix[0].Instance.FailToPass) != 2 || len(fix[0].Instance.PassToPass) != 4 || fix[0].Instance.TaskType != schema.TaskFix {
		t.Fatalf("fix tasks: %+v", fix)
	}
	repro := pgNodeItems[stages.TaskBundle](t, store, rec, "reproduce_tasks")
	if len(repro) != 1 || repro[0].Instance.TaskType != schema.TaskReproduce {
		t.Fatalf("reproduce tasks: %+v", repro)
	}
	if _, err := store.ReadFile(repro[0].Start, "tests/test_task_1_2.py"); err == nil {
		t.Errorf("the reproduce task shows the tests that catch its bug")
	}

	// The export holds the derived tasks and the trajectories.
	man := pgFindManifest(t, out1)
	if man.Tasks != 5 || man.Trajectories != 13 {
		t.Errorf("export: %d tasks, %d trajectories; want 5 and 13 (%+v)", man.Tasks, man.Trajectories, man)
	}
	for _, typ := range []string{"testgen", "implement", "fix", "reproduce"} {
		if man.TrajectoriesPerTaskType[typ] == 0 {
			t.Errorf("export has no %s trajectories: %v", typ, man.TrajectoriesPerTaskType)
		}
	}

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

func pgNodeValue[T any](t *testing.T, store *cache.Store, rec *build.Record, stage string) T {
	t.Helper()
	var v T
	for _, o := range pgOutputsOf(t, store, rec, stage) {
		if !o.IsCollection {
			if err := build.GetJSON(store, o.Value, &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("stage %s has no value output", stage)
	return v
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
