package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/harness"
	"github.com/dsbuild/dsbuild/internal/testenv"
)

// slurmRecipe is the quickstart's pipeline on its mathx project, small:
// validated repository, bug-fix and implement tasks with their sandboxed
// test runs and images, oracle trajectories and the exported dataset.
const slurmRecipe = `name: slurmqs
environments:
  python: {layout: %q}
sandbox: {timeout: 120s}
slurm: {cpus: 1, max_jobs: 4}
stages:
  repos:
    uses: repo
    with: {paths: [%q], allow_outside: true}
  checked: {uses: validate, foreach: repos, with: {runs: 1}}
  bugs:
    uses: inject_bugs
    foreach: checked
    with: {per_repo: 2, candidates: 6, combine: 1, seed: 3, test_timeout: 10s}
  stubs:
    uses: stub_tasks
    foreach: checked
    with: {group: module, test_timeout: 10s}
  fix_demos: {uses: rollout, foreach: bugs, with: {policy: oracle}}
  dataset:
    uses: export
    from: [bugs, stubs, fix_demos]
    with: {name: slurm test}
`

// slurmDir is a folder the sandbox's unprivileged uid can reach (beside
// the test binary, which TestMain removes) and Slurm's jobs too.
func slurmDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(binary), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(binary), 0o755)
	return dir
}

// slurmQuickstart is slurmRecipe written in a folder of its own and
// built locally once, for the Slurm builds to compare with.
type slurmQuickstart struct {
	dir, recipe string
	local       map[string]string // the local build's output
	log         string
}

var (
	slurmQSOnce sync.Once
	slurmQS     *slurmQuickstart
	slurmQSErr  string
)

func slurmQuickstartBuilt(t *testing.T) *slurmQuickstart {
	t.Helper()
	slurmQSOnce.Do(func() {
		base := testenv.PythonLayout(t)
		mathx, err := filepath.Abs("../../recipes/quickstart/projects/mathx")
		if err != nil {
			slurmQSErr = err.Error()
			return
		}
		q := &slurmQuickstart{dir: slurmDir(t, "slurmqs")}
		q.recipe = filepath.Join(q.dir, "recipe.yaml")
		if err := os.WriteFile(q.recipe, []byte(fmt.Sprintf(slurmRecipe, base, mathx)), 0o644); err != nil {
			slurmQSErr = err.Error()
			return
		}
		r := dsbuild(t, q.dir, "--cache", "local-cache", "--out", "local-out", q.recipe)
		if r.code != 0 {
			slurmQSErr = fmt.Sprintf("local build: exit %d\n%s", r.code, r.stderr)
			return
		}
		q.local, q.log = readTree(t, filepath.Join(q.dir, "local-out")), r.stdout+r.stderr
		if n := strings.Count(q.local[harness.InstancesFile], "\n"); n < 3 {
			slurmQSErr = fmt.Sprintf("the local build's dataset holds %d task instances, want at least 3 (bugs and stubs):\n%s", n, q.log)
			return
		}
		slurmQS = q
	})
	if slurmQS == nil {
		t.Fatal(slurmQSErr)
	}
	return slurmQS
}

// The quickstart's pipeline built with --executor slurm over a store
// directory the jobs share gives output byte-identical to a local build,
// and building again runs nothing.
func TestSlurmBuildIsByteIdentical(t *testing.T) {
	testenv.NeedSlurm(t)
	q := slurmQuickstartBuilt(t)
	remote := dsbuild(t, q.dir, "--cache", "shared-cache", "--out", "slurm-out", "--executor", "slurm", q.recipe)
	if remote.code != 0 {
		t.Fatalf("Slurm build: exit %d\n%s\n%s", remote.code, remote.stdout, remote.stderr)
	}
	sameTrees(t, q.local, readTree(t, filepath.Join(q.dir, "slurm-out")))
	logs, _ := filepath.Glob(filepath.Join(q.dir, "shared-cache", "slurm", "*_*.log"))
	if len(logs) == 0 {
		t.Fatal("no job logs: the nodes did not run on Slurm")
	}
	again := dsbuild(t, q.dir, "--cache", "shared-cache", "--out", "slurm-out", "--executor", "slurm", "--json", q.recipe)
	if ran := nonVolatileRan(again.stdout); again.code != 0 || len(ran) != 0 {
		t.Fatalf("second Slurm build: exit %d, ran %v; want only the volatile repos to run:\n%s", again.code, ran, again.stderr)
	}
}

// A build with --executor slurm over an S3 store: the build's store
// directory (machine A) and the jobs' (machine B) are two local tiers over
// one bucket. The output is byte-identical to a local build, and a third
// machine (another empty directory over the bucket) rebuilding it runs
// nothing. First a small recipe, then the quickstart's pipeline.
func TestSlurmOverS3(t *testing.T) {
	testenv.NeedSlurm(t)
	srv := testenv.S3(t)
	t.Run("small", func(t *testing.T) {
		dir := t.TempDir()
		recipe := writeRecipe(t, dir, manyRecipe)
		local := dsbuild(t, dir, "--cache", "local-cache", "--out", "local-out", recipe)
		if local.code != 0 {
			t.Fatalf("local build: exit %d\n%s", local.code, local.stderr)
		}
		slurmOverS3(t, srv, dir, recipe, readTree(t, filepath.Join(dir, "local-out")))
	})
	t.Run("quickstart", func(t *testing.T) {
		q := slurmQuickstartBuilt(t)
		slurmOverS3(t, srv, slurmDir(t, "slurms3"), q.recipe, q.local)
	})
}

