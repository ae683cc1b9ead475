package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
)

// A store the sandbox's uid cannot reach gets a work directory under
// /var/tmp; once the store is deleted, the next Runner removes that
// directory (unpacked images are gigabytes).
func TestWorkDirOfDeletedStoreIsRemoved(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: only root's sandboxes use work directories under " + sharedWorkBase)
	}
	open := func() (*cache.Store, string) {
		dir := filepath.Join(t.TempDir(), "store") // t.TempDir is 0700: not searchable by others
		st, err := cache.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(st, Options{Jobs: 1})
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(r.workDir) != sharedWorkBase {
			t.Fatalf("work directory %s is not under %s", r.workDir, sharedWorkBase)
		}
		return st, r.workDir
	}
	first, firstWD := open()
	t.Cleanup(func() { removeAll(firstWD) })
	if b, err := os.ReadFile(filepath.Join(firstWD, storeRootFile)); err != nil || string(b) != first.Root()+"\n" {
		t.Fatalf("%s: %q, %v; want the store's root", storeRootFile, b, err)
	}
	first.Close()
	if err := os.RemoveAll(first.Root()); err != nil {
		t.Fatal(err)
	}
	second, secondWD := open()
	defer second.Close()
	t.Cleanup(func() { removeAll(secondWD) })
	if _, err := os.Stat(firstWD); !os.IsNotExist(err) {
		t.Errorf("the deleted store's work directory %s is still there (%v)", firstWD, err)
	}
	if _, err := os.Stat(secondWD); err != nil {
		t.Errorf("the live store's work directory: %v", err)
	}
}
