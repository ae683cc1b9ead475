package testenv

import (
	"archive/tar"
	"io"
	"os"
	"testing"
)

// TestLangRootfsHasToolchains checks that the image the lang tests run in has
// the go, node, rustc and cargo programs the profiles call.
func TestLangRootfsHasToolchains(t *testing.T) {
	f, err := os.Open(LangRootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]bool{"./usr/bin/go": false, "./usr/bin/node": false, "./usr/bin/rustc": false, "./usr/bin/cargo": false}
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
	for name, found := range want {
		if !found {
			t.Errorf("%s missing from the lang rootfs", name)
		}
	}
}
