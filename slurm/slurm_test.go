package slurm_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/slurm"
)

// The test binary is its own worker: with workerEnv set it runs the node
// spec given as its last argument against the store named before it.
const workerEnv = "DSBUILD_SLURM_TEST_WORKER"

// gateEnv names a folder: the echo kind writes started-ITEM-PID there and
// waits for a file "open" before finishing. It is not part of any key.
const gateEnv = "DSBUILD_SLURM_TEST_GATE"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		os.Exit(worker(os.Args[len(os.Args)-2], os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

func worker(storeDir, spec string) int {
	store, err := cache.Open(storeDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer store.Close()
	d, err := cache.ParseDigest(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	oc, err := build.RunSpec(context.Background(), store, d, build.WorkerOptions{Worker: "test worker"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := build.PutOutcome(store, d, oc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type countParams struct {
	N int `json:"n" yaml:"n"`
}

type echoParams struct {
	Text string `json:"text" yaml:"text"`
}

func init() {
	build.Register(&build.Kind{Name: "slurmtest.count", Version: "1", Params: func() any { return &countParams{} },
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			var items []build.Item
			for i := range c.Params.(*countParams).N {
				d, err := c.Store().Put([]byte(strconv.Itoa(i)))
				if err != nil {
					return build.Output{}, err
				}
				items = append(items, build.Item{Name: fmt.Sprintf("n%02d", i), Value: d})
			}
			return build.Collection(items), nil
		}})
	build.Register(&build.Kind{Name: "slurmtest.echo", Version: "1", Params: func() any { return &echoParams{} },
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			if gate := os.Getenv(gateEnv); gate != "" {
				marker := filepath.Join(gate, fmt.Sprintf("started-%s-%d", c.Item, os.Getpid()))
				if err := os.WriteFile(marker, nil, 0o644); err != nil {
					return build.Output{}, err
				}
				for {
					if _, err := os.Stat(filepath.Join(gate, "open")); err == nil {
						break
					}
					select {
					case <-ctx.Done():
						return build.Output{}, ctx.Err()
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
			in, err := c.Store().Get(c.Input.Value)
			if err != nil {
				return build.Output{}, err
			}
			c.Count(ctx, "echoed", 1)
			d, err := c.Store().Put([]byte(c.Params.(*echoParams).Text + " " + string(in)))
			return build.Value(d), err
		}})
	build.Register(&build.Kind{Name: "slurmtest.join", Version: "1",
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			var b strings.Builder
			for _, it := range c.Inputs["echo"] {
				v, err := c.Store().Get(it.Value)
				if err != nil {
					return build.Output{}, err
				}
				b.WriteString(it.Name + "=" + string(v) + "\n")
			}
			d, err := c.Store().Put([]byte(b.String()))
			return build.Value(d), err
		}})
}

const testRecipe = `name: slurmtest
slurm: {cpus: 1, max_jobs: 8}
stages:
  nums: {uses: slurmtest.count, with: {n: %d}}
  echo: {uses: slurmtest.echo, foreach: nums, with: {text: hello}}
  all:  {uses: slurmtest.join, from: [echo]}
`

func loadRecipe(t testing.TB, dir string, n int) *build.Recipe {
	t.Helper()
	p := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(testRecipe, n)), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newExecutor returns a Slurm executor whose workers are this test binary.
func newExecutor(t testing.TB, r *build.Recipe, store *cache.Store, logs *logLines) *slurm.Executor {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := slurm.Config{Section: slurm.RecipeSection(r), Worker: []string{"env", workerEnv + "=1", self, store.Root()},
		SubmitInterval: 100 * time.Millisecond, PollInterval: 100 * time.Millisecond, Grace: 500 * time.Millisecond}
	if logs != nil {
		cfg.Log = logs.add
	}
	x, err := slurm.New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }
func (l *logLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func openStore(t testing.TB, dir string) *cache.Store {
	t.Helper()
	s, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// results maps each node of rec to its stored result.
func results(rec *build.Record) map[string]cache.Digest {
	m := map[string]cache.Digest{}
	for _, n := range rec.Nodes {
		m[n.ID] = n.Result
	}
	return m
}

func sameResults(t *testing.T, want, got *build.Record) {
	t.Helper()
	w, g := results(want), results(got)
	if len(w) != len(g) {
		t.Fatalf("%d nodes locally, %d on Slurm", len(w), len(g))
	}
	for id, d := range w {
		if g[id] != d {
			t.Errorf("node %s: result %s locally, %s on Slurm", id, d.Short(), g[id].Short())
		}
	}
}

func states(rec *build.Record) map[string]int {
	m := map[string]int{}
	for _, n := range rec.Nodes {
		m[n.State]++
	}
	return m
}

// A build whose nodes run as Slurm jobs gives the results of a local
// build, byte for byte; the volatile-free nodes ran in jobs (their logs are
// there), and building again runs nothing.
func TestSlurmBuildMatchesLocal(t *testing.T) {
	testenv.NeedSlurm(t)
	dir := t.TempDir()
	r := loadRecipe(t, dir, 6)
	local, err := build.Build(context.Background(), r, openStore(t, filepath.Join(dir, "local")), build.Options{OutDir: filepath.Join(dir, "out-local")})
	if err != nil {
		t.Fatal(err)
	}
	store := openStore(t, filepath.Join(dir, "shared"))
	x := newExecutor(t, r, store, nil)
	var obs events
	rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out-slurm"), Executor: x, Observer: &obs})
	if err != nil {
		t.Fatal(err)
	}
	sameResults(t, local, rec)
	if s := states(rec); s[build.StateRan] != 8 {
		t.Errorf("states %v, want 8 nodes ran", s)
	}
	logs, _ := filepath.Glob(filepath.Join(store.Root(), "slurm", "*_*.log"))
	if len(logs) != 8 {
		t.Errorf("%d job logs in %s, want one per node (8)", len(logs), filepath.Join(store.Root(), "slurm"))
	}
	if n := obs.count(build.StateRunning); n != 8 {
		t.Errorf("%d running events, want 8", n)
	}
	again, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out-slurm"), Executor: x})
	if err != nil {
		t.Fatal(err)
	}
	if s := states(again); s[build.StateCached] != 8 {
		t.Errorf("second build: states %v, want 8 cached", s)
	}
}

type events struct {
	mu sync.Mutex
	by map[string]int
}

func (e *events) Event(ev build.Event) {
	if ev.Type != build.EventNode {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.by == nil {
		e.by = map[string]int{}
	}
	e.by[ev.Status]++
}

func (e *events) count(status string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.by[status]
}

// gate makes the echo nodes wait, in a folder the test controls.
func gate(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "gate")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(gateEnv, dir)
	return dir
}

// started returns the pids of the echo nodes that have started, by item.
func started(dir string) map[string][]int {
	m := map[string][]int{}
	names, _ := filepath.Glob(filepath.Join(dir, "started-*"))
	for _, n := range names {
		f := strings.Split(filepath.Base(n), "-")
		pid, _ := strconv.Atoi(f[2])
		m[f[1]] = append(m[f[1]], pid)
	}
	return m
}

// waitFor waits for cond, failing with the jobs' logs in store if it
// never holds.
func waitFor(t *testing.T, what string, cond func() bool, store *cache.Store) {
	t.Helper()
	if !testenv.WaitFor(2*time.Minute, cond) {
		var logs strings.Builder
		names, _ := filepath.Glob(filepath.Join(store.Root(), "slurm", "*.log"))
		for _, n := range names {
			b, _ := os.ReadFile(n)
			fmt.Fprintf(&logs, "--- %s\n%s", n, b)
		}
		q, _ := exec.Command("squeue").CombinedOutput()
		t.Fatalf("timed out waiting for %s\nsqueue:\n%s\njob logs:\n%s", what, q, logs.String())
	}
}

// A worker killed mid-node (SIGKILL of its process; and a job cancelled
// with scancel) leaves the queue with no outcome: the node is submitted
// again and the build completes with the local build's results.
func TestKilledJobsAreSubmittedAgain(t *testing.T) {
	testenv.NeedSlurm(t)
	dir := t.TempDir()
	r := loadRecipe(t, dir, 2) // two jobs at once: this machine's Slurm node has two CPUs
	local, err := build.Build(context.Background(), r, openStore(t, filepath.Join(dir, "local")), build.Options{OutDir: filepath.Join(dir, "out-local")})
	if err != nil {
		t.Fatal(err)
	}
	g := gate(t)
	store := openStore(t, filepath.Join(dir, "shared"))
	var logs logLines
	x := newExecutor(t, r, store, &logs)
	type result struct {
		rec *build.Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out-slurm"), Executor: x})
		done <- result{rec, err}
	}()
	waitFor(t, "the two echo nodes to start", func() bool { return len(started(g)) == 2 }, store)
	// SIGKILL the worker of n00.
	pid := started(g)["n00"][0]
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// scancel the job of n01: find it by its worker's pid.
	job := jobOfPid(t, x.JobName(), started(g)["n01"][0])
	if out, err := exec.Command("scancel", job).CombinedOutput(); err != nil {
		t.Fatalf("scancel %s: %v %s", job, err, out)
	}
	waitFor(t, "n00 and n01 to start again", func() bool { s := started(g); return len(s["n00"]) == 2 && len(s["n01"]) == 2 }, store)
	if err := os.WriteFile(filepath.Join(g, "open"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("build: %v\nexecutor log:\n%s", res.err, logs.text())
	}
	sameResults(t, local, res.rec)
	if n := strings.Count(logs.text(), "submitting it again"); n != 2 {
		t.Errorf("%d re-submissions noted, want 2:\n%s", n, logs.text())
	}
}

// jobOfPid returns the Slurm job (JOBID_TASK) of the executor's job
// whose worker is pid: the task id in the worker's environment.
func jobOfPid(t *testing.T, name string, pid int) string {
	t.Helper()
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, kv := range strings.Split(string(env), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if vars["SLURM_JOB_NAME"] != name {
		t.Fatalf("process %d is not a worker of job %s (SLURM_JOB_NAME=%q)", pid, name, vars["SLURM_JOB_NAME"])
	}
	return vars["SLURM_ARRAY_JOB_ID"] + "_" + vars["SLURM_ARRAY_TASK_ID"]
}

// A job that keeps dying fails its node after MaxAttempts jobs, naming
// them and the last one's log.
func TestNodeFailsAfterMaxAttempts(t *testing.T) {
	testenv.NeedSlurm(t)
	dir := t.TempDir()
	r := loadRecipe(t, dir, 1)
	store := openStore(t, filepath.Join(dir, "shared"))
	// A worker that dies before writing an outcome, every time.
	x, err := slurm.New(slurm.Config{Worker: []string{"sh", "-c", "exit 9"}, MaxAttempts: 2,
		SubmitInterval: 100 * time.Millisecond, PollInterval: 100 * time.Millisecond, Grace: 300 * time.Millisecond}, store)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	_, err = build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out"), Executor: x})
	if err == nil || !strings.Contains(err.Error(), "2 jobs (") || !strings.Contains(err.Error(), filepath.Join(store.Root(), "slurm")) {
		t.Fatalf("want the node to fail after 2 jobs naming them and the log, got %v", err)
	}
}

// Cancelling the build cancels its jobs: none of them stays in the queue.
func TestCancelRemovesTheJobs(t *testing.T) {
	testenv.NeedSlurm(t)
	dir := t.TempDir()
	r := loadRecipe(t, dir, 2)
	g := gate(t)
	store := openStore(t, filepath.Join(dir, "shared"))
	x := newExecutor(t, r, store, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := build.Build(ctx, r, store, build.Options{OutDir: filepath.Join(dir, "out"), Executor: x})
		done <- err
	}()
	waitFor(t, "the echo nodes to start", func() bool { return len(started(g)) == 2 }, store)
	cancel()
	if err := <-done; err != build.ErrInterrupted {
		t.Fatalf("build: %v, want interrupted", err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the jobs to leave the queue", func() bool {
		out, err := exec.Command("squeue", "--noheader", "--name", x.JobName()).Output()
		return err == nil && strings.TrimSpace(string(out)) == ""
	}, store)
}

// BenchmarkNodeThroughSlurm is the overhead of one trivial node through
// Slurm on this machine: from handing it to the executor to its result,
// with the executor's shortest useful poll and submit intervals.
func BenchmarkNodeThroughSlurm(b *testing.B) {
	testenv.NeedSlurm(b)
	dir := b.TempDir()
	store := openStore(b, filepath.Join(dir, "shared"))
	var total time.Duration
	for i := range b.N {
		// A recipe of its own each time, so the node is never memoised.
		r := loadRecipe(b, filepath.Join(dir), 1+i)
		x := newExecutor(b, r, store, nil)
		start := time.Now()
		rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out"), Force: true, Executor: x})
		if err != nil {
			b.Fatal(err)
		}
		// Nodes that ran: the new echo node(s), the count and the join.
		ran := states(rec)[build.StateRan]
		total += time.Since(start) / time.Duration(max(1, ran))
		x.Close()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/node")
}
