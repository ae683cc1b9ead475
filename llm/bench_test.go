package llm_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/schema"
)

var benchRound atomic.Int64

// cpuTime is the process's user+system CPU time so far: unlike wall time it
// does not grow when other processes compete for the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchRequest(i int) llm.Request {
	return llm.Request{Messages: []schema.Message{
		{Role: "system", Content: "You are a careful software engineer. " + strings.Repeat("Follow the rules. ", 20)},
		{Role: "user", Content: fmt.Sprintf("Task %d: write a function that parses the input format described above.", i)},
	}}
}

// BenchmarkCachedReplay measures a cache hit: key computation, memo lookup,
// blob read and verification, decoding.
func BenchmarkCachedReplay(b *testing.B) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		return llmtest.Text("def parse(s):\n    " + strings.Repeat("return s.split()\n    ", 10))
	})
	c := newClient(b, openStore(b, b.TempDir()), profile(srv), fastOpts())
	const distinct = 64
	reqs := make([]llm.Request, distinct)
	for i := range reqs {
		reqs[i] = benchRequest(i)
		if _, err := c.Complete(context.Background(), reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		i := 0
		for b.Loop() {
			r, err := c.Complete(context.Background(), reqs[i%distinct])
			if err != nil || !r.Cached {
				b.Fatal(r, err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, err := c.Complete(context.Background(), reqs[next.Add(1)%distinct])
				if err != nil || !r.Cached {
					b.Error(r, err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
	if srv.Requests() != distinct {
		b.Fatalf("replay reached the server: %d requests", srv.Requests())
	}
}

// BenchmarkInFlight256Overhead runs b.N distinct (uncached) calls with 256
// in flight against llmtest, then, untimed, the same number of raw HTTP
// round trips with the same concurrency and an equivalent body. ns/op is
// the client's wall time per call; overhead-ns/op is the difference, i.e.
// what the client, SDK and cache writes add per call.
func BenchmarkInFlight256Overhead(b *testing.B) {
	const inFlight = 256
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(r *llmtest.Request) llmtest.Reply { return llmtest.Text("ok: " + r.LastUserMessage()) })
	p := profile(srv)
	p.MaxInFlight = inFlight
	// LLM_BENCH_STORE_PARENT puts the store elsewhere (e.g. /dev/shm) to
	// separate file-system cost from the client's own.
	c := newClient(b, openStore(b, benchStoreDir(b)), p, fastOpts())
	run := func(n int, call func(i int) error) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range inFlight {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					if err := call(i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	round := int(benchRound.Add(1)) // fresh sample indexes: every call a miss
	b.ResetTimer()
	cpu0 := cpuTime()
	clientTime := run(b.N, func(i int) error {
		r := benchRequest(i)
		r.Sample = round
		resp, err := c.Complete(context.Background(), r)
		if err == nil && resp.Cached {
			err = fmt.Errorf("call %d was a cache hit", i)
		}
		return err
	})
	b.StopTimer()
	clientCPU := cpuTime() - cpu0

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = inFlight
	hc := &http.Client{Transport: tr}
	rawTime := run(b.N, func(i int) error {
		body := fmt.Appendf(nil, `{"model":"test-model","messages":[{"role":"system","content":%q},{"role":"user","content":%q}]}`,
			benchRequest(i).Messages[0].Content, benchRequest(i).Messages[1].Content)
		req, _ := http.NewRequest("POST", srv.URL()+"/chat/completions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		res, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("raw status %d", res.StatusCode)
		}
		return err
	})
	rawCPU := cpuTime() - cpu0 - clientCPU
	b.ReportMetric(float64(rawTime.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64((clientCPU-rawCPU).Nanoseconds())/float64(b.N), "overhead-cpu-ns/op")
	b.ReportMetric(float64((clientTime-rawTime).Nanoseconds())/float64(b.N), "overhead-ns/op")
	if m := srv.MaxInFlight(); m > inFlight {
		b.Fatalf("server saw %d in flight", m)
	}
}

func benchStoreDir(b *testing.B) string {
	parent := os.Getenv("LLM_BENCH_STORE_PARENT")
	if parent == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "llm-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
