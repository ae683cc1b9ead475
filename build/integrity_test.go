package build_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
)

// testAsset stands for a script or prompt compiled into a kind.
var testAsset = build.NewAsset("build_test/asset", fstest.MapFS{"script.py": {Data: []byte("print('v1')\n")}})

// nondeterministic makes test.random give another output every run.
var nondeterministic atomic.Int64

func init() {
	// test.asset: outputs its input with the asset's text appended.
	build.Register(&build.Kind{
		Name: "test.asset", Version: "1", Assets: []*build.Asset{testAsset},
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			ran(c.Stage + "[" + c.Item + "]")
			b, err := testAsset.ReadFile(ctx, "script.py")
			if err != nil {
				return build.Output{}, err
			}
			d, err := c.Store().Put(append([]byte(c.Item+":"), b...))
			return build.Value(d), err
		},
	})
	// test.undeclared_asset and test.undeclared_section read what they do
	// not declare.
	build.Register(&build.Kind{
		Name: "test.undeclared_asset", Version: "1",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			b, err := testAsset.ReadFile(ctx, "script.py")
			if err != nil {
				return build.Output{}, err
			}
			d, err := c.Store().Put(b)
			return build.Value(d), err
		},
	})
	build.Register(&build.Kind{
		Name: "test.undeclared_section", Version: "1",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			if _, err := c.Section("salt"); err != nil {
				return build.Output{}, err
			}
			d, err := c.Store().Put([]byte("x"))
			return build.Value(d), err
		},
	})
	// test.nested: a JSON value naming a tree that holds one file per
	// item, the shape of most real stage outputs.
	build.Register(&build.Kind{
		Name: "test.nested", Version: "1",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			ran(c.Stage + "[" + c.Item + "]")
			store := c.Store()
			dir, err := os.MkdirTemp("", "nested-")
			if err != nil {
				return build.Output{}, err
			}
			defer os.RemoveAll(dir)
			os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
			os.WriteFile(filepath.Join(dir, "sub", "file.txt"), []byte("content of "+c.Item+"\n"), 0o644)
			tree, err := store.Snapshot(dir)
			if err != nil {
				return build.Output{}, err
			}
			d, err := c.PutJSON(map[string]any{"name": c.Item, "tree": tree})
			return build.Value(d), err
		},
	})
	// test.readnested: reads every file of its input's tree.
	build.Register(&build.Kind{
		Name: "test.readnested", Version: "1",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			ran(c.Stage + "[" + c.Item + "]")
			var v struct {
				Tree cache.Digest `json:"tree"`
			}
			if err := c.GetJSON(c.Input.Value, &v); err != nil {
				return build.Output{}, err
			}
			dir, err := os.MkdirTemp("", "readnested-")
			if err != nil {
				return build.Output{}, err
			}
			os.RemoveAll(dir)
			defer os.RemoveAll(dir)
			if err := c.Store().Materialize(v.Tree, dir); err != nil {
				return build.Output{}, err
			}
			b, err := os.ReadFile(filepath.Join(dir, "sub", "file.txt"))
			if err != nil {
				return build.Output{}, err
			}
			d, err := c.Store().Put(b)
			return build.Value(d), err
		},
	})
	build.Register(&build.Kind{
		Name: "test.provisional", Version: "1",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			ran(c.Stage + "[" + c.Item + "]")
			cache.MarkProvisional(ctx, "a run hit its wall-clock timeout")
			d, err := c.Store().Put([]byte("timed out"))
			return build.Value(d), err
		},
	})
	build.Register(&build.Kind{
		Name: "test.random", Version: "1",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			ran(c.Stage + "[" + c.Item + "]")
			d, err := c.PutJSON(map[string]int64{"n": nondeterministic.Add(1)})
			return build.Value(d), err
		},
	})
}

func nodeKeys(rec *build.Record) map[string]cache.Key {
	out := map[string]cache.Key{}
	for _, n := range rec.Nodes {
		out[n.ID] = n.Key
	}
	return out
}

