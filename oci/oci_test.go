package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var provenance = ConfigOptions{
	Labels: map[string]string{"dev.dsbuild.recipe": "quickstart", "dev.dsbuild.node": "abc123", "dev.dsbuild.version": "test"},
	Env:    []string{"PYTHONDONTWRITEBYTECODE=1"},
}

// The real quickstart base: mmdebstrap bookworm with python3 and pytest,
// stored as one OCI layer that holds the interpreter and pytest, without
// device nodes, with zero mtimes. A second Builder answers from the memo.
func TestPythonBase(t *testing.T) {
	s, img := pythonBase(t)
	if len(img.Layers) != 1 {
		t.Fatalf("debian base has %d layers, want 1", len(img.Layers))
	}
	if !slices.Contains(img.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") {
		t.Errorf("debian base env %v has no default PATH", img.Env)
	}
	names := map[string]bool{}
	for _, h := range tarEntries(t, s, img.Layers[0]) {
		names[h.Name] = true
		if h.ModTime.Unix() != 0 {
			t.Fatalf("%s has mtime %v, want 0", h.Name, h.ModTime)
		}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			t.Fatalf("%s is a device node", h.Name)
		}
		if strings.HasPrefix(h.Name, "./") || strings.HasPrefix(h.Name, "/") {
			t.Fatalf("entry name %q is not relative", h.Name)
		}
	}
	for _, want := range []string{"usr/bin/python3.11", "usr/lib/python3/dist-packages/pytest/__init__.py", "etc/os-release", "dev/"} {
		if !names[want] {
			t.Errorf("base layer lacks %s", want)
		}
	}
	again, err := NewBuilder(s, Options{Offline: true}).Base(context.Background(), pythonSpec)
	if err != nil {
		t.Fatalf("memoised base, offline: %v", err)
	}
	if again.Digest != img.Digest {
		t.Errorf("memoised base %s, built %s", again.Digest, img.Digest)
	}
}

// mmdebstrap run twice, into two fresh stores, gives the same image digest.
func TestDebianBaseReproducible(t *testing.T) {
	spec := BaseSpec{Debian: &DebianSpec{Variant: "extract", Packages: []string{"busybox"}}, Env: []string{"LANG=C.UTF-8"}}
	var digests []string
	for range 2 {
		img, err := NewBuilder(newStore(t), Options{}).Base(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, img.Digest)
		if !slices.Contains(img.Env, "LANG=C.UTF-8") {
			t.Errorf("spec env not applied: %v", img.Env)
		}
	}
	if digests[0] != digests[1] {
		t.Fatalf("two mmdebstrap builds gave %s and %s", digests[0], digests[1])
	}
}

// The same base, tree and config give the same digest in two separate
// stores, and the digest is pinned: a change to layer, config or manifest
// encoding shows up here.
func TestWithTreeReproducible(t *testing.T) {
	const golden = "sha256:076543e6f437dc7b4d1e002193864200c333e4e35392917cebef0a89a19f3692"
	var got []schema.Image
	for range 2 {
		s := newStore(t)
		b := NewBuilder(s, Options{})
		img, err := b.WithTree(context.Background(), syntheticBase(t, s), projectTree(t, s, 1), "/testbed", provenance)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, img)
		if l, err := Lookup(s, img.Digest); err != nil || l.Digest != img.Digest || !slices.Equal(l.Layers, img.Layers) || l.WorkingDir != img.WorkingDir {
			t.Errorf("Lookup gave %+v, %v; want %+v", l, err, img)
		}
	}
	if got[0].Digest != got[1].Digest || !slices.Equal(got[0].Layers, got[1].Layers) {
		t.Fatalf("two stores gave %+v and %+v", got[0], got[1])
	}
	if got[0].Digest != golden {
		t.Errorf("digest %s, want the pinned %s", got[0].Digest, golden)
	}
}

