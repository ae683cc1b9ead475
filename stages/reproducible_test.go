package stages_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/internal/testenv"
)

// The same recipe built in two fresh stores (each running its own
// sandboxes, so pytest's timings and object addresses differ) publishes
// byte-identical datasets: tasks, trajectories, card and manifest. The
// second build runs while busy loops saturate every core, as when several
// builds share a machine: test runs are bounded by CPU time, not by the
// wall clock, so the load changes no verdict (issue 11).
func TestTwoStoresGiveIdenticalDatasets(t *testing.T) {
	base := taskBaseLayout(t)
	projects, err := filepath.Abs("../recipes/quickstart/projects/mathx")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipe.yaml")
	text := `name: repro
environments:
  python: {layout: ` + base + `}
sandbox: {timeout: 60s}
stages:
  repos:   {uses: repo, with: {paths: [` + projects + `], allow_outside: true}}
  checked: {uses: validate, foreach: repos, with: {environment: python, runs: 2}}
  bugs:    {uses: inject_bugs, foreach: checked, with: {per_repo: 3, candidates: 8, seed: 7, test_timeout: 2s}}
  demos:   {uses: rollout, foreach: bugs, with: {policy: oracle}}
  dataset: {uses: export, from: [bugs, demos], with: {images: false}}
`
	if err := os.WriteFile(recipe, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(recipe, nil)
	if err != nil {
		t.Fatal(err)
	}
	digests := func(out string) map[string]string {
		files := map[string]string{}
		filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				b, _ := os.ReadFile(p)
				sum := sha256.Sum256(b)
				rel, _ := filepath.Rel(out, p)
				files[rel] = hex.EncodeToString(sum[:])
			}
			return nil
		})
		return files
	}
	var outs []map[string]string
	for _, name := range []string{"a", "b"} {
		out := filepath.Join(dir, "out-"+name)
		stop := func() {}
		if name == "b" {
			stop = hogCPU(t, 2*runtime.NumCPU())
		}
		rec, err := build.Build(context.Background(), r, testenv.Store(t), build.Options{OutDir: out})
		stop()
		if err != nil {
			t.Fatalf("build %s: %v", name, err)
		}
		if rec.Stages[4].Counts["trajectories"] == 0 {
			t.Fatalf("build %s exported no trajectories: %+v", name, rec.Stages)
		}
		outs = append(outs, digests(out))
	}
	if len(outs[0]) == 0 || len(outs[0]) != len(outs[1]) {
		t.Fatalf("outputs have %d and %d files", len(outs[0]), len(outs[1]))
	}
	var differ []string
	for f, d := range outs[0] {
		if outs[1][f] != d {
			differ = append(differ, f)
		}
	}
	if len(differ) > 0 {
		t.Fatalf("the two builds differ in %s", strings.Join(differ, ", "))
	}
}

// hogCPU starts n busy loops at the test's own priority and returns a
// function that stops them (also called when the test ends).
func hogCPU(t *testing.T, n int) func() {
	t.Helper()
	var procs []*os.Process
	var once sync.Once
	stop := func() {
		once.Do(func() {
			for _, p := range procs {
				p.Kill()
				p.Wait()
			}
		})
	}
	t.Cleanup(stop)
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			stop()
			t.Fatalf("starting a busy loop: %v", err)
		}
		procs = append(procs, cmd.Process)
	}
	return stop
}
