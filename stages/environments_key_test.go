package stages_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/stages"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// envKeyProbe is a kind that reads the environments section and does
// nothing else: its node key shows the section's key.
const envKeyProbe = "test_environments_key_probe"

func init() {
	build.Register(&build.Kind{
		Name: envKeyProbe, Version: "1", Sections: []string{stages.SectionEnvironments},
		Run: func(context.Context, *build.Call) (build.Output, error) {
			return build.Output{}, fmt.Errorf("not to be run")
		},
	})
}

// tinyImage is a one-layer image whose content depends on n.
func tinyImage(t *testing.T, n int) v1.Image {
	t.Helper()
	l, err := crane.Layer(map[string][]byte{"etc/os-release": []byte(fmt.Sprintf("ID=envkey%d\n", n))})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeLayout (re)writes dir as an OCI layout holding only img.
func writeLayout(t *testing.T, dir string, img v1.Image) {
	t.Helper()
	os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
}

// writeArchive (re)writes path as a docker-archive holding only img.
func writeArchive(t *testing.T, path string, img v1.Image) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	tag, err := name.NewTag("envkey:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
}

// environmentsKey loads a recipe whose environment "base" is given by
// field: value and returns the key the environments section gives the
// probe's node.
func environmentsKey(t *testing.T, field, value string) cache.Key {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "recipe.yaml")
	text := fmt.Sprintf("name: envkey\nenvironments:\n  base: {%s: %q}\nstages:\n  probe: {uses: %s}\n", field, value, envKeyProbe)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	plan, err := build.Plan(r, store)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range plan {
		if e.Stage == "probe" {
			return e.Inputs.Sections[stages.SectionEnvironments]
		}
	}
	t.Fatal("no probe node in the plan")
	return cache.Key{}
}

// A layout or archive environment enters node keys by its content: the
// same content at another path keys the same, other content at the same
// path keys differently.
func TestEnvironmentsKeyedByContentNotPath(t *testing.T) {
	x, y := tinyImage(t, 1), tinyImage(t, 2)
	for _, c := range []struct {
		field string
		write func(t *testing.T, path string, img v1.Image)
	}{{"layout", writeLayout}, {"archive", writeArchive}} {
		t.Run(c.field, func(t *testing.T) {
			root := t.TempDir()
			here, there := filepath.Join(root, "here", "base"), filepath.Join(root, "there", "base")
			c.write(t, here, x)
			kx := environmentsKey(t, c.field, here)
			c.write(t, there, x)
			if k := environmentsKey(t, c.field, there); k != kx {
				t.Errorf("the same image at another path keyed %s, want %s", k.Short(), kx.Short())
			}
			c.write(t, here, y)
			if k := environmentsKey(t, c.field, here); k == kx {
				t.Errorf("another image at the same path kept key %s", k.Short())
			}
		})
	}
}

// A layout or archive that cannot be read is bad input when the recipe
// loads, and the error names the environment.
func TestEnvironmentsUnreadableIsBadInputAtLoad(t *testing.T) {
	dir := t.TempDir()
	for _, field := range []string{"layout", "archive"} {
		p := filepath.Join(dir, field+".yaml")
		text := fmt.Sprintf("name: envkey\nenvironments:\n  base: {%s: %q}\nstages:\n  probe: {uses: %s}\n", field, filepath.Join(dir, "missing"), envKeyProbe)
		os.WriteFile(p, []byte(text), 0o644)
		_, err := build.LoadRecipe(p, nil)
		if err == nil || !build.IsBadInput(err) || !strings.Contains(err.Error(), "environment base") {
			t.Errorf("%s that does not exist: %v", field, err)
		}
	}
}

// Registry environments keep the key they had before environments had a
// key view: the canonical encoding of the section. Debian environments are
// keyed as the section with git and patch added to the packages (sorted),
// since every Debian base now has them.
func TestEnvironmentsKeyViewKeepsDebianAndImageKeys(t *testing.T) {
	envs := stages.Environments{
		"python": stages.DefaultEnvironment,
		"slim":   {Image: "docker.io/library/python:3.12-slim", Env: []string{"LANG=C.UTF-8"}},
	}
	if err := envs.Validate(); err != nil {
		t.Fatal(err)
	}
	withGit := *stages.DefaultEnvironment.Debian
	withGit.Packages = []string{"git", "patch", "python3", "python3-pytest"}
	want := stages.Environments{
		"python": {Debian: &withGit},
		"slim":   envs["slim"],
	}
	old, err := cache.KeyOf(&want)
	if err != nil {
		t.Fatal(err)
	}
	now, err := cache.KeyOf(envs.KeyView())
	if err != nil {
		t.Fatal(err)
	}
	if now != old {
		t.Errorf("key view of debian and registry environments %s, want %s (the section with git and patch)", now, old)
	}
}
