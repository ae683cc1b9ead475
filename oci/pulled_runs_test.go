package oci

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// An image pushed to a real registry and pulled back into another store
// runs the project's tests in the sandbox with the same result as the
// image that was built.
func TestPulledImageRunsTheSameTests(t *testing.T) {
	built, base := pythonBase(t)
	files := map[string]cache.File{
		"conftest.py":        {Data: []byte("import sys, os\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'src'))\n")},
		"src/calc.py":        {Data: []byte("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a + b  # bug\n")},
		"tests/test_calc.py": {Data: []byte("from calc import add, sub\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n")},
	}
	tree, err := built.PutFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	img, err := NewBuilder(built, Options{}).WithTree(context.Background(), base, tree, "/testbed", ConfigOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host := testenv.Registry(t)
	res, err := Push(context.Background(), built, map[string]schema.Image{"calc": img}, host+"/dsbuild/pulled", PushOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}

	fresh := testenv.Store(t)
	pulled, err := NewBuilder(fresh, Options{}).Base(context.Background(), BaseSpec{Image: res[0].Ref})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Digest != img.Digest {
		t.Fatalf("pulled %s, pushed %s", pulled.Digest, img.Digest)
	}
	freshTree, err := fresh.PutFiles(files)
	if err != nil || freshTree != tree {
		t.Fatalf("tree in the fresh store: %s, %v", freshTree, err)
	}

	run := func(store *cache.Store, image schema.Image) map[string]string {
		t.Helper()
		r, err := sandbox.New(store, sandbox.Options{NoCache: true})
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Run(context.Background(), sandbox.Spec{Image: image, Workspace: tree,
			Argv: []string{"python3", "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-q"}})
		if err != nil {
			t.Fatal(err)
		}
		status := map[string]string{}
		for _, line := range strings.Split(string(out.Stdout), "\n") {
			if st, rest, ok := strings.Cut(line, " "); ok && (st == "PASSED" || st == "FAILED") {
				id, _, _ := strings.Cut(rest, " ")
				status[id] = st
			}
		}
		return status
	}
	want := map[string]string{"tests/test_calc.py::test_add": "PASSED", "tests/test_calc.py::test_sub": "FAILED"}
	if got := run(built, img); !maps.Equal(got, want) {
		t.Fatalf("built image: %v, want %v", got, want)
	}
	if got := run(fresh, pulled); !maps.Equal(got, want) {
		t.Fatalf("pulled image: %v, want %v", got, want)
	}
}
