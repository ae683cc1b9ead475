package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// --recheck alone reruns every cache hit, --recheck=F a fraction of them;
// a deterministic build passes and says how many hits matched.
func TestRecheckFlag(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, `name: rc
stages:
  words: {uses: list, with: {count: 40}}
  greet: {uses: template, foreach: words, with: {text: "hello {{.Input}}"}}
`)
	store := filepath.Join(dir, "store")
	if r := dsbuild(t, dir, "--cache", store, recipe); r.code != 0 {
		t.Fatalf("build: %d %s", r.code, r.stderr)
	}
	r := dsbuild(t, dir, "--cache", store, "--recheck", recipe)
	if r.code != 0 || !strings.Contains(r.stdout, "recheck: 41 cache hits ran again and matched") {
		t.Fatalf("--recheck: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = dsbuild(t, dir, "--cache", store, "--recheck=0.5", recipe)
	if r.code != 0 || !strings.Contains(r.stdout, "recheck: ") || strings.Contains(r.stdout, "recheck: 41 ") {
		t.Fatalf("--recheck=0.5: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, bad := range []string{"--recheck=2", "--recheck=x", "--recheck=-0.1"} {
		if r := dsbuild(t, dir, "--cache", store, bad, recipe); r.code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", bad, r.code, r.stderr)
		}
	}
}