// Editing an asset re-runs exactly the nodes of the kinds that declare it.
func TestAssetEditRerunsExactlyItsKinds(t *testing.T) {
	e := newEnv(t)
	const r = `name: assets
stages:
  words: {uses: list, with: {items: [a, b]}}
  script: {uses: test.asset, foreach: words}
  echo: {uses: test.echo, foreach: words, with: {suffix: "!"}}
`
	first, runs := e.mustBuild(r)
	if runs["script[a]"] != 1 || runs["echo[a]"] != 1 {
		t.Fatalf("first build ran %v", runs)
	}
	restore := testAsset.Replace(fstest.MapFS{"script.py": {Data: []byte("print('v2')\n")}})
	defer restore()
	plan, err := build.Plan(e.recipe(r), e.store)
	if err != nil {
		t.Fatal(err)
	}
	for _, pe := range plan {
		if pe.Node == "script[a]" && (pe.Status != build.PlanWillRun || !strings.Contains(strings.Join(pe.Reasons, ";"), "asset build_test/asset changed")) {
			t.Errorf("plan for script[a]: %s %v", pe.Status, pe.Reasons)
		}
		if pe.Node == "echo[a]" && pe.Status != build.PlanCached {
			t.Errorf("plan for echo[a]: %s %v", pe.Status, pe.Reasons)
		}
	}
	second, runs := e.mustBuild(r)
	want := map[string]int{"script[a]": 1, "script[b]": 1}
	if len(runs) != len(want) || runs["script[a]"] != 1 || runs["script[b]"] != 1 {
		t.Fatalf("after editing the asset ran %v, want exactly %v", runs, want)
	}
	k1, k2 := nodeKeys(first), nodeKeys(second)
	if k1["echo[a]"] != k2["echo[a]"] || k1["script[a]"] == k2["script[a]"] {
		t.Fatalf("keys: echo %v -> %v, script %v -> %v", k1["echo[a]"], k2["echo[a]"], k1["script[a]"], k2["script[a]"])
	}
	restore()
	if _, runs = e.mustBuild(r); len(runs) != 0 {
		t.Fatalf("back to the first asset ran %v, want nothing (both versions are cached)", runs)
	}
}

// A kind that reads an asset or a recipe section it does not declare fails
// loudly instead of leaving it out of its keys.
func TestUndeclaredAssetOrSectionFails(t *testing.T) {
	e := newEnv(t)
	_, _, err := e.build("name: u\nstages:\n  x: {uses: test.undeclared_section}\n", build.Options{})
	if err == nil || !strings.Contains(err.Error(), `reads recipe section "salt" but does not list it`) {
		t.Fatalf("undeclared section: err = %v", err)
	}
	if _, err := testAsset.ReadFile(context.Background(), "script.py"); err != nil {
		t.Fatalf("outside a node an asset reads freely: %v", err)
	}
	_, _, err = e.build("name: u\nstages:\n  x: {uses: test.undeclared_asset}\n", build.Options{})
	if err == nil || !strings.Contains(err.Error(), "reads asset build_test/asset but does not list it in Kind.Assets") {
		t.Fatalf("undeclared asset: err = %v", err)
	}
}

const nestedRecipe = `name: nested
stages:
  words: {uses: list, with: {items: [a, b]}}
  made: {uses: test.nested, foreach: words}
  read: {uses: test.readnested, foreach: made}
`

func blobFile(store *cache.Store, d cache.Digest) string {
	return filepath.Join(store.Root(), "blobs", d.Hex()[:2], d.Hex())
}

