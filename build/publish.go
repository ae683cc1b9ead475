package build

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/cache"
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
func Publish(store *cache.Store, d cache.Digest, dir string) error {
	if intactPublished(store, dir, d) {
		return nil
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	var nonce [4]byte
	rand.Read(nonce[:])
	suffix := hex.EncodeToString(nonce[:])
	tmp := filepath.Clean(dir) + ".tmp-" + suffix
	if err := store.Materialize(d, tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := setFileTimes(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	// The files must be on disk before the marker says they are complete.
	if err := syncFS(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, MarkerFile), []byte(d.String()+"\n"), 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	old := filepath.Clean(dir) + ".old-" + suffix
	hadOld := os.Rename(dir, old) == nil
	if err := os.Rename(tmp, dir); err != nil {
		if hadOld {
			os.Rename(old, dir)
		}
		os.RemoveAll(tmp)
		return fmt.Errorf("publishing %s: %w", dir, err)
	}
	if hadOld {
		os.RemoveAll(old)
	}
	return syncFS(dir)
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
