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
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]bool{"./usr/bin/python3": false, "./usr/bin/pytest-3": false, "./usr/bin/git": false, "./usr/bin/patch": false}
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
