package oci

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// twoImages returns two different small images in s.
func twoImages(t *testing.T, s *cache.Store) (schema.Image, schema.Image) {
	t.Helper()
	b := NewBuilder(s, Options{})
	base := syntheticBase(t, s)
	var out [2]schema.Image
	for i := range out {
		img, err := b.WithTree(context.Background(), base, projectTree(t, s, i), "/testbed", provenance)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = img
	}
	if out[0].Digest == out[1].Digest {
		t.Fatal("the two test images are the same")
	}
	return out[0], out[1]
}

// copyPath copies the file or directory src to dst.
func copyPath(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(to)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// keyOfView resolves spec against dir and returns the key of its key view.
func keyOfView(t *testing.T, spec BaseSpec, dir string) cache.Key {
	t.Helper()
	if err := spec.Resolve(dir); err != nil {
		t.Fatal(err)
	}
	v, err := spec.KeyView()
	if err != nil {
		t.Fatal(err)
	}
	k, err := cache.KeyOf(v)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A layout environment is keyed by the manifest it selects: replacing the
// layout at the same path re-keys it, copying it elsewhere does not.
func TestLayoutKeyViewFollowsContentNotPath(t *testing.T) {
	s := newStore(t)
	x, y := twoImages(t, s)
	ctx := context.Background()
	root := t.TempDir()
	recipeA, recipeB := filepath.Join(root, "a"), filepath.Join(root, "b")
	spec := BaseSpec{Layout: "envs/base:py", Env: []string{"LANG=C.UTF-8"}}

	if err := WriteLayout(ctx, s, filepath.Join(recipeA, "envs/base"), map[string]schema.Image{"py": x}); err != nil {
		t.Fatal(err)
	}
	kx := keyOfView(t, spec, recipeA)

	copyPath(t, filepath.Join(recipeA, "envs/base"), filepath.Join(recipeB, "envs/base"))
	if k := keyOfView(t, spec, recipeB); k != kx {
		t.Errorf("same layout at another path keyed %s, want %s", k, kx)
	}
	if k := keyOfView(t, BaseSpec{Layout: filepath.Join(recipeB, "envs/base") + ":py", Env: spec.Env}, "/elsewhere"); k != kx {
		t.Errorf("same layout by absolute path keyed %s, want %s", k, kx)
	}

	if err := WriteLayout(ctx, s, filepath.Join(recipeA, "envs/base"), map[string]schema.Image{"py": y}); err != nil {
		t.Fatal(err)
	}
	ky := keyOfView(t, spec, recipeA)
	if ky == kx {
		t.Error("layout replaced at the same path kept its key")
	}
	// The tag selects; the key names what it selects.
	if err := WriteLayout(ctx, s, filepath.Join(recipeA, "envs/base"), map[string]schema.Image{"py": y, "other": x}); err != nil {
		t.Fatal(err)
	}
	if k := keyOfView(t, spec, recipeA); k != ky {
		t.Errorf("adding another tag to the layout re-keyed it: %s, want %s", k, ky)
	}
	// Env is part of the key.
	if k := keyOfView(t, BaseSpec{Layout: spec.Layout}, recipeA); k == ky {
		t.Error("env left out of the layout's key")
	}
}

// A docker-archive environment is keyed by the image it holds: replacing
// the archive at the same path re-keys it, copying it elsewhere does not.
func TestArchiveKeyViewFollowsContentNotPath(t *testing.T) {
	s := newStore(t)
	x, y := twoImages(t, s)
	ctx := context.Background()
	root := t.TempDir()
	recipeA, recipeB := filepath.Join(root, "a"), filepath.Join(root, "b")
	os.MkdirAll(recipeA, 0o755)
	spec := BaseSpec{Archive: "base.tar"}

	if err := WriteDockerArchive(ctx, s, filepath.Join(recipeA, "base.tar"), map[string]schema.Image{"x": x}); err != nil {
		t.Fatal(err)
	}
	kx := keyOfView(t, spec, recipeA)

	copyPath(t, filepath.Join(recipeA, "base.tar"), filepath.Join(recipeB, "base.tar"))
	if k := keyOfView(t, spec, recipeB); k != kx {
		t.Errorf("same archive at another path keyed %s, want %s", k, kx)
	}
	// The image's tag in the archive is not what is built on.
	if err := WriteDockerArchive(ctx, s, filepath.Join(recipeB, "base.tar"), map[string]schema.Image{"renamed": x}); err != nil {
		t.Fatal(err)
	}
	if k := keyOfView(t, spec, recipeB); k != kx {
		t.Errorf("same image under another tag keyed %s, want %s", k, kx)
	}

	if err := WriteDockerArchive(ctx, s, filepath.Join(recipeA, "base.tar"), map[string]schema.Image{"x": y}); err != nil {
		t.Fatal(err)
	}
	if k := keyOfView(t, spec, recipeA); k == kx {
		t.Error("archive replaced at the same path kept its key")
	}
}

// Registry specs keep the key view they always had: the spec's own
// encoding, so existing caches stay valid.
func TestKeyViewOfImageIsTheSpec(t *testing.T) {
	for _, spec := range []BaseSpec{
		{Image: "docker.io/library/python:3.12-slim"},
		{Image: "127.0.0.1:5000/base@sha256:" + strings.Repeat("ab", 32), Env: []string{"A=1"}},
	} {
		before, err := cache.Canonical(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := spec.Resolve("/recipes/here"); err != nil {
			t.Fatal(err)
		}
		v, err := spec.KeyView()
		if err != nil {
			t.Fatal(err)
		}
		after, err := cache.Canonical(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(before) != string(after) {
			t.Errorf("key view %s, want the spec %s", after, before)
		}
	}
}

// A Debian spec is keyed by the packages it installs: git and patch
// always, the list sorted and deduplicated, so the order in a recipe does
// not matter and a base built before git and patch were added is not
// reused.
func TestKeyViewOfDebianNamesInstalledPackages(t *testing.T) {
	viewOf := func(spec BaseSpec) string {
		t.Helper()
		if err := spec.Resolve("/recipes/here"); err != nil {
			t.Fatal(err)
		}
		v, err := spec.KeyView()
		if err != nil {
			t.Fatal(err)
		}
		b, err := cache.Canonical(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	debian := func(pkgs ...string) BaseSpec {
		return BaseSpec{Debian: &DebianSpec{Suite: "bookworm", Packages: pkgs}, Env: []string{"LANG=C.UTF-8"}}
	}
	want := viewOf(debian("git", "patch", "python3", "python3-pytest"))
	if !strings.Contains(want, `"packages":["git","patch","python3","python3-pytest"]`) {
		t.Errorf("key view %s does not list the sorted packages", want)
	}
	for _, pkgs := range [][]string{
		{"python3", "python3-pytest"},
		{"python3-pytest", "python3", "python3"},
		{"patch", "python3-pytest", "git", "python3"},
	} {
		if got := viewOf(debian(pkgs...)); got != want {
			t.Errorf("packages %v: key view %s, want %s", pkgs, got, want)
		}
	}
	// A pinned version of a required package replaces it.
	if got := viewOf(debian("git=1:2.39.5-0+deb12u2")); !strings.Contains(got, `"packages":["git=1:2.39.5-0+deb12u2","patch"]`) {
		t.Errorf("pinned git: key view %s", got)
	}
	// The spec itself is not changed, and building installs what the key names.
	spec := debian("python3")
	viewOf(spec)
	if len(spec.Debian.Packages) != 1 {
		t.Errorf("KeyView changed the spec: %v", spec.Debian.Packages)
	}
	if got := spec.Debian.withDefaults().Packages; strings.Join(got, ",") != "git,patch,python3" {
		t.Errorf("mmdebstrap would install %v", got)
	}
	// The memo key is the one baseKey computes from the view.
	key, err := baseKey(pythonSpec)
	if err != nil {
		t.Fatal(err)
	}
	d := pythonSpec.Debian.withRequiredPackages()
	view := pythonSpec
	view.Debian = &d
	old, _ := cache.KeyOf(struct {
		Kind    string   `json:"kind"`
		Version string   `json:"version"`
		Arch    string   `json:"arch"`
		Spec    BaseSpec `json:"spec"`
	}{"oci.base", formatVersion, runtime.GOARCH, view})
	if key != old {
		t.Errorf("debian base memo key %s, want %s", key, old)
	}
}

// Content that cannot be read is an error when the spec is resolved, not
// when it is first built on.
func TestResolveReportsUnreadableContent(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	os.WriteFile(filepath.Join(dir, "junk.tar"), []byte("not a tarball"), 0o644)
	for _, c := range []struct {
		spec BaseSpec
		want string
	}{
		{BaseSpec{Layout: "missing"}, "base layout " + filepath.Join(dir, "missing")},
		{BaseSpec{Layout: "empty"}, "base layout " + filepath.Join(dir, "empty")},
		{BaseSpec{Archive: "missing.tar"}, "base archive " + filepath.Join(dir, "missing.tar")},
		{BaseSpec{Archive: "junk.tar"}, "base archive " + filepath.Join(dir, "junk.tar")},
		{BaseSpec{Layout: "x", Archive: "y"}, "exactly one"},
	} {
		if err := c.spec.Resolve(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error mentioning %q", c.spec, err, c.want)
		}
	}
}

// Base builds on the content a spec was pinned to: if the layout or archive
// was replaced since, it says so rather than building on other content.
func TestBaseRefusesContentReplacedAfterPin(t *testing.T) {
	s := newStore(t)
	x, y := twoImages(t, s)
	ctx := context.Background()
	dir := t.TempDir()
	lay, arc := filepath.Join(dir, "layout"), filepath.Join(dir, "base.tar")
	if err := WriteLayout(ctx, s, lay, map[string]schema.Image{"x": x}); err != nil {
		t.Fatal(err)
	}
	if err := WriteDockerArchive(ctx, s, arc, map[string]schema.Image{"x": x}); err != nil {
		t.Fatal(err)
	}
	specs := []BaseSpec{{Layout: "layout"}, {Archive: "base.tar"}}
	for i := range specs {
		if err := specs[i].Resolve(dir); err != nil {
			t.Fatal(err)
		}
	}
	img, err := NewBuilder(newStore(t), Options{}).Base(ctx, specs[0])
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != x.Digest {
		t.Errorf("layout base %s, want %s", img.Digest, x.Digest)
	}
	if _, err := NewBuilder(newStore(t), Options{}).Base(ctx, specs[1]); err != nil {
		t.Fatal(err)
	}

	if err := WriteLayout(ctx, s, lay, map[string]schema.Image{"x": y}); err != nil {
		t.Fatal(err)
	}
	if err := WriteDockerArchive(ctx, s, arc, map[string]schema.Image{"x": y}); err != nil {
		t.Fatal(err)
	}
	for _, spec := range specs {
		if _, err := NewBuilder(newStore(t), Options{}).Base(ctx, spec); err == nil || !strings.Contains(err.Error(), "changed after it was read") {
			t.Errorf("%+v replaced after pinning: %v", spec, err)
		}
	}
}