// A project image is its base plus one layer: base blobs are shared, the
// layer holds the tree under /testbed with fixed ownership, modes and times,
// and the config carries working dir, env and provenance labels.
func TestWithTreeLayerAndConfig(t *testing.T) {
	s, base := pythonBase(t)
	b := NewBuilder(s, Options{})
	ctx := context.Background()
	a, err := b.WithTree(ctx, base, projectTree(t, s, 1), "/testbed", provenance)
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.WithTree(ctx, base, projectTree(t, s, 2), "/testbed", provenance)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Layers) != 2 || a.Layers[0] != base.Layers[0] || c.Layers[0] != base.Layers[0] {
		t.Fatalf("project images do not share the base layer: %v %v base %v", a.Layers, c.Layers, base.Layers)
	}
	if a.Layers[1] == c.Layers[1] || a.Digest == c.Digest {
		t.Fatalf("different trees gave the same project layer")
	}
	sa, err := load(s, a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := load(s, base.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if sa.manifest.Layers[0].Digest != sb.manifest.Layers[0].Digest || sa.manifest.Layers[0].Size != sb.manifest.Layers[0].Size {
		t.Errorf("compressed base layer differs: %v vs %v", sa.manifest.Layers[0], sb.manifest.Layers[0])
	}
	if sa.manifest.MediaType != types.OCIManifestSchema1 || sa.manifest.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s / %s, want OCI", sa.manifest.MediaType, sa.manifest.Config.MediaType)
	}
	for _, l := range sa.manifest.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %s, want %s", l.MediaType, types.OCILayer)
		}
	}
	if sa.manifest.Annotations[AnnotationBaseDigest] != base.Digest || sa.manifest.Annotations["dev.dsbuild.recipe"] != "quickstart" {
		t.Errorf("manifest annotations %v", sa.manifest.Annotations)
	}
	cfg := sa.config
	if cfg.Config.WorkingDir != "/testbed" || a.WorkingDir != "/testbed" {
		t.Errorf("working dir %q / %q", cfg.Config.WorkingDir, a.WorkingDir)
	}
	if !slices.Contains(a.Env, "PYTHONDONTWRITEBYTECODE=1") || !slices.ContainsFunc(a.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		t.Errorf("env %v lacks the added variable or the base PATH", a.Env)
	}
	if cfg.Config.Labels["dev.dsbuild.node"] != "abc123" {
		t.Errorf("labels %v", cfg.Config.Labels)
	}
	if !cfg.Created.Time.Equal(epoch.Time) {
		t.Errorf("config created %v, want the epoch", cfg.Created)
	}

	hs := tarEntries(t, s, a.Layers[1])
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 || h.Uname != "" {
			t.Errorf("%s: uid %d gid %d mtime %v uname %q", h.Name, h.Uid, h.Gid, h.ModTime, h.Uname)
		}
		wantMode := map[byte]int64{tar.TypeDir: 0o755, tar.TypeReg: 0o644}[h.Typeflag]
		if h.Name == "testbed/run_tests.sh" {
			wantMode = 0o755
		}
		if h.Mode != wantMode {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, wantMode)
		}
	}
	if names[0] != "testbed/" || !slices.Contains(names, "testbed/src/mathx/ops.py") || !slices.Contains(names, "testbed/src/mathx/") {
		t.Errorf("layer entries %v", names)
	}

	// Memoised: a new Builder on the same store answers without building.
	again, err := NewBuilder(s, Options{Offline: true}).WithTree(ctx, base, projectTree(t, s, 1), "/testbed", provenance)
	if err != nil || again.Digest != a.Digest {
		t.Fatalf("memoised project image %v, %v; want %s", again.Digest, err, a.Digest)
	}
}

func TestWithTreeBadInput(t *testing.T) {
	s := newStore(t)
	b := NewBuilder(s, Options{})
	base := syntheticBase(t, s)
	tree := projectTree(t, s, 1)
	for _, at := range []string{"testbed", "/", "/a/../b", ""} {
		if _, err := b.WithTree(context.Background(), base, tree, at, ConfigOptions{}); err == nil {
			t.Errorf("location %q accepted", at)
		}
	}
	if _, err := b.WithTree(context.Background(), base, tree, "/testbed", ConfigOptions{Env: []string{"NOEQUALS"}}); err == nil {
		t.Error("env entry without = accepted")
	}
	missing := schema.Image{Digest: "sha256:" + strings.Repeat("0", 64)}
	if err := WriteLayout(context.Background(), s, t.TempDir(), map[string]schema.Image{"gone": missing}); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("layout of a missing image: %v", err)
	}
	if _, err := b.WithTree(context.Background(), missing, tree, "/testbed", ConfigOptions{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing base: %v", err)
	}
}

