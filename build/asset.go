package build

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sync"

	"github.com/dsbuild/dsbuild/cache"
)

// Asset is content compiled into dsbuild that shapes what a kind outputs: a
// script it runs in the sandbox, the prompt templates it sends a model. A
// kind lists the assets it reads in Kind.Assets, and the digest of their
// content enters every node key of the kind, so editing an asset re-runs
// exactly the nodes of the kinds that read it, with no version to bump by
// hand.
//
// The list is complete by construction: inside a running node, ReadFile
// fails for an asset the node's kind did not declare.
type Asset struct {
	name string

	mu    sync.RWMutex
	files map[string][]byte
	key   cache.Key
}

// NewAsset makes an asset called name (shown in keys and errors) of every
// regular file in fsys, typically an embed.FS. It reads them all at once;
// an unreadable file is a programming error and panics.
func NewAsset(name string, fsys fs.FS) *Asset {
	a := &Asset{name: name}
	a.load(fsys)
	return a
}

func (a *Asset) load(fsys fs.FS) {
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		files[p] = b
		return err
	})
	if err != nil {
		panic(fmt.Sprintf("build: asset %s: %v", a.name, err))
	}
	digests := make(map[string]cache.Digest, len(files))
	for p, b := range files {
		digests[p] = cache.DigestOf(b)
	}
	key, err := cache.KeyOf(digests)
	if err != nil {
		panic(err)
	}
	a.mu.Lock()
	a.files, a.key = files, key
	a.mu.Unlock()
}

// Name returns the asset's name.
func (a *Asset) Name() string { return a.name }

// Key returns the digest of the asset's content: every file's path and
// bytes.
func (a *Asset) Key() cache.Key {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.key
}

// Paths returns the asset's file paths, sorted.
func (a *Asset) Paths() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.Sorted(maps.Keys(a.files))
}

// ReadFile returns the content of the asset's file at path. Under a node's
// context it fails unless the node's kind declares the asset.
func (a *Asset) ReadFile(ctx context.Context, path string) ([]byte, error) {
	if err := a.Check(ctx); err != nil {
		return nil, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	b, ok := a.files[path]
	if !ok {
		return nil, fmt.Errorf("asset %s has no file %s", a.name, path)
	}
	return b, nil
}

// Check fails under a node's context unless the node's kind declares the
// asset; code that reads an asset's content some other way calls it first.
func (a *Asset) Check(ctx context.Context) error {
	if k, ok := ctx.Value(kindKey{}).(*Kind); ok && !slices.Contains(k.Assets, a) {
		return fmt.Errorf("stage kind %s reads asset %s but does not list it in Kind.Assets, so its content is not part of the kind's node keys", k.Name, a.name)
	}
	return nil
}

// Replace swaps the asset's content for that of fsys until restore is
// called. It is for tests that show which nodes an edit re-runs.
func (a *Asset) Replace(fsys fs.FS) (restore func()) {
	a.mu.RLock()
	old, oldKey := a.files, a.key
	a.mu.RUnlock()
	a.load(fsys)
	return func() {
		a.mu.Lock()
		a.files, a.key = old, oldKey
		a.mu.Unlock()
	}
}

// kindKey carries the running node's kind in its context.
type kindKey struct{}
