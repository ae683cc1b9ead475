package llm

import (
	"sync"

	"github.com/dsbuild/dsbuild/cache"
)

// replyCacheBytes bounds the decoded replies a Client keeps in memory.
const replyCacheBytes = 64 << 20

// replyCache keeps decoded reply blobs by digest, so a hit costs a memo
// lookup (which also records the key for the build) but no blob read,
// decompression, verification or JSON decoding. Blobs are immutable, so an
// entry never goes stale; the memo lookup still decides whether there is a
// hit at all. Eviction is first-in first-out.
type replyCache struct {
	mu    sync.Mutex
	m     map[cache.Digest]replyEntry
	order []cache.Digest
	bytes int
}

type replyEntry struct {
	st   stored
	size int
}

func (rc *replyCache) get(d cache.Digest) (stored, bool) {
	rc.mu.Lock()
	e, ok := rc.m[d]
	rc.mu.Unlock()
	return e.st, ok
}

func (rc *replyCache) put(d cache.Digest, st stored, size int) {
	if size > replyCacheBytes/16 {
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.m == nil {
		rc.m = make(map[cache.Digest]replyEntry)
	}
	if _, ok := rc.m[d]; ok {
		return
	}
	for rc.bytes+size > replyCacheBytes && len(rc.order) > 0 {
		old := rc.order[0]
		rc.order = rc.order[1:]
		rc.bytes -= rc.m[old].size
		delete(rc.m, old)
	}
	rc.m[d] = replyEntry{st: st, size: size}
	rc.order = append(rc.order, d)
	rc.bytes += size
}
