// Package report owns the build report: one self-contained HTML page made
// from a build record, the counters of its nodes and the datasets its
// export stages wrote. The page holds its plots as inline SVG drawn here at
// build time; it has no scripts, no styles or fonts from elsewhere and
// needs no network to be viewed. Drill-downs are <details> elements.
//
// What the page shows: the funnel of every stage (nodes, items out, the
// "in" and "kept" counters, every "rejected:<reason>" counter with the
// items whose nodes counted it, failed nodes with their error); the cost
// (model calls, cache hits, retries, tokens and dollars per stage and per
// model profile, both for the whole output and for this build); a
// timeline of the nodes that ran, per pool; the exported datasets (task
// types, difficulty, per-project counts, FAIL_TO_PASS/PASS_TO_PASS sizes,
// trajectory lengths in messages, tool calls and tokens, resolved rate per
// task type); and for SWE-Playground builds, each project's tasks done,
// failed and skipped with reasons, and the derived tasks per type.
//
// Where it goes: a build writes the page beside its output folder, as
// <out>.report.html (out/quickstart.report.html for out/quickstart),
// never inside it. The published folder is exactly the output tree, whose
// digest must not change with the build's timing; the page's timeline and
// "this build" costs do. `dsbuild report RECIPE.yaml` writes the page of
// the recipe's last build again from the store.
//
// This package reads the store and the record; it knows of particular
// stage kinds only by the names of their counters and of the develop
// kind's output (SWE-Playground projects).
package report

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/stages"
)

// Report is what the page shows.
type Report struct {
	Recipe    string
	Status    string
	Started   time.Time
	Seconds   float64
	Published []string
	Stages    []Stage
	// Models is the model cost per model profile, from the per-profile
	// counters (stages.LLMModelCounter) of every stage.
	Models []ModelCost
	// Nodes are the nodes that ran in this build, with their start times,
	// for the timeline.
	Nodes []TimedNode
	// Datasets are the datasets the export stages wrote.
	Datasets []*Dataset
	// Projects are the SWE-Playground projects of develop stages.
	Projects []Project
}

// Stage is one stage's funnel and cost.
type Stage struct {
	ID, Kind, Pool                   string
	Nodes, Ran, Cached, Failed, Skip int
	// ItemsOut is how many items the stage output.
	ItemsOut int
	// In and Kept are the "in" and "kept" counters, when the kind counts them.
	In, Kept       float64
	HasIn, HasKept bool
	// Rejections are the "rejected:<reason>" counters, largest first.
	Rejections []Rejection
	// Counters are the stage's other counters (not llm.*), by name.
	Counters []Counter
	// Total is the model cost of the whole output (cached nodes included);
	// ThisBuild what this build spent.
	Total, ThisBuild Cost
	WallSeconds      float64
	NodeSeconds      float64
	SkipReason       string
	// FailedNodes are the nodes that failed, with their errors.
	FailedNodes []NodeError
}

// Rejection is one rejection reason of a stage with its count and the
// items whose nodes counted it.
type Rejection struct {
	Reason string
	Count  float64
	Items  []Counter
}

// Counter is a named number.
type Counter struct {
	Name  string
	Value float64
}

// NodeError is a failed node with its error.
type NodeError struct {
	Node, Error string
}

// Cost is model use, from the llm.* counters.
type Cost struct {
	Calls, CacheHits, Retries      float64
	PromptTokens, CompletionTokens float64
	Dollars                        float64
	RetryCauses                    []Counter
}

// Any reports whether any model call was made.
func (c Cost) Any() bool { return c.Calls > 0 || c.Retries > 0 }

// ModelCost is the model use of one model profile.
type ModelCost struct {
	Profile          string
	Total, ThisBuild Cost
}

// TimedNode is a node that ran in this build.
type TimedNode struct {
	ID, Stage, Pool, State string
	// Start is seconds from the build's start; Seconds how long it ran.
	Start, Seconds float64
}

// Project is one SWE-Playground project of a develop stage.
type Project struct {
	Stage, ID string
	// Kept says the project is in the output (some task was done).
	Kept               bool
	Done, Failed, Skip int
	// Outcomes are the tasks that were not done, with their reasons.
	Outcomes []Outcome
	// Error is set when the node failed.
	Error string
}

