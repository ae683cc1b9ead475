package testenv

import (
	"archive/tar"
	"io"
	"os"
	"testing"
)

func TestDebianRootfsHasPythonPytestGitAndPatch(t *testing.T) {
	p := DebianRootfs(t)
	if p2 := DebianRootfs(t); p2 != p {
		t.Fatalf("second call gave %s, first %s", p2, p)
	}
	tarballHas(t, p, "./usr/bin/python3", "./usr/bin/pytest-3", "./usr/bin/git", "./usr/bin/patch")
}

// tarballHas fails the test for each of names that the tarball at p does
// not hold.
func tarballHas(t *testing.T, p string, names ...string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = false
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := want[h.Name]; ok {
			want[h.Name] = true
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("%s not in rootfs tarball %s", name, p)
		}
	}
}