// A blob deleted deep below a cached output (JSON value -> tree -> dir ->
// file) makes its producing node run again in the next build, which
// restores it, instead of every later build failing.
func TestMissingNestedBlobRerunsItsProducer(t *testing.T) {
	e := newEnv(t)
	e.mustBuild(nestedRecipe)
	fb := cache.DigestOf([]byte("content of a\n"))
	if err := os.Remove(blobFile(e.store, fb)); err != nil {
		t.Fatal(err)
	}
	// A new store handle, as a new dsbuild process would have.
	store, err := cache.Open(e.store.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec, err := build.Build(context.Background(), e.recipe(nestedRecipe), store, build.Options{OutDir: filepath.Join(e.dir, "out")})
	if err != nil {
		t.Fatalf("build after losing a nested blob: %v", err)
	}
	runs := takeRuns()
	if runs["made[a]"] != 1 || runs["made[b]"] != 0 {
		t.Fatalf("ran %v, want made[a] only", runs)
	}
	if !store.Has(fb) {
		t.Fatal("the lost blob was not written again")
	}
	if rec.Status != "ok" {
		t.Fatalf("status %s", rec.Status)
	}
}

// A corrupt file blob below a cached output is found when a downstream node
// reads it; in the same build its producer runs again and the reader
// succeeds.
func TestCorruptNestedBlobIsRepairedInTheSameBuild(t *testing.T) {
	e := newEnv(t)
	const r1 = `name: nested
stages:
  words: {uses: list, with: {items: [a, b]}}
  made: {uses: test.nested, foreach: words}
`
	e.mustBuild(r1)
	fb := cache.DigestOf([]byte("content of a\n"))
	path := blobFile(e.store, fb)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(e.store.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec, err := build.Build(context.Background(), e.recipe(nestedRecipe), store, build.Options{OutDir: filepath.Join(e.dir, "out")})
	if err != nil {
		t.Fatalf("build reading a corrupt nested blob: %v", err)
	}
	runs := takeRuns()
	if runs["made[a]"] != 1 || runs["read[a]"] < 1 || runs["made[b]"] != 0 {
		t.Fatalf("ran %v, want made[a] repaired and read[a] done", runs)
	}
	if got, err := store.Get(fb); err != nil || string(got) != "content of a\n" {
		t.Fatalf("blob after repair: %q, %v", got, err)
	}
	if rec.Status != "ok" {
		t.Fatalf("status %s", rec.Status)
	}
}

// A build whose publish fails is recorded as failed, so gc keeps the last
// build that did publish; and an output folder changed by hand is restored.
func TestPublishFailureAndDamagedOutput(t *testing.T) {
	e := newEnv(t)
	const r = `name: pub
stages:
  words: {uses: list, with: {items: [a, b]}}
  echo:  {uses: test.echo, foreach: words, with: {suffix: "!"}}
  out:   {uses: bundle, from: [echo]}
`
	out := filepath.Join(e.dir, "out")
	e.mustBuild(r)
	file := filepath.Join(out, "echo", "b")

	// Deleted, edited, or joined by a stray file: each is put right.
	for _, damage := range []func(){
		func() { os.Remove(file) },
		func() { os.WriteFile(file, []byte("b?"), 0o644) }, // same size: seen by its mtime
		func() { os.WriteFile(filepath.Join(out, "echo", "stray"), []byte("x"), 0o644) },
	} {
		damage()
		rec, _ := e.mustBuild(r)
		if rec.Status != "ok" {
			t.Fatalf("status %s", rec.Status)
		}
		if got, err := os.ReadFile(file); err != nil || string(got) != "b!" {
			t.Fatalf("after damage, out/echo/b = %q, %v; want it restored", got, err)
		}
		if _, err := os.Stat(filepath.Join(out, "echo", "stray")); err == nil {
			t.Fatal("a stray file survived the restore")
		}
	}

	// The output folder's parent cannot be written: publish fails.
	blocker := filepath.Join(e.dir, "blocker")
	os.WriteFile(blocker, []byte("a file, not a folder"), 0o644)
	rec, _, err := e.build(r, build.Options{OutDir: filepath.Join(blocker, "out")})
	if err == nil {
		t.Fatal("publishing below a file succeeded")
	}
	if rec.Status == "ok" {
		t.Fatalf("a build whose publish failed was recorded as %q", rec.Status)
	}
	body, ok, err := e.store.LatestRecord("pub")
	if err != nil || !ok {
		t.Fatal(err)
	}
	var last build.Record
	json.Unmarshal(body, &last)
	if last.Status == "ok" {
		t.Fatalf("stored record says %q", last.Status)
	}
}

// A node whose result is provisional (it used a load-dependent result) is
// not memoised: the next build runs it again, and early cutoff keeps its
// dependents cached when its output is the same.
func TestProvisionalResultIsNotMemoised(t *testing.T) {
	e := newEnv(t)
	const r = `name: prov
stages:
  p: {uses: test.provisional}
  words: {uses: list, with: {items: [a]}}
  after: {uses: test.echo, foreach: p, with: {suffix: "!"}}
`
	e.mustBuild(r)
	rec, runs := e.mustBuild(r)
	if runs["p[]"] != 1 {
		t.Fatalf("second build ran %v, want the provisional node again", runs)
	}
	if runs["after[p]"] != 0 {
		t.Fatalf("second build ran %v: the dependent should be cut off", runs)
	}
	if states(rec)["p"] != build.StateRan {
		t.Fatalf("states %v", states(rec))
	}
}

// --recheck runs cache hits again and fails, naming the key, on a node
// that gives another output; deterministic nodes pass and are counted.
func TestRecheckFindsNondeterminism(t *testing.T) {
	e := newEnv(t)
	const good = `name: rc
stages:
  words: {uses: list, with: {items: [a, b, c]}}
  echo: {uses: test.echo, foreach: words, with: {suffix: "!"}}
`
	e.mustBuild(good)
	rec, runs, err := e.build(good, build.Options{Recheck: 1})
	if err != nil {
		t.Fatalf("recheck of a deterministic build: %v", err)
	}
	if runs["echo[a]"] != 1 || rec.Rechecked != 4 {
		t.Fatalf("recheck ran %v, rechecked %d; want every node run again and 4 matched", runs, rec.Rechecked)
	}
	if _, runs, _ = e.build(good, build.Options{}); len(runs) != 0 {
		t.Fatalf("after a recheck a plain build ran %v", runs)
	}

	const bad = `name: rc2
stages:
  r: {uses: test.random}
`
	first, _ := e.mustBuild(bad)
	_, _, err = e.build(bad, build.Options{Recheck: 1})
	var re *build.RecheckError
	if !errors.As(err, &re) {
		t.Fatalf("recheck of a nondeterministic node: err = %v", err)
	}
	if re.Key != first.Nodes[0].Key || !strings.Contains(err.Error(), first.Nodes[0].Key.String()) {
		t.Fatalf("recheck error names key %v, want %v: %v", re.Key, first.Nodes[0].Key, err)
	}
	// A fraction samples by key: 0 rechecks nothing.
	if _, runs, err = e.build(bad, build.Options{Recheck: 0}); err != nil || len(runs) != 0 {
		t.Fatalf("recheck 0 ran %v, %v", runs, err)
	}
}

// A stage with both foreach: and from: costs in proportion to its nodes:
// the from-inputs are hashed once per stage, not once per node. Measured in
// allocations, which do not depend on how busy the machine is: doubling
// the items must not much more than double them (it quadrupled them when
// every node hashed every from-item).
func TestForeachWithFromIsLinear(t *testing.T) {
	allocs := func(n int) uint64 {
		e := newEnv(t)
		r := fmt.Sprintf(`name: ff
stages:
  words: {uses: list, with: {count: %d}}
  greet: {uses: template, foreach: words, with: {text: "hello {{.Input}}"}}
  both:  {uses: template, foreach: words, from: [greet], with: {text: "again {{.Input}}"}}
`, n)
		e.mustBuild(r)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e.mustBuild(r)
		runtime.ReadMemStats(&after)
		return after.Mallocs - before.Mallocs
	}
	small, large := allocs(300), allocs(1200)
	if ratio := float64(large) / float64(small); ratio > 5.5 {
		t.Fatalf("a no-op build of 4x the items made %.1fx the allocations (%d vs %d); want about 4x", ratio, large, small)
	}
}
