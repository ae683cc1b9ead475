package build_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	_ "github.com/dsbuild/dsbuild/stages"
)

// runs counts how often each test-kind node ran, by node label.
var (
	runsMu sync.Mutex
	runs   = map[string]int{}
)

func ran(label string) {
	runsMu.Lock()
	runs[label]++
	runsMu.Unlock()
}

func takeRuns() map[string]int {
	runsMu.Lock()
	defer runsMu.Unlock()
	out := runs
	runs = map[string]int{}
	return out
}

type echoParams struct {
	Suffix string `yaml:"suffix" json:"suffix"`
	// Noise is part of the key but not of the output (for early cutoff).
	Noise int    `yaml:"noise" json:"noise"`
	Fail  string `yaml:"fail" json:"fail"`
	Sleep string `yaml:"sleep" json:"sleep"`
}

// blocked lists items whose test.echo node waits until the build stops.
var (
	blockedMu sync.Mutex
	blocked   = map[string]bool{}
)

type poolProbe struct {
	mu       sync.Mutex
	cur, max int
}

var probe poolProbe

func init() {
	// test.echo: appends suffix to its input item (or "root") and records
	// that it ran; fails for the item named in fail.
	build.Register(&build.Kind{
		Name: "test.echo", Version: "1", Params: func() any { return &echoParams{} },
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			p := c.Params.(*echoParams)
			ran(c.Stage + "[" + c.Item + "]")
			if p.Fail != "" && (p.Fail == c.Item || p.Fail == "*") {
				return build.Output{}, errors.New("asked to fail")
			}
			blockedMu.Lock()
			block := blocked[c.Item]
			blockedMu.Unlock()
			if block {
				<-ctx.Done()
				return build.Output{}, ctx.Err()
			}
			if p.Sleep != "" {
				d, _ := time.ParseDuration(p.Sleep)
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return build.Output{}, ctx.Err()
				}
			}
			in := "root"
			if c.Input != nil {
				b, err := c.Store().Get(c.Input.Value)
				if err != nil {
					return build.Output{}, err
				}
				in = string(b)
			}
			c.Count(ctx, "kept", 1)
			d, err := c.Store().Put([]byte(in + p.Suffix))
			return build.Value(d), err
		},
	})
	// test.join: concatenates all items of its from-stages.
	build.Register(&build.Kind{
		Name: "test.join", Version: "1",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			ran(c.Stage)
			var parts []string
			for _, dep := range []string{"a", "b", "echo", "words"} {
				for _, it := range c.Inputs[dep] {
					b, err := c.Store().Get(it.Value)
					if err != nil {
						return build.Output{}, err
					}
					parts = append(parts, it.Name+"="+string(b))
				}
			}
			d, err := c.Store().Put([]byte(strings.Join(parts, ",")))
			return build.Value(d), err
		},
	})
	build.Register(&build.Kind{
		Name: "test.pooled", Version: "1", Pool: "narrow",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			probe.mu.Lock()
			probe.cur++
			probe.max = max(probe.max, probe.cur)
			probe.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			probe.mu.Lock()
			probe.cur--
			probe.mu.Unlock()
			d, err := c.Store().Put([]byte(c.Item))
			return build.Value(d), err
		},
	})
	build.Register(&build.Kind{
		Name: "test.panic", Version: "1",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) { panic("boom") },
	})
}

