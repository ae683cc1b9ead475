package gitrepo_test

import (
	"archive/tar"
	"fmt"
	"io"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/gitrepo"
)

// benchTree stores 1000 files of 4 KiB in 50 directories.
func benchTree(b *testing.B) (*cache.Store, cache.Digest) {
	s, err := cache.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	files := map[string]cache.File{}
	for i := range 1000 {
		data := make([]byte, 4096)
		for j := range data {
			data[j] = byte('a' + (i*31+j)%26)
		}
		files[fmt.Sprintf("pkg%02d/mod%04d.py", i%50, i)] = cache.File{Data: data}
	}
	d, err := s.PutFiles(files)
	if err != nil {
		b.Fatal(err)
	}
	return s, d
}

// Commit of a tree never seen (what a memoised image costs a new process).
func BenchmarkCommitCold(b *testing.B) {
	s, d := benchTree(b)
	for b.Loop() {
		gitrepo.ForgetIDs()
		if _, err := gitrepo.Commit(s, d); err != nil {
			b.Fatal(err)
		}
	}
}

// WriteTar of the whole .git directory, ids known.
func BenchmarkWriteTar(b *testing.B) {
	s, d := benchTree(b)
	for b.Loop() {
		tw := tar.NewWriter(io.Discard)
		if _, err := gitrepo.WriteTar(tw, s, d, "testbed/.git"); err != nil {
			b.Fatal(err)
		}
	}
}
