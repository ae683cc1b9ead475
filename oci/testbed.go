package oci

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// TreeAt returns the tree at the absolute directory at (e.g. "/testbed")
// in img, the inverse of WithTree: it reads the image's top layers that lie
// wholly under at, lower first, honouring OCI whiteouts, and stops at the
// first layer (from the top) with an entry elsewhere. It fails if the top
// layer has entries outside at. Only uncompressed layer blobs are read; the
// result is memoised by the layers read.
func TreeAt(ctx context.Context, store *cache.Store, img schema.Image, at string) (cache.Digest, error) {
	if !strings.HasPrefix(at, "/") || path.Clean(at) != at || at == "/" {
		return cache.Digest{}, fmt.Errorf("image tree: location %q must be a clean absolute path below /", at)
	}
	key, err := cache.KeyOf(struct {
		Kind    string   `json:"kind"`
		Version string   `json:"version"`
		Layers  []string `json:"layers"`
		At      string   `json:"at"`
	}{"oci.tree_at", formatVersion, img.Layers, at})
	if err != nil {
		return cache.Digest{}, err
	}
	if d, ok, err := store.MemoGet(ctx, key); err == nil && ok {
		if _, err := store.GetTree(d); err == nil {
			return d, nil
		}
	}
	rel := strings.TrimPrefix(at, "/")
	root := &treeNode{children: map[string]*treeNode{}}
	var confined [][]layerEntry
	for i := len(img.Layers) - 1; i >= 0; i-- {
		entries, ok, err := readConfined(store, img.Layers[i], rel)
		if err != nil {
			return cache.Digest{}, fmt.Errorf("image %s: layer %d: %w", img.Digest, i, err)
		}
		if !ok {
			break
		}
		confined = append(confined, entries)
	}
	if len(confined) == 0 {
		return cache.Digest{}, fmt.Errorf("image %s: its top layer is not confined to %s (not made by WithTree)", img.Digest, at)
	}
	for i := len(confined) - 1; i >= 0; i-- {
		for _, e := range confined[i] {
			if err := root.apply(e); err != nil {
				return cache.Digest{}, fmt.Errorf("image %s: %s: %w", img.Digest, e.path, err)
			}
		}
	}
	d, err := root.put(store)
	if err != nil {
		return cache.Digest{}, err
	}
	return d, store.MemoPut(ctx, key, d)
}

// layerEntry is one tar entry below the directory, path relative to it.
type layerEntry struct {
	path  string
	entry cache.TreeEntry // Type "" for a whiteout
}

// readConfined reads the uncompressed layer blob l and returns its entries
// below rel (relative paths, file contents put in the store), or ok false
// as soon as an entry lies elsewhere.
func readConfined(store *cache.Store, l, rel string) ([]layerEntry, bool, error) {
	d, err := cache.ParseDigest(l)
	if err != nil {
		return nil, false, fmt.Errorf("bad layer digest %q: %w", l, err)
	}
	rc, err := store.Open(d)
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []layerEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, true, nil
		}
		if err != nil {
			return nil, false, err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if h.Typeflag == tar.TypeDir && (name == rel || strings.HasPrefix(rel, name+"/")) {
			continue // the directory itself or one above it
		}
		p, ok := strings.CutPrefix(name, rel+"/")
		if !ok {
			return nil, false, nil
		}
		dir, base := path.Split(p)
		switch {
		case base == ".wh..wh..opq":
			out = append(out, layerEntry{path: strings.TrimSuffix(dir, "/") + "/"})
		case strings.HasPrefix(base, ".wh."):
			out = append(out, layerEntry{path: dir + strings.TrimPrefix(base, ".wh.")})
		case h.Typeflag == tar.TypeDir:
			out = append(out, layerEntry{path: p, entry: cache.TreeEntry{Type: cache.TypeDir}})
		case h.Typeflag == tar.TypeSymlink:
			out = append(out, layerEntry{path: p, entry: cache.TreeEntry{Type: cache.TypeSymlink, Target: h.Linkname}})
		case h.Typeflag == tar.TypeReg:
			fd, n, err := store.PutStream(tr)
			if err != nil {
				return nil, false, err
			}
			out = append(out, layerEntry{path: p, entry: cache.TreeEntry{Type: cache.TypeFile, Exec: h.Mode&0o111 != 0, Size: n, Digest: fd}})
		default:
			return nil, false, fmt.Errorf("%s: unsupported tar entry type %q", h.Name, h.Typeflag)
		}
	}
}

// treeNode is a directory (children set) or another entry being assembled.
type treeNode struct {
	entry    cache.TreeEntry
	children map[string]*treeNode
}

// apply adds, replaces or (whiteout) removes one entry. A whiteout path
// ending in "/" is opaque: it empties that directory ("/" alone: the root).
func (n *treeNode) apply(e layerEntry) error {
	parts := strings.Split(strings.TrimSuffix(e.path, "/"), "/")
	if strings.TrimSuffix(e.path, "/") == "" {
		parts = nil
	}
	dir := n
	last := len(parts) - 1
	if e.entry.Type == "" && strings.HasSuffix(e.path, "/") {
		last = len(parts) // opaque: walk to the directory itself
	}
	for _, name := range parts[:last] {
		child := dir.children[name]
		if child == nil || child.children == nil {
			if e.entry.Type == "" {
				return nil // whiteout of something absent
			}
			child = &treeNode{entry: cache.TreeEntry{Type: cache.TypeDir}, children: map[string]*treeNode{}}
			dir.children[name] = child
		}
		dir = child
	}
	switch {
	case e.entry.Type == "" && last == len(parts):
		dir.children = map[string]*treeNode{}
	case e.entry.Type == "":
		delete(dir.children, parts[last])
	case e.entry.Type == cache.TypeDir:
		if c := dir.children[parts[last]]; c == nil || c.children == nil {
			dir.children[parts[last]] = &treeNode{entry: e.entry, children: map[string]*treeNode{}}
		}
	default:
		dir.children[parts[last]] = &treeNode{entry: e.entry}
	}
	return nil
}

// put stores the directory n and everything below it.
func (n *treeNode) put(store *cache.Store) (cache.Digest, error) {
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	t := &cache.Tree{Entries: make([]cache.TreeEntry, 0, len(names))}
	for _, name := range names {
		c := n.children[name]
		e := c.entry
		e.Name = name
		if c.children != nil {
			d, err := c.put(store)
			if err != nil {
				return cache.Digest{}, err
			}
			e.Type, e.Digest = cache.TypeDir, d
		}
		t.Entries = append(t.Entries, e)
	}
	return store.PutTree(t)
}
