package stages_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/harness"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/schema"
)

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

// TestPlaygroundDerivedTasksGradeFromExport derives reproduce and testgen
// tasks with recipes/swe-playground.yaml (its rollout stages left out) and
// the scripted model, exports them with their images, and grades them with
// the harness from the exported files alone: every reference patch
// resolves, every empty patch and every test that asserts nothing does not.
// On the way it checks that the bug proposer is shown the project's tests.
func TestPlaygroundDerivedTasksGradeFromExport(t *testing.T) {
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
		"PLAYGROUND_MIN_TASKS":     "3",
		"PLAYGROUND_BUGS":          "3",
		"PLAYGROUND_EXPORT_IMAGES": "true",
	}
	body, err := os.ReadFile(filepath.Join("..", "recipes", "swe-playground.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	from, to := strings.Index(text, "  fix_rollouts:"), strings.Index(text, "  dataset:")
	if from < 0 || to < from {
		t.Fatal("recipes/swe-playground.yaml: no fix_rollouts ... dataset stages to cut")
	}
	text = text[:from] + text[to:]
	i := strings.Index(text, "    from: [")
	j := i + strings.Index(text[i:], "\n")
	text = text[:i] + "    from: [reproduce_tasks, testgen_tasks]" + text[j:]
	path := filepath.Join(t.TempDir(), "derived.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(path, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out := t.TempDir()
	if _, err := build.Build(ctx, r, store, build.Options{Jobs: 2, OutDir: out}); err != nil {
		t.Fatalf("build: %v", err)
	}
	// The bug proposer sees the tests that decide whether a bug is kept.
	if len(bugPrompts) == 0 {
		t.Error("no bug proposal was asked for")
	}
	for _, u := range bugPrompts {
		if !strings.Contains(u, "--- tests/test_task_1_2.py") || !strings.Contains(u, "def test_nested():") {
			t.Errorf("the bug proposer's prompt holds no tests:\n%s", u)
		}
	}
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
		}
	}
	if types[schema.TaskReproduce] != 1 || types[schema.TaskTestgen] != 2 {
		t.Fatalf("exported task types %v, want 1 reproduce and 2 testgen", types)
	}
	g, err := harness.NewGrader(store, data, harness.Options{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	grade := func(name string, patchOf func(schema.TaskInstance) string) map[string]*harness.InstanceReport {
		var preds []harness.Prediction
		for id, inst := range data.Instances {
			p := patchOf(inst)
			preds = append(preds, harness.Prediction{InstanceID: id, Model: name, Patch: &p})
		}
		got, err := g.GradeAll(ctx, preds)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for id, v := range grade("gold", func(inst schema.TaskInstance) string { return inst.Patch }) {
		if v.Status != harness.Resolved || len(v.ModelTestFiles) == 0 {
			t.Errorf("gold %s (%s): %s %s; tests %v, mutants killed %d of %d", id, v.TaskType, v.Status, v.Error, v.TestsStatus, v.MutantsKilled, v.Mutants)
		}
		if v.TaskType == string(schema.TaskTestgen) && (v.Mutants == 0 || !schema.TestgenKillsEnough(v.MutantsKilled, v.Mutants)) {
			t.Errorf("gold %s: killed %d of %d mutants", id, v.MutantsKilled, v.Mutants)
		}
	}
	for id, v := range grade("empty", func(schema.TaskInstance) string { return "" }) {
		if v.Status != harness.EmptyPatch || v.Resolved {
			t.Errorf("empty %s (%s): %s resolved=%v", id, v.TaskType, v.Status, v.Resolved)
		}
	}
	for id, v := range grade("weak", func(schema.TaskInstance) string { return weakTestPatch }) {
		if v.Status != harness.Unresolved || strings.Join(v.ModelTestFiles, ",") != "tests/test_weak.py" {
			t.Errorf("weak %s (%s): %s %s; tests %v, mutants killed %d of %d", id, v.TaskType, v.Status, v.Error, v.TestsStatus, v.MutantsKilled, v.Mutants)
		}
		if v.TaskType == string(schema.TaskReproduce) && len(v.TestsStatus["PASS_TO_PASS"].Success) != 1 {
			t.Errorf("weak %s: the test that asserts nothing should pass before and after the fix: %v", id, v.TestsStatus)
		}
	}
}
