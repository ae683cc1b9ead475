package schema

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/goccy/go-yaml"
)

// arrowShard reads a Parquet file with arrow-go (an implementation
// independent of the writer) and returns its Arrow schema, footer
// created_by and rows rendered as JSON objects by arrow.
func arrowShard(t testing.TB, path string) (*arrow.Schema, string, []json.RawMessage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatalf("arrow-go cannot open %s: %v", path, err)
	}
	defer pr.Close()
	createdBy := pr.MetaData().GetCreatedBy()
	// Every page is a v1 data page or a dictionary page, zstd-compressed.
	for rg := 0; rg < pr.NumRowGroups(); rg++ {
		rgr := pr.RowGroup(rg)
		for c := 0; c < rgr.NumColumns(); c++ {
			cc, err := rgr.MetaData().ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Compression().String() != "ZSTD" {
				t.Errorf("%s: column %d compressed with %s", path, c, cc.Compression())
			}
			pages, err := rgr.GetColumnPageReader(c)
			if err != nil {
				t.Fatal(err)
			}
			for pages.Next() {
				if typ := pages.Page().Type(); typ != file.PageTypeDataPage && typ != file.PageTypeDictionaryPage {
					t.Errorf("%s: column %d has a %v page, want data page v1", path, c, typ)
				}
			}
			if err := pages.Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("arrow-go cannot read %s: %v", path, err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 1024)
	defer tr.Release()
	var buf bytes.Buffer
	for tr.Next() {
		if err := array.RecordToJSON(tr.RecordBatch(), &buf); err != nil {
			t.Fatal(err)
		}
	}
	var rows []json.RawMessage
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		rows = append(rows, json.RawMessage(slices.Clone(sc.Bytes())))
	}
	return tbl.Schema(), createdBy, rows
}

// The Arrow type of the messages column (what `datasets` sees through
// pyarrow before the card's Json feature decodes each element).
const wantJSONListType = "list<element: utf8>"

func normalizeRow(r TrajectoryRow) TrajectoryRow {
	if r.Messages == nil {
		r.Messages = []JSONText{}
	}
	return r
}

// wantSplits is the split of every instance of tasks and trajs by the
// documented rule: the project of its task, else the trajectory's repo.
func wantSplits(tasks []TaskInstance, trajs []Trajectory, f float64) (split, project map[string]string) {
	project = map[string]string{}
	for _, t := range tasks {
		project[t.InstanceID] = t.SourceProject
	}
	for _, tr := range trajs {
		if _, ok := project[tr.InstanceID]; !ok {
			project[tr.InstanceID] = tr.Repo
		}
	}
	per := map[string]int64{}
	for _, p := range project {
		per[p]++
	}
	bySplit := AssignSplits(per, f)
	split = map[string]string{}
	for id, p := range project {
		split[id] = bySplit[p]
	}
	return split, project
}