func TestBaseSpecValidate(t *testing.T) {
	good := []BaseSpec{
		{Debian: &DebianSpec{}},
		{Debian: &DebianSpec{Suite: "trixie", Variant: "minbase", Packages: []string{"python3", "g++"}, Mirror: "http://example.invalid/debian"}},
		{Image: "docker.io/library/python:3.12-slim"},
		{Layout: "out/images:task-1"},
		{Archive: "base.tar"},
	}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	bad := map[string]BaseSpec{
		"none":        {},
		"two":         {Image: "python:3", Archive: "x.tar"},
		"bad ref":     {Image: "UPPER/Case::x"},
		"bad variant": {Debian: &DebianSpec{Variant: "huge"}},
		"bad package": {Debian: &DebianSpec{Packages: []string{"python3; rm -rf /"}}},
		"bad mirror":  {Debian: &DebianSpec{Mirror: "deb.debian.org"}},
		"bad env":     {Archive: "x.tar", Env: []string{"=x"}},
	}
	for what, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", what, s)
		}
	}
}

func TestMissingMmdebstrap(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := NewBuilder(newStore(t), Options{}).Base(context.Background(), BaseSpec{Debian: &DebianSpec{}})
	if err == nil || !strings.Contains(err.Error(), "mmdebstrap not found: install it with `apt-get install mmdebstrap`") {
		t.Fatalf("error %v", err)
	}
}

func TestOfflineRegistryMiss(t *testing.T) {
	_, err := NewBuilder(newStore(t), Options{Offline: true}).Base(context.Background(), BaseSpec{Image: "docker.io/library/python:3.12-slim"})
	if err == nil || !strings.Contains(err.Error(), "offline") || !strings.Contains(err.Error(), "python:3.12-slim") {
		t.Fatalf("error %v", err)
	}
}

func TestHostMirror(t *testing.T) {
	dir := t.TempDir()
	oneLine := filepath.Join(dir, "a.list")
	os.WriteFile(oneLine, []byte("# c\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n"), 0o644)
	if m := mirrorIn(oneLine); m != "http://mirror.example/debian" {
		t.Errorf("one-line: %q", m)
	}
	deb822 := filepath.Join(dir, "b.sources")
	os.WriteFile(deb822, []byte("Types: deb\nURIs: http://security.example/debian-security\n\nTypes: deb\nURIs: http://m.example/debian\nSuites: bookworm\n"), 0o644)
	if m := mirrorIn(deb822); m != "http://m.example/debian" {
		t.Errorf("deb822: %q", m)
	}
}

func projectImages(t *testing.T) (*cache.Store, map[string]schema.Image) {
	s, base := pythonBase(t)
	b := NewBuilder(s, Options{})
	images := map[string]schema.Image{}
	for i, tag := range []string{"mathx-bug-2", "mathx-bug-1"} {
		img, err := b.WithTree(context.Background(), base, projectTree(t, s, i+10), "/testbed", provenance)
		if err != nil {
			t.Fatal(err)
		}
		images[tag] = img
	}
	return s, images
}

