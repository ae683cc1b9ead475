package sandbox

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/goccy/go-yaml"
)

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func testRunner(t *testing.T) *Runner {
	t.Helper()
	st := testenv.Store(t)
	r, err := New(st, Options{Jobs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.workDir != st.Root() {
		t.Fatalf("work dir %s is not the store root %s", r.workDir, st.Root())
	}
	return r
}

func imageOf(t *testing.T, r *Runner, layers ...[]byte) schema.Image {
	t.Helper()
	var img schema.Image
	var ids []string
	for _, l := range layers {
		d, err := r.store.Put(l)
		if err != nil {
			t.Fatal(err)
		}
		img.Layers = append(img.Layers, d.String())
		ids = append(ids, d.String())
	}
	img.Digest = cache.DigestOf([]byte(strings.Join(ids, ","))).String()
	return img
}

func TestRootfsLayersAndWhiteouts(t *testing.T) {
	r := testRunner(t)
	base := makeTar(t,
		tarEntry{name: "./", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "./etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "./etc/keep", typ: tar.TypeReg, body: "keep"},
		tarEntry{name: "./etc/gone", typ: tar.TypeReg, body: "gone"},
		tarEntry{name: "./opaque/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "./opaque/old", typ: tar.TypeReg, body: "old"},
		tarEntry{name: "./usr/bin/tool", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755},
		tarEntry{name: "./bin", typ: tar.TypeSymlink, link: "usr/bin"},
		tarEntry{name: "./usr/bin/tool2", typ: tar.TypeLink, link: "./usr/bin/tool"},
		tarEntry{name: "./dev/null", typ: tar.TypeChar},
		tarEntry{name: "./ro/", typ: tar.TypeDir, mode: 0o555},
		tarEntry{name: "./ro/file", typ: tar.TypeReg, body: "in a read-only dir"},
	)
	upper := makeTar(t,
		tarEntry{name: "etc/.wh.gone", typ: tar.TypeReg},
		tarEntry{name: "opaque/new", typ: tar.TypeReg, body: "new"},
		tarEntry{name: "opaque/.wh..wh..opq", typ: tar.TypeReg},
		tarEntry{name: "etc/keep", typ: tar.TypeReg, body: "replaced"},
		tarEntry{name: "bin/viaLink", typ: tar.TypeReg, body: "through the bin symlink"},
	)
	dir, err := r.Rootfs(imageOf(t, r, base, upper))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"etc/keep": "replaced", "opaque/new": "new", "usr/bin/tool2": "#!/bin/sh\n", "usr/bin/viaLink": "through the bin symlink", "ro/file": "in a read-only dir"}
	for p, body := range want {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != body {
			t.Errorf("%s = %q, %v; want %q", p, b, err, body)
		}
	}
	for _, p := range []string{"etc/gone", "opaque/old", "dev/null"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s should not exist", p)
		}
	}
	for _, p := range []string{"testbed", "tmp", "proc", "dev"} {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || !fi.IsDir() {
			t.Errorf("mount point /%s missing: %v", p, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "usr/bin/tool")); fi.Mode()&os.ModeSetuid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("usr/bin/tool mode %s, want 0755 without setuid", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "ro")); fi.Mode().Perm() != 0o555 {
		t.Errorf("ro mode %s, want 0555", fi.Mode())
	}
	// Unpacked once: a second call returns the same directory at once.
	again, err := r.Rootfs(imageOf(t, r, base, upper))
	if err != nil || again != dir {
		t.Fatalf("second Rootfs: %s, %v", again, err)
	}
	if des, _ := os.ReadDir(filepath.Dir(dir)); len(des) != 3 { // <key>, <key>.lock, <key>.layers
		t.Errorf("rootfs dir holds %d entries, want the root, its lock and its layer list", len(des))
	}
}

func TestRootfsRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	hostile := map[string][]byte{
		"dotdot": makeTar(t, tarEntry{name: "../../escaped", typ: tar.TypeReg, body: "x"}),
		"through absolute symlink": makeTar(t,
			tarEntry{name: "evil", typ: tar.TypeSymlink, link: outside},
			tarEntry{name: "evil/escaped", typ: tar.TypeReg, body: "x"}),
		"through relative symlink": makeTar(t,
			tarEntry{name: "evil", typ: tar.TypeSymlink, link: "../../../../../../../../" + outside},
			tarEntry{name: "evil/escaped", typ: tar.TypeReg, body: "x"}),
		"hard link out": makeTar(t, tarEntry{name: "pw", typ: tar.TypeLink, link: "../../../../etc/passwd"}),
	}
	for name, layer := range hostile {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			r := testRunner(t)
			if _, err := r.Rootfs(imageOf(t, r, layer)); err == nil {
				t.Errorf("hostile layer unpacked without error")
			}
			if _, err := os.Lstat(filepath.Join(outside, "escaped")); err == nil {
				t.Fatalf("a file was written outside the root")
			}
			if des, _ := os.ReadDir(filepath.Join(r.workDir, rootfsDir)); len(des) > 1 {
				t.Errorf("failed unpack left %d entries behind", len(des))
			}
		})
	}
}