// Outcome is one task's outcome in a develop stage.
type Outcome struct {
	Task, Status, Reason string
}

// nodeResult is the part of a node's memoised result the report reads.
type nodeResult struct {
	Output build.Output       `json:"output"`
	Counts map[string]float64 `json:"counts"`
}

// Make builds the report of rec; node results and exported datasets are
// read from store.
func Make(rec *build.Record, store *cache.Store) (*Report, error) {
	r := &Report{Recipe: rec.Recipe, Status: rec.Status, Started: rec.Started, Seconds: rec.Seconds, Published: rec.Published}
	results := map[string]*nodeResult{}
	for _, n := range rec.Nodes {
		if n.Result.IsZero() {
			continue
		}
		var res nodeResult
		if err := build.GetJSON(store, n.Result, &res); err != nil {
			return nil, fmt.Errorf("report: result of node %s: %w", n.ID, err)
		}
		results[n.ID] = &res
	}
	models := map[string]*ModelCost{}
	for _, s := range rec.Stages {
		st := makeStage(rec, s, results)
		r.Stages = append(r.Stages, st)
		addModelCosts(models, s)
	}
	for _, p := range slices.Sorted(maps.Keys(models)) {
		r.Models = append(r.Models, *models[p])
	}
	pools := map[string]string{}
	for _, s := range r.Stages {
		pools[s.ID] = s.Pool
	}
	for _, n := range rec.Nodes {
		if n.Began.IsZero() {
			continue
		}
		r.Nodes = append(r.Nodes, TimedNode{ID: n.ID, Stage: n.Stage, Pool: pools[n.Stage], State: n.State,
			Start: max(0, n.Began.Sub(rec.Started).Seconds()), Seconds: n.Seconds})
	}
	slices.SortStableFunc(r.Nodes, func(a, b TimedNode) int { return cmp.Compare(a.Start, b.Start) })
	for _, s := range rec.Stages {
		for _, n := range rec.Nodes {
			res := results[n.ID]
			if n.Stage != s.Stage || res == nil {
				continue
			}
			switch s.Kind {
			case "export":
				if res.Output.Value.IsZero() {
					continue
				}
				ds, err := readDataset(store, s.Stage, n.ID, res.Output.Value)
				if err != nil {
					return nil, err
				}
				r.Datasets = append(r.Datasets, ds)
			}
		}
		if s.Kind == "develop" {
			ps, err := readProjects(store, rec, s.Stage, results)
			if err != nil {
				return nil, err
			}
			r.Projects = append(r.Projects, ps...)
		}
	}
	return r, nil
}

func makeStage(rec *build.Record, s build.StageSummary, results map[string]*nodeResult) Stage {
	st := Stage{ID: s.Stage, Kind: s.Kind, Nodes: s.Nodes, Ran: s.Ran, Cached: s.Cached, Failed: s.Failed, Skip: s.Skipped,
		ItemsOut: s.Items, WallSeconds: s.WallSeconds, NodeSeconds: s.Seconds, SkipReason: s.SkipReason,
		Total: costOf(s.Counts, "llm."), ThisBuild: costOf(s.Spent, "llm.")}
	if k, ok := build.LookupKind(s.Kind); ok {
		st.Pool = k.Pool
	}
	if st.Pool == "" {
		st.Pool = "cpu"
	}
	st.In, st.HasIn = s.Counts["in"]
	st.Kept, st.HasKept = s.Counts["kept"]
	for _, k := range slices.Sorted(maps.Keys(s.Counts)) {
		v := s.Counts[k]
		switch {
		case k == "in" || k == "kept" || strings.HasPrefix(k, "llm."):
		case strings.HasPrefix(k, "rejected:"):
			st.Rejections = append(st.Rejections, Rejection{Reason: strings.TrimPrefix(k, "rejected:"), Count: v, Items: itemsCounting(rec, s.Stage, k, results)})
		default:
			st.Counters = append(st.Counters, Counter{k, v})
		}
	}
	slices.SortStableFunc(st.Rejections, func(a, b Rejection) int { return cmp.Compare(b.Count, a.Count) })
	for _, n := range rec.Nodes {
		if n.Stage == s.Stage && n.State == build.StateFailed {
			st.FailedNodes = append(st.FailedNodes, NodeError{n.ID, n.Error})
		}
	}
	return st
}

