package sandbox

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkMonitor measures what watching one running sandbox costs in
// CPU time, per second of the run, with a workspace of 20,000 files and
// nothing happening in it (the common case: a test suite running).
// "old" is the watcher before issue 12 (a /proc scan every 50 ms, a walk
// of the workspace every 200 ms); "fallback" is the current one without a
// cgroup (as root: process counts and walks at backing-off intervals);
// "cgroup" the current one with the run's cgroup (two small files a tick).
//
//	go test ./sandbox -run '^$' -bench Monitor -benchtime 1x
func BenchmarkMonitor(b *testing.B) {
	r, _ := setup(b)
	runDir := b.TempDir()
	ws := filepath.Join(runDir, "testbed")
	for i := range 200 {
		d := filepath.Join(ws, fmt.Sprintf("pkg%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		for j := range 100 {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d.py", j)), []byte("x = 1\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	l := DefaultLimits()
	const window = 10 * time.Second
	uid := hostUIDBase + uidBlockCount*uidBlockSize // owns no process
	measure := func(b *testing.B, watchFn func(stop <-chan struct{}, w *watch)) {
		for range b.N {
			_, cancel := context.WithCancel(context.Background())
			w := &watch{cancel: cancel}
			stop := make(chan struct{})
			done := make(chan struct{})
			before := cpuTime()
			go func() {
				defer close(done)
				watchFn(stop, w)
			}()
			time.Sleep(window)
			close(stop)
			<-done
			used := cpuTime() - before
			cancel()
			if w.get() != "" {
				b.Fatalf("the watcher reported limit %q", w.get())
			}
			b.ReportMetric(float64(used.Microseconds())/1000/window.Seconds(), "cpu-ms/s")
			b.ReportMetric(float64(used.Microseconds())/float64(window.Milliseconds())/10, "%cpu")
		}
	}
	b.Run("old", func(b *testing.B) {
		measure(b, func(stop <-chan struct{}, w *watch) { oldMonitor(stop, w, ws, uid, l) })
	})
	b.Run("fallback", func(b *testing.B) {
		fb, err := New(r.store, Options{WorkDir: r.workDir})
		if err != nil {
			b.Fatal(err)
		}
		fb.cg = nil
		measure(b, func(stop <-chan struct{}, w *watch) { fb.monitor(stop, w, ws, uid, l) })
	})
	b.Run("cgroup", func(b *testing.B) {
		if r.cg == nil {
			b.Skipf("no cgroups here: %s", r.Bounds())
		}
		g, err := r.cg.create(l)
		if err != nil {
			b.Fatal(err)
		}
		defer g.destroy()
		r.groups.Store(uid, g)
		defer r.groups.Delete(uid)
		measure(b, func(stop <-chan struct{}, w *watch) { r.monitor(stop, w, ws, uid, l) })
	})
}

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// oldMonitor is the watcher as it was before issue 12, for comparison.
func oldMonitor(stop <-chan struct{}, w *watch, ws string, uid int, l Limits) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if oldCountProcesses(uid) >= l.Processes {
			w.hit(LimitProcesses)
			return
		}
		if n%4 == 3 {
			if _, over := oldDirSize(ws, l.WorkspaceBytes); over {
				w.hit(LimitWorkspace)
				return
			}
		}
	}
}

func oldCountProcesses(uid int) int {
	des, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, de := range des {
		if _, err := strconv.Atoi(de.Name()); err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+de.Name(), &st) == nil && int(st.Uid) == uid {
			n++
		}
	}
	return n
}

func oldDirSize(dir string, max int64) (int64, bool) {
	var size int64
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		size += entryOverhead
		if de.Type().IsRegular() {
			if fi, err := de.Info(); err == nil {
				size += fi.Size()
			}
		}
		if size > max {
			return errOver
		}
		return nil
	})
	return size, err == errOver
}
