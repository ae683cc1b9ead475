package cache

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Entry types in a Tree.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Tree is one directory of a Merkle tree: its entries sorted by name. A file
// entry names the blob of its contents, a directory entry the blob of its own
// Tree, and a symlink entry carries its target. Only the executable bit of a
// file's mode is kept, so "same files" means "same digest" on every machine.
type Tree struct {
	Entries []TreeEntry `json:"entries"`
}

// TreeEntry is one name in a Tree.
type TreeEntry struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Exec   bool   `json:"exec,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Digest Digest `json:"digest,omitzero"`
	Target string `json:"target,omitempty"`
}

// File is the content of one file for PutFiles.
type File struct {
	Data []byte
	Exec bool
}

func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid name %q in tree", name)
	}
	return nil
}

// PutTree validates t, sorts its entries and stores it. Names must be unique
// and plain (no slashes, no "." or "..").
func (s *Store) PutTree(t *Tree) (Digest, error) {
	sort.Slice(t.Entries, func(i, j int) bool { return t.Entries[i].Name < t.Entries[j].Name })
	for i, e := range t.Entries {
		if err := validName(e.Name); err != nil {
			return Digest{}, err
		}
		if i > 0 && t.Entries[i-1].Name == e.Name {
			return Digest{}, fmt.Errorf("duplicate name %q in tree", e.Name)
		}
		switch e.Type {
		case TypeFile, TypeDir:
			if e.Digest.IsZero() {
				return Digest{}, fmt.Errorf("tree entry %q has no digest", e.Name)
			}
		case TypeSymlink:
		default:
			return Digest{}, fmt.Errorf("tree entry %q has unknown type %q", e.Name, e.Type)
		}
	}
	if t.Entries == nil {
		t.Entries = []TreeEntry{}
	}
	b, err := Canonical(t)
	if err != nil {
		return Digest{}, err
	}
	return s.Put(b)
}

// GetTree reads and validates the tree d.
func (s *Store) GetTree(d Digest) (*Tree, error) {
	b, err := s.Get(d)
	if err != nil {
		return nil, err
	}
	var t Tree
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("cache: %s is not a tree: %w", d, err)
	}
	for i, e := range t.Entries {
		if err := validName(e.Name); err != nil {
			return nil, fmt.Errorf("cache: tree %s: %w", d, err)
		}
		if i > 0 && t.Entries[i-1].Name >= e.Name {
			return nil, fmt.Errorf("cache: tree %s: entries not sorted or not unique", d)
		}
		switch e.Type {
		case TypeFile, TypeDir:
			if e.Digest.IsZero() {
				return nil, fmt.Errorf("cache: tree %s: entry %q has no digest", d, e.Name)
			}
		case TypeSymlink:
		default:
			return nil, fmt.Errorf("cache: tree %s: entry %q has unknown type %q", d, e.Name, e.Type)
		}
	}
	return &t, nil
}

// EmptyTree stores and returns the digest of the empty directory.
func (s *Store) EmptyTree() (Digest, error) { return s.PutTree(&Tree{}) }

// Snapshot stores the directory dir (files, executable bits, symlinks and
// subdirectories; other file types are an error) and returns its tree digest.
func (s *Store) Snapshot(dir string) (Digest, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return Digest{}, fmt.Errorf("snapshot: %w", err)
	}
	if !fi.IsDir() {
		return Digest{}, fmt.Errorf("snapshot: %s is not a directory", dir)
	}
	return s.snapshotDir(dir)
}

func (s *Store) snapshotDir(dir string) (Digest, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return Digest{}, fmt.Errorf("snapshot: %w", err)
	}
	t := &Tree{Entries: make([]TreeEntry, 0, len(des))}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		switch typ := de.Type(); {
		case typ.IsDir():
			d, err := s.snapshotDir(p)
			if err != nil {
				return Digest{}, err
			}
			t.Entries = append(t.Entries, TreeEntry{Name: de.Name(), Type: TypeDir, Digest: d})
		case typ&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return Digest{}, fmt.Errorf("snapshot: %w", err)
			}
			t.Entries = append(t.Entries, TreeEntry{Name: de.Name(), Type: TypeSymlink, Target: target})
		case typ.IsRegular():
			fi, err := de.Info()
			if err != nil {
				return Digest{}, fmt.Errorf("snapshot: %w", err)
			}
			d, n, err := s.putFile(p, fi.Size())
			if err != nil {
				return Digest{}, err
			}
			t.Entries = append(t.Entries, TreeEntry{Name: de.Name(), Type: TypeFile, Exec: fi.Mode()&0o111 != 0, Size: n, Digest: d})
		default:
			return Digest{}, fmt.Errorf("snapshot: %s is a %s; only files, directories and symlinks can be snapshotted", p, typ)
		}
	}
	return s.PutTree(t)
}

func (s *Store) putFile(p string, size int64) (Digest, int64, error) {
	if size <= 4<<20 {
		b, err := os.ReadFile(p)
		if err != nil {
			return Digest{}, 0, fmt.Errorf("snapshot: %w", err)
		}
		d, err := s.Put(b)
		return d, int64(len(b)), err
	}
	f, err := os.Open(p)
	if err != nil {
		return Digest{}, 0, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	// Hash first: a large file already stored (an image layer, say) costs
	// one read instead of a compression.
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Digest{}, 0, fmt.Errorf("snapshot: %w", err)
	}
	var d Digest
	h.Sum(d[:0])
	if s.hasLocal(d) {
		return d, n, s.upload(d)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Digest{}, 0, fmt.Errorf("snapshot: %w", err)
	}
	return s.PutStream(f)
}

// Materialize writes the tree d into dir, which must not exist or be empty.
func (s *Store) Materialize(d Digest, dir string) error {
	if des, err := os.ReadDir(dir); err == nil && len(des) > 0 {
		return fmt.Errorf("materialize: %s is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	return s.materialize(d, dir)
}

func (s *Store) materialize(d Digest, dir string) error {
	t, err := s.GetTree(d)
	if err != nil {
		return err
	}
	for _, e := range t.Entries {
		p := filepath.Join(dir, e.Name)
		switch e.Type {
		case TypeDir:
			if err := os.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("materialize: %w", err)
			}
			if err := s.materialize(e.Digest, p); err != nil {
				return err
			}
		case TypeSymlink:
			if err := os.Symlink(e.Target, p); err != nil {
				return fmt.Errorf("materialize: %w", err)
			}
		case TypeFile:
			if err := s.writeFile(e, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) writeFile(e TreeEntry, p string) error {
	mode := os.FileMode(0o644)
	if e.Exec {
		mode = 0o755
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	r, err := s.Open(e.Digest)
	if err != nil {
		f.Close()
		return err
	}
	_, err = io.Copy(f, r)
	r.Close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("materialize %s: %w", p, err)
	}
	return os.Chmod(p, mode) // not subject to umask
}

// PutFiles stores a tree built from a flat map of slash-separated relative
// paths to file contents; intermediate directories are implied.
func (s *Store) PutFiles(files map[string]File) (Digest, error) {
	type dirNode struct {
		files map[string]TreeEntry
		dirs  map[string]*dirNode
	}
	newDir := func() *dirNode { return &dirNode{files: map[string]TreeEntry{}, dirs: map[string]*dirNode{}} }
	root := newDir()
	for p, f := range files {
		clean := path.Clean(p)
		if clean != p || strings.HasPrefix(p, "/") || p == "." || strings.HasPrefix(p, "../") {
			return Digest{}, fmt.Errorf("invalid path %q: want a clean relative path", p)
		}
		parts := strings.Split(p, "/")
		n := root
		for _, part := range parts[:len(parts)-1] {
			if _, clash := n.files[part]; clash {
				return Digest{}, fmt.Errorf("path %q: %q is a file", p, part)
			}
			c, ok := n.dirs[part]
			if !ok {
				c = newDir()
				n.dirs[part] = c
			}
			n = c
		}
		name := parts[len(parts)-1]
		if _, clash := n.dirs[name]; clash {
			return Digest{}, fmt.Errorf("path %q is a directory", p)
		}
		d, err := s.Put(f.Data)
		if err != nil {
			return Digest{}, err
		}
		n.files[name] = TreeEntry{Name: name, Type: TypeFile, Exec: f.Exec, Size: int64(len(f.Data)), Digest: d}
	}
	var put func(n *dirNode) (Digest, error)
	put = func(n *dirNode) (Digest, error) {
		t := &Tree{}
		for _, e := range n.files {
			t.Entries = append(t.Entries, e)
		}
		for name, c := range n.dirs {
			d, err := put(c)
			if err != nil {
				return Digest{}, err
			}
			t.Entries = append(t.Entries, TreeEntry{Name: name, Type: TypeDir, Digest: d})
		}
		return s.PutTree(t)
	}
	return put(root)
}

// WalkFunc is called by Walk for every entry, with its slash-separated path
// relative to the tree's root.
type WalkFunc func(path string, e TreeEntry) error

// Walk calls fn for every entry of the tree d, depth first, in name order.
func (s *Store) Walk(d Digest, fn WalkFunc) error { return s.walk(d, "", fn) }

func (s *Store) walk(d Digest, prefix string, fn WalkFunc) error {
	t, err := s.GetTree(d)
	if err != nil {
		return err
	}
	for _, e := range t.Entries {
		p := e.Name
		if prefix != "" {
			p = prefix + "/" + e.Name
		}
		if err := fn(p, e); err != nil {
			return err
		}
		if e.Type == TypeDir {
			if err := s.walk(e.Digest, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// Files returns every file of the tree d as a flat map of relative path to
// entry (symlinks included, directories implied).
func (s *Store) Files(d Digest) (map[string]TreeEntry, error) {
	out := map[string]TreeEntry{}
	err := s.Walk(d, func(p string, e TreeEntry) error {
		if e.Type != TypeDir {
			out[p] = e
		}
		return nil
	})
	return out, err
}

// ReadFile returns the content of the file at the slash-separated path p in
// the tree d.
func (s *Store) ReadFile(d Digest, p string) ([]byte, error) {
	parts := strings.Split(path.Clean(p), "/")
	cur := d
	for i, part := range parts {
		t, err := s.GetTree(cur)
		if err != nil {
			return nil, err
		}
		j := sort.Search(len(t.Entries), func(j int) bool { return t.Entries[j].Name >= part })
		if j == len(t.Entries) || t.Entries[j].Name != part {
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		e := t.Entries[j]
		last := i == len(parts)-1
		switch {
		case last && e.Type == TypeFile:
			return s.Get(e.Digest)
		case !last && e.Type == TypeDir:
			cur = e.Digest
		default:
			return nil, fmt.Errorf("%s: not a file", p)
		}
	}
	return nil, errors.New("unreachable")
}
