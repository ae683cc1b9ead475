package build_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
)

// builtOnce loads the recipe text, builds it once into a fresh store and
// returns what a benchmark needs to build it again.
func builtOnce(b *testing.B, text string) (*build.Recipe, *cache.Store, build.Options) {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(path, []byte(text), 0o644)
	r, err := build.LoadRecipe(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	store, err := cache.Open(filepath.Join(dir, "cache"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	opts := build.Options{OutDir: filepath.Join(dir, "out")}
	if _, err := build.Build(context.Background(), r, store, opts); err != nil {
		b.Fatal(err)
	}
	return r, store, opts
}

// BenchmarkNoopBuild rebuilds, with nothing to do, a recipe that fans out
// to 10,000 nodes (plus the list and an aggregate). Target: under 1 s per
// no-op build and under 200 MB resident.
func BenchmarkNoopBuild(b *testing.B) {
	r, store, opts := builtOnce(b, `name: noop
stages:
  words: {uses: list, with: {count: 10000}}
  greet: {uses: template, foreach: words, with: {text: "hello {{.Input}}"}}
  all:   {uses: test.join, from: [greet]}
`)
	b.ResetTimer()
	for range b.N {
		rec, err := build.Build(context.Background(), r, store, opts)
		if err != nil {
			b.Fatal(err)
		}
		if rec.Stages[1].Cached != 10000 {
			b.Fatalf("no-op build ran nodes: %+v", rec.Stages[1])
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/build")
	b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
}

// BenchmarkForeachFromNoop rebuilds, with nothing to do, a stage that has
// both `foreach:` over n items and `from:` a stage of n items. The from
// digests are computed once per stage, so the cost per node must stay flat
// as n doubles (it grew with n when each node hashed every from-item).
func BenchmarkForeachFromNoop(b *testing.B) {
	for _, n := range []int{1000, 2000} {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			r, store, opts := builtOnce(b, `name: ff
stages:
  words: {uses: list, with: {count: `+strconv.Itoa(n)+`}}
  greet: {uses: template, foreach: words, with: {text: "hello {{.Input}}"}}
  both:  {uses: template, foreach: words, from: [greet], with: {text: "again {{.Input}}"}}
`)
			b.ResetTimer()
			for range b.N {
				rec, err := build.Build(context.Background(), r, store, opts)
				if err != nil {
					b.Fatal(err)
				}
				if rec.Stages[2].Cached != n {
					b.Fatalf("no-op build ran nodes: %+v", rec.Stages[2])
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(2*n), "us/node")
		})
	}
}

// BenchmarkColdBuild builds 10,000 trivial nodes into an empty store: the
// cost of running, storing and memoising a node when its work is nothing.
// Target: under 0.5 ms per node. Memo entries are made durable in batches
// (one syncfs per batch, not per node).
func BenchmarkColdBuild(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	path := filepath.Join(dir, "recipe.yaml")
	os.WriteFile(path, []byte(`name: cold
stages:
  words: {uses: list, with: {count: `+strconv.Itoa(n)+`}}
  greet: {uses: template, foreach: words, with: {text: "hello {{.Input}}"}}
`), 0o644)
	r, err := build.LoadRecipe(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		store, err := cache.Open(filepath.Join(dir, "cache"+strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")})
		if err != nil {
			b.Fatal(err)
		}
		if rec.Stages[1].Ran != n {
			b.Fatalf("cold build: %+v", rec.Stages[1])
		}
		store.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/n/1000, "ms/node")
}

// peakRSSMiB reads the process's resident high-water mark.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return -1
}
