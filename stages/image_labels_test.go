package stages_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/stages"
)

// A project image's digest depends on its content, not on the key of the
// node that made it: a param that changes the validate node's key but not
// the image (how many times tests run) gives the same image, so early
// cutoff holds for everything downstream of it. (Images used to carry the
// node key as a label.)
func TestImageDigestIndependentOfNodeKey(t *testing.T) {
	base := taskBaseLayout(t)
	project, err := filepath.Abs("../recipes/quickstart/projects/textkit")
	if err != nil {
		t.Fatal(err)
	}
	store := testenv.Store(t)
	var digests []string
	var keys []string
	for _, runs := range []string{"1", "2"} {
		dir := t.TempDir()
		r := loadTestRecipe(t, dir, `name: labels
environments:
  python: {layout: `+base+`}
stages:
  repos:   {uses: repo, with: {paths: [`+project+`], allow_outside: true}}
  checked: {uses: validate, foreach: repos, with: {environment: python, runs: `+runs+`}}
`)
		rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")})
		if err != nil {
			t.Fatal(err)
		}
		items := stageItems(t, store, rec, "checked")
		if len(items) != 1 {
			t.Fatalf("checked items %v", items)
		}
		var v stages.Validated
		if err := build.GetJSON(store, items[0].Value, &v); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, v.Image.Digest)
		for _, n := range rec.Nodes {
			if strings.HasPrefix(n.ID, "checked[") {
				keys = append(keys, n.Key.String())
			}
		}
	}
	if keys[0] == keys[1] {
		t.Fatal("the two validate nodes have one key; the test needs them to differ")
	}
	if digests[0] != digests[1] {
		t.Fatalf("same project, same environment, different node keys: image digests %s and %s differ", digests[0], digests[1])
	}
}
