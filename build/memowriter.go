package build

import (
	"sync"

	"github.com/dsbuild/dsbuild/cache"
)

// memoWriter makes node results durable in batches. A finished node's
// result blob is already stored; its memo entry waits here until the
// writer's goroutine takes every pending entry, makes the store durable
// once (one syncfs) and writes them all. Nothing in this build waits for
// the entry (downstream nodes get the result in memory); a crash before the
// batch is written loses only entries whose work the next build redoes.
type memoWriter struct {
	store *cache.Store

	mu      sync.Mutex
	pending []cache.MemoEntry
	err     error
	kick    chan struct{}
	done    chan struct{}
}

func newMemoWriter(store *cache.Store) *memoWriter {
	w := &memoWriter{store: store, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go w.loop()
	return w
}

// put queues k -> d. It returns the error of an earlier batch, if any.
func (w *memoWriter) put(k cache.Key, d cache.Digest) error {
	w.mu.Lock()
	w.pending = append(w.pending, cache.MemoEntry{Key: k, Result: d})
	err := w.err
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return err
}

func (w *memoWriter) loop() {
	defer close(w.done)
	for range w.kick {
		w.flush()
	}
	w.flush()
}

func (w *memoWriter) flush() {
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := w.store.MemoPutMany(batch); err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
}

// close writes what is pending and returns the first error of any batch.
func (w *memoWriter) close() error {
	close(w.kick)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
