package sandbox

import (
	"archive/tar"
	"context"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// A run is keyed by what it can observe of the image (its runtime layers,
// Env and WorkingDir), not by the manifest digest, which labels change.
func TestRunKeyFollowsWhatTheRunObserves(t *testing.T) {
	r, img := setup(t)
	relabelled := img
	relabelled.Layers = append([]string(nil), img.Layers...)
	relabelled.Digest = cache.DigestOf([]byte(img.Digest + " with a provenance label")).String()
	relabelled.Ref = "dsbuild/relabelled:latest"
	spec := Spec{Image: img, Argv: []string{"sh", "-c", "cat /proc/uptime"}, Env: []string{"T=" + t.Name() + time.Now().String()}}
	key := func(img schema.Image) cache.Key {
		t.Helper()
		s := spec
		s.Image = img
		k, err := r.Key(s)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key(img)
	if key(relabelled) != base {
		t.Fatal("an image differing only in its digest (labels) gives another run key")
	}
	first := run(t, r, spec)
	if first.Cached {
		t.Fatal("first run came from the memo")
	}
	again := spec
	again.Image = relabelled
	second := run(t, r, again)
	if !second.Cached || string(second.Stdout) != string(first.Stdout) || second.Key != first.Key {
		t.Fatalf("run of the relabelled image: cached %v, stdout %q; want the memoised %q", second.Cached, second.Stdout, first.Stdout)
	}

	addLayer := func(entries ...tarEntry) schema.Image {
		d, err := r.store.Put(makeTar(t, entries...))
		if err != nil {
			t.Fatal(err)
		}
		out := relabelled
		out.Layers = append(append([]string(nil), img.Layers...), d.String())
		return out
	}
	if key(addLayer(tarEntry{name: "testbed/task.py", typ: tar.TypeReg, body: "shadowed by the workspace"})) != base {
		t.Fatal("a layer confined to /testbed (which the workspace shadows) changed the run key")
	}
	if key(addLayer(tarEntry{name: "etc/extra", typ: tar.TypeReg, body: "visible"})) == base {
		t.Fatal("an extra layer outside /testbed did not change the run key")
	}
	withEnv := img
	withEnv.Env = append(append([]string(nil), img.Env...), "EXTRA=1")
	if key(withEnv) == base {
		t.Fatal("the image's Env is not part of the run key")
	}
	withDir := img
	withDir.WorkingDir = "/elsewhere"
	if key(withDir) == base {
		t.Fatal("the image's WorkingDir is not part of the run key")
	}
}

// A runner whose result for a key is stored second (another process, say)
// returns the first stored result, so every caller sees the memoised one;
// with NoCache a forced re-run replaces it.
func TestLateResultYieldsToTheFirstStored(t *testing.T) {
	r, img := setup(t)
	other, err := New(r.store, Options{Jobs: 1}) // flights not shared with r
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Image: img, Argv: []string{"sh", "-c", "cat /proc/uptime"}, Env: []string{"T=" + t.Name() + time.Now().String()}}
	first := run(t, r, spec)
	s, err := spec.normalize()
	if err != nil {
		t.Fatal(err)
	}
	late := &Result{ExitCode: 3, Stdout: []byte("a later, different result"), Duration: time.Second, Key: first.Key}
	got, err := other.save(context.Background(), first.Key, late)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cached || got.ExitCode != first.ExitCode || string(got.Stdout) != string(first.Stdout) {
		t.Fatalf("late writer got exit %d stdout %q; want the first stored result %q", got.ExitCode, got.Stdout, first.Stdout)
	}
	if res, err := other.Run(context.Background(), s); err != nil || !res.Cached || string(res.Stdout) != string(first.Stdout) {
		t.Fatalf("replay after the race: %+v %v", res, err)
	}

	forced, err := New(r.store, Options{Jobs: 1, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err = forced.save(context.Background(), first.Key, late)
	if err != nil || got != late {
		t.Fatalf("NoCache save returned %+v, %v; want its own result", got, err)
	}
	if res := run(t, r, spec); !res.Cached || res.ExitCode != 3 {
		t.Fatalf("after a forced re-run the memo holds exit %d; want the re-run's 3", res.ExitCode)
	}
}
