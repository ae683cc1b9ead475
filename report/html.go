package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
)

//go:embed report.html.tmpl
var pageText string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"num":     num,
	"money":   func(v float64) string { return fmt.Sprintf("$%.4f", v) },
	"secs":    func(v float64) string { return fmt.Sprintf("%.1fs", v) },
	"time":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"excerpt": excerpt,
	"key":     func(parts ...string) string { return strings.Join(parts, "/") },
	"costRow": func(stage, label string, c Cost) costRow { return costRow{stage, label, c} },
	"costPair": func(total, this Cost) []costRow {
		return []costRow{{Label: "output", Cost: total}, {Label: "this build", Cost: this}}
	},
}).Parse(pageText))

// excerpt keeps the first 20 lines and 2000 bytes of s.
func excerpt(s string) string {
	lines := strings.SplitN(s, "\n", 21)
	if len(lines) > 20 {
		lines = append(lines[:20], "…")
	}
	s = strings.Join(lines, "\n")
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

// pageData is the report with its plots drawn.
type pageData struct {
	*Report
	Funnel     template.HTML
	CostPlot   template.HTML
	Timeline   template.HTML
	Datasets   []datasetView
	Playground template.HTML
	Derived    template.HTML
	// Totals over every stage.
	Total, ThisBuild Cost
}

// costRow is one row of a cost table.
type costRow struct {
	Stage, Label string
	Cost         Cost
}

type datasetView struct {
	*Dataset
	Plots               []template.HTML
	ToolCalls, Messages int64
	Splits              []splitRow
}

// splitRow counts one split's tasks and trajectories.
type splitRow struct {
	Name                string
	Tasks, Trajectories int
}

// WriteHTML renders r as one HTML page.
func (r *Report) WriteHTML(w io.Writer) error {
	d := pageData{Report: r}
	var funnel []StackedBar
	var order []string
	var costBars []Counter
	for _, s := range r.Stages {
		order = append(order, s.ID)
		var rejected float64
		for _, rj := range s.Rejections {
			rejected += rj.Count
		}
		funnel = append(funnel, StackedBar{Label: s.ID, Segments: []Segment{
			{"items out", float64(s.ItemsOut), colorKept}, {"rejected", rejected, colorRejected}}})
		d.Total = addCost(d.Total, s.Total)
		d.ThisBuild = addCost(d.ThisBuild, s.ThisBuild)
		if s.Total.Any() {
			costBars = append(costBars, Counter{s.ID, s.Total.PromptTokens + s.Total.CompletionTokens})
		}
	}
	d.Funnel = template.HTML(stackedChart("funnel", "Funnel: items out and rejections per stage", funnel))
	if len(costBars) > 0 {
		d.CostPlot = template.HTML(barChart("cost", "Model tokens per stage (whole output)", costBars))
	}
	if len(r.Nodes) > 0 {
		d.Timeline = template.HTML(timelineChart("timeline", "Nodes over time per pool", r.Nodes, order, r.Seconds))
	}
	for _, ds := range r.Datasets {
		d.Datasets = append(d.Datasets, datasetPlots(ds))
	}
	if len(r.Projects) > 0 {
		var rows []StackedBar
		for _, p := range r.Projects {
			rows = append(rows, StackedBar{Label: p.ID, Segments: []Segment{
				{"done", float64(p.Done), colorKept}, {"failed", float64(p.Failed), colorRejected}, {"skipped", float64(p.Skip), colorSkipped}}})
		}
		d.Playground = template.HTML(stackedChart("projects", "SWE-Playground tasks per project", rows))
		var derived []Counter
		for _, s := range r.Stages {
			if strings.HasPrefix(s.Kind, "derive_") {
				derived = append(derived, Counter{s.ID + " (" + strings.TrimPrefix(s.Kind, "derive_") + ")", float64(s.ItemsOut)})
			}
		}
		if len(derived) > 0 {
			d.Derived = template.HTML(barChart("derived", "Derived tasks per type", derived))
		}
	}
	return page.Execute(w, d)
}

func datasetPlots(ds *Dataset) datasetView {
	v := datasetView{Dataset: ds}
	splits := map[string]*splitRow{}
	split := func(name string) *splitRow {
		if splits[name] == nil {
			splits[name] = &splitRow{Name: name}
		}
		return splits[name]
	}
	for _, t := range ds.Tasks {
		split(t.Split).Tasks++
	}
	for _, t := range ds.Trajectories {
		split(t.Split).Trajectories++
	}
	for _, k := range slices.Sorted(maps.Keys(splits)) {
		v.Splits = append(v.Splits, *splits[k])
	}
	add := func(s string) { v.Plots = append(v.Plots, template.HTML(s)) }
	name := ds.Stage
	if len(ds.Tasks) > 0 {
		add(barChart(name+"/task_types", "Tasks per task type", ds.TaskTypes()))
		add(barChart(name+"/difficulty", "Tasks per difficulty (0: unknown)", ds.Difficulties()))
		add(barChart(name+"/projects", "Tasks per source project", ds.ProjectCounts()))
		var f2p, p2p []int64
		for _, t := range ds.Tasks {
			f2p = append(f2p, int64(t.FailToPass))
			p2p = append(p2p, int64(t.PassToPass))
		}
		add(histogram(name+"/fail_to_pass", "FAIL_TO_PASS size per task", "tests", f2p))
		add(histogram(name+"/pass_to_pass", "PASS_TO_PASS size per task", "tests", p2p))
	}
	if len(ds.Trajectories) > 0 {
		var msgs, calls, toks []int64
		for _, t := range ds.Trajectories {
			msgs = append(msgs, int64(t.Messages))
			calls = append(calls, int64(t.ToolCalls))
			toks = append(toks, t.Tokens)
			v.Messages += int64(t.Messages)
			v.ToolCalls += int64(t.ToolCalls)
		}
		add(histogram(name+"/messages", "Trajectory length in messages", "messages", msgs))
		add(histogram(name+"/tool_calls", "Tool calls per trajectory", "tool calls", calls))
		add(histogram(name+"/tokens", "Tokens per trajectory (prompt + completion)", "tokens", toks))
		add(rateChart(name+"/resolved", "Resolved trajectories per task type", ds.ResolvedRates()))
	}
	return v
}

func addCost(a, b Cost) Cost {
	a.Calls += b.Calls
	a.CacheHits += b.CacheHits
	a.Retries += b.Retries
	a.PromptTokens += b.PromptTokens
	a.CompletionTokens += b.CompletionTokens
	a.Dollars += b.Dollars
	return a
}

// Path is where a build's report goes: beside its output folder out, as
// <out>.report.html (out/quickstart gives out/quickstart.report.html).
func Path(out string) (string, error) {
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", err
	}
	if filepath.Dir(abs) == abs {
		return "", fmt.Errorf("report: output folder %s has no parent to put the report in", out)
	}
	return abs + ".report.html", nil
}

// Write makes the report of rec and writes it to path atomically (a
// temporary file in the same folder, renamed into place).
func Write(rec *build.Record, store *cache.Store, path string) error {
	r, err := Make(rec, store)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		return fmt.Errorf("report: rendering: %w", err)
	}
	return writeAtomic(path, buf.Bytes())
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if err := f.Chmod(0o644); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("report: writing %s: %w", path, werr)
	}
	return nil
}
