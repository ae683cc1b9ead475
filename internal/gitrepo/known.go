package gitrepo

import (
	"sync"

	"github.com/dsbuild/dsbuild/cache"
)

// knownLimit bounds each knownTable; a full table is emptied.
const knownLimit = 1 << 20

// treeID is the git id of a store tree and whether git leaves it out
// (no file below it).
type treeID struct {
	id    ID
	empty bool
}

// knownTable remembers git ids of store blobs or trees by store digest. A
// store digest names the content (for a tree: names, types, exec bits,
// targets and the digests below), so an id holds in every store. A table
// that reaches knownLimit entries is emptied.
type knownTable[V any] struct {
	mu sync.Mutex
	m  map[cache.Digest]V
}

func (k *knownTable[V]) get(d cache.Digest) (V, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[d]
	return v, ok
}

func (k *knownTable[V]) put(d cache.Digest, v V) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil || len(k.m) >= knownLimit {
		k.m = map[cache.Digest]V{}
	}
	k.m[d] = v
}

func (k *knownTable[V]) forget() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m = nil
}

// The process's tables.
var (
	knownBlobs knownTable[ID]
	knownTrees knownTable[treeID]
)
