package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
)

// recorded returns a context whose memo lookups and provisional marks are
// noted in a fresh recorder.
func recorded() (context.Context, *cache.Recorder) {
	rec := &cache.Recorder{}
	return cache.WithRecorder(context.Background(), rec), rec
}

func memoised(t *testing.T, r *Runner, s Spec) bool {
	t.Helper()
	k, err := r.Key(s)
	if err != nil {
		t.Fatal(err)
	}
	_, ok, err := r.store.MemoGet(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// A program that hangs past its wall-clock timeout, even with slack, is
// reported as "timeout", is not memoised, and makes the work of every
// caller provisional, callers merged into the same run included.
func TestHangIsProvisionalAndNotMemoised(t *testing.T) {
	r, img := setup(t)
	s := Spec{Image: img, Argv: []string{"sleep", "infinity"}, Env: []string{"T=" + t.Name()}, Limits: Limits{Timeout: time.Second}}
	key, err := r.Key(s)
	if err != nil {
		t.Fatal(err)
	}
	const callers = 3
	results := make([]*Result, callers)
	recs := make([]*cache.Recorder, callers)
	var wg sync.WaitGroup
	for i := range callers {
		ctx, rec := recorded()
		recs[i] = rec
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.Run(ctx, s)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	ran := 0
	for i, res := range results {
		if res == nil {
			t.Fatal("a run failed")
		}
		if res.LimitHit != LimitTimeout || res.ExitCode != 137 || !res.Provisional {
			t.Errorf("caller %d: limit %q, exit %d, provisional %v; want timeout, 137, true", i, res.LimitHit, res.ExitCode, res.Provisional)
		}
		if !res.Cached {
			ran++
			// The result returned is the slack run's.
			if res.Duration < SlackFactor*time.Second-100*time.Millisecond {
				t.Errorf("duration %s: want the slack run's, about %ds", res.Duration, SlackFactor)
			}
		}
		why := recs[i].Provisional()
		if len(why) != 1 || !strings.Contains(why[0], key.Short()) || !strings.Contains(why[0], "wall-clock timeout") {
			t.Errorf("caller %d: provisional reasons %q, want one naming run %s", i, why, key.Short())
		}
	}
	if ran != 1 {
		t.Errorf("%d of %d identical concurrent runs executed; want one", ran, callers)
	}
	if memoised(t, r, s) {
		t.Fatal("a run that hit the wall-clock timeout twice was memoised")
	}
}

// A program that needs between 1 and SlackFactor times its timeout (sleep
// uses no CPU, so this does not depend on the machine's speed) gets its
// normal result from the slack run, memoised under the original key.
func TestRunWithinSlackIsMemoised(t *testing.T) {
	r, img := setup(t)
	s := Spec{Image: img, Argv: []string{"sh", "-c", "sleep 2; echo done > out; echo done"}, Env: []string{"T=" + t.Name()}, Limits: Limits{Timeout: time.Second}}
	ctx, rec := recorded()
	res, err := r.Run(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if res.LimitHit != "" || res.ExitCode != 0 || string(res.Stdout) != "done\n" || res.Provisional || res.Cached {
		t.Fatalf("limit %q, exit %d, stdout %q, provisional %v, cached %v; want a normal run", res.LimitHit, res.ExitCode, res.Stdout, res.Provisional, res.Cached)
	}
	if why := rec.Provisional(); len(why) != 0 {
		t.Errorf("provisional %q; want none", why)
	}
	if !memoised(t, r, s) {
		t.Fatal("the slack run's result was not memoised under the original key")
	}
	again := run(t, r, s)
	if !again.Cached || again.Output != res.Output || string(again.Stdout) != "done\n" || again.Key != res.Key {
		t.Fatalf("second run: cached %v, output %s (want %s), stdout %q", again.Cached, again.Output, res.Output, again.Stdout)
	}
}

// An endless loop bounded by CPU time hits "cpu", which does not depend on
// the machine's load, and is memoised as final.
func TestCPULoopIsMemoised(t *testing.T) {
	r, img := setup(t)
	s := Spec{Image: img, Argv: []string{"sh", "-c", "while :; do :; done"}, Env: []string{"T=" + t.Name()}, Limits: Limits{CPUSeconds: 1, Timeout: 60 * time.Second}}
	ctx, rec := recorded()
	res, err := r.Run(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if res.LimitHit != LimitCPU || res.ExitCode == 0 || res.Provisional {
		t.Fatalf("limit %q, exit %d, provisional %v; want cpu", res.LimitHit, res.ExitCode, res.Provisional)
	}
	if why := rec.Provisional(); len(why) != 0 {
		t.Errorf("provisional %q; want none", why)
	}
	if !memoised(t, r, s) {
		t.Fatal("the cpu-limited run was not memoised")
	}
	if again := run(t, r, s); !again.Cached || again.LimitHit != LimitCPU {
		t.Fatalf("second run: cached %v, limit %q", again.Cached, again.LimitHit)
	}
}

// A memoised result whose output tree is no longer wholly in the store
// (its root, or a file deep in it) reads as a miss: the run is redone,
// which stores the tree again.
func TestResultWithLostOutputIsRedone(t *testing.T) {
	r, img := setup(t)
	for _, lose := range []string{"root", "file"} {
		t.Run(lose, func(t *testing.T) {
			s := Spec{Image: img, Argv: []string{"sh", "-c", "mkdir -p a/b && echo " + t.Name() + " > a/b/marker"}}
			first := run(t, r, s)
			if first.Cached || first.Output.IsZero() {
				t.Fatalf("first run: cached %v, output %s", first.Cached, first.Output)
			}
			lost := first.Output
			if lose == "file" {
				files, err := r.store.Files(first.Output)
				if err != nil {
					t.Fatal(err)
				}
				lost = files["a/b/marker"].Digest
			}
			// The store keeps blob d at blobs/<first two hex digits>/<hex>.
			h := lost.Hex()
			if err := os.Remove(filepath.Join(r.store.Root(), "blobs", h[:2], h)); err != nil {
				t.Fatalf("removing the %s blob: %v", lose, err)
			}
			// The result returned may be the memoised one, complete again:
			// first writer wins.
			second := run(t, r, s)
			if !r.store.Has(lost) {
				t.Fatalf("a result whose output lost its %s blob was replayed from the memo", lose)
			}
			if second.Output != first.Output {
				t.Fatalf("redone run's output %s, want %s", second.Output, first.Output)
			}
			if third := run(t, r, s); !third.Cached || third.Output != first.Output {
				t.Fatalf("third run: cached %v, output %s; want the memoised result", third.Cached, third.Output)
			}
		})
	}
}

// A memo entry recording a wall-clock timeout (as older versions wrote)
// reads as a miss and is replaced by the new result.
func TestMemoisedTimeoutIsRedone(t *testing.T) {
	r, img := setup(t)
	s := Spec{Image: img, Argv: []string{"echo", "fresh"}, Env: []string{"T=" + t.Name()}}
	key, err := r.Key(s)
	if err != nil {
		t.Fatal(err)
	}
	stale := &Result{ExitCode: 137, Stdout: []byte("stale\n"), Stderr: []byte{}, Duration: time.Second, LimitHit: LimitTimeout}
	if _, err := r.save(context.Background(), key, stale); err != nil {
		t.Fatal(err)
	}
	res := run(t, r, s)
	if res.Cached || res.LimitHit != "" || string(res.Stdout) != "fresh\n" {
		t.Fatalf("cached %v, limit %q, stdout %q; want a fresh run", res.Cached, res.LimitHit, res.Stdout)
	}
	if again := run(t, r, s); !again.Cached || string(again.Stdout) != "fresh\n" {
		t.Fatalf("second run: cached %v, stdout %q; want the fresh result memoised", again.Cached, again.Stdout)
	}
}
