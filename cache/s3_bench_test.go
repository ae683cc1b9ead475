package cache_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
)

// benchBlobSize is the blob the S3 benchmarks move: large enough that the
// figure is throughput, not request overhead. Its bytes are random, so
// compression does not shrink what travels.
const benchBlobSize = 16 << 20

func benchRemoteStore(b *testing.B, url string) *cache.Store {
	b.Helper()
	s, err := cache.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	r, err := cache.OpenS3(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	s.SetRemote(r)
	return s
}

func randomBlob(b *testing.B, i int) []byte {
	data := make([]byte, benchBlobSize)
	rand.Read(data)
	binary.LittleEndian.PutUint64(data, uint64(i))
	return data
}

// BenchmarkS3Put stores a new 16 MiB blob per iteration through a store
// with an S3 remote (VersityGW on 127.0.0.1): compressed into the local
// tier, then uploaded.
func BenchmarkS3Put(b *testing.B) {
	srv := testenv.S3(b)
	srv.Setenv(b)
	s := benchRemoteStore(b, srv.Bucket(b))
	blobs := make([][]byte, b.N)
	for i := range blobs {
		blobs[i] = randomBlob(b, i)
	}
	b.SetBytes(benchBlobSize)
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Put(blobs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkS3ReadCold reads a 16 MiB blob through a store directory that
// does not have it: downloaded from the remote, checked, kept locally.
func BenchmarkS3ReadCold(b *testing.B) {
	srv := testenv.S3(b)
	srv.Setenv(b)
	url := srv.Bucket(b)
	d, err := benchRemoteStore(b, url).Put(randomBlob(b, 0))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchBlobSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := benchRemoteStore(b, url) // a machine that has never read it
		b.StartTimer()
		readAll(b, s, d)
	}
}

// BenchmarkS3ReadHot reads the same blob once it is in the local tier: no
// request reaches the remote.
func BenchmarkS3ReadHot(b *testing.B) {
	srv := testenv.S3(b)
	srv.Setenv(b)
	url := srv.Bucket(b)
	d, err := benchRemoteStore(b, url).Put(randomBlob(b, 0))
	if err != nil {
		b.Fatal(err)
	}
	s := benchRemoteStore(b, url)
	readAll(b, s, d) // fetched once
	b.SetBytes(benchBlobSize)
	b.ResetTimer()
	for range b.N {
		readAll(b, s, d)
	}
}

func readAll(b *testing.B, s *cache.Store, d cache.Digest) {
	r, err := s.Open(d)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if n, err := io.Copy(io.Discard, r); err != nil || n != benchBlobSize {
		b.Fatalf("read %d bytes, %v", n, err)
	}
}
