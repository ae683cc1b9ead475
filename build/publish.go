package build

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/reap"
)

// MarkerFile is the file in a published folder that names the tree it
// holds, written once the rest is on disk.
const MarkerFile = ".dsbuild-tree"

// PublishedTree returns the tree digest the marker of the published folder
// dir names.
func PublishedTree(dir string) (cache.Digest, error) {
	b, err := os.ReadFile(filepath.Join(dir, MarkerFile))
	if err != nil {
		return cache.Digest{}, err
	}
	return cache.ParseDigest(strings.TrimSpace(string(b)))
}

// Publish writes the tree d to dir, replacing what was there in one rename.
// Every file gets the modification time PublishedFileTime. A dir that
// already holds d is left alone: its marker names d, and it has exactly the
// tree's entries, with the tree's types, sizes and executable bits, and
// every file still has PublishedFileTime. A folder with a file deleted,
// added, or edited since (which sets its modification time) is written
// again.
//
// The new folder is written beside dir as <dir>.tmp-<pid>-<random> (locked
// while in use) and the old one moved aside as <dir>.old-<pid>-<random>
// before it is removed; Publish first removes such leftovers of killed
// processes (see ReclaimPublished).
func Publish(store *cache.Store, d cache.Digest, dir string) error {
	dir = filepath.Clean(dir)
	ReclaimPublished(dir)
	if intactPublished(store, dir, d) {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	work, err := reap.Create(parent, filepath.Base(dir)+tmpInfix, 0o755)
	if err != nil {
		return err
	}
	defer work.Remove() // a no-op once renamed into place
	tmp := work.Path
	if err := store.Materialize(d, tmp); err != nil {
		return err
	}
	if err := setFileTimes(tmp); err != nil {
		return err
	}
	// The files must be on disk before the marker says they are complete.
	if err := syncFS(tmp); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, MarkerFile), []byte(d.String()+"\n"), 0o644); err != nil {
		return err
	}
	old := filepath.Join(parent, filepath.Base(dir)+oldInfix+strings.TrimPrefix(filepath.Base(tmp), filepath.Base(dir)+tmpInfix))
	hadOld := os.Rename(dir, old) == nil
	if err := os.Rename(tmp, dir); err != nil {
		if hadOld {
			os.Rename(old, dir)
		}
		return fmt.Errorf("publishing %s: %w", dir, err)
	}
	if hadOld {
		reap.RemoveAll(old)
	}
	return syncFS(dir)
}

// The infixes of Publish's temporary folders: <dir>.tmp-<pid>-<random>
// (the new folder being written) and <dir>.old-<pid>-<random> (the old
// one, moved aside).
const (
	tmpInfix = ".tmp-"
	oldInfix = ".old-"
)

// ReclaimPublished removes the temporary folders that killed processes
// left beside the published folder dir (see Publish): those named after a
// process that is dead and not locked by anyone, so never a live build's.
// It returns the paths it removed.
func ReclaimPublished(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	base := filepath.Base(dir)
	return reap.Reclaim(filepath.Dir(dir), base+tmpInfix, base+oldInfix)
}

// PublishedFileTime is the modification time of every file Publish writes:
// fixed, so that the folder's bytes and metadata are the same in every
// build, and so that a file edited since (which gets the current time)
// stands out. It is 1980-01-01, the earliest time a zip archive can hold.
var PublishedFileTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// setFileTimes gives every regular file below dir PublishedFileTime.
func setFileTimes(dir string) error {
	return filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		return os.Chtimes(p, PublishedFileTime, PublishedFileTime)
	})
}

// intactPublished reports whether dir holds d as Publish left it.
func intactPublished(store *cache.Store, dir string, d cache.Digest) bool {
	got, err := PublishedTree(dir)
	if err != nil || got != d {
		return false
	}
	return sameAsTree(store, dir, d, true)
}

// sameAsTree compares the folder dir with the tree d, entry by entry.
func sameAsTree(store *cache.Store, dir string, d cache.Digest, root bool) bool {
	t, err := store.GetTree(d)
	if err != nil {
		return false
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	want := len(t.Entries)
	if root {
		want++ // the marker
	}
	if len(des) != want {
		return false
	}
	for _, e := range t.Entries {
		p := filepath.Join(dir, e.Name)
		fi, err := os.Lstat(p)
		if err != nil {
			return false
		}
		switch e.Type {
		case cache.TypeDir:
			if !fi.IsDir() || !sameAsTree(store, p, e.Digest, false) {
				return false
			}
		case cache.TypeSymlink:
			if target, err := os.Readlink(p); err != nil || target != e.Target {
				return false
			}
		case cache.TypeFile:
			if !fi.Mode().IsRegular() || fi.Size() != e.Size || (fi.Mode()&0o100 != 0) != e.Exec || !fi.ModTime().Equal(PublishedFileTime) {
				return false
			}
		default:
			return false
		}
	}
	return true
}
