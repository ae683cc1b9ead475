package stages_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
)

// rolloutTestSets holds item generators for the rollouttest_items kind, by
// set name: the stand-in for the stages that make task bundles.
var rolloutTestSets sync.Map // string -> func(*cache.Store) ([]build.Item, error)

type rolloutTestItemsParams struct {
	Set string `yaml:"set" json:"set"`
}

func init() {
	build.Register(&build.Kind{
		Name: "rollouttest_items", Version: "1", Doc: "test items from a generator registered by the test",
		Params: func() any { return &rolloutTestItemsParams{} },
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			gen, ok := rolloutTestSets.Load(c.Params.(*rolloutTestItemsParams).Set)
			if !ok {
				return build.Output{}, fmt.Errorf("no test set %q", c.Params.(*rolloutTestItemsParams).Set)
			}
			items, err := gen.(func(*cache.Store) ([]build.Item, error))(c.Store())
			if err != nil {
				return build.Output{}, err
			}
			return build.Collection(items), nil
		},
	})
}

// The buggy project: total() skips the last element.
const rolloutCalcPy = `def add(a, b):
    return a + b


def total(xs):
    """Return the sum of xs."""
    s = 0
    for i in range(len(xs) - 1):
        s += xs[i]
    return s
`

const rolloutTestCalcPy = `from calc import add, total


def test_add():
    assert add(2, 3) == 5


def test_total():
    assert total([1, 2, 3]) == 6


def test_total_empty():
    assert total([]) == 0
`

// calcBundle stores the calc task: the buggy tree, the fixed tree and the
// image (the test Debian image; the rollout only runs it).
func calcBundle(store *cache.Store, image schema.Image) (stages.TaskBundle, error) {
	start, err := store.PutFiles(map[string]cache.File{
		"calc.py":            {Data: []byte(rolloutCalcPy)},
		"tests/test_calc.py": {Data: []byte(rolloutTestCalcPy)},
	})
	if err != nil {
		return stages.TaskBundle{}, err
	}
	solution, err := store.PutFiles(map[string]cache.File{
		"calc.py":            {Data: []byte(strings.Replace(rolloutCalcPy, "range(len(xs) - 1)", "range(len(xs))", 1))},
		"tests/test_calc.py": {Data: []byte(rolloutTestCalcPy)},
	})
	if err != nil {
		return stages.TaskBundle{}, err
	}
	return stages.TaskBundle{
		Instance: schema.TaskInstance{
			InstanceID:       "calc-1",
			Repo:             "calc",
			ProblemStatement: "total([1, 2, 3]) returns 3 instead of 6.",
			FailToPass:       []string{"tests/test_calc.py::test_total"},
			PassToPass:       []string{"tests/test_calc.py::test_add", "tests/test_calc.py::test_total_empty"},
			TaskType:         schema.TaskFix,
			Image:            "dsbuild-test/calc@" + image.Digest,
			TestCmd:          "python3 -m pytest -rA -p no:cacheprovider -q",
		},
		Image:     image,
		Start:     start,
		Solution:  solution,
		TestCmd:   stages.DefaultTestCmd,
		Protected: []string{"tests/"},
	}, nil
}