func slurmOverS3(t *testing.T, srv *testenv.S3Server, dir, recipe string, want map[string]string) {
	t.Helper()
	url := srv.Bucket(t) + "/dsbuild"
	env := srv.Env()
	logDir := filepath.Join(dir, "logs")
	a := dsbuildEnv(t, dir, env, "--cache", filepath.Join(dir, "store-a"), "--remote", url, "--out", filepath.Join(dir, "out-a"),
		"--executor", "slurm", "--slurm-worker-cache", filepath.Join(dir, "store-b"), "--slurm-log-dir", logDir, recipe)
	if a.code != 0 {
		t.Fatalf("Slurm build over S3: exit %d\n%s\n%s", a.code, a.stdout, a.stderr)
	}
	sameTrees(t, want, readTree(t, filepath.Join(dir, "out-a")))
	if logs, _ := filepath.Glob(filepath.Join(logDir, "*_*.log")); len(logs) == 0 {
		t.Fatal("no job logs: the nodes did not run on Slurm")
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "store-b", "memo", "*", "*")); len(entries) == 0 {
		t.Fatal("the workers did not use their own store directory (store-b has no memo entries)")
	}
	c := dsbuildEnv(t, dir, env, "--cache", filepath.Join(dir, "store-c"), "--remote", url, "--out", filepath.Join(dir, "out-c"), "--json", recipe)
	if ran := nonVolatileRan(c.stdout); c.code != 0 || len(ran) != 0 {
		t.Fatalf("rebuild on a third machine: exit %d, ran %v; want only volatile sources to run:\n%s", c.code, ran, c.stderr)
	}
	sameTrees(t, want, readTree(t, filepath.Join(dir, "out-c")))
}

// nonVolatileRan lists the nodes a build's JSON events say ran, but for the
// volatile repo source, which runs in every build.
func nonVolatileRan(events string) []string {
	var ran []string
	for _, line := range strings.Split(events, "\n") {
		var ev build.Event
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == build.EventNode && ev.Status == build.StateRan && ev.Stage != "repos" {
			ran = append(ran, ev.Node)
		}
	}
	return ran
}

// many makes enough nodes that a Slurm build takes a while.
const manyRecipe = `name: many
stages:
  words: {uses: list, with: {count: 16}}
  greet: {uses: template, foreach: words, with: {text: "hello {{.Input}}"}}
  shout: {uses: template, foreach: greet, with: {text: "{{.Input}}!"}}
  out:   {uses: bundle, from: [shout]}
`

// The controller SIGKILLed mid-build loses nothing: started again, it
// finds the nodes that finished memoised, the jobs it left behind finish
// or their nodes run again, and the output is the local build's.
func TestSlurmControllerKilledAndRestarted(t *testing.T) {
	testenv.NeedSlurm(t)
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, manyRecipe)
	local := dsbuild(t, dir, "--cache", "local-cache", "--out", "local-out", recipe)
	if local.code != 0 {
		t.Fatalf("local build: exit %d\n%s", local.code, local.stderr)
	}
	cmd := exec.Command(binary, "--cache", "shared-cache", "--out", "slurm-out", "--executor", "slurm", "--json", recipe)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	// Kill it once some greet nodes have finished (their jobs' logs say
	// "node done") and before the build is over.
	testenv.WaitWhileRunning(t, exited, "greet jobs to finish", func() bool {
		return finishedJobs(filepath.Join(dir, "shared-cache", "slurm")) >= 3
	})
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	again := dsbuild(t, dir, "--cache", "shared-cache", "--out", "slurm-out", "--force", "--executor", "slurm", "--json", recipe)
	if again.code != 0 {
		t.Fatalf("restarted build: exit %d\n%s", again.code, again.stderr)
	}
	// The killed controller's jobs still queued would find their store
	// gone after the test: cancel them.
	scripts, _ := filepath.Glob(filepath.Join(dir, "shared-cache", "slurm", "dsbuild-*.sh"))
	for _, s := range scripts {
		name := filepath.Base(s)
		exec.Command("scancel", "--name", name[:strings.LastIndexByte(name, '-')]).Run()
	}
	sameTrees(t, readTree(t, filepath.Join(dir, "local-out")), readTree(t, filepath.Join(dir, "slurm-out")))
	if n := strings.Count(again.stdout, `"status":"cached"`); n < 3 {
		t.Errorf("the restarted build found %d nodes memoised, want at least the 3 whose jobs had finished:\n%s", n, again.stdout)
	}
}

// finishedJobs counts the job logs in dir that say their node is done.
func finishedJobs(dir string) int {
	names, _ := filepath.Glob(filepath.Join(dir, "*_*.log"))
	n := 0
	for _, name := range names {
		if b, err := os.ReadFile(name); err == nil && strings.Contains(string(b), "node done") {
			n++
		}
	}
	return n
}

// A worker given no spec, or one that is not a digest or not in the store,
// exits 2 saying why.
func TestWorkerBadSpecExits2(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"worker"},
		{"worker", "sha256:zz"},
		{"worker", "sha256:" + strings.Repeat("0", 64)},
	} {
		r := dsbuild(t, dir, append([]string{"--cache", "store"}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "worker") {
			t.Errorf("dsbuild %v: exit %d, stderr %q; want 2 and a message", args, r.code, r.stderr)
		}
	}
}
