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

var (
	nodeLayoutOnce sync.Once
	nodeLayoutDir  string
	nodeLayoutErr  error
)

// NodeLayout returns an OCI image layout of a Debian rootfs with
// NodePackages (built once with mmdebstrap, about 40 MB of packages, and
// kept in CacheDir), as a one-layer image with ImageEnv and working
// directory /testbed, as PythonLayout does for DebianRootfs. Recipes of
// JavaScript tests name it as their environment (`layout: DIR`).
func NodeLayout(t *testing.T) string {
	t.Helper()
	nodeLayoutOnce.Do(func() {
		rootfs, err := buildDebianRootfs(NodePackages)
		if err != nil {
			nodeLayoutErr = err
			return
		}
		dir := filepath.Join(CacheDir(), "node-layout-"+strings.TrimSuffix(filepath.Base(rootfs), ".tar"))
		if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
			nodeLayoutDir = dir
			return
		}
		nodeLayoutDir, nodeLayoutErr = writePythonLayout(rootfs, dir)
	})
	if nodeLayoutErr != nil {
		t.Fatalf("node base layout: %v", nodeLayoutErr)
	}
	return nodeLayoutDir
}
