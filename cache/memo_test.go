package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Writers racing to store different results for one key all get the same
// winner back, the entry holds it, and each writer's context notes the key.
func TestMemoPutFirstRace(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(dir) // a second handle, as another process would hold
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for round := range 20 {
		k, _ := KeyOf(fmt.Sprintf("race-%d", round))
		const writers = 8
		results := make([]Digest, writers)
		winners := make([]Digest, writers)
		recs := make([]*Recorder, writers)
		errs := make([]error, writers)
		for i := range writers {
			s := a
			if i%2 == 1 {
				s = b
			}
			results[i] = mustPut(t, s, fmt.Appendf(nil, "reply %d of round %d", i, round))
			recs[i] = &Recorder{}
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				winners[i], errs[i] = s.MemoPutFirst(WithRecorder(context.Background(), recs[i]), k, results[i])
			}()
		}
		close(start)
		wg.Wait()
		for i := range writers {
			if errs[i] != nil {
				t.Fatalf("round %d writer %d: %v", round, i, errs[i])
			}
			if winners[i] != winners[0] {
				t.Fatalf("round %d: writer %d was told %s won, writer 0 %s", round, i, winners[i], winners[0])
			}
			if keys := recs[i].Keys(); len(keys) != 1 || keys[0] != k {
				t.Fatalf("round %d writer %d: recorder noted %v, want [%s]", round, i, keys, k)
			}
		}
		found := false
		for _, d := range results {
			found = found || d == winners[0]
		}
		if !found {
			t.Fatalf("round %d: winner %s is none of the writers' results", round, winners[0])
		}
		for _, s := range []*Store{a, b} {
			if got, ok, err := s.MemoGet(context.Background(), k); err != nil || !ok || got != winners[0] {
				t.Fatalf("round %d: MemoGet = %s, %v, %v; want the winner %s", round, got, ok, err, winners[0])
			}
		}
	}
}

func TestMemoPutFirst(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	k, _ := KeyOf("first")
	d1 := mustPut(t, s, []byte("first"))
	d2 := mustPut(t, s, []byte("second"))
	if got, err := s.MemoPutFirst(ctx, k, d1); err != nil || got != d1 {
		t.Fatalf("MemoPutFirst on a new key = %s, %v; want %s", got, err, d1)
	}
	if got, err := s.MemoPutFirst(ctx, k, d2); err != nil || got != d1 {
		t.Fatalf("second MemoPutFirst = %s, %v; want the first result %s", got, err, d1)
	}
	if got, ok, _ := s.MemoGet(ctx, k); !ok || got != d1 {
		t.Fatalf("MemoGet = %s, %v; want %s", got, ok, d1)
	}

	t.Run("damaged entry is replaced", func(t *testing.T) {
		for i, junk := range []string{"", "garbage", d1.String(), "sha256:" + strings.Repeat("z", 64) + "\n"} {
			k, _ := KeyOf(fmt.Sprintf("damaged-%d", i))
			if err := os.MkdirAll(filepath.Dir(s.memoPath(k)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.memoPath(k), []byte(junk), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, err := s.MemoPutFirst(ctx, k, d2); err != nil || got != d2 {
				t.Fatalf("MemoPutFirst over damaged entry %q = %s, %v; want %s", junk, got, err, d2)
			}
			if got, ok, _ := s.MemoGet(ctx, k); !ok || got != d2 {
				t.Fatalf("after repairing %q MemoGet = %s, %v; want %s", junk, got, ok, d2)
			}
		}
	})
	t.Run("entry whose blob is gone is replaced", func(t *testing.T) {
		k, _ := KeyOf("lost blob")
		lost := mustPut(t, s, []byte("lost"))
		if _, err := s.MemoPutFirst(ctx, k, lost); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(s.blobPath(lost)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.MemoPutFirst(ctx, k, d2); err != nil || got != d2 {
			t.Fatalf("MemoPutFirst over an entry with no blob = %s, %v; want %s", got, err, d2)
		}
	})
	t.Run("result not stored", func(t *testing.T) {
		k, _ := KeyOf("unstored first")
		missing := DigestOf([]byte("not in store"))
		if _, err := s.MemoPutFirst(ctx, k, missing); err == nil || !strings.Contains(err.Error(), "not stored") {
			t.Fatalf("MemoPutFirst of an unstored result: err = %v", err)
		}
		if _, err := os.Stat(s.memoPath(k)); !os.IsNotExist(err) {
			t.Fatal("MemoPutFirst of an unstored result wrote an entry")
		}
	})
	t.Run("no temporary files left", func(t *testing.T) {
		ents, err := os.ReadDir(filepath.Join(s.root, tmpDir))
		if err != nil || len(ents) != 0 {
			t.Fatalf("tmp holds %d entries (%v)", len(ents), err)
		}
	})
}