func jsonArgs(v map[string]any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

const runCalcTests = "python3 -m pytest -q -p no:cacheprovider"

var (
	fixCall    = llmtest.Call(agent.ToolEditor, jsonArgs(map[string]any{"command": "str_replace", "path": "/testbed/calc.py", "old_str": "range(len(xs) - 1)", "new_str": "range(len(xs))"}))
	testsCall  = llmtest.Call(agent.ToolBash, jsonArgs(map[string]any{"command": runCalcTests}))
	finishCall = llmtest.Call(agent.ToolFinish, `{"message": "done"}`)
)

// The model's behaviour per sample (the request's seed is the profile's
// seed, 100, plus the llm sample index: stages.RolloutSampleBase plus the
// rollout's sample, or a small try index for a deriving stage's call).
var modelSamples = [][]llmtest.Reply{
	// 0 fixes the bug.
	{testsCall, fixCall, testsCall, finishCall},
	// 1 "fixes" the tests instead: unresolved once they are restored.
	{testsCall, llmtest.Call(agent.ToolEditor, jsonArgs(map[string]any{"command": "str_replace", "path": "/testbed/tests/test_calc.py", "old_str": "== 6", "new_str": "== 3"})), testsCall, finishCall},
	// 2 fixes it but runs the same command twice in a row.
	{llmtest.Call(agent.ToolBash, `{"command": "ls"}`), llmtest.Call(agent.ToolBash, `{"command": "ls"}`), fixCall, testsCall, finishCall},
	// 3 fixes it after calling a tool that does not exist.
	{llmtest.Call("open_file", `{"path": "calc.py"}`), fixCall, testsCall, finishCall},
}

// scriptedModel answers by sample and by the number of assistant turns so
// far, so answers depend on the conversation, not on arrival order.
func scriptedModel(r *llmtest.Request) llmtest.Reply {
	if r.Seed == nil {
		return llmtest.Status(400)
	}
	sample := int(*r.Seed - 100)
	if sample >= stages.RolloutSampleBase {
		sample -= stages.RolloutSampleBase
	}
	if sample < 0 || sample >= len(modelSamples) {
		return llmtest.Status(400)
	}
	step := 0
	for _, m := range r.Messages {
		if m.Role == "assistant" {
			step++
		}
	}
	script := modelSamples[sample]
	if step >= len(script) {
		return finishCall
	}
	rep := script[step]
	rep.ToolCalls = append([]schema.ToolCall(nil), rep.ToolCalls...)
	rep.ToolCalls[0].ID = fmt.Sprintf("call_%d_%d", sample, step)
	return rep
}

const rolloutRecipe = `name: rollouttest
models:
  coder:
    base_url: %s
    model: test-model
    seed: 100
    max_retries: -1
    price_input_per_mtok: 1
    price_output_per_mtok: 2
stages:
  tasks:  {uses: rollouttest_items, with: {set: calc}}
  oracle: {uses: rollout, foreach: tasks, with: {policy: oracle}}
  agent:
    uses: rollout
    foreach: tasks
    with: {policy: model, model: coder, samples: 4, limits: {max_steps: 8, command_timeout: 60s}, keep: {drop_repeated_actions: %v}}
  dataset: {uses: export, from: [tasks, oracle, agent], with: {name: Calc rollouts, images: false}}
`

func loadTestRecipe(t *testing.T, dir, text string) *build.Recipe {
	t.Helper()
	p := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func stageSummary(t testing.TB, rec *build.Record, stage string) build.StageSummary {
	t.Helper()
	for _, s := range rec.Stages {
		if s.Stage == stage {
			return s
		}
	}
	t.Fatalf("no stage %s in the record", stage)
	return build.StageSummary{}
}

// stageItems returns the output items of every node of stage in rec.
func stageItems(t *testing.T, store *cache.Store, rec *build.Record, stage string) []build.Item {
	t.Helper()
	var items []build.Item
	for _, n := range rec.Nodes {
		if n.Stage != stage {
			continue
		}
		var res struct {
			Output build.Output `json:"output"`
		}
		if err := build.GetJSON(store, n.Result, &res); err != nil {
			t.Fatalf("node %s: %v", n.ID, err)
		}
		items = append(items, res.Output.Items...)
		if !res.Output.IsCollection {
			items = append(items, build.Item{Name: n.ID, Value: res.Output.Value})
		}
	}
	return items
}

func trajectoryOf(t *testing.T, store *cache.Store, d cache.Digest) schema.Trajectory {
	t.Helper()
	var tr schema.Trajectory
	if err := build.GetJSON(store, d, &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// The oracle and a model rollout run end to end in the real sandbox: the
// oracle resolves the bug, the model's samples are kept or rejected by the
// filter, a rebuild makes no model request and gives the same bytes, and a
// changed filter re-runs the node offline from the cached replies.
func TestRolloutOracleAndModel(t *testing.T) {
	store := testenv.Store(t)
	image := testenv.Image(t, store)
	rolloutTestSets.Store("calc", func(s *cache.Store) ([]build.Item, error) {
		b, err := calcBundle(s, image)
		if err != nil {
			return nil, err
		}
		d, err := build.PutJSON(s, b)
		return []build.Item{{Name: "calc-1", Value: d}}, err
	})
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(scriptedModel)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	ctx := context.Background()

	r := loadTestRecipe(t, dir, fmt.Sprintf(rolloutRecipe, srv.URL(), true))
	rec, err := build.Build(ctx, r, store, build.Options{OutDir: out})
	if err != nil {
		t.Fatal(err)
	}

	// The oracle: run failing tests, one str_replace, run tests, finish.
	oracle := stageItems(t, store, rec, "oracle")
	if len(oracle) != 1 || oracle[0].Name != "s0" {
		t.Fatalf("oracle items %+v", oracle)
	}
	otr := trajectoryOf(t, store, oracle[0].Value)
	if !otr.Resolved || otr.Policy != "oracle" || otr.TrajectoryID != "calc-1/oracle/0" || otr.Reward != 1 {
		t.Fatalf("oracle trajectory: id %s policy %s resolved %v reward %v", otr.TrajectoryID, otr.Policy, otr.Resolved, otr.Reward)
	}
	if !strings.Contains(otr.Model, "oracle") || otr.PromptTokens != 0 {
		t.Errorf("oracle trajectory claims model %q with %d prompt tokens", otr.Model, otr.PromptTokens)
	}
	var calls []string
	for _, m := range otr.Messages {
		for _, tc := range m.ToolCalls {
			calls = append(calls, tc.Function.Name)
		}
	}
	if got := strings.Join(calls, " "); got != "execute_bash str_replace_editor execute_bash finish" {
		t.Fatalf("oracle calls: %s", got)
	}
	if first := otr.Messages[3].Content; !strings.Contains(first, "1 failed") || !strings.Contains(otr.Messages[7].Content, "3 passed") {
		t.Errorf("oracle test runs:\n%s\n---\n%s", first, otr.Messages[7].Content)
	}
	if !strings.Contains(otr.Patch, "+    for i in range(len(xs)):") || strings.Contains(otr.Patch, "tests/") {
		t.Errorf("oracle patch:\n%s", otr.Patch)
	}
	if !strings.Contains(otr.Messages[1].Content, "total([1, 2, 3]) returns 3 instead of 6.") || otr.Messages[0].Role != "system" {
		t.Errorf("prompts not rendered from the bundle: %+v", otr.Messages[:2])
	}

	// The model: sample 0 kept; 1 unresolved, 2 repeated, 3 parse failure.
	items := stageItems(t, store, rec, "agent")
	if len(items) != 1 || items[0].Name != "s0" {
		t.Fatalf("agent items %+v", items)
	}
	atr := trajectoryOf(t, store, items[0].Value)
	if !atr.Resolved || atr.Model != "test-model" || atr.Policy != "agent" || atr.TrajectoryID != "calc-1/coder/0" || atr.PromptTokens == 0 {
		t.Fatalf("agent trajectory: %+v", atr)
	}
	sum := stageSummary(t, rec, "agent")
	for name, want := range map[string]float64{
		"kept": 1, "rejected:unresolved": 1, "rejected:repeated_actions": 1, "rejected:parse_failures": 1,
		"rollout.steps": 4 + 4 + 5 + 4, "llm.calls": 17,
	} {
		if sum.Counts[name] != want {
			t.Errorf("agent count %s = %v, want %v (all: %v)", name, sum.Counts[name], want, sum.Counts)
		}
	}
	if sum.Counts["llm.dollars"] <= 0 {
		t.Errorf("no dollars counted: %v", sum.Counts)
	}
	if srv.Requests() != 17 {
		t.Fatalf("first build made %d model requests, want 17", srv.Requests())
	}
	firstOut := readDir(t, out)
	if len(firstOut["data/train-00000-of-00001.parquet"]) == 0 {
		t.Fatalf("no trajectory shard in %v", keysOf(firstOut))
	}

	// Rebuild: every node cached, no request, identical bytes.
	srv.ResetCounters()
	rec2, err := build.Build(ctx, loadTestRecipe(t, dir, fmt.Sprintf(rolloutRecipe, srv.URL(), true)), store, build.Options{OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Requests() != 0 || stageSummary(t, rec2, "agent").Ran != 0 {
		t.Fatalf("rebuild made %d requests, ran %d agent nodes", srv.Requests(), stageSummary(t, rec2, "agent").Ran)
	}
	sameFiles(t, firstOut, readDir(t, out))

	// A changed filter re-runs the node, offline, with the server gone: the
	// rollouts replay from the store and the repeated-action sample is kept.
	srv.Close()
	rec3, err := build.Build(ctx, loadTestRecipe(t, dir, fmt.Sprintf(rolloutRecipe, "http://127.0.0.1:1/v1", false)), store, build.Options{OutDir: out, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	sum3 := stageSummary(t, rec3, "agent")
	if sum3.Ran != 1 || sum3.Counts["kept"] != 2 || sum3.Spent["llm.cache_hits"] != 17 {
		t.Fatalf("offline re-run: ran %d, counts %v, spent %v", sum3.Ran, sum3.Counts, sum3.Spent)
	}
	items3 := stageItems(t, store, rec3, "agent")
	if len(items3) != 2 || items3[0] != items[0] || items3[1].Name != "s2" {
		t.Fatalf("offline items %+v (first build %+v)", items3, items)
	}
}

// A rollout is a fresh attempt, not a replay of the agent run that made its
// task: a deriving stage's calls (the same prompt and tools, tries 0 and 1)
// are in the store first, yet no rollout call is a cache hit, and the two
// samples send different calls (their own seeds).
func TestRolloutIsAFreshAttempt(t *testing.T) {
	store := testenv.Store(t)
	image := testenv.Image(t, store)
	b, err := calcBundle(store, image)
	if err != nil {
		t.Fatal(err)
	}
	rolloutTestSets.Store("calc-fresh", func(s *cache.Store) ([]build.Item, error) {
		d, err := build.PutJSON(s, b)
		return []build.Item{{Name: "calc-1", Value: d}}, err
	})
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(scriptedModel)
	ctx := context.Background()

	// The derivation: the task's prompt under the profile the recipe names,
	// tries 0 and 1, as derive_reproduce and develop number them.
	seed := int64(100)
	client, err := llm.New(store, "coder", llm.Profile{BaseURL: srv.URL(), Model: "test-model", Seed: &seed}, llm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	system, user, err := agent.Prompt(ctx, string(schema.TaskFix), map[string]string{"problem_statement": b.Instance.ProblemStatement, "test_cmd": b.Instance.TestCmd})
	if err != nil {
		t.Fatal(err)
	}
	for try := 0; try < 2; try++ {
		req := llm.Request{Messages: []schema.Message{{Role: "system", Content: system}, {Role: "user", Content: user}}, Tools: agent.Tools(), Sample: try}
		if _, err := client.Complete(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	derived := srv.Requests()
	srv.ResetCounters()

	dir := t.TempDir()
	r := loadTestRecipe(t, dir, fmt.Sprintf(`name: fresh
models:
  coder: {base_url: %s, model: test-model, seed: 100, max_retries: -1}
stages:
  tasks: {uses: rollouttest_items, with: {set: calc-fresh}}
  agent:
    uses: rollout
    foreach: tasks
    with: {policy: model, model: coder, samples: 2, limits: {max_steps: 8, command_timeout: 60s}}
`, srv.URL()))
	rec, err := build.Build(ctx, r, store, build.Options{OutDir: filepath.Join(dir, "out")})
	if err != nil {
		t.Fatal(err)
	}
	sum := stageSummary(t, rec, "agent")
	if derived != 2 || sum.Counts["llm.calls"] == 0 || sum.Counts["llm.cache_hits"] != 0 || sum.Spent["llm.cache_hits"] != 0 {
		t.Fatalf("derivation made %d requests; rollout counts %v, spent %v: a rollout call was a cache hit of the derivation", derived, sum.Counts, sum.Spent)
	}
	firstSeeds := map[int64]bool{}
	for _, req := range srv.Log() {
		if req.Seed == nil || *req.Seed < 100+stages.RolloutSampleBase {
			t.Errorf("rollout request %d has seed %v, in the derivation's range", req.Index, req.Seed)
			continue
		}
		if len(req.Messages) == 2 {
			firstSeeds[*req.Seed] = true
		}
	}
	if len(firstSeeds) != 2 || srv.Requests() != int(sum.Counts["llm.calls"]) {
		t.Errorf("first-step seeds %v (want one per sample); %d requests for %v calls", firstSeeds, srv.Requests(), sum.Counts["llm.calls"])
	}
}

// Prompt templates are part of the key: editing one changes the params'
// canonical form; a missing directory is a recipe error.
func TestRolloutPromptsEnterTheKey(t *testing.T) {
	dir := t.TempDir()
	pdir := filepath.Join(dir, "prompts")
	os.Mkdir(pdir, 0o755)
	write := func(text string) {
		if err := os.WriteFile(filepath.Join(pdir, "fix.user.md"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recipe := `name: prompts
stages:
  tasks: {uses: list, with: {items: [a]}}
  run: {uses: rollout, foreach: tasks, with: {prompts: prompts}}
`
	key := func() cache.Key {
		r := loadTestRecipe(t, dir, recipe)
		k, err := cache.KeyOf(r.Stages[1].Params)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write("Fix this: {{.problem_statement}}")
	k1 := key()
	write("Please fix this: {{.problem_statement}}")
	k2 := key()
	if k1 == k2 {
		t.Fatal("editing a prompt template did not change the params key")
	}
	write("Please fix this: {{.problem_statement}}")
	if key() != k2 {
		t.Fatal("params key not stable")
	}
	p := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(p, []byte(strings.Replace(recipe, "prompts: prompts", "prompts: nowhere", 1)), 0o644)
	if _, err := build.LoadRecipe(p, nil); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("missing prompts directory: %v", err)
	}
}

// Bad params are recipe errors naming the field.
func TestRolloutParamsValidate(t *testing.T) {
	dir := t.TempDir()
	for with, want := range map[string]string{
		`{policy: model}`:                           "model:",
		`{policy: oracle, model: x}`:                "oracle policy uses no model",
		`{policy: oracle, samples: 3}`:              "samples",
		`{policy: magic}`:                           `"magic" is not a policy`,
		`{policy: model, model: m, samples: 0}`:     "samples",
		`{policy: oracle, keep: {resolved: true}}`:  "resolved",
		`{policy: oracle, limits: {max_steps: -1}}`: "negative",
	} {
		p := filepath.Join(dir, "recipe.yaml")
		os.WriteFile(p, []byte("name: bad\nstages:\n  tasks: {uses: list, with: {items: [a]}}\n  run: {uses: rollout, foreach: tasks, with: "+with+"}\n"), 0o644)
		_, err := build.LoadRecipe(p, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("with %s: error %v, want one mentioning %q", with, err, want)
		}
	}
	// Keep's unspecified fields stay at their defaults.
	p := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(p, []byte("name: ok\nstages:\n  tasks: {uses: list, with: {items: [a]}}\n  run: {uses: rollout, foreach: tasks, with: {keep: {resolved_only: false}}}\n"), 0o644)
	r, err := build.LoadRecipe(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	keep := r.Stages[1].Params.(*stages.RolloutParams).Keep
	if keep.ResolvedOnly || !keep.DropParseFailures || !keep.DropRepeatedActions {
		t.Fatalf("keep %+v", keep)
	}
}

// A foreach item that is not a task bundle fails the node as bad input.
func TestRolloutRejectsNonBundles(t *testing.T) {
	store := testenv.Store(t)
	dir := t.TempDir()
	r := loadTestRecipe(t, dir, "name: nb\nstages:\n  tasks: {uses: list, with: {items: [a]}}\n  run: {uses: rollout, foreach: tasks}\n")
	_, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")})
	if err == nil || !build.IsBadInput(err) || !strings.Contains(err.Error(), "not a task bundle") {
		t.Fatalf("err = %v", err)
	}
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keysOf(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func sameFiles(t *testing.T, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("file sets differ: %v vs %v", keysOf(a), keysOf(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Fatalf("%s differs between builds", k)
		}
	}
}

// BenchmarkRolloutOracleReplay measures a rollout node whose sandbox runs
// are all memoised (a rebuild after a change that re-keys the node but
// not its effects): the loop, the editor, grading and the trajectory.
func BenchmarkRolloutOracleReplay(b *testing.B) {
	store := testenv.Store(b)
	image := testenv.Image(b, store)
	rolloutTestSets.Store("bench-calc", func(s *cache.Store) ([]build.Item, error) {
		bundle, err := calcBundle(s, image)
		if err != nil {
			return nil, err
		}
		d, err := build.PutJSON(s, bundle)
		return []build.Item{{Name: "calc-1", Value: d}}, err
	})
	dir := b.TempDir()
	buildOnce := func(i int) *build.Record {
		// max_tokens does not affect the oracle but re-keys the node.
		text := fmt.Sprintf("name: bench\nstages:\n  tasks: {uses: rollouttest_items, with: {set: bench-calc}}\n  run: {uses: rollout, foreach: tasks, with: {limits: {max_tokens: %d}}}\n", 1_000_000+i)
		p := filepath.Join(dir, "recipe.yaml")
		os.WriteFile(p, []byte(text), 0o644)
		r, err := build.LoadRecipe(p, nil)
		if err != nil {
			b.Fatal(err)
		}
		rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")})
		if err != nil {
			b.Fatal(err)
		}
		return rec
	}
	buildOnce(0) // runs the sandbox
	i := 1
	for b.Loop() {
		rec := buildOnce(i)
		i++
		if s := stageSummary(b, rec, "run"); s.Ran != 1 || s.Counts["kept"] != 1 {
			b.Fatalf("replay: %+v", s)
		}
	}
}