func skopeoDigest(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("skopeo", append([]string{"inspect"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect %v: %v\n%s", args, err, out)
	}
	var r struct{ Digest string }
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("skopeo output: %v\n%s", err, out)
	}
	return r.Digest
}

// The layout is readable by skopeo, has a sorted index, is rewritten
// byte-identically, and drops blobs no image uses any more.
func TestWriteLayout(t *testing.T) {
	s, images := projectImages(t)
	dir := filepath.Join(t.TempDir(), "images")
	stale := filepath.Join(dir, "blobs", "sha256", strings.Repeat("a", 64))
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte("old"), 0o644)
	if err := WriteLayout(context.Background(), s, dir, images); err != nil {
		t.Fatal(err)
	}
	for tag, img := range images {
		if got := skopeoDigest(t, "oci:"+dir+":"+tag); got != img.Digest {
			t.Errorf("skopeo sees %s for %s, built %s", got, tag, img.Digest)
		}
	}
	first, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	var idx v1.IndexManifest
	if err := json.Unmarshal(first, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 || idx.Manifests[0].Annotations[AnnotationRefName] != "mathx-bug-1" {
		t.Errorf("index not sorted by tag: %s", first)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale blob kept")
	}
	if err := WriteLayout(context.Background(), s, dir, images); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if !bytes.Equal(first, second) {
		t.Errorf("index.json changed on rewrite")
	}

	// The layout is also a base source, and importing it keeps the digest.
	img, err := NewBuilder(newStore(t), Options{}).Base(context.Background(), BaseSpec{Layout: dir + ":mathx-bug-2"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != images["mathx-bug-2"].Digest {
		t.Errorf("layout import %s, want %s", img.Digest, images["mathx-bug-2"].Digest)
	}
	if _, err := NewBuilder(newStore(t), Options{}).Base(context.Background(), BaseSpec{Layout: dir}); err == nil || !strings.Contains(err.Error(), "holds 2 images") {
		t.Errorf("untagged layout of 2 images: %v", err)
	}
}

// A push to a real registry round-trips: skopeo reports the same digest,
// go-containerregistry pulls the same layers, and the registry is a base
// source that reproduces the digest in a fresh store.
func TestPushRoundTrip(t *testing.T) {
	s, images := projectImages(t)
	host := testenv.Registry(t)
	res, err := Push(context.Background(), s, images, host+"/dsbuild/quickstart", PushOptions{Insecure: true, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Tag != "mathx-bug-1" || res[0].Ref != host+"/dsbuild/quickstart:mathx-bug-1" {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		want := images[r.Tag]
		if r.Digest != want.Digest {
			t.Errorf("%s: pushed %s, built %s", r.Tag, r.Digest, want.Digest)
		}
		if got := skopeoDigest(t, "--tls-verify=false", "docker://"+r.Ref); got != want.Digest {
			t.Errorf("%s: skopeo sees %s, built %s", r.Tag, got, want.Digest)
		}
		ref, err := name.ParseReference(r.Ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		pulled, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		ls, err := pulled.Layers()
		if err != nil {
			t.Fatal(err)
		}
		local, _ := load(s, want.Digest)
		if len(ls) != len(local.manifest.Layers) {
			t.Fatalf("pulled %d layers, built %d", len(ls), len(local.manifest.Layers))
		}
		for i, l := range ls {
			d, _ := l.Digest()
			diff, _ := l.DiffID()
			if d != local.manifest.Layers[i].Digest || diff.String() != want.Layers[i] {
				t.Errorf("layer %d: pulled %s (diff %s), built %s (diff %s)", i, d, diff, local.manifest.Layers[i].Digest, want.Layers[i])
			}
		}
	}
	// Pushing again is a no-op that still succeeds (blobs exist).
	if _, err := Push(context.Background(), s, images, host+"/dsbuild/quickstart", PushOptions{Insecure: true}); err != nil {
		t.Fatalf("second push: %v", err)
	}
	// The registry as a base source, into a fresh store, then offline.
	fresh := newStore(t)
	spec := BaseSpec{Image: res[1].Ref}
	img, err := NewBuilder(fresh, Options{}).Base(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != images[res[1].Tag].Digest || !slices.Equal(img.Layers, images[res[1].Tag].Layers) {
		t.Errorf("pulled base %+v, pushed %+v", img, images[res[1].Tag])
	}
	again, err := NewBuilder(fresh, Options{Offline: true}).Base(context.Background(), spec)
	if err != nil || again.Digest != img.Digest {
		t.Errorf("offline memo: %v %v", again.Digest, err)
	}
}

func TestPushBadInput(t *testing.T) {
	s := newStore(t)
	img := syntheticBase(t, s)
	if _, err := Push(context.Background(), s, map[string]schema.Image{"bad tag!": img}, "127.0.0.1:1/x", PushOptions{}); err == nil || !strings.Contains(err.Error(), "bad tag!") {
		t.Errorf("bad tag: %v", err)
	}
	if _, err := Push(context.Background(), s, map[string]schema.Image{"t": img}, "", PushOptions{}); err == nil {
		t.Error("empty registry accepted")
	}
}

// The docker-archive loads back with go-containerregistry with the same
// config and layers, is byte-identical when written twice, and imports back
// as a base with the same digest.
func TestDockerArchive(t *testing.T) {
	s := newStore(t)
	b := NewBuilder(s, Options{})
	base := syntheticBase(t, s)
	images := map[string]schema.Image{}
	for i, tag := range []string{"quickstart:task-b", "task-a"} {
		img, err := b.WithTree(context.Background(), base, projectTree(t, s, i), "/testbed", provenance)
		if err != nil {
			t.Fatal(err)
		}
		images[tag] = img
	}
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	for _, p := range []string{p1, p2} {
		if err := WriteDockerArchive(context.Background(), s, p, images); err != nil {
			t.Fatal(err)
		}
	}
	b1, _ := os.ReadFile(p1)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Error("docker archive differs between two writes")
	}
	for tag, refName := range map[string]string{"quickstart:task-b": "quickstart:task-b", "task-a": "dsbuild:task-a"} {
		ref, err := name.NewTag(refName)
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := tarball.ImageFromPath(p1, &ref)
		if err != nil {
			t.Fatalf("%s: %v", refName, err)
		}
		cfgName, _ := loaded.ConfigName()
		local, _ := load(s, images[tag].Digest)
		if cfgName != local.manifest.Config.Digest {
			t.Errorf("%s: config %s, built %s", tag, cfgName, local.manifest.Config.Digest)
		}
		ls, _ := loaded.Layers()
		for i, l := range ls {
			diff, _ := l.DiffID()
			if diff.String() != images[tag].Layers[i] {
				t.Errorf("%s layer %d: diff id %s, built %s", tag, i, diff, images[tag].Layers[i])
			}
		}
	}
	if got := skopeoDigest(t, "docker-archive:"+p1+":dsbuild:task-a"); got == "" {
		t.Error("skopeo cannot read the archive")
	}
	// Single-image archive as a base source reproduces the digest.
	one := filepath.Join(dir, "one.tar")
	if err := WriteDockerArchive(context.Background(), s, one, map[string]schema.Image{"task-a": images["task-a"]}); err != nil {
		t.Fatal(err)
	}
	fresh := newStore(t)
	img, err := NewBuilder(fresh, Options{}).Base(context.Background(), BaseSpec{Archive: one})
	if err != nil {
		t.Fatal(err)
	}
	// A docker-archive has no manifest annotations, so only config and
	// layers carry over.
	if !slices.Equal(img.Layers, images["task-a"].Layers) || img.WorkingDir != "/testbed" {
		t.Errorf("archive import %+v, want layers of %+v", img, images["task-a"])
	}
	imported, err := load(fresh, img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	built, _ := load(s, images["task-a"].Digest)
	if !bytes.Equal(imported.rawConfig, built.rawConfig) {
		t.Error("archive import changed the config")
	}
	for i, l := range imported.manifest.Layers {
		if l.Digest != built.manifest.Layers[i].Digest {
			t.Errorf("layer %d recompressed to %s, built %s", i, l.Digest, built.manifest.Layers[i].Digest)
		}
	}
}

// BenchmarkProjectImage measures one per-task project image (a ~20-file
// tree at /testbed) on the real python3+pytest base once the base exists.
func BenchmarkProjectImage(b *testing.B) {
	s, base := pythonBase(b)
	bl := NewBuilder(s, Options{})
	// Distinct trees, new on every run (the base store persists): no memo hits.
	offset := rand.IntN(1 << 40)
	trees := make([]cache.Digest, b.N)
	for i := range trees {
		trees[i] = projectTree(b, s, offset+i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := bl.WithTree(context.Background(), base, trees[i], "/testbed", provenance); err != nil {
			b.Fatal(err)
		}
	}
}
