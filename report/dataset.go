package report

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
	"github.com/parquet-go/parquet-go"
)

// Dataset is what one export stage wrote, as the page shows it.
type Dataset struct {
	Stage, Node string
	Tree        cache.Digest
	// Name is the dataset's title (build.json).
	Name string
	// Manifest is the dataset's manifest.json.
	Manifest schema.DatasetManifest
	// Tasks are per task: its type, project, difficulty and test counts.
	Tasks []TaskStats
	// Trajectories are per trajectory: its task type, model, length and
	// outcome.
	Trajectories []TrajectoryStats
}

// TaskStats are one task instance's numbers.
type TaskStats struct {
	ID, Type, Project, Split string
	Difficulty               int
	FailToPass, PassToPass   int
}

// TrajectoryStats are one trajectory's numbers.
type TrajectoryStats struct {
	ID, Type, Model, Split string
	Messages, ToolCalls    int
	Tokens                 int64
	Resolved               bool
}

// readDataset reads the exported tree of an export node: its manifest,
// tasks/instances.jsonl and the trajectory shards data/*.parquet.
func readDataset(store *cache.Store, stage, node string, tree cache.Digest) (*Dataset, error) {
	ds := &Dataset{Stage: stage, Node: node, Tree: tree}
	files, err := store.Files(tree)
	if err != nil {
		return nil, fmt.Errorf("report: dataset of %s: %w", node, err)
	}
	read := func(p string) ([]byte, error) {
		e, ok := files[p]
		if !ok {
			return nil, fmt.Errorf("report: dataset of %s has no %s", node, p)
		}
		b, err := store.Get(e.Digest)
		if err != nil {
			return nil, fmt.Errorf("report: dataset of %s: %s: %w", node, p, err)
		}
		return b, nil
	}
	b, err := read("manifest.json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &ds.Manifest); err != nil {
		return nil, fmt.Errorf("report: dataset of %s: manifest.json: %w", node, err)
	}
	if b, err := read(stages.ExportBuildFile); err == nil {
		var eb stages.ExportBuild
		if json.Unmarshal(b, &eb) == nil {
			ds.Name = eb.Name
		}
	}
	if _, ok := files["tasks/instances.jsonl"]; ok {
		b, err := read("tasks/instances.jsonl")
		if err != nil {
			return nil, err
		}
		if ds.Tasks, err = taskStats(b); err != nil {
			return nil, fmt.Errorf("report: dataset of %s: tasks/instances.jsonl: %w", node, err)
		}
	}
	splitOf := map[string]string{}
	for split, projects := range ds.Manifest.ProjectsPerSplit {
		for _, p := range projects {
			splitOf[p] = split
		}
	}
	for i := range ds.Tasks {
		ds.Tasks[i].Split = splitOf[ds.Tasks[i].Project]
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasPrefix(p, "data/") || path.Ext(p) != ".parquet" {
			continue
		}
		b, err := read(p)
		if err != nil {
			return nil, err
		}
		split, _, _ := strings.Cut(path.Base(p), "-")
		trajs, err := trajectoryStats(b, split)
		if err != nil {
			return nil, fmt.Errorf("report: dataset of %s: %s: %w", node, p, err)
		}
		ds.Trajectories = append(ds.Trajectories, trajs...)
	}
	return ds, nil
}

func taskStats(jsonl []byte) ([]TaskStats, error) {
	var out []TaskStats
	sc := bufio.NewScanner(bytes.NewReader(jsonl))
	sc.Buffer(nil, 1<<30)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		t, err := schema.ParseSWEBenchJSON(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		project := t.SourceProject
		if project == "" {
			project = t.Repo
		}
		out = append(out, TaskStats{ID: t.InstanceID, Type: string(t.TaskType), Project: project, Difficulty: t.Difficulty,
			FailToPass: len(t.FailToPass), PassToPass: len(t.PassToPass)})
	}
	return out, sc.Err()
}

func trajectoryStats(shard []byte, split string) ([]TrajectoryStats, error) {
	f, err := parquet.OpenFile(bytes.NewReader(shard), int64(len(shard)))
	if err != nil {
		return nil, err
	}
	r := parquet.NewGenericReader[schema.TrajectoryRow](f)
	defer r.Close()
	var out []TrajectoryStats
	rows := make([]schema.TrajectoryRow, 64)
	for {
		n, err := r.Read(rows)
		for _, row := range rows[:n] {
			ts := TrajectoryStats{ID: row.TrajectoryID, Type: row.TaskType, Model: row.Model, Split: split,
				Messages: len(row.Messages), Tokens: row.PromptTokens + row.CompletionTokens, Resolved: row.Resolved}
			for _, m := range row.Messages {
				var msg struct {
					ToolCalls []json.RawMessage `json:"tool_calls"`
				}
				if err := json.Unmarshal([]byte(m), &msg); err != nil {
					return nil, fmt.Errorf("trajectory %s: message: %w", row.TrajectoryID, err)
				}
				ts.ToolCalls += len(msg.ToolCalls)
			}
			out = append(out, ts)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// countBy counts the elements of xs by key, in key order.
func countBy[T any](xs []T, key func(T) string) []Counter {
	m := map[string]float64{}
	for _, x := range xs {
		m[key(x)]++
	}
	var out []Counter
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, Counter{k, m[k]})
	}
	return out
}

// TaskTypes counts the tasks per task type.
func (d *Dataset) TaskTypes() []Counter {
	return countBy(d.Tasks, func(t TaskStats) string { return orNone(t.Type) })
}

// Difficulties counts the tasks per difficulty (0: unknown).
func (d *Dataset) Difficulties() []Counter {
	return countBy(d.Tasks, func(t TaskStats) string { return strconv.Itoa(t.Difficulty) })
}

// ProjectCounts counts the tasks per source project, largest first.
func (d *Dataset) ProjectCounts() []Counter {
	out := countBy(d.Tasks, func(t TaskStats) string { return t.Project })
	slices.SortStableFunc(out, func(a, b Counter) int { return cmp.Compare(b.Value, a.Value) })
	return out
}

// Rate is a share of a total.
type Rate struct {
	Name     string
	Part, Of int
}

// Percent is the share in percent (0 for an empty total).
func (r Rate) Percent() float64 {
	if r.Of == 0 {
		return 0
	}
	return 100 * float64(r.Part) / float64(r.Of)
}

// ResolvedRates is the resolved share of trajectories per task type.
func (d *Dataset) ResolvedRates() []Rate {
	m := map[string]*Rate{}
	for _, t := range d.Trajectories {
		k := orNone(t.Type)
		if m[k] == nil {
			m[k] = &Rate{Name: k}
		}
		m[k].Of++
		if t.Resolved {
			m[k].Part++
		}
	}
	var out []Rate
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, *m[k])
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
