package oci

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// Every Base call notes the base's memo key in its caller's recorder: the
// one that imports the base, those that join its flight, and those answered
// from the Builder's memory, so gc keeps the base for each of their builds.
func TestBaseNotesItsMemoKeyForEveryCaller(t *testing.T) {
	s := newStore(t)
	dir := filepath.Join(t.TempDir(), "layout")
	src := syntheticBase(t, s)
	if err := WriteLayout(context.Background(), s, dir, map[string]schema.Image{"base": src}); err != nil {
		t.Fatal(err)
	}
	spec := BaseSpec{Layout: dir}
	key, err := baseKey(spec)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder(newStore(t), Options{})
	recs := make([]*cache.Recorder, 6)
	imgs := make([]schema.Image, len(recs))
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = &cache.Recorder{}
		wg.Go(func() {
			img, err := b.Base(cache.WithRecorder(context.Background(), recs[i]), spec)
			if err != nil {
				t.Error(err)
			}
			imgs[i] = img
		})
	}
	wg.Wait()
	// And one answered from the Builder's memory for certain.
	late := &cache.Recorder{}
	img, err := b.Base(cache.WithRecorder(context.Background(), late), spec)
	if err != nil {
		t.Fatal(err)
	}
	recs, imgs = append(recs, late), append(imgs, img)
	for i, rec := range recs {
		if imgs[i].Digest != src.Digest {
			t.Fatalf("caller %d got image %s, want %s", i, imgs[i].Digest, src.Digest)
		}
		found := false
		for _, k := range rec.Keys() {
			found = found || k == key
		}
		if !found {
			t.Fatalf("caller %d's recorder holds %v, not the base's memo key %s", i, rec.Keys(), key)
		}
	}
	if d, ok, err := b.store.MemoGet(context.Background(), key); err != nil || !ok || d.String() != src.Digest {
		t.Fatalf("memo entry of the base = %s, %v, %v", d, ok, err)
	}
}
