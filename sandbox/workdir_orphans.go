package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// sharedWorkBase holds the work directories of stores whose own directory
// the sandbox's unprivileged uid cannot reach (see workDirFor), one per
// store, named after a hash of the store's root.
const sharedWorkBase = "/var/tmp/dsbuild-sandbox"

// storeRootFile, in a work directory under sharedWorkBase, names the store
// the directory belongs to, so that the directory can be removed once that
// store is gone.
const storeRootFile = "store-root"

// noteStoreRoot records in wd (under sharedWorkBase) which store it serves,
// and removes the work directories of stores that no longer exist: unpacked
// images are gigabytes, and a store deleted by hand (or a test's temporary
// store) would otherwise leave them behind for good.
func noteStoreRoot(wd, storeRoot string) {
	p := filepath.Join(wd, storeRootFile)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		_ = os.WriteFile(p, []byte(storeRoot+"\n"), 0o644)
	}
	removeOrphanWorkDirs(filepath.Dir(wd), wd)
}

// removeOrphanWorkDirs removes the work directories under base (except
// keep) whose recorded store no longer exists and that no process uses (no
// one holds their users lock; see claimWorkDir). Directories without a
// record are left alone.
func removeOrphanWorkDirs(base, keep string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		wd := filepath.Join(base, e.Name())
		if !e.IsDir() || wd == keep {
			continue
		}
		b, err := os.ReadFile(filepath.Join(wd, storeRootFile))
		if err != nil {
			continue
		}
		root := strings.TrimSpace(string(b))
		if root == "" {
			continue
		}
		if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		f, err := os.OpenFile(filepath.Join(wd, usersLock), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			removeAll(wd)
		}
		f.Close()
	}
}
