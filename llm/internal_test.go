package llm

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestRetryAfterParsing(t *testing.T) {
	cases := []struct {
		h    map[string]string
		want time.Duration
	}{
		{map[string]string{"Retry-After": "2"}, 2 * time.Second},
		{map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond},
		{map[string]string{"Retry-After-Ms": "250", "Retry-After": "1"}, 250 * time.Millisecond},
		{map[string]string{"Retry-After": "soon"}, 0},
		{map[string]string{"Retry-After": "-3"}, 0},
		{map[string]string{}, 0},
	}
	for _, tc := range cases {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := retryAfter(h); got != tc.want {
			t.Errorf("%v: got %v, want %v", tc.h, got, tc.want)
		}
	}
	h := http.Header{}
	h.Set("Retry-After", time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
	if got := retryAfter(h); got < time.Second || got > 3*time.Second {
		t.Errorf("HTTP-date form: got %v", got)
	}
}

func TestBackoffGrowsWithJitterAndCaps(t *testing.T) {
	c := &Client{opts: Options{RetryBaseDelay: 100 * time.Millisecond, RetryMaxDelay: time.Second}}
	for attempt, hi := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		hi *= time.Millisecond
		if attempt >= 4 {
			hi = time.Second
		}
		for range 50 {
			d := c.backoff(attempt, 0)
			if d < hi/2 || d > hi {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, hi/2, hi)
			}
		}
	}
	if d := c.backoff(0, 700*time.Millisecond); d != 700*time.Millisecond {
		t.Fatalf("Retry-After not used: %v", d)
	}
	if d := c.backoff(0, time.Hour); d != time.Second {
		t.Fatalf("Retry-After not capped: %v", d)
	}
	if d := c.backoff(100, 0); d < 500*time.Millisecond || d > time.Second {
		t.Fatalf("huge attempt number: %v", d)
	}
}

func TestBucketPacesAndAllowsDebt(t *testing.T) {
	b := newBucket(600) // 10/s, burst 10
	ctx := context.Background()
	start := time.Now()
	for range 15 {
		if err := b.wait(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 5*time.Second {
		t.Fatalf("15 takes at 10/s with burst 10 took %v, want about 0.5s", d)
	}
	b = newBucket(60) // 1/s
	b.charge(5)       // debt of 4 after the initial 1
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.wait(cctx, 0); err == nil {
		t.Fatal("wait returned while the bucket was in debt")
	}
	if newBucket(0) != nil || (*bucket)(nil).wait(ctx, 1) != nil {
		t.Fatal("an unlimited bucket must not block")
	}
}