type env struct {
	t     *testing.T
	dir   string
	store *cache.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	s, err := cache.Open(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	takeRuns()
	return &env{t: t, dir: dir, store: s}
}

func (e *env) recipe(text string) *build.Recipe {
	e.t.Helper()
	path := filepath.Join(e.dir, "recipe.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	r, err := build.LoadRecipe(path, func(string) string { return "" })
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) build(text string, opts build.Options) (*build.Record, map[string]int, error) {
	e.t.Helper()
	if opts.OutDir == "" {
		opts.OutDir = filepath.Join(e.dir, "out")
	}
	rec, err := build.Build(context.Background(), e.recipe(text), e.store, opts)
	return rec, takeRuns(), err
}

func (e *env) mustBuild(text string) (*build.Record, map[string]int) {
	e.t.Helper()
	rec, runs, err := e.build(text, build.Options{})
	if err != nil {
		e.t.Fatalf("build: %v", err)
	}
	return rec, runs
}

func states(rec *build.Record) map[string]string {
	out := map[string]string{}
	for _, n := range rec.Nodes {
		out[n.ID] = n.State
	}
	return out
}

const fanout = `name: fan
stages:
  words: {uses: list, with: {items: [alpha, beta, gamma]}}
  echo:  {uses: test.echo, foreach: words, with: {suffix: "!"}}
  joined: {uses: test.join, from: [echo]}
`

func TestSecondBuildRunsNothing(t *testing.T) {
	e := newEnv(t)
	_, runs := e.mustBuild(fanout)
	if len(runs) != 4 {
		t.Fatalf("first build ran %v, want 3 echo nodes and joined", runs)
	}
	rec, runs := e.mustBuild(fanout)
	if len(runs) != 0 {
		t.Fatalf("second build ran %v, want nothing", runs)
	}
	for id, st := range states(rec) {
		if st != build.StateCached {
			t.Errorf("node %s is %s on the second build, want cached", id, st)
		}
	}
}

func TestParamChangeRerunsExactlyTheAffectedNodes(t *testing.T) {
	e := newEnv(t)
	e.mustBuild(fanout)
	changed := strings.Replace(fanout, `suffix: "!"`, `suffix: "?"`, 1)
	_, runs := e.mustBuild(changed)
	want := map[string]int{"echo[alpha]": 1, "echo[beta]": 1, "echo[gamma]": 1, "joined": 1}
	if fmt.Sprint(runs) != fmt.Sprint(want) {
		t.Fatalf("after a param change ran %v, want %v", runs, want)
	}
	// Adding one item runs only that item's node and the aggregate.
	added := strings.Replace(changed, "[alpha, beta, gamma]", "[alpha, beta, gamma, delta]", 1)
	_, runs = e.mustBuild(added)
	want = map[string]int{"echo[delta]": 1, "joined": 1}
	if fmt.Sprint(runs) != fmt.Sprint(want) {
		t.Fatalf("after adding an item ran %v, want %v", runs, want)
	}
}

func TestEarlyCutoff(t *testing.T) {
	e := newEnv(t)
	const r = `name: cut
stages:
  a: {uses: test.echo, with: {suffix: x, noise: 1}}
  b: {uses: test.echo, foreach: a, with: {suffix: y}}
  c: {uses: test.join, from: [b]}
`
	e.mustBuild(r)
	rec, runs := e.mustBuild(strings.Replace(r, "noise: 1", "noise: 2", 1))
	if fmt.Sprint(runs) != "map[a[]:1]" {
		t.Fatalf("ran %v, want only a (its output is unchanged, so b and c stay cached)", runs)
	}
	if st := states(rec); st["b[a]"] != build.StateCached || st["c"] != build.StateCached {
		t.Fatalf("states %v", st)
	}
}

func TestFailureStopsOrKeepsGoing(t *testing.T) {
	const r = `name: failing
stages:
  words: {uses: list, with: {items: [alpha, beta, gamma]}}
  echo:  {uses: test.echo, foreach: words, with: {fail: beta}}
  more:  {uses: test.echo, foreach: echo, with: {suffix: "+"}}
  joined: {uses: test.join, from: [echo]}
`
	e := newEnv(t)
	rec, runs, err := e.build(r, build.Options{KeepGoing: true})
	var be *build.BuildError
	if !errors.As(err, &be) || be.Stage != "echo" || be.Item != "beta" {
		t.Fatalf("error %v, want a BuildError for echo[beta]", err)
	}
	for _, want := range []string{"stage echo", "item beta", "key ", "asked to fail"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if runs["more[alpha]"] != 1 || runs["more[gamma]"] != 1 || runs["joined"] != 0 {
		t.Fatalf("with keep-going ran %v: want more[alpha], more[gamma], and joined skipped", runs)
	}
	if rec.Status != "failed" {
		t.Fatalf("status %s", rec.Status)
	}
	// Fixing the failure reruns just what failed and what it fed.
	rec, runs, err = e.build(strings.Replace(r, "fail: beta", "fail: none", 1), build.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if runs["echo[alpha]"] != 1 || runs["joined"] != 1 {
		t.Fatalf("ran %v", runs) // params changed, so echo reruns for all
	}
	if rec.Status != "ok" {
		t.Fatalf("status %s", rec.Status)
	}
}

func TestWithoutKeepGoingNothingNewStarts(t *testing.T) {
	const r = `name: stop
stages:
  words: {uses: list, with: {count: 30}}
  echo:  {uses: test.echo, foreach: words, with: {fail: "*"}}
`
	e := newEnv(t)
	_, runs, err := e.build(r, build.Options{Jobs: 1})
	if err == nil {
		t.Fatal("want an error")
	}
	if len(runs) != 1 {
		t.Fatalf("after the first failure %d nodes ran; want the build to stop", len(runs))
	}
}

func TestPoolLimit(t *testing.T) {
	e := newEnv(t)
	probe = poolProbe{}
	e.mustBuild(`name: pools
pools: {narrow: 2}
stages:
  words: {uses: list, with: {count: 12}}
  p: {uses: test.pooled, foreach: words}
`)
	if probe.max != 2 {
		t.Fatalf("at most %d nodes of pool narrow ran at once, want exactly 2", probe.max)
	}
}

func TestPanicBecomesNodeError(t *testing.T) {
	e := newEnv(t)
	_, _, err := e.build("name: p\nstages:\n  x: {uses: test.panic}\n", build.Options{})
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Fatalf("err = %v", err)
	}
}

// stopAfter cancels a build once n nodes have run.
type stopAfter struct {
	mu     sync.Mutex
	n      int
	cancel context.CancelFunc
}

func (s *stopAfter) Event(e build.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Type == build.EventNode && e.Status == build.StateRan {
		s.n--
		if s.n == 0 {
			s.cancel()
		}
	}
}

func TestInterruptedBuildResumes(t *testing.T) {
	const r = `name: slow
stages:
  words: {uses: list, with: {count: 8}}
  echo:  {uses: test.echo, foreach: words}
`
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// words and echo for items 0-3 run; items 4-7 block until the stop.
	blockedMu.Lock()
	blocked = map[string]bool{"item-00004": true, "item-00005": true, "item-00006": true, "item-00007": true}
	blockedMu.Unlock()
	obs := &stopAfter{n: 5, cancel: cancel}
	rec, err := build.Build(ctx, e.recipe(r), e.store, build.Options{Jobs: 8, OutDir: filepath.Join(e.dir, "out"), Observer: obs})
	blockedMu.Lock()
	blocked = map[string]bool{}
	blockedMu.Unlock()
	if !errors.Is(err, build.ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	if rec.Status != "interrupted" {
		t.Errorf("record status %q", rec.Status)
	}
	takeRuns()
	_, runs := e.mustBuild(r)
	want := map[string]int{"echo[item-00004]": 1, "echo[item-00005]": 1, "echo[item-00006]": 1, "echo[item-00007]": 1}
	if fmt.Sprint(runs) != fmt.Sprint(want) {
		t.Fatalf("resumed build ran %v, want exactly the unfinished %v", runs, want)
	}
}

func TestPublishWritesOutputAtomically(t *testing.T) {
	e := newEnv(t)
	r := `name: pub
stages:
  words: {uses: list, with: {items: [a, b]}}
  echo:  {uses: test.echo, foreach: words, with: {suffix: "!"}}
  out:   {uses: bundle, from: [echo]}
`
	rec := func() *build.Record { rec, _ := e.mustBuild(r); return rec }()
	if len(rec.Published) != 1 {
		t.Fatalf("published %v", rec.Published)
	}
	got, err := os.ReadFile(filepath.Join(e.dir, "out", "echo", "b"))
	if err != nil || string(got) != "b!" {
		t.Fatalf("out/echo/b = %q, %v", got, err)
	}
	r = strings.Replace(r, `"!"`, `"?"`, 1)
	e.mustBuild(r)
	got, _ = os.ReadFile(filepath.Join(e.dir, "out", "echo", "b"))
	if string(got) != "b?" {
		t.Fatalf("republished out/echo/b = %q", got)
	}
	leftovers, _ := filepath.Glob(filepath.Join(e.dir, "out.*"))
	if len(leftovers) > 0 {
		t.Fatalf("publishing left %v behind", leftovers)
	}
}

func TestPlanAndExplain(t *testing.T) {
	e := newEnv(t)
	e.mustBuild(fanout)
	r := e.recipe(strings.Replace(fanout, `suffix: "!"`, `suffix: "?"`, 1))
	plan, err := build.Plan(r, e.store)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range plan {
		got[p.Node] = p.Status + ": " + strings.Join(p.Reasons, "; ")
	}
	if got["words"] != "cached: " {
		t.Errorf("words: %q", got["words"])
	}
	if got["echo[beta]"] != `will run: param suffix changed: "!" -> "?"` {
		t.Errorf("echo[beta]: %q", got["echo[beta]"])
	}
	if !strings.HasPrefix(got["joined"], "waits") {
		t.Errorf("joined: %q", got["joined"])
	}
	var sb strings.Builder
	if err := build.Explain(&sb, r, e.store, "echo[beta]"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"echo[beta]: will run", "kind     test.echo (version 1)", `param suffix changed: "!" -> "?"`, "item     beta = sha256:"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, sb.String())
		}
	}
	if err := build.Explain(&sb, r, e.store, "nosuch"); !build.IsBadInput(err) {
		t.Errorf("explain of an unknown node: %v", err)
	}
}

func TestCountersReachTheSummary(t *testing.T) {
	e := newEnv(t)
	rec, _ := e.mustBuild(fanout)
	rec2, _ := e.mustBuild(fanout)
	for _, r := range []*build.Record{rec, rec2} {
		for _, s := range r.Stages {
			if s.Stage == "echo" && s.Counts["kept"] != 3 {
				t.Fatalf("echo counts %v, want kept=3 (cached nodes included)", s.Counts)
			}
		}
	}
	for _, s := range rec2.Stages {
		if s.Stage == "echo" && s.Spent["kept"] != 0 {
			t.Fatalf("a no-op build spent %v", s.Spent)
		}
	}
}

func TestGCAfterAnInterruptedBuildKeepsTheLastGoodBuild(t *testing.T) {
	e := newEnv(t)
	e.mustBuild(fanout)
	// An interrupted build of a changed recipe.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	changed := strings.Replace(fanout, `suffix: "!"`, `suffix: "?"`, 1)
	if _, err := build.Build(ctx, e.recipe(changed), e.store, build.Options{OutDir: filepath.Join(e.dir, "out")}); !errors.Is(err, build.ErrInterrupted) {
		t.Fatalf("err = %v", err)
	}
	dir := e.store.Root()
	e.store.Close()
	ex, err := cache.OpenExclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.GC(1); err != nil {
		t.Fatal(err)
	}
	ex.Close()
	e.store, err = cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, runs := e.mustBuild(fanout)
	if len(runs) != 0 {
		t.Fatalf("after gc the last good build re-ran %v", runs)
	}
}
