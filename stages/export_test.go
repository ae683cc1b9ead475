package stages_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// exportBaseLayout writes a tiny one-layer image as an OCI layout (a base
// that needs neither mmdebstrap nor a network).
func exportBaseLayout(t *testing.T) string {
	t.Helper()
	l, err := crane.Layer(map[string][]byte{"etc/os-release": []byte("ID=exporttest\n"), "bin/true": []byte("#!/bin/sh\n")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "base")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// exportFixture stores three task bundles, each with its own image on the
// shared base, and three trajectories; it returns their digests as items.
func exportFixture(store *cache.Store, baseLayout string) (tasks, trajs []build.Item, images map[string]schema.Image, err error) {
	ctx := context.Background()
	b := oci.NewBuilder(store, oci.Options{Offline: true})
	base, err := b.Base(ctx, oci.BaseSpec{Layout: baseLayout})
	if err != nil {
		return nil, nil, nil, err
	}
	images = map[string]schema.Image{}
	for i, id := range []string{"proj__bug-2", "proj__bug-1", "proj__bug-3"} {
		tree, err := store.PutFiles(map[string]cache.File{
			"proj.py":            {Data: []byte(fmt.Sprintf("def f():\n    return %d\n", i))},
			"tests/test_proj.py": {Data: []byte(fmt.Sprintf("from proj import f\n\n\ndef test_f():\n    assert f() == %d\n", i))},
		})
		if err != nil {
			return nil, nil, nil, err
		}
		img, err := b.WithTree(ctx, base, tree, "/testbed", oci.ConfigOptions{Labels: map[string]string{"instance": id}})
		if err != nil {
			return nil, nil, nil, err
		}
		img.Ref = "dsbuild/exporttest:" + id
		images[id] = img
		bundle := stages.TaskBundle{
			Instance: schema.TaskInstance{
				InstanceID: id, Repo: "proj", ProblemStatement: "f() is wrong in " + id,
				FailToPass: []string{"tests/test_proj.py::test_f"}, TaskType: schema.TaskFix,
				Image: "dsbuild/exporttest@" + img.Digest, TestCmd: "python3 -m pytest", SourceProject: "proj", Difficulty: 2,
			},
			Image: img, Start: tree, Solution: tree, TestCmd: stages.DefaultTestCmd, Protected: []string{"tests/"},
		}
		d, err := build.PutJSON(store, bundle)
		if err != nil {
			return nil, nil, nil, err
		}
		tasks = append(tasks, build.Item{Name: id, Value: d})
	}
	for i, id := range []string{"proj__bug-1", "proj__bug-1", "proj__bug-3"} {
		tr := schema.Trajectory{
			TrajectoryID: fmt.Sprintf("%s/agent/%d", id, i), InstanceID: id, Repo: "proj", TaskType: schema.TaskFix,
			Model: "test-model", Policy: "agent", Resolved: i != 2, Reward: 1, ExitStatus: "finished",
			Messages: []schema.Message{
				{Role: "system", Content: "You fix bugs."},
				{Role: "user", Content: "Fix " + id},
				{Role: "assistant", ToolCalls: []schema.ToolCall{{ID: "c1", Type: "function", Function: schema.FunctionCall{Name: "finish", Arguments: `{}`}}}},
				{Role: "tool", ToolCallID: "c1", Name: "finish", Content: "Finished."},
			},
			Patch: "", PromptTokens: 100, CompletionTokens: 10,
		}
		d, err := build.PutJSON(store, tr)
		if err != nil {
			return nil, nil, nil, err
		}
		trajs = append(trajs, build.Item{Name: fmt.Sprintf("t%d", i), Value: d})
	}
	return tasks, trajs, images, nil
}

const exportRecipe = `name: exporttest
stages:
  tasks:   {uses: rollouttest_items, with: {set: %[1]s-tasks}}
  trajs:   {uses: rollouttest_items, with: {set: %[1]s-trajs}}
  dataset:
    uses: export
    from: [tasks, trajs]
    with: {name: Export test, description: Three tasks and their trajectories., test_fraction: 0.3, docker_archive: true, registry: "registry.example:5000/team"}
`

// exportOnce builds the export recipe into a fresh store and returns the
// output folder, the store and the images.
func exportOnce(t *testing.T, set, baseLayout string) (string, *cache.Store, map[string]schema.Image) {
	t.Helper()
	store := testenv.Store(t)
	tasks, trajs, images, err := exportFixture(store, baseLayout)
	if err != nil {
		t.Fatal(err)
	}
	rolloutTestSets.Store(set+"-tasks", func(*cache.Store) ([]build.Item, error) { return tasks, nil })
	rolloutTestSets.Store(set+"-trajs", func(*cache.Store) ([]build.Item, error) { return trajs, nil })
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	rec, err := build.Build(context.Background(), loadTestRecipe(t, dir, fmt.Sprintf(exportRecipe, set)), store, build.Options{OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Published) != 1 || rec.Published[0] != out {
		t.Fatalf("published %v", rec.Published)
	}
	sum := stageSummary(t, rec, "dataset")
	if sum.Counts["tasks"] != 3 || sum.Counts["trajectories"] != 3 || sum.Counts["images"] != 3 {
		t.Fatalf("export counts %v", sum.Counts)
	}
	return out, store, images
}

// An export lays out the dataset (card, manifest, JSONL, Parquet readable
// by arrow-go), build.json and an OCI layout skopeo reads, with the shared
// base written once; a second export in another store is byte-identical.
func TestExportFolder(t *testing.T) {
	base := exportBaseLayout(t)
	out, store, images := exportOnce(t, "export1", base)

	card, err := os.ReadFile(filepath.Join(out, "README.md"))
	if err != nil || !strings.Contains(string(card), "Export test") || !strings.Contains(string(card), "Three tasks and their trajectories.") {
		t.Fatalf("card: %v\n%s", err, card)
	}
	var m schema.DatasetManifest
	readJSONFile(t, filepath.Join(out, "manifest.json"), &m)
	if m.Tasks != 3 || m.Trajectories != 3 || m.Resolved != 2 || m.PromptTokens != 300 {
		t.Fatalf("manifest counts %+v", m)
	}
	for _, f := range m.Files {
		if _, err := os.Stat(filepath.Join(out, f.Path)); err != nil {
			t.Errorf("manifest lists %s: %v", f.Path, err)
		}
	}

	// SWE-bench JSONL, sorted by instance id.
	jsonl, err := os.ReadFile(filepath.Join(out, "tasks", "instances.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(jsonl)), "\n") {
		inst, err := schema.ParseSWEBenchJSON([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		want := "registry.example:5000/team/export-test:" + strings.ReplaceAll(inst.InstanceID, "__", "-") + "@" + images[inst.InstanceID].Digest
		if inst.Image != want {
			t.Errorf("%s: image %s", inst.InstanceID, inst.Image)
		}
		ids = append(ids, inst.InstanceID)
	}
	if strings.Join(ids, " ") != "proj__bug-1 proj__bug-2 proj__bug-3" {
		t.Fatalf("instances %v", ids)
	}

	// Trajectory shards through arrow-go: every trajectory once, in the
	// split of its instance.
	var got []string
	for _, f := range m.Files {
		if !strings.HasPrefix(f.Path, "data/") {
			continue
		}
		split := strings.SplitN(strings.TrimPrefix(f.Path, "data/"), "-", 2)[0]
		for _, row := range arrowRows(t, filepath.Join(out, f.Path)) {
			var r struct {
				TrajectoryID string            `json:"trajectory_id"`
				InstanceID   string            `json:"instance_id"`
				Messages     []json.RawMessage `json:"messages"`
			}
			if err := json.Unmarshal(row, &r); err != nil {
				t.Fatal(err)
			}
			if len(r.Messages) != 4 {
				t.Errorf("%s: %d messages", r.TrajectoryID, len(r.Messages))
			}
			if split != schema.SplitTrain { // splits are by project; "proj" is the only one
				t.Errorf("%s in split %s, want train", r.TrajectoryID, split)
			}
			got = append(got, r.TrajectoryID)
		}
	}
	slices.Sort(got)
	if strings.Join(got, " ") != "proj__bug-1/agent/0 proj__bug-1/agent/1 proj__bug-3/agent/2" {
		t.Fatalf("trajectories through arrow: %v", got)
	}

	// build.json names every image; the layout holds them under their tags.
	var eb stages.ExportBuild
	readJSONFile(t, filepath.Join(out, stages.ExportBuildFile), &eb)
	if len(eb.Images) != 3 || eb.DockerArchive != stages.ExportDockerArchive {
		t.Fatalf("build.json %+v", eb)
	}
	for _, im := range eb.Images {
		want := images[im.InstanceID]
		tag := strings.ReplaceAll(im.InstanceID, "__", "-")
		if im.Tag != tag || im.Digest != want.Digest || im.Name != "registry.example:5000/team/export-test:"+tag {
			t.Errorf("build.json entry %+v, image %+v", im, want)
		}
		cmd := exec.Command("skopeo", "inspect", "--format", "{{.Digest}}", "oci:"+filepath.Join(out, "images")+":"+im.Tag)
		b, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(b)) != want.Digest {
			t.Errorf("skopeo inspect %s: %v %s (want %s)", im.Tag, err, b, want.Digest)
		}
	}
	// The docker-archive names every image exactly as build.json does.
	if b, err := exec.Command("tar", "-xOf", filepath.Join(out, stages.ExportDockerArchive), "manifest.json").Output(); err != nil {
		t.Errorf("docker-archive manifest: %v", err)
	} else {
		var entries []struct{ RepoTags []string }
		if err := json.Unmarshal(b, &entries); err != nil || len(entries) != len(eb.Images) {
			t.Fatalf("docker-archive manifest %s: %v", b, err)
		}
		for i, e := range entries {
			if len(e.RepoTags) != 1 || e.RepoTags[0] != eb.Images[i].Name {
				t.Errorf("docker-archive image %d tagged %v, want %s", i, e.RepoTags, eb.Images[i].Name)
			}
		}
	}
	// Every blob of every image is in the layout once, and nothing else:
	// the shared base layer is one file.
	var idx v1.IndexManifest
	readJSONFile(t, filepath.Join(out, "images", "index.json"), &idx)
	want := map[string]bool{}
	for _, d := range idx.Manifests {
		want[d.Digest.Hex] = true
		var mf v1.Manifest
		readJSONFile(t, filepath.Join(out, "images", "blobs", "sha256", d.Digest.Hex), &mf)
		want[mf.Config.Digest.Hex] = true
		for _, l := range mf.Layers {
			want[l.Digest.Hex] = true
		}
	}
	blobs, err := os.ReadDir(filepath.Join(out, "images", "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != len(want) || len(want) != 1+3*3 {
		t.Errorf("layout has %d blobs, images use %d distinct ones (want 10: base layer + 3 x (tree layer, config, manifest))", len(blobs), len(want))
	}
	if fi, err := os.Stat(filepath.Join(out, stages.ExportDockerArchive)); err != nil || fi.Size() == 0 {
		t.Errorf("docker-archive: %v", err)
	}

	// The published tree's blob files are the store's OCI blobs.
	tree, err := build.PublishedTree(out)
	if err != nil {
		t.Fatal(err)
	}
	files, err := store.Files(tree)
	if err != nil {
		t.Fatal(err)
	}
	for p, e := range files {
		if hex, ok := strings.CutPrefix(p, "images/blobs/sha256/"); ok && e.Digest.Hex() != hex {
			t.Errorf("%s stored as %s", p, e.Digest)
		}
	}

	// Another store, the same inputs: the same bytes everywhere.
	out2, _, _ := exportOnce(t, "export2", base)
	sameFiles(t, readDir(t, out), readDir(t, out2))
}

// Items that are neither task bundles nor trajectories are bad input.
func TestExportRejectsOtherItems(t *testing.T) {
	store := testenv.Store(t)
	dir := t.TempDir()
	r := loadTestRecipe(t, dir, "name: ex\nstages:\n  words: {uses: list, with: {items: [a]}}\n  dataset: {uses: export, from: [words]}\n")
	_, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")})
	if err == nil || !build.IsBadInput(err) || !strings.Contains(err.Error(), "item a of words") {
		t.Fatalf("err = %v", err)
	}
	for with, want := range map[string]string{
		"{test_fraction: 1}":                    "test_fraction",
		"{images: false, docker_archive: true}": "docker_archive",
		"{name: ''}":                            "name",
		"{shard_bytes: -1}":                     "shard_bytes",
		"{repository: '-x'}":                    "repository path component",
		"{repository: 'x___y'}":                 "repository path component",
		"{repository: 'a//b'}":                  "registry/repository",
		"{repository: 'Upper'}":                 "registry/repository",
		"{registry: 'ghcr.io/Lab'}":             "registry/repository",
		"{registry: 'ghcr.io/lab/-team'}":       "repository path component",
		"{registry: 'user:pw@ghcr.io/lab'}":     "must not carry credentials",
	} {
		p := filepath.Join(dir, "recipe.yaml")
		os.WriteFile(p, []byte("name: ex\nstages:\n  words: {uses: list, with: {items: [a]}}\n  dataset: {uses: export, from: [words], with: "+with+"}\n"), 0o644)
		if _, err := build.LoadRecipe(p, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("with %s: %v", with, err)
		}
	}
}

// Names skopeo and podman accept are taken.
func TestExportAcceptsValidImageNames(t *testing.T) {
	dir := t.TempDir()
	for _, with := range []string{
		"{registry: 'ghcr.io/my-lab/sub.team', repository: 'swe__tasks-v2'}",
		"{registry: '127.0.0.1:5000', repository: 'a.b_c--d'}",
		"{registry: 'localhost'}",
		"{name: 'Some Dataset (v2)!'}",
	} {
		p := filepath.Join(dir, "recipe.yaml")
		os.WriteFile(p, []byte("name: ex\nstages:\n  words: {uses: list, with: {items: [a]}}\n  dataset: {uses: export, from: [words], with: "+with+"}\n"), 0o644)
		if _, err := build.LoadRecipe(p, nil); err != nil {
			t.Errorf("with %s: %v", with, err)
		}
	}
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// arrowRows reads a Parquet file with arrow-go and returns its rows as JSON.
func arrowRows(t *testing.T, path string) []json.RawMessage {
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
	return rows
}

// BenchmarkExport measures one export node: 1,000 trajectories of 20
// messages (about 8 KB each) and three task images on a shared base, into
// Parquet, JSONL, the card and an OCI layout, then stored as a tree.
func BenchmarkExport(b *testing.B) {
	store := testenv.Store(b)
	tasks, _, _, err := exportFixture(store, exportBaseLayoutB(b))
	if err != nil {
		b.Fatal(err)
	}
	var trajs []build.Item
	for i := range 1000 {
		id := []string{"proj-bug-1", "proj-bug-2", "proj-bug-3"}[i%3]
		msgs := []schema.Message{{Role: "system", Content: "You fix bugs."}, {Role: "user", Content: "Fix " + id}}
		for j := range 9 {
			callID := fmt.Sprintf("c%d", j)
			msgs = append(msgs,
				schema.Message{Role: "assistant", ToolCalls: []schema.ToolCall{{ID: callID, Type: "function", Function: schema.FunctionCall{Name: "execute_bash", Arguments: fmt.Sprintf(`{"command": "grep -n total src/mod%d.py"}`, j)}}}},
				schema.Message{Role: "tool", ToolCallID: callID, Name: "execute_bash", Content: strings.Repeat(fmt.Sprintf("line %d of output for step %d of trajectory %d\n", j, j, i), 20)})
		}
		d, err := build.PutJSON(store, schema.Trajectory{TrajectoryID: fmt.Sprintf("%s/agent/%d", id, i), InstanceID: id, Repo: "proj",
			TaskType: schema.TaskFix, Model: "m", Policy: "agent", Messages: msgs, Resolved: true, Reward: 1, ExitStatus: "finished"})
		if err != nil {
			b.Fatal(err)
		}
		trajs = append(trajs, build.Item{Name: fmt.Sprintf("t%d", i), Value: d})
	}
	rolloutTestSets.Store("bench-tasks", func(*cache.Store) ([]build.Item, error) { return tasks, nil })
	rolloutTestSets.Store("bench-trajs", func(*cache.Store) ([]build.Item, error) { return trajs, nil })
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// A new title each time, so the node runs instead of being cached.
		text := fmt.Sprintf("name: bench\nstages:\n  tasks: {uses: rollouttest_items, with: {set: bench-tasks}}\n  trajs: {uses: rollouttest_items, with: {set: bench-trajs}}\n  dataset: {uses: export, from: [tasks, trajs], with: {name: bench %d}}\n", i)
		p := filepath.Join(dir, "recipe.yaml")
		os.WriteFile(p, []byte(text), 0o644)
		r, err := build.LoadRecipe(p, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")}); err != nil {
			b.Fatal(err)
		}
	}
}

func exportBaseLayoutB(b *testing.B) string {
	l, err := crane.Layer(map[string][]byte{"etc/os-release": []byte("ID=exportbench\n"), "usr/lib/big": bytes.Repeat([]byte("0123456789abcdef"), 1<<20)})
	if err != nil {
		b.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "base")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		b.Fatal(err)
	}
	return dir
}
