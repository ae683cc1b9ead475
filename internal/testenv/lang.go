package testenv

import (
	"sync"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// LangPackages are the packages LangRootfs adds to DebianPackages: the
// toolchains of the Go, JavaScript and Rust profiles of package lang, as
// Debian bookworm ships them (Go 1.19, node 18, rustc 1.63 and cargo).
var LangPackages = []string{"golang-go", "nodejs", "rustc", "cargo"}

var langRootfsOnce struct {
	sync.Mutex
	path string
}

// LangRootfs returns the path of a tarball of a Debian root file system like
// DebianRootfs's with LangPackages installed too. It is built once with
// mmdebstrap (a minute or two with a reachable mirror: the toolchains are
// several hundred megabytes) and kept in CacheDir like DebianRootfs.
func LangRootfs(tb testing.TB) (tarPath string) {
	tb.Helper()
	langRootfsOnce.Lock()
	defer langRootfsOnce.Unlock()
	if langRootfsOnce.path != "" {
		return langRootfsOnce.path
	}
	p, err := buildDebianRootfs(append(append([]string(nil), DebianPackages...), LangPackages...))
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	langRootfsOnce.path = p
	return p
}

// LangImage stores the LangRootfs tarball in store as the single layer of an
// image and returns it, as Image does for DebianRootfs.
func LangImage(tb testing.TB, store *cache.Store) schema.Image {
	tb.Helper()
	return rootfsImage(tb, store, LangRootfs(tb), "dsbuild-test/debian-"+DebianSuite+"-langs")
}
