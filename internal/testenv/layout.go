package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var (
	pythonLayoutOnce sync.Once
	pythonLayoutDir  string
	pythonLayoutErr  error
)

// PythonLayout returns an OCI image layout of the DebianRootfs (python3,
// pytest, git and patch) as a one-layer image with ImageEnv and working
// directory /testbed, made once and kept in the test cache. Recipes in
// tests name it as their environment (`layout: DIR`), so no test but
// testenv's own runs mmdebstrap. The folder is named after the rootfs,
// which is named after its packages, so a change of packages makes a new
// layout; test processes of several packages may make it at once.
func PythonLayout(t *testing.T) string {
	t.Helper()
	pythonLayoutOnce.Do(func() {
		rootfs := DebianRootfs(t)
		dir := filepath.Join(CacheDir(), "python-layout-"+strings.TrimSuffix(filepath.Base(rootfs), ".tar"))
		if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
			pythonLayoutDir = dir
			return
		}
		pythonLayoutDir, pythonLayoutErr = writePythonLayout(rootfs, dir)
	})
	if pythonLayoutErr != nil {
		t.Fatalf("python base layout: %v", pythonLayoutErr)
	}
	return pythonLayoutDir
}

func writePythonLayout(rootfs, dir string) (string, error) {
	layer, err := tarball.LayerFromFile(rootfs, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return "", err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return "", err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = runtime.GOARCH, "linux"
	cfg.Config = v1.Config{Env: ImageEnv, WorkingDir: "/testbed"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return "", err
	}
	if err := p.AppendImage(img); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(dir, "index.json")); serr != nil {
			return "", err
		}
	}
	return dir, nil
}
