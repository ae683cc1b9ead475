package build_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
)

// goroutineExecutor is an Executor whose workers are goroutines of this
// process: it stores each spec and runs it with build.RunSpec, as `dsbuild
// worker` does, and hands back the outcome it stored.
type goroutineExecutor struct {
	store *cache.Store
	mu    sync.Mutex
	nodes []string
}

func (x *goroutineExecutor) Exec(ctx context.Context, job *build.RemoteNode) (*build.NodeOutcome, error) {
	x.mu.Lock()
	x.nodes = append(x.nodes, job.Node)
	x.mu.Unlock()
	job.Spec.Attempt = "test"
	d, err := build.PutJSON(x.store, job.Spec)
	if err != nil {
		return nil, err
	}
	job.Started()
	oc, err := build.RunSpec(ctx, x.store, d, build.WorkerOptions{Worker: "goroutine"})
	if err != nil {
		return nil, err
	}
	if err := build.PutOutcome(x.store, d, oc); err != nil {
		return nil, err
	}
	got, ok, err := build.ReadOutcome(x.store, d)
	if err != nil || !ok {
		return nil, errors.New("outcome not found")
	}
	return got, nil
}

func (x *goroutineExecutor) took() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := x.nodes
	x.nodes = nil
	return out
}

func init() {
	build.Register(&build.Kind{
		Name: "test.volatile", Version: "1", Volatile: true,
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			d, err := c.Store().Put([]byte("source"))
			return build.Value(d), err
		},
	})
}

const remoteRecipe = `name: remote
stages:
  src:   {uses: test.volatile}
  words: {uses: list, with: {items: [alpha, beta, gamma]}}
  echo:  {uses: test.echo, foreach: words, with: {suffix: "!"}}
  joined: {uses: test.join, from: [echo]}
`

// An executor gets every node but the volatile ones, and the build gives
// the results a local build gives; memoised nodes never reach it.
func TestExecutorRunsNonVolatileNodes(t *testing.T) {
	local, _ := newEnv(t).mustBuild(remoteRecipe)
	e := newEnv(t)
	x := &goroutineExecutor{store: e.store}
	rec, _, err := e.build(remoteRecipe, build.Options{Executor: x})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]cache.Digest{}
	for _, n := range local.Nodes {
		want[n.ID] = n.Result
	}
	for _, n := range rec.Nodes {
		if n.Result != want[n.ID] || n.State != build.StateRan {
			t.Errorf("node %s: %s result %s; local build: %s", n.ID, n.State, n.Result.Short(), want[n.ID].Short())
		}
	}
	took := x.took()
	if len(took) != 5 || strings.Contains(strings.Join(took, " "), "src") {
		t.Errorf("the executor ran %v; want the 5 nodes but the volatile src", took)
	}
	again, _, err := e.build(remoteRecipe, build.Options{Executor: x})
	if err != nil {
		t.Fatal(err)
	}
	if took := x.took(); len(took) != 0 {
		t.Errorf("a second build handed %v to the executor; want nothing", took)
	}
	if s := states(again); s["echo[beta]"] != build.StateCached || s["src"] != build.StateRan {
		t.Errorf("second build: %v", s)
	}
}

// A node that fails on the executor fails the build with its own error.
func TestExecutorNodeFailure(t *testing.T) {
	e := newEnv(t)
	x := &goroutineExecutor{store: e.store}
	_, _, err := e.build(strings.Replace(remoteRecipe, `suffix: "!"`, `suffix: "!", fail: beta`, 1), build.Options{Executor: x, KeepGoing: true})
	var be *build.BuildError
	if !errors.As(err, &be) || be.Item != "beta" || !strings.Contains(err.Error(), "asked to fail") {
		t.Fatalf("got %v; want echo[beta]'s own failure", err)
	}
}

// A worker refuses a spec whose key its recipe does not give (the recipe
// or what it reads changed between the build and the worker).
func TestRunSpecRefusesAnotherKey(t *testing.T) {
	e := newEnv(t)
	r := e.recipe(remoteRecipe)
	if _, err := e.store.Put([]byte(remoteRecipe)); err != nil {
		t.Fatal(err)
	}
	spec := build.NodeSpec{Recipe: r.Path, RecipeText: r.Digest, Stage: "words", Key: cache.Key{1}}
	d, err := build.PutJSON(e.store, spec)
	if err != nil {
		t.Fatal(err)
	}
	_, err = build.RunSpec(context.Background(), e.store, d, build.WorkerOptions{})
	var se *build.SpecError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "differs between the build and this worker") {
		t.Fatalf("got %v; want a SpecError saying the recipe differs", err)
	}
}

// The live table's QUEUE column counts a stage's nodes that are neither
// running nor finished: a remote node is queued until its executor says
// it started.
func TestLiveTableCountsQueuedNodes(t *testing.T) {
	var out syncBuffer
	o := build.NewTTYObserver(&out, func() int { return 120 })
	o.Event(build.Event{Type: build.EventStart, Stages: []string{"echo"}})
	for _, s := range []string{build.StateQueued, build.StateQueued, build.StateQueued, build.StateQueued, build.StateRunning, build.StateRunning, build.StateRan} {
		o.Event(build.Event{Type: build.EventNode, Stage: "echo", Status: s})
	}
	o.Close()
	lines := strings.Split(out.String(), "\n")
	var header, row []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "STAGE" {
			header = f
		} else if len(f) > 0 && f[0] == "echo" {
			row = f
		}
	}
	col := -1
	for i, h := range header {
		if h == "QUEUE" {
			col = i
		}
	}
	// 4 queued: 1 ran, 1 running, 2 waiting.
	if col < 0 || len(row) <= col || row[col] != "2" || row[col+1] != "1" {
		t.Fatalf("want QUEUE 2 and RUN 1 for echo; table:\n%s", out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
