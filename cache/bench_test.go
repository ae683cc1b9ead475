package cache

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// smallBlob returns a distinct 1 KiB blob for i.
func smallBlob(i int) []byte {
	b := pseudoRandom(uint64(i)+1, 1024)
	binary.LittleEndian.PutUint64(b, uint64(i))
	return b
}

// BenchmarkPutSmall stores a new 1 KiB blob per iteration (compress, fsync,
// rename).
func BenchmarkPutSmall(b *testing.B) {
	s := newStore(b)
	blobs := make([][]byte, b.N)
	for i := range blobs {
		blobs[i] = smallBlob(i)
	}
	b.SetBytes(1024)
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Put(blobs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutSmallPresent stores a 1 KiB blob that is already present.
func BenchmarkPutSmallPresent(b *testing.B) {
	s := newStore(b)
	blob := smallBlob(0)
	mustPut(b, s, blob)
	b.SetBytes(1024)
	b.ResetTimer()
	for range b.N {
		if _, err := s.Put(blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetSmall reads and verifies 1 KiB blobs.
func BenchmarkGetSmall(b *testing.B) {
	s := newStore(b)
	const n = 256
	ds := make([]Digest, n)
	for i := range ds {
		ds[i] = mustPut(b, s, smallBlob(i))
	}
	b.SetBytes(1024)
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Get(ds[i%n]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoGetHit looks up a key whose result is present.
func BenchmarkMemoGetHit(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	const n = 256
	keys := make([]Key, n)
	for i := range keys {
		keys[i], _ = KeyOf(i)
		if err := s.MemoPut(ctx, keys[i], mustPut(b, s, smallBlob(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if _, ok, err := s.MemoGet(ctx, keys[i%n]); !ok || err != nil {
			b.Fatal("miss", err)
		}
	}
}

// benchNodeKey has the shape of a build node's key.
type benchNodeKey struct {
	Kind    string            `json:"kind"`
	Version int               `json:"version"`
	Params  json.RawMessage   `json:"params"`
	Item    string            `json:"item"`
	Inputs  map[string]Digest `json:"inputs"`
}

// BenchmarkKeyOf computes the key of a typical stage node.
func BenchmarkKeyOf(b *testing.B) {
	k := benchNodeKey{
		Kind:    "validate",
		Version: 3,
		Params:  json.RawMessage(`{"environment":"python","runs":3,"timeout":"10m","argv":["pytest","-q","--tb=short"],"env":{"PYTHONHASHSEED":"0","LANG":"C.UTF-8"}}`),
		Item:    "projects/textstats",
		Inputs: map[string]Digest{
			"repo":  DigestOf([]byte("repo")),
			"image": DigestOf([]byte("image")),
			"tests": DigestOf([]byte("tests")),
		},
	}
	b.ResetTimer()
	for range b.N {
		if _, err := KeyOf(k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot snapshots a 200-file tree (20 directories of 10 files,
// 2 KiB each) whose blobs are already stored: the cost of asking "did this
// workspace change?".
func BenchmarkSnapshot(b *testing.B) {
	s := newStore(b)
	dir := b.TempDir()
	for d := range 20 {
		for f := range 10 {
			writeTestFile(b, filepath.Join(dir, fmt.Sprintf("pkg%02d", d), fmt.Sprintf("file%02d.py", f)), pseudoRandom(uint64(d*10+f), 2048), 0o644)
		}
	}
	first, err := s.Snapshot(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		d, err := s.Snapshot(dir)
		if err != nil || d != first {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutSmallParallel stores new 1 KiB blobs from GOMAXPROCS
// goroutines.
func BenchmarkPutSmallParallel(b *testing.B) {
	s := newStore(b)
	blobs := make([][]byte, b.N+1024)
	for i := range blobs {
		blobs[i] = smallBlob(i)
	}
	var next int64
	var mu = make(chan struct{}, 1)
	b.SetBytes(1024)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu <- struct{}{}
			i := next
			next++
			<-mu
			if _, err := s.Put(blobs[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