// itemsCounting lists the items of stage whose nodes counted counter,
// largest count first.
func itemsCounting(rec *build.Record, stage, counter string, results map[string]*nodeResult) []Counter {
	var out []Counter
	for _, n := range rec.Nodes {
		if res := results[n.ID]; n.Stage == stage && res != nil && res.Counts[counter] > 0 {
			name := n.Item
			if name == "" {
				name = n.ID
			}
			out = append(out, Counter{name, res.Counts[counter]})
		}
	}
	slices.SortStableFunc(out, func(a, b Counter) int { return cmp.Compare(b.Value, a.Value) })
	return out
}

// costOf reads a Cost from counters named prefix+"calls" and so on.
func costOf(counts map[string]float64, prefix string) Cost {
	c := Cost{Calls: counts[prefix+"calls"], CacheHits: counts[prefix+"cache_hits"], Retries: counts[prefix+"retries"],
		PromptTokens: counts[prefix+"prompt_tokens"], CompletionTokens: counts[prefix+"completion_tokens"], Dollars: counts[prefix+"dollars"]}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if cause, ok := strings.CutPrefix(k, prefix+"retries:"); ok {
			c.RetryCauses = append(c.RetryCauses, Counter{cause, counts[k]})
		}
	}
	return c
}

func addModelCosts(models map[string]*ModelCost, s build.StageSummary) {
	for _, which := range []struct {
		counts map[string]float64
		this   bool
	}{{s.Counts, false}, {s.Spent, true}} {
		for k, v := range which.counts {
			rest, ok := strings.CutPrefix(k, "llm.model:")
			if !ok {
				continue
			}
			i := strings.LastIndex(rest, ":")
			if i < 0 {
				continue
			}
			profile, name := rest[:i], rest[i+1:]
			m := models[profile]
			if m == nil {
				m = &ModelCost{Profile: profile}
				models[profile] = m
			}
			c := &m.Total
			if which.this {
				c = &m.ThisBuild
			}
			switch name {
			case "calls":
				c.Calls += v
			case "cache_hits":
				c.CacheHits += v
			case "prompt_tokens":
				c.PromptTokens += v
			case "completion_tokens":
				c.CompletionTokens += v
			case "dollars":
				c.Dollars += v
			}
		}
	}
}

// readProjects reads the projects of the develop stage: each node's
// task outcomes from its output, its done/failed/skipped counters.
func readProjects(store *cache.Store, rec *build.Record, stage string, results map[string]*nodeResult) ([]Project, error) {
	var out []Project
	for _, n := range rec.Nodes {
		if n.Stage != stage {
			continue
		}
		p := Project{Stage: stage, ID: n.Item, Error: n.Error}
		if p.ID == "" {
			p.ID = n.ID
		}
		res := results[n.ID]
		if res != nil {
			p.Done = int(res.Counts["tasks:"+stages.OutcomeDone])
			p.Failed = int(res.Counts["tasks:"+stages.OutcomeFailed])
			p.Skip = int(res.Counts["tasks:"+stages.OutcomeSkipped])
		}
		if res != nil && !res.Output.Value.IsZero() {
			var proj stages.PlaygroundProject
			if err := build.GetJSON(store, res.Output.Value, &proj); err != nil {
				return nil, fmt.Errorf("report: output of %s: %w", n.ID, err)
			}
			p.Kept = true
			if proj.Plan.Project.ID != "" {
				p.ID = proj.Plan.Project.ID
			}
			for _, o := range proj.Outcomes {
				if o.Status != stages.OutcomeDone {
					p.Outcomes = append(p.Outcomes, Outcome{o.Task, o.Status, o.Reason})
				}
			}
		}
		out = append(out, p)
	}
	return out, nil
}
