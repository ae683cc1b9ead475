package schema

import (
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// peakHeap samples the heap every couple of milliseconds until stop is
// called, and returns the largest live heap (as marked by the last GC) and
// the largest total heap (live plus not yet collected garbage, which the
// GC lets grow to about twice the live heap) seen.
func peakHeap() (stop func() (live, total uint64)) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	var peakLive, peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peakLive.Load() {
				peakLive.Store(v)
			}
			if v := sample[1].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		wg.Wait()
		return peakLive.Load(), peak.Load()
	}
}

// streamTrajectories exports n synthetic trajectories (generated on the
// fly, never all held at once) and returns the peak live and total heap
// and the total encoded size of the rows.
func streamTrajectories(t testing.TB, n int, opts DatasetOptions) (live, total uint64, rawBytes int64, m *DatasetManifest) {
	t.Helper()
	runtime.GC()
	stop := peakHeap()
	w, err := NewDatasetWriter(filepath.Join(t.TempDir(), "ds"), opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		tr := synthTrajectory(i, 3)
		if i%1000 == 0 {
			row, _ := tr.Row()
			b, _ := marshalNoEscape(row)
			rawBytes += int64(len(b)) * 1000
		}
		if err := w.AddTrajectory(tr); err != nil {
			t.Fatal(err)
		}
	}
	m, err = w.Close()
	if err != nil {
		t.Fatal(err)
	}
	live, total = stop()
	return live, total, rawBytes, m
}

// boundedOpts keep the working set small so the bound is meaningful.
var boundedOpts = DatasetOptions{
	TestFraction:     0.1,
	TargetShardBytes: 8 << 20,
	RowGroupBytes:    8 << 20,
	SortBufferBytes:  16 << 20,
}

// TestHundredThousandTrajectoriesStreamWithBoundedMemory exports 100k
// trajectories (over 300 MiB of rows) and checks that the live heap stays
// within a fixed budget: the sort buffer, one row group's column buffers
// and pages, codecs and merge readers.
func TestHundredThousandTrajectoriesStreamWithBoundedMemory(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 30_000
	}
	live, total, raw, m := streamTrajectories(t, n, boundedOpts)
	t.Logf("%d trajectories, %.0f MiB of rows, peak live heap %.1f MiB, peak total heap %.1f MiB, %d files",
		n, float64(raw)/(1<<20), float64(live)/(1<<20), float64(total)/(1<<20), len(m.Files))
	if m.Trajectories != int64(n) {
		t.Fatalf("wrote %d trajectories", m.Trajectories)
	}
	if shards := countPrefix(m, "data/train-"); shards < 2 {
		t.Errorf("%d train shards; the set should span several", shards)
	}
	const liveBudget = 64 << 20
	if live > liveBudget {
		t.Errorf("peak live heap %d MiB exceeds the %d MiB budget", live>>20, liveBudget>>20)
	}
	if total > 2*liveBudget+(16<<20) {
		t.Errorf("peak total heap %d MiB exceeds twice the live budget", total>>20)
	}
	if !testing.Short() && raw < 3*liveBudget {
		t.Errorf("test data (%d MiB) too small to show the bound", raw>>20)
	}
}
