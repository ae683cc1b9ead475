package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// NodePackages are the packages of NodeLayout's rootfs: node 18 (the
// JavaScript profile's toolchain in Debian bookworm), git and patch, and no
// Python, so a JavaScript pipeline that reached for python3 would fail.
var NodePackages = []string{"git", "patch", "nodejs"}

// GoPackages are the packages of GoLayout's rootfs: Go 1.19 (the Go
// profile's toolchain in Debian bookworm), git and patch, and no Python.
var GoPackages = []string{"git", "patch", "golang-go"}

// NodeLayout returns an OCI image layout of a Debian rootfs with
// NodePackages (built once with mmdebstrap, about 40 MB of packages, and
// kept in CacheDir), as a one-layer image with ImageEnv and working
// directory /testbed, as PythonLayout does for DebianRootfs. Recipes of
// JavaScript tests name it as their environment (`layout: DIR`).
func NodeLayout(t *testing.T) string { return toolchainLayout(t, "node", NodePackages) }

// GoLayout is NodeLayout with GoPackages (about 70 MB of packages).
func GoLayout(t *testing.T) string { return toolchainLayout(t, "go", GoPackages) }

var toolchainLayouts struct {
	sync.Mutex
	dirs map[string]string
}

// toolchainLayout makes (or finds in CacheDir) the layout of the rootfs
// with packages, named after the rootfs.
func toolchainLayout(t *testing.T, name string, packages []string) string {
	t.Helper()
	toolchainLayouts.Lock()
	defer toolchainLayouts.Unlock()
	if d := toolchainLayouts.dirs[name]; d != "" {
		return d
	}
	rootfs, err := buildDebianRootfs(packages)
	if err != nil {
		t.Fatalf("testenv: %s base layout: %v", name, err)
	}
	dir := filepath.Join(CacheDir(), name+"-layout-"+strings.TrimSuffix(filepath.Base(rootfs), ".tar"))
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		if dir, err = writePythonLayout(rootfs, dir); err != nil {
			t.Fatalf("testenv: %s base layout: %v", name, err)
		}
	}
	if toolchainLayouts.dirs == nil {
		toolchainLayouts.dirs = map[string]string{}
	}
	toolchainLayouts.dirs[name] = dir
	return dir
}
