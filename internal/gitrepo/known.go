package gitrepo

import (
	"sync"

	"github.com/dsbuild/dsbuild/cache"
)

// knownLimit bounds each of knownIDs' tables; a full table is emptied.
const knownLimit = 1 << 20

// treeID is the git id of a store tree and whether git leaves it out
// (no file below it).
type treeID struct {
	id    ID
	empty bool
}

// knownIDs remembers git ids of store blobs and trees by store digest. A
// store digest names the content (for a tree: names, types, exec bits,
// targets and the digests below), so an id holds in every store.
type knownIDs struct {
	mu    sync.Mutex
	blobs map[cache.Digest]ID
	trees map[cache.Digest]treeID
}

// known is the process's table.
var known = &knownIDs{blobs: map[cache.Digest]ID{}, trees: map[cache.Digest]treeID{}}

func (k *knownIDs) blob(d cache.Digest) (ID, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, ok := k.blobs[d]
	return id, ok
}

func (k *knownIDs) putBlob(d cache.Digest, id ID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.blobs) >= knownLimit {
		clear(k.blobs)
	}
	k.blobs[d] = id
}

func (k *knownIDs) tree(d cache.Digest) (treeID, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.trees[d]
	return t, ok
}

func (k *knownIDs) putTree(d cache.Digest, t treeID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.trees) >= knownLimit {
		clear(k.trees)
	}
	k.trees[d] = t
}
