package llm

import (
	"context"
	"sync"
	"time"
)

// bucket is a token bucket refilled continuously at rate per second up to
// burst. Take waits until the level is positive and then removes n, so one
// large charge may drive it negative (tokens are counted after the fact);
// later callers then wait until the debt is repaid.
type bucket struct {
	mu    sync.Mutex
	rate  float64 // per second
	burst float64
	level float64
	last  time.Time
}

// newBucket returns a bucket for perMinute units per minute, or nil for
// unlimited. It holds at most one second's worth (at least 1) and starts
// full.
func newBucket(perMinute int) *bucket {
	if perMinute <= 0 {
		return nil
	}
	rate := float64(perMinute) / 60
	burst := max(rate, 1)
	return &bucket{rate: rate, burst: burst, level: burst, last: time.Now()}
}

func (b *bucket) refill(now time.Time) {
	b.level = min(b.burst, b.level+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
}

// wait blocks until the level is positive (or at least n when n > 0 and
// the bucket can hold n), then subtracts n.
func (b *bucket) wait(ctx context.Context, n float64) error {
	if b == nil {
		return nil
	}
	need := min(n, b.burst)
	for {
		b.mu.Lock()
		b.refill(time.Now())
		if b.level > 0 && b.level >= need {
			b.level -= n
			b.mu.Unlock()
			return nil
		}
		deficit := max(need, 1e-9) - b.level
		b.mu.Unlock()
		sleep := time.Duration(deficit / b.rate * float64(time.Second))
		t := time.NewTimer(max(sleep, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// charge subtracts n without waiting.
func (b *bucket) charge(n float64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.refill(time.Now())
	b.level -= n
	b.mu.Unlock()
}
