package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// reportMedian runs fn b.N times and reports the median as "median-ms".
func reportMedian(b *testing.B, fn func()) {
	b.Helper()
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		fn()
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
}

func noCacheRunner(b *testing.B) *Runner {
	r, _ := setup(b)
	nc, err := New(r.store, Options{NoCache: true, WorkDir: r.workDir})
	if err != nil {
		b.Fatal(err)
	}
	return nc
}

// BenchmarkTrue measures an uncached run of `true`: workspace set-up,
// bubblewrap start and exit, snapshot and memo record.
func BenchmarkTrue(b *testing.B) {
	r := noCacheRunner(b)
	_, img := setup(b)
	s := Spec{Image: img, Argv: []string{"true"}}
	reportMedian(b, func() {
		res, err := r.Run(context.Background(), s)
		if err != nil || res.ExitCode != 0 || res.Cached {
			b.Fatalf("true: %+v %v", res, err)
		}
	})
}

// BenchmarkTrueCached measures a memo hit.
func BenchmarkTrueCached(b *testing.B) {
	r, img := setup(b)
	s := Spec{Image: img, Argv: []string{"true"}}
	if _, err := r.Run(context.Background(), s); err != nil {
		b.Fatal(err)
	}
	reportMedian(b, func() {
		res, err := r.Run(context.Background(), s)
		if err != nil || !res.Cached {
			b.Fatalf("cached true: %+v %v", res, err)
		}
	})
}

var pytestArgv = []string{"python3", "-m", "pytest", "-q", "-p", "no:cacheprovider"}

// BenchmarkPytestSandbox runs the small pytest suite in the sandbox,
// uncached; compare with BenchmarkPytestBare.
func BenchmarkPytestSandbox(b *testing.B) {
	r := noCacheRunner(b)
	_, img := setup(b)
	ws, err := r.store.PutFiles(pytestProject)
	if err != nil {
		b.Fatal(err)
	}
	s := Spec{Image: img, Workspace: ws, Argv: pytestArgv}
	reportMedian(b, func() {
		res, err := r.Run(context.Background(), s)
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("pytest: %v %s %s", err, res.Stdout, res.Stderr)
		}
	})
}

// BenchmarkPytestBare runs the same suite with the host's /usr/bin/python3
// directly, in a fresh copy of the same files each time.
func BenchmarkPytestBare(b *testing.B) {
	r, _ := setup(b)
	ws, err := r.store.PutFiles(pytestProject)
	if err != nil {
		b.Fatal(err)
	}
	base := b.TempDir()
	n := 0
	reportMedian(b, func() {
		n++
		dir := filepath.Join(base, "run", string(rune('a'+n%26))+time.Now().Format("150405.000000000"))
		if err := r.store.Materialize(ws, dir); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("/usr/bin/python3", pytestArgv[1:]...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + base}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("bare pytest: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
	})
}

// BenchmarkPytestOverhead alternates a sandboxed and a bare run of the same
// suite, so both see the same machine load, and reports the medians and
// their ratio (the target is at most 1.15).
func BenchmarkPytestOverhead(b *testing.B) {
	r := noCacheRunner(b)
	_, img := setup(b)
	ws, err := r.store.PutFiles(pytestProject)
	if err != nil {
		b.Fatal(err)
	}
	s := Spec{Image: img, Workspace: ws, Argv: pytestArgv}
	base := b.TempDir()
	var boxed, bare []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		res, err := r.Run(context.Background(), s)
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("pytest: %v", err)
		}
		boxed = append(boxed, time.Since(t0))

		dir := filepath.Join(base, fmt.Sprint(i))
		if err := r.store.Materialize(ws, dir); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		cmd := exec.Command("/usr/bin/python3", pytestArgv[1:]...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + base}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("bare pytest: %v\n%s", err, out)
		}
		bare = append(bare, time.Since(t0))
		os.RemoveAll(dir)
	}
	b.StopTimer()
	med := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	mb, mr := med(boxed), med(bare)
	b.ReportMetric(mb, "sandbox-ms")
	b.ReportMetric(mr, "bare-ms")
	b.ReportMetric(mb/mr, "ratio")
}
