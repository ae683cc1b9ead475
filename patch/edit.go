package patch

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
)

// Edit returns the tree root with changes applied, touching only the
// directories on the changed paths (the rest of the tree is shared by
// digest). changes maps a clean slash-separated relative path to the entry to
// put there (a file whose blob is already stored, or a symlink; the entry's
// Name is ignored) or to nil to delete what is there. Deleting a path that
// does not exist is not an error. Directories left empty by deletions are
// removed, as git would not record them. A zero root means the empty tree.
func Edit(store *cache.Store, root cache.Digest, changes map[string]*cache.TreeEntry) (cache.Digest, error) {
	for p, e := range changes {
		if p == "" || p == "." || path.Clean(p) != p || strings.HasPrefix(p, "/") || p == ".." || strings.HasPrefix(p, "../") {
			return cache.Digest{}, fmt.Errorf("edit tree: invalid path %q: want a clean relative path", p)
		}
		if e != nil && e.Type != cache.TypeFile && e.Type != cache.TypeSymlink {
			return cache.Digest{}, fmt.Errorf("edit tree: %s: entry type %q: want file or symlink", p, e.Type)
		}
	}
	d, _, err := edit(store, root, "", changes)
	return d, err
}

// edit applies changes (paths relative to dir) to the tree d and reports
// whether the result is empty.
func edit(store *cache.Store, d cache.Digest, dir string, changes map[string]*cache.TreeEntry) (cache.Digest, bool, error) {
	entries := map[string]cache.TreeEntry{}
	if !d.IsZero() {
		t, err := store.GetTree(d)
		if err != nil {
			return cache.Digest{}, false, fmt.Errorf("edit tree: reading %s: %w", displayDir(dir), err)
		}
		for _, e := range t.Entries {
			entries[e.Name] = e
		}
	}
	direct := map[string]*cache.TreeEntry{}
	deeper := map[string]map[string]*cache.TreeEntry{}
	for p, e := range changes {
		first, rest, ok := strings.Cut(p, "/")
		if !ok {
			direct[first] = e
			continue
		}
		if deeper[first] == nil {
			deeper[first] = map[string]*cache.TreeEntry{}
		}
		deeper[first][rest] = e
	}
	for name, e := range direct {
		if e == nil {
			delete(entries, name)
			continue
		}
		ne := *e
		ne.Name = name
		entries[name] = ne
	}
	names := make([]string, 0, len(deeper))
	for name := range deeper {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sub := deeper[name]
		var subDigest cache.Digest
		if e, ok := entries[name]; ok {
			if e.Type != cache.TypeDir {
				if allDeletes(sub) {
					continue // deleting below a file: nothing there
				}
				return cache.Digest{}, false, fmt.Errorf("edit tree: %s is a %s, not a directory", join(dir, name), e.Type)
			}
			subDigest = e.Digest
		} else if allDeletes(sub) {
			continue
		}
		nd, empty, err := edit(store, subDigest, join(dir, name), sub)
		if err != nil {
			return cache.Digest{}, false, err
		}
		if empty {
			delete(entries, name)
			continue
		}
		entries[name] = cache.TreeEntry{Name: name, Type: cache.TypeDir, Digest: nd}
	}
	t := &cache.Tree{Entries: make([]cache.TreeEntry, 0, len(entries))}
	for _, e := range entries {
		t.Entries = append(t.Entries, e)
	}
	nd, err := store.PutTree(t)
	if err != nil {
		return cache.Digest{}, false, fmt.Errorf("edit tree: storing %s: %w", displayDir(dir), err)
	}
	return nd, len(t.Entries) == 0, nil
}

func allDeletes(m map[string]*cache.TreeEntry) bool {
	for _, e := range m {
		if e != nil {
			return false
		}
	}
	return true
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func displayDir(dir string) string {
	if dir == "" {
		return "the root directory"
	}
	return dir
}
