package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testCacheDir is where expensive fixtures survive between test runs.
func testCacheDir() string {
	if d := os.Getenv("DSBUILD_TEST_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "dsbuild-test-cache")
}

// pythonSpec is the real quickstart base: bookworm + python3 + pytest.
var pythonSpec = BaseSpec{Debian: &DebianSpec{Suite: "bookworm", Packages: []string{"python3", "python3-pytest"}}}

var (
	pythonOnce  sync.Once
	pythonStore *cache.Store
	pythonImage schema.Image
	pythonErr   error
)

// pythonBase returns a long-lived store (kept across test runs) holding the
// python3+pytest Debian base, building it with mmdebstrap the first time.
func pythonBase(tb testing.TB) (*cache.Store, schema.Image) {
	tb.Helper()
	pythonOnce.Do(func() {
		pythonStore, pythonErr = cache.Open(filepath.Join(testCacheDir(), "oci-python-base-store"))
		if pythonErr != nil {
			return
		}
		pythonImage, pythonErr = NewBuilder(pythonStore, Options{}).Base(context.Background(), pythonSpec)
	})
	if pythonErr != nil {
		tb.Fatalf("python base: %v", pythonErr)
	}
	return pythonStore, pythonImage
}

func newStore(tb testing.TB) *cache.Store {
	tb.Helper()
	s, err := cache.Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// projectTree stores a small Python project whose content varies with n.
func projectTree(tb testing.TB, s *cache.Store, n int) cache.Digest {
	tb.Helper()
	files := map[string]cache.File{
		"pyproject.toml":        {Data: []byte("[project]\nname = \"mathx\"\nversion = \"0.1.0\"\n")},
		"src/mathx/__init__.py": {Data: []byte("from .ops import add, mul\n")},
		"src/mathx/ops.py":      {Data: []byte(fmt.Sprintf("def add(a, b):\n    return a + b + %d - %d\n\n\ndef mul(a, b):\n    return a * b\n", n, n))},
		"tests/test_ops.py":     {Data: []byte("from mathx import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n")},
		"run_tests.sh":          {Data: []byte("#!/bin/sh\nexec python3 -m pytest -q\n"), Exec: true},
	}
	for i := 0; i < 15; i++ {
		files[fmt.Sprintf("src/mathx/mod%02d.py", i)] = cache.File{Data: bytes.Repeat([]byte(fmt.Sprintf("# module %d\nVALUE = %d\n", i, i)), 40)}
	}
	d, err := s.PutFiles(files)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// syntheticBase stores a tiny one-layer image built without mmdebstrap, so
// that its digest depends only on this package's code.
func syntheticBase(tb testing.TB, s *cache.Store) schema.Image {
	tb.Helper()
	lb, err := putLayer(s, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		for _, e := range []struct{ name, body string }{{"etc/", ""}, {"etc/os-release", "ID=synthetic\n"}} {
			h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), ModTime: epoch.Time, Typeflag: tar.TypeReg}
			if e.body == "" {
				h.Typeflag, h.Mode = tar.TypeDir, 0o755
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := io.WriteString(tw, e.body); err != nil {
				return err
			}
		}
		return tw.Close()
	})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := &v1.ConfigFile{
		Architecture: "amd64", OS: "linux", Created: epoch,
		Config: v1.Config{Env: []string{"PATH=/usr/bin:/bin"}},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hashOf(lb.diffID)}},
	}
	img, err := putImage(s, cfg, nil, []v1.Descriptor{{MediaType: types.OCILayer, Size: lb.size, Digest: hashOf(lb.compressed)}}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// tarEntries reads the uncompressed layer d from the store.
func tarEntries(tb testing.TB, s *cache.Store, layer string) []*tar.Header {
	tb.Helper()
	d, err := cache.ParseDigest(layer)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := s.Open(d)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	tr := tar.NewReader(r)
	var out []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatalf("layer %s: %v", layer, err)
		}
		out = append(out, h)
	}
}