func writeDataset(t testing.TB, dir string, opts DatasetOptions, tasks []TaskInstance, trajs []Trajectory) *DatasetManifest {
	t.Helper()
	w, err := NewDatasetWriter(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if err := w.AddTask(task); err != nil {
			t.Fatal(err)
		}
	}
	for _, tr := range trajs {
		if err := w.AddTrajectory(tr); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func synthSet(nTasks, nTrajs, turns int) ([]TaskInstance, []Trajectory) {
	tasks := make([]TaskInstance, nTasks)
	for i := range tasks {
		tasks[i] = synthTask(i)
	}
	trajs := make([]Trajectory, nTrajs)
	for i := range trajs {
		trajs[i] = synthTrajectory(i, turns)
	}
	return tasks, trajs
}

// smallShards makes a few hundred rows span several row groups and shards,
// and forces the external sort to spill runs.
var smallShards = DatasetOptions{
	Name:             "test set",
	TestFraction:     0.25,
	TargetShardBytes: 48 << 10,
	RowGroupBytes:    64 << 10,
	SortBufferBytes:  96 << 10,
}

func TestDatasetRoundTripThroughArrow(t *testing.T) {
	tasks, trajs := synthSet(120, 360, 4)
	dir := filepath.Join(t.TempDir(), "ds")
	m := writeDataset(t, dir, smallShards, tasks, trajs)

	if m.Tasks != 120 || m.Trajectories != 360 {
		t.Fatalf("manifest counts: %d tasks %d trajectories", m.Tasks, m.Trajectories)
	}
	if m.TrajectoriesPerSplit[SplitTrain] == 0 || m.TrajectoriesPerSplit[SplitTest] == 0 {
		t.Fatalf("want both splits non-empty: %v", m.TrajectoriesPerSplit)
	}

	// Expected rows per split, in the documented order.
	splitOf, projectOf := wantSplits(tasks, trajs, smallShards.TestFraction)
	want := map[string][]TrajectoryRow{}
	for _, tr := range trajs {
		row, err := tr.Row()
		if err != nil {
			t.Fatal(err)
		}
		row.SourceProject = projectOf[tr.InstanceID]
		s := splitOf[tr.InstanceID]
		want[s] = append(want[s], normalizeRow(row))
	}
	for _, rows := range want {
		sort.Slice(rows, func(i, j int) bool {
			if rows[i].InstanceID != rows[j].InstanceID {
				return rows[i].InstanceID < rows[j].InstanceID
			}
			return rows[i].TrajectoryID < rows[j].TrajectoryID
		})
	}

	// Every file in the manifest exists with the stated digest and size.
	var listed []string
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(b)) != f.Bytes {
			t.Errorf("%s: manifest digest/size mismatch", f.Path)
		}
		listed = append(listed, f.Path)
	}
	var onDisk []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			if rel != "manifest.json" {
				onDisk = append(onDisk, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if !slices.Equal(listed, onDisk) {
		t.Errorf("manifest files %v\n!= files on disk %v", listed, onDisk)
	}

	// Read every trajectory shard back through arrow-go.
	for split, rows := range want {
		var got []TrajectoryRow
		var shards []DatasetFile
		for _, f := range m.Files {
			if strings.HasPrefix(f.Path, "data/"+split+"-") {
				shards = append(shards, f)
			}
		}
		if len(shards) < 2 {
			t.Errorf("split %s: %d shards, want several with a %d-byte target", split, len(shards), smallShards.TargetShardBytes)
		}
		for i, f := range shards {
			wantName := "data/" + split + "-" + pad5(i) + "-of-" + pad5(len(shards)) + ".parquet"
			if f.Path != wantName {
				t.Errorf("shard name %s, want %s", f.Path, wantName)
			}
			sc, createdBy, jsonRows := arrowShard(t, filepath.Join(dir, f.Path))
			if createdBy != CreatedBy {
				t.Errorf("%s: created_by %q", f.Path, createdBy)
			}
			if int64(len(jsonRows)) != f.Rows {
				t.Errorf("%s: arrow read %d rows, manifest says %d", f.Path, len(jsonRows), f.Rows)
			}
			checkTrajectorySchema(t, sc)
			for _, jr := range jsonRows {
				var r TrajectoryRow
				if err := json.Unmarshal(jr, &r); err != nil {
					t.Fatalf("%s: %v", f.Path, err)
				}
				got = append(got, normalizeRow(r))
			}
		}
		if len(got) != len(rows) {
			t.Fatalf("split %s: read %d rows, want %d", split, len(got), len(rows))
		}
		for i := range rows {
			if !reflect.DeepEqual(got[i], rows[i]) {
				t.Fatalf("split %s row %d differs:\n got %+v\nwant %+v", split, i, got[i], rows[i])
			}
		}
	}

	// Keys that do not apply are absent from a message, not null.
	_, _, first := arrowShard(t, filepath.Join(dir, "data/train-00000-of-"+pad5(countPrefix(m, "data/train-"))+".parquet"))
	var raw struct {
		Messages []string `json:"messages"`
	}
	json.Unmarshal(first[0], &raw)
	var system, call map[string]any
	json.Unmarshal([]byte(raw.Messages[0]), &system)
	json.Unmarshal([]byte(raw.Messages[2]), &call)
	if len(system) != 2 || system["role"] != "system" {
		t.Errorf("system message %v, want role and content only", system)
	}
	if calls, _ := call["tool_calls"].([]any); len(calls) != 1 || calls[0].(map[string]any)["function"].(map[string]any)["arguments"].(map[string]any)["command"] == nil {
		t.Errorf("assistant message %v, want one call with an arguments object", call)
	}

	// Tasks: Parquet through arrow, per split, and the JSONL, both sorted
	// by instance_id.
	wantTasks := slices.Clone(tasks)
	slices.SortFunc(wantTasks, func(a, b TaskInstance) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	var gotTasks []TaskInstance
	for _, f := range m.Files {
		split, _, _ := strings.Cut(strings.TrimPrefix(f.Path, "tasks/"), "-")
		if !strings.HasPrefix(f.Path, "tasks/") || !strings.HasSuffix(f.Path, ".parquet") {
			continue
		}
		sc, _, rows := arrowShard(t, filepath.Join(dir, f.Path))
		for _, fld := range sc.Fields() {
			wantType := arrow.BinaryTypes.String.String()
			if fld.Name == "difficulty" {
				wantType = "int64"
			}
			if fld.Type.String() != wantType {
				t.Errorf("tasks column %s: type %s, want %s", fld.Name, fld.Type, wantType)
			}
		}
		for _, jr := range rows {
			task, err := ParseSWEBenchJSON(jr)
			if err != nil {
				t.Fatal(err)
			}
			if splitOf[task.InstanceID] != split {
				t.Errorf("%s: task %s in split %s, want %s", f.Path, task.InstanceID, split, splitOf[task.InstanceID])
			}
			gotTasks = append(gotTasks, task)
		}
	}
	slices.SortFunc(gotTasks, func(a, b TaskInstance) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	if !reflect.DeepEqual(gotTasks, wantTasks) {
		t.Errorf("tasks through arrow differ (%d vs %d rows)", len(gotTasks), len(wantTasks))
	}
	jl, err := os.ReadFile(filepath.Join(dir, "tasks", "instances.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(jl), "\n"), "\n")
	if len(lines) != len(wantTasks) {
		t.Fatalf("instances.jsonl: %d lines", len(lines))
	}
	for i, line := range lines {
		task, err := ParseSWEBenchJSON([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(task, wantTasks[i]) {
			t.Fatalf("instances.jsonl line %d differs", i)
		}
		var obj map[string]any
		json.Unmarshal([]byte(line), &obj)
		if obj["split"] != splitOf[task.InstanceID] {
			t.Errorf("line %d: split %v", i, obj["split"])
		}
	}
}

func pad5(n int) string {
	return strings.TrimPrefix(strings.Repeat("0", 5)+itoa(n), strings.Repeat("0", len(itoa(n))))
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func countPrefix(m *DatasetManifest, prefix string) int {
	n := 0
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, prefix) {
			n++
		}
	}
	return n
}

func checkTrajectorySchema(t testing.TB, sc *arrow.Schema) {
	t.Helper()
	want := []struct{ name, typ string }{
		{"trajectory_id", "utf8"}, {"instance_id", "utf8"}, {"repo", "utf8"}, {"source_project", "utf8"},
		{"task_type", "utf8"}, {"model", "utf8"}, {"policy", "utf8"}, {"messages", wantJSONListType},
		{"tools", "utf8"}, {"patch", "utf8"}, {"resolved", "bool"}, {"reward", "float64"},
		{"exit_status", "utf8"}, {"num_turns", "int64"}, {"prompt_tokens", "int64"}, {"completion_tokens", "int64"},
	}
	if sc.NumFields() != len(want) {
		t.Fatalf("arrow schema has %d fields, want %d:\n%s", sc.NumFields(), len(want), sc)
	}
	for i, w := range want {
		f := sc.Field(i)
		if f.Name != w.name || f.Type.String() != w.typ {
			t.Errorf("field %d: %s %s, want %s %s", i, f.Name, f.Type, w.name, w.typ)
		}
	}
}

// readTree maps relative path to contents for every file under dir.
func readTree(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDatasetIsByteIdenticalWhateverTheOrder(t *testing.T) {
	tasks, trajs := synthSet(60, 240, 3)
	root := t.TempDir()
	a := filepath.Join(root, "a")
	writeDataset(t, a, smallShards, tasks, trajs)

	// Shuffled order, rows added twice (identical duplicates are dropped),
	// everything in memory (no spill): same bytes.
	r := rand.New(rand.NewPCG(1, 2))
	tasks2 := slices.Clone(tasks)
	trajs2 := append(slices.Clone(trajs), trajs[:17]...)
	r.Shuffle(len(tasks2), func(i, j int) { tasks2[i], tasks2[j] = tasks2[j], tasks2[i] })
	r.Shuffle(len(trajs2), func(i, j int) { trajs2[i], trajs2[j] = trajs2[j], trajs2[i] })
	inMemory := smallShards
	inMemory.SortBufferBytes = 1 << 30
	b := filepath.Join(root, "b")
	writeDataset(t, b, inMemory, tasks2, trajs2)

	ta, tb := readTree(t, a), readTree(t, b)
	if len(ta) < 6 {
		t.Fatalf("only %d files written", len(ta))
	}
	for name, content := range ta {
		if !bytes.Equal(content, tb[name]) {
			t.Errorf("%s differs between exports", name)
		}
	}
	if len(ta) != len(tb) {
		t.Errorf("%d files vs %d files", len(ta), len(tb))
	}
}

func TestDatasetRejectsConflictingDuplicatesAndLeavesOldDataset(t *testing.T) {
	tasks, trajs := synthSet(10, 30, 2)
	dir := filepath.Join(t.TempDir(), "ds")
	writeDataset(t, dir, DatasetOptions{}, tasks, trajs)
	before := readTree(t, dir)

	w, err := NewDatasetWriter(dir, DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conflict := trajs[4]
	conflict.Reward = 0.123
	for _, tr := range []Trajectory{trajs[4], conflict} {
		if err := w.AddTrajectory(tr); err != nil {
			t.Fatal(err)
		}
	}
	_, err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "traj-0000004") || !strings.Contains(err.Error(), "different contents") {
		t.Fatalf("conflicting duplicate: err = %v", err)
	}
	if after := readTree(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("failed export changed the published dataset")
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("staging left behind: %v", entries)
	}

	// Bad rows are refused at Add with the offending ID in the message.
	w, _ = NewDatasetWriter(dir, DatasetOptions{})
	defer w.Abort()
	bad := trajs[0]
	bad.Messages = append(slices.Clone(bad.Messages), Message{Role: "robot"})
	if err := w.AddTrajectory(bad); err == nil || !strings.Contains(err.Error(), "traj-0000000") {
		t.Errorf("bad role: %v", err)
	}
	if err := w.AddTask(TaskInstance{InstanceID: "x", TaskType: "nope"}); err == nil || !strings.Contains(err.Error(), "task_type") {
		t.Errorf("bad task type: %v", err)
	}
}

func TestDatasetReplacesExistingAndCardDescribesIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	tasks, trajs := synthSet(12, 40, 2)
	writeDataset(t, dir, DatasetOptions{TestFraction: 0.3}, tasks, trajs)
	// A second, smaller export replaces the first wholesale.
	m := writeDataset(t, dir, DatasetOptions{Name: "second", TestFraction: 0.3}, tasks[:3], trajs[:9])
	tree := readTree(t, dir)
	var mj DatasetManifest
	if err := json.Unmarshal(tree["manifest.json"], &mj); err != nil {
		t.Fatal(err)
	}
	if mj.Trajectories != 9 || mj.Tasks != 3 || !reflect.DeepEqual(&mj, m) {
		t.Errorf("manifest.json does not match Close's result: %+v", mj)
	}
	for name := range tree {
		if name == "manifest.json" {
			continue
		}
		found := false
		for _, f := range m.Files {
			found = found || f.Path == filepath.ToSlash(name)
		}
		if !found {
			t.Errorf("stale file %s survived the replacement", name)
		}
	}

	card := string(tree["README.md"])
	front, _, ok := strings.Cut(strings.TrimPrefix(card, "---\n"), "\n---\n")
	if !strings.HasPrefix(card, "---\n") || !ok {
		t.Fatalf("card has no YAML front matter:\n%s", card)
	}
	var meta struct {
		PrettyName string `yaml:"pretty_name"`
		Configs    []struct {
			ConfigName string `yaml:"config_name"`
			Default    bool   `yaml:"default"`
			DataFiles  []struct {
				Split string `yaml:"split"`
				Path  string `yaml:"path"`
			} `yaml:"data_files"`
		} `yaml:"configs"`
		DatasetInfo []struct {
			ConfigName string           `yaml:"config_name"`
			Features   []map[string]any `yaml:"features"`
			Splits     []struct {
				Name        string `yaml:"name"`
				NumExamples int64  `yaml:"num_examples"`
			} `yaml:"splits"`
		} `yaml:"dataset_info"`
	}
	if err := yaml.Unmarshal([]byte(front), &meta); err != nil {
		t.Fatalf("front matter is not YAML: %v\n%s", err, front)
	}
	if meta.PrettyName != "second" || len(meta.Configs) != 2 || meta.Configs[0].ConfigName != "trajectories" || !meta.Configs[0].Default || meta.Configs[1].ConfigName != "tasks" {
		t.Fatalf("configs: %+v", meta)
	}
	checkCardMatchesFiles(t, front, &mj)
	feats := meta.DatasetInfo[0].Features
	if len(feats) != 16 || feats[7]["name"] != "messages" || feats[7]["list"] != "json" || feats[8]["dtype"] != "json" || feats[0]["dtype"] != "string" || feats[10]["dtype"] != "bool" {
		t.Errorf("trajectory features: %v", feats)
	}
	if !strings.Contains(card, "| **total** | 9 | 3 |") {
		t.Errorf("card counts missing:\n%s", card)
	}
}

func TestEmptyDataset(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	m := writeDataset(t, dir, DatasetOptions{}, nil, nil)
	if len(m.Files) != 1 || m.Files[0].Path != "README.md" {
		t.Errorf("empty dataset files: %+v", m.Files)
	}
}

// checkCardMatchesFiles checks that every config of the card's front
// matter declares one data_files entry per split it has rows in, that each
// entry's glob matches exactly that split's Parquet files of the manifest,
// and that dataset_info's num_examples and num_bytes are theirs.
func checkCardMatchesFiles(t *testing.T, front string, m *DatasetManifest) {
	t.Helper()
	var meta struct {
		Configs []struct {
			ConfigName string `yaml:"config_name"`
			DataFiles  []struct {
				Split string `yaml:"split"`
				Path  string `yaml:"path"`
			} `yaml:"data_files"`
		} `yaml:"configs"`
		DatasetInfo []struct {
			ConfigName string `yaml:"config_name"`
			Splits     []struct {
				Name        string `yaml:"name"`
				NumBytes    int64  `yaml:"num_bytes"`
				NumExamples int64  `yaml:"num_examples"`
			} `yaml:"splits"`
		} `yaml:"dataset_info"`
	}
	if err := yaml.Unmarshal([]byte(front), &meta); err != nil {
		t.Fatal(err)
	}
	if len(meta.Configs) != len(meta.DatasetInfo) {
		t.Fatalf("%d configs, %d dataset_info entries", len(meta.Configs), len(meta.DatasetInfo))
	}
	for i, c := range meta.Configs {
		var perSplit map[string]int64
		switch c.ConfigName {
		case "trajectories":
			perSplit = m.TrajectoriesPerSplit
		case "tasks":
			perSplit = m.TasksPerSplit
		default:
			t.Errorf("unknown config %s", c.ConfigName)
		}
		info := meta.DatasetInfo[i]
		if info.ConfigName != c.ConfigName || len(c.DataFiles) != len(perSplit) || len(info.Splits) != len(perSplit) {
			t.Errorf("config %s: data_files %+v, splits %+v, want the splits of %v", c.ConfigName, c.DataFiles, info.Splits, perSplit)
			continue
		}
		for j, df := range c.DataFiles {
			var rows, bytes int64
			var matched int
			for _, f := range m.Files {
				if ok, _ := filepath.Match(df.Path, f.Path); ok {
					rows += f.Rows
					bytes += f.Bytes
					matched++
				}
			}
			if matched == 0 || rows != perSplit[df.Split] || info.Splits[j].Name != df.Split ||
				info.Splits[j].NumExamples != rows || info.Splits[j].NumBytes != bytes {
				t.Errorf("config %s split %s: glob %s matches %d files with %d rows, %d bytes; manifest counts %d; card says %+v",
					c.ConfigName, df.Split, df.Path, matched, rows, bytes, perSplit[df.Split], info.Splits[j])
			}
		}
	}
}

func TestAssignSplits(t *testing.T) {
	per := map[string]int64{}
	var total int64
	for i := 0; i < 200; i++ {
		per[fmt.Sprintf("proj%03d", i)] = int64(1 + i%7)
		total += int64(1 + i%7)
	}
	splits := AssignSplits(per, 0.2)
	var test int64
	for p, s := range splits {
		if s == SplitTest {
			test += per[p]
		}
	}
	if !reflect.DeepEqual(splits, AssignSplits(maps.Clone(per), 0.2)) {
		t.Error("not deterministic")
	}
	if share := float64(test) / float64(total); share < 0.2 || share > 0.2+7.0/float64(total) {
		t.Errorf("test share %.3f at fraction 0.2 (%d of %d instances)", share, test, total)
	}
	for p, s := range AssignSplits(per, 0) {
		if s != SplitTrain {
			t.Fatalf("fraction 0 put %s in %s", p, s)
		}
	}
	// Two projects and a tiny fraction: one each side. One project: train.
	two := AssignSplits(map[string]int64{"a": 100, "b": 100}, 0.01)
	if two["a"] == two["b"] {
		t.Errorf("two projects at 0.01: %v", two)
	}
	if two := AssignSplits(map[string]int64{"a": 1, "b": 100}, 0.99); two["a"] == two["b"] {
		t.Errorf("two projects at 0.99: %v", two)
	}
	if one := AssignSplits(map[string]int64{"a": 5}, 0.5); one["a"] != SplitTrain {
		t.Errorf("single project: %v", one)
	}
	if _, err := NewDatasetWriter(t.TempDir(), DatasetOptions{TestFraction: 1}); err == nil {
		t.Error("test fraction 1 accepted")
	}
}

// The leak: a test-split task and a train trajectory sharing a
// reference patch, because splits hashed instance ids. By project, the
// task (whose project is in its source_project), the trajectory of another
// instance of the same project (which has no task, so its repo decides)
// and every other row of the project land in one split.
func TestSplitsNeverShareAProject(t *testing.T) {
	var tasks []TaskInstance
	var trajs []Trajectory
	for p := 0; p < 12; p++ {
		proj := fmt.Sprintf("pkg%02d", p)
		for i := 0; i < 1+p%3; i++ {
			task := synthTask(p*10 + i)
			task.InstanceID = fmt.Sprintf("%s.testgen.%d", proj, i)
			task.SourceProject, task.Repo = proj, proj
			tasks = append(tasks, task)
			tr := synthTrajectory(p*10+i, 1)
			tr.InstanceID, tr.Repo = fmt.Sprintf("%s.%d.tests", proj, i), proj // develop-stage rollout, no task
			tr.TrajectoryID = tr.InstanceID + "/agent"
			trajs = append(trajs, tr)
		}
	}
	dir := filepath.Join(t.TempDir(), "ds")
	m := writeDataset(t, dir, DatasetOptions{TestFraction: 0.3, TargetShardBytes: 16 << 10, RowGroupBytes: 8 << 10}, tasks, trajs)
	if len(m.ProjectsPerSplit[SplitTest]) == 0 || len(m.ProjectsPerSplit[SplitTrain]) == 0 {
		t.Fatalf("projects per split %v", m.ProjectsPerSplit)
	}
	projectSplit := map[string]string{}
	see := func(file, project, split string) {
		if prev, ok := projectSplit[project]; ok && prev != split {
			t.Errorf("%s: project %s in %s and %s", file, project, prev, split)
		}
		projectSplit[project] = split
	}
	for _, f := range m.Files {
		if !strings.HasSuffix(f.Path, ".parquet") {
			continue
		}
		split, _, _ := strings.Cut(f.Path[strings.Index(f.Path, "/")+1:], "-")
		_, _, rows := arrowShard(t, filepath.Join(dir, f.Path))
		for _, r := range rows {
			var row struct {
				SourceProject string `json:"source_project"`
			}
			json.Unmarshal(r, &row)
			see(f.Path, row.SourceProject, split)
		}
	}
	for p, s := range projectSplit {
		if !slices.Contains(m.ProjectsPerSplit[s], p) {
			t.Errorf("project %s in %s, manifest says %v", p, s, m.ProjectsPerSplit)
		}
	}
	if len(projectSplit) != 12 {
		t.Errorf("%d projects seen", len(projectSplit))
	}
	card, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	front, _, _ := strings.Cut(strings.TrimPrefix(string(card), "---\n"), "\n---\n")
	checkCardMatchesFiles(t, front, m)
	if !strings.Contains(string(card), "Splits are by source project") || !strings.Contains(string(card), "`"+m.ProjectsPerSplit[SplitTest][0]+"`") {
		t.Errorf("card does not state the split rule and the test projects:\n%s", card)
	}

	// A trajectory whose instance has no task and no repo cannot be placed.
	w, _ := NewDatasetWriter(filepath.Join(t.TempDir(), "ds"), DatasetOptions{TestFraction: 0.3})
	orphan := trajs[0]
	orphan.Repo = ""
	w.AddTrajectory(orphan)
	if _, err := w.Close(); err == nil || !strings.Contains(err.Error(), orphan.InstanceID) || !strings.Contains(err.Error(), "no repo") {
		t.Errorf("orphan trajectory: %v", err)
	}
}
