// Package testenv holds expensive test fixtures shared by the project's test
// suites: a Debian root file system built with mmdebstrap (python3,
// pytest, git and patch included) and helpers that turn it into a schema.Image in a store.
//
// Fixtures are built once and kept under $DSBUILD_TEST_CACHE (default
// <os.TempDir()>/dsbuild-test-cache), guarded by a file lock so that test
// binaries of several packages running at once build each fixture only once.
// A missing tool fails the test with what to install; nothing here skips.
//
// This package is for tests only and must not be imported by non-test code.
package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// DebianSuite, DebianMirror and DebianPackages describe the rootfs that
// DebianRootfs builds. The mirror is the one apt on the CI machines uses.
const (
	DebianSuite  = "bookworm"
	DebianMirror = "http://deb.debian.org/debian"
)

// DebianPackages are the packages DebianRootfs installs on top of the
// essential variant: what a recipe's Debian environment with python3 and
// python3-pytest gets, git and patch included (see oci.DebianSpec).
var DebianPackages = []string{"git", "patch", "python3", "python3-pytest"}

// ImageEnv is the environment of the image returned by Image.
var ImageEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8",
}

// CacheDir returns the directory where fixtures are kept:
// $DSBUILD_TEST_CACHE or <os.TempDir()>/dsbuild-test-cache.
func CacheDir() string {
	if d := os.Getenv("DSBUILD_TEST_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "dsbuild-test-cache")
}

var rootfsOnce struct {
	sync.Mutex
	path string
}

// DebianRootfs returns the path of a tarball of a Debian root file system
// made by `SOURCE_DATE_EPOCH=0 mmdebstrap --variant=essential
// --include=git,patch,python3,python3-pytest bookworm out.tar <mirror>`. It is built
// on first use (about 20 s with a reachable Debian mirror) and reused by
// later tests and test runs. A missing mmdebstrap fails the test.
func DebianRootfs(tb testing.TB) (tarPath string) {
	tb.Helper()
	rootfsOnce.Lock()
	defer rootfsOnce.Unlock()
	if rootfsOnce.path != "" {
		return rootfsOnce.path
	}
	p, err := buildDebianRootfs(DebianPackages)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	rootfsOnce.path = p
	return p
}

// buildDebianRootfs makes (or finds in CacheDir) the essential variant with
// packages installed; the file is named after the arguments.
func buildDebianRootfs(packages []string) (string, error) {
	args := []string{
		"--variant=essential",
		"--include=" + strings.Join(packages, ","),
		DebianSuite,
	}
	sum := sha256.Sum256([]byte(strings.Join(append(args, DebianMirror), "\x00")))
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "debian-"+DebianSuite+"-"+hex.EncodeToString(sum[:6])+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	mm, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return "", fmt.Errorf("mmdebstrap not found: install it with `apt-get install mmdebstrap` (needed to build the Debian test image)")
	}
	unlock, err := lockFile(out + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil { // built by another process meanwhile
		return out, nil
	}
	tmp := fmt.Sprintf("%s.tmp-%d.tar", out, os.Getpid())
	defer os.Remove(tmp)
	cmd := exec.Command(mm, append(args, tmp, DebianMirror)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mmdebstrap %s failed: %v\n%s", strings.Join(args, " "), err, tail(b, 4000))
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

func lockFile(p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Image stores the DebianRootfs tarball in store as the single layer of an
// image and returns it. The image's digest is the layer's digest, which is
// enough to identify it for tests; WorkingDir is /testbed.
func Image(tb testing.TB, store *cache.Store) schema.Image {
	tb.Helper()
	return rootfsImage(tb, store, DebianRootfs(tb), "dsbuild-test/debian-"+DebianSuite+"-python3")
}

// rootfsImage stores the rootfs tarball p as the single layer of an image
// named ref.
func rootfsImage(tb testing.TB, store *cache.Store, p, ref string) schema.Image {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	defer f.Close()
	d, _, err := store.PutStream(f)
	if err != nil {
		tb.Fatalf("testenv: storing %s: %v", p, err)
	}
	return schema.Image{
		Digest:     d.String(),
		Layers:     []string{d.String()},
		Env:        append([]string(nil), ImageEnv...),
		WorkingDir: "/testbed",
		Ref:        ref,
	}
}

// Store opens a fresh store in a new temporary directory that, unlike
// t.TempDir(), every uid can reach (the sandbox runs programs as an
// unprivileged uid, which must reach unpacked images and workspaces below
// the store). It is closed and removed when the test ends.
func Store(tb testing.TB) *cache.Store {
	tb.Helper()
	dir, err := os.MkdirTemp("", "dsbuild-store-")
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	st, err := cache.Open(dir)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		st.Close()
		removeAll(dir)
	})
	return st
}

// removeAll removes dir even where a sandboxed program left directories
// without write permission.
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if de != nil && de.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}