func TestLimitsText(t *testing.T) {
	var got struct {
		Sandbox Limits `yaml:"sandbox"`
	}
	src := "sandbox: {timeout: 120s, cpu: 60, memory: 4GiB, processes: 256, output: 1MiB, workspace: 500MB}\n"
	if err := yaml.Unmarshal([]byte(src), &got); err != nil {
		t.Fatal(err)
	}
	want := Limits{Timeout: 120 * time.Second, CPUSeconds: 60, MemoryBytes: 4 << 30, Processes: 256, OutputBytes: 1 << 20, WorkspaceBytes: 500_000_000}
	if got.Sandbox != want {
		t.Fatalf("yaml: got %+v, want %+v", got.Sandbox, want)
	}
	b, err := want.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"timeout":"2m0s","cpu":60,"memory":4294967296,"processes":256,"output":1048576,"workspace":500000000}` {
		t.Fatalf("json: %s", b)
	}
	var back Limits
	if err := back.UnmarshalJSON(b); err != nil || back != want {
		t.Fatalf("json round trip: %+v, %v", back, err)
	}
	for _, bad := range []string{
		"sandbox: {timeout: 120}",
		"sandbox: {memory: lots}",
		"sandbox: {memroy: 1GiB}",
		"sandbox: {processes: 1.5}",
	} {
		if err := yaml.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if err := (Limits{MemoryBytes: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Errorf("negative memory: %v", err)
	}
	if err := (Limits{}).Validate(); err != nil {
		t.Errorf("zero limits: %v", err)
	}
	if d := (Limits{Timeout: time.Second}).WithDefaults(); d.Timeout != time.Second || d.MemoryBytes != DefaultLimits().MemoryBytes {
		t.Errorf("WithDefaults: %+v", d)
	}
}

func TestRootfsSharedAcrossTestbedLayers(t *testing.T) {
	r := testRunner(t)
	base := makeTar(t, tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755}, tarEntry{name: "etc/os", typ: tar.TypeReg, body: "base"})
	taskA := makeTar(t, tarEntry{name: "testbed/", typ: tar.TypeDir, mode: 0o755}, tarEntry{name: "testbed/a.py", typ: tar.TypeReg, body: "a"})
	taskB := makeTar(t, tarEntry{name: "./testbed/b.py", typ: tar.TypeReg, body: "b"})
	other := makeTar(t, tarEntry{name: "testbed/c.py", typ: tar.TypeReg, body: "c"}, tarEntry{name: "etc/extra", typ: tar.TypeReg, body: "x"})
	dirA, err := r.Rootfs(imageOf(t, r, base, taskA))
	if err != nil {
		t.Fatal(err)
	}
	dirB, err := r.Rootfs(imageOf(t, r, base, taskB))
	if err != nil {
		t.Fatal(err)
	}
	if dirA != dirB {
		t.Fatalf("task images of one base unpacked twice: %s and %s", dirA, dirB)
	}
	if _, err := os.Stat(filepath.Join(dirA, "testbed", "a.py")); err == nil {
		t.Fatal("a layer confined to /testbed was unpacked into the shared root")
	}
	dirC, err := r.Rootfs(imageOf(t, r, base, other))
	if err != nil {
		t.Fatal(err)
	}
	if dirC == dirA {
		t.Fatal("a layer that touches /etc must give its own root")
	}
	if b, err := os.ReadFile(filepath.Join(dirC, "etc", "extra")); err != nil || string(b) != "x" {
		t.Fatalf("etc/extra = %q, %v", b, err)
	}
}

func TestPruneRemovesRootsWhoseLayersAreGone(t *testing.T) {
	r := testRunner(t)
	keep := makeTar(t, tarEntry{name: "etc/keep", typ: tar.TypeReg, body: "k"})
	gone := makeTar(t, tarEntry{name: "etc/gone", typ: tar.TypeReg, body: "g"})
	keepDir, err := r.Rootfs(imageOf(t, r, keep))
	if err != nil {
		t.Fatal(err)
	}
	goneImg := imageOf(t, r, gone)
	goneDir, err := r.Rootfs(goneImg)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := cache.ParseDigest(goneImg.Layers[0])
	os.Remove(filepath.Join(r.store.Root(), "blobs", d.Hex()[:2], d.Hex()))
	n, err := Prune(r.store, Options{})
	if err != nil || n != 1 {
		t.Fatalf("Prune removed %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(goneDir); err == nil {
		t.Fatal("root of a gone layer survived")
	}
	if _, err := os.Stat(keepDir); err != nil {
		t.Fatal("root of a present layer was removed")
	}
}
