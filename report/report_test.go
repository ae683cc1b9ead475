package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
)

func putJSON(t *testing.T, store *cache.Store, v any) cache.Digest {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d, err := store.Put(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A SWE-Playground-like record: model cost per stage and per model
// profile, retries, and develop's projects with their task outcomes.
func TestReportOfPlaygroundRecord(t *testing.T) {
	store, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	proj := stages.PlaygroundProject{Plan: stages.PlaygroundPlan{Project: schema.Project{ID: "kvstore"}},
		Outcomes: []stages.PlaygroundTaskOutcome{
			{Task: "t1", Status: stages.OutcomeDone},
			{Task: "t2", Status: stages.OutcomeFailed, Reason: "tests fail after implementation"},
			{Task: "t3", Status: stages.OutcomeSkipped, Reason: "depends on task t2, which failed"},
		}}
	kvOut := putJSON(t, store, proj)
	result := func(out build.Output, counts map[string]float64) cache.Digest {
		return putJSON(t, store, map[string]any{"output": out, "counts": counts})
	}
	llm := func(calls, hits, dollars float64) map[string]float64 {
		return map[string]float64{"llm.calls": calls, "llm.cache_hits": hits, "llm.prompt_tokens": 100 * calls,
			"llm.completion_tokens": 10 * calls, "llm.dollars": dollars, "llm.retries": 1, "llm.retries:http 429": 1,
			stages.LLMModelCounter("teacher", "calls"): calls, stages.LLMModelCounter("teacher", "dollars"): dollars,
			stages.LLMModelCounter("teacher", "cache_hits"): hits}
	}
	devCounts := map[string]float64{"in": 1, "kept": 1, "tasks:done": 1, "tasks:failed": 1, "tasks:skipped": 1}
	for k, v := range llm(7, 0, 0.5) {
		devCounts[k] = v
	}
	emptyCounts := map[string]float64{"in": 1, "rejected:no task completed": 1, "tasks:failed": 2}
	rec := &build.Record{Recipe: "pg", Status: "ok", Started: start, Seconds: 9,
		Stages: []build.StageSummary{
			{Stage: "plans", Kind: "decompose", Nodes: 2, Ran: 1, Cached: 1, Items: 2,
				Counts: mergeCounts(llm(4, 1, 0.25), map[string]float64{"in": 2, "kept": 2}), Spent: llm(2, 1, 0.125), Seconds: 3, WallSeconds: 3},
			{Stage: "developed", Kind: "develop", Nodes: 2, Ran: 2, Items: 1,
				Counts: mergeCounts(devCounts, emptyCounts), Spent: mergeCounts(devCounts, emptyCounts), Seconds: 8, WallSeconds: 5},
			{Stage: "fixes", Kind: "derive_fix", Nodes: 1, Cached: 1, Items: 4},
		},
		Nodes: []build.NodeRecord{
			{ID: "plans[kvstore]", Stage: "plans", Item: "kvstore", State: build.StateCached, Result: result(build.Output{}, llm(2, 0, 0.125))},
			{ID: "plans[empty]", Stage: "plans", Item: "empty", State: build.StateRan, Seconds: 3, Began: start.Add(time.Second), Result: result(build.Output{}, llm(2, 1, 0.125))},
			{ID: "developed[kvstore]", Stage: "developed", Item: "kvstore", State: build.StateRan, Seconds: 4, Began: start.Add(4 * time.Second),
				Result: result(build.Value(kvOut), devCounts)},
			{ID: "developed[empty]", Stage: "developed", Item: "empty", State: build.StateRan, Seconds: 4, Began: start.Add(5 * time.Second),
				Result: result(build.Collection(nil), emptyCounts)},
			{ID: "fixes[kvstore]", Stage: "fixes", Item: "kvstore", State: build.StateCached},
		}}
	r, err := Make(rec, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Models) != 1 || r.Models[0].Total.Calls != 11 || r.Models[0].ThisBuild.Calls != 9 || r.Models[0].Total.Dollars != 0.75 {
		t.Errorf("models %+v", r.Models)
	}
	if len(r.Projects) != 2 || r.Projects[0].ID != "kvstore" || !r.Projects[0].Kept || r.Projects[0].Done != 1 ||
		len(r.Projects[0].Outcomes) != 2 || r.Projects[1].Kept || r.Projects[1].Failed != 2 {
		t.Errorf("projects %+v", r.Projects)
	}
	dev := r.Stages[1]
	if dev.Pool != "llm" || len(dev.Rejections) != 1 || dev.Rejections[0].Items[0].Name != "empty" {
		t.Errorf("develop stage %+v", dev)
	}
	if len(r.Nodes) != 3 || r.Nodes[0].Start != 1 || r.Nodes[2].Start != 5 {
		t.Errorf("timed nodes %+v", r.Nodes)
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`data-k="([^"]+)"[^>]*>([^<]*)<`).FindAllStringSubmatch(page.String(), -1) {
		got[m[1]] = m[2]
	}
	for k, want := range map[string]string{
		"cost/plans/output/calls": "4", "cost/plans/this build/calls": "2", "cost/plans/output/cache_hits": "1",
		"cost/plans/output/retries": "1", "cost/plans/output/prompt_tokens": "400", "cost/plans/output/dollars": "$0.2500",
		"cost/developed/output/calls": "7", "cost/total/calls": "11", "cost/total/dollars": "$0.7500",
		"model/teacher/output/calls": "11", "model/teacher/this build/calls": "9", "model/teacher/output/dollars": "$0.7500",
		"project/kvstore/done": "1", "project/kvstore/failed": "1", "project/kvstore/skipped": "1", "project/empty/failed": "2",
		"stage/developed/rejected/no task completed": "1", "stage/plans/in": "2", "stage/fixes/items_out": "4",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	for _, want := range []string{`data-plot="projects"`, `data-plot="derived"`, `data-plot="timeline"`, `data-plot="cost"`,
		"tests fail after implementation", "http 429: 1"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func mergeCounts(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}

func TestPathIsBesideTheOutputFolder(t *testing.T) {
	p, err := Path("/data/out/quickstart/")
	if err != nil || p != "/data/out/quickstart.report.html" {
		t.Errorf("Path = %q, %v", p, err)
	}
	if _, err := Path("/"); err == nil {
		t.Errorf("Path(/) gives no error")
	}
}
