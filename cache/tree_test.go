package cache

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sampleTree lays out a directory with nested dirs, an executable, a
// symlink, an empty dir and a file larger than the 4 MiB streaming cutoff.
func sampleTree(t testing.TB, root string) {
	t.Helper()
	writeTestFile(t, filepath.Join(root, "README.md"), []byte("# sample\n"), 0o644)
	writeTestFile(t, filepath.Join(root, "bin", "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	writeTestFile(t, filepath.Join(root, "src", "pkg", "deep", "mod.py"), []byte("x = 1\n"), 0o644)
	writeTestFile(t, filepath.Join(root, "src", "pkg", "__init__.py"), nil, 0o644)
	writeTestFile(t, filepath.Join(root, "data", "big.bin"), pseudoRandom(42, 5<<20), 0o644)
	if err := os.MkdirAll(filepath.Join(root, "empty", "nested-empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../README.md", filepath.Join(root, "src", "readme-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/does/not/exist", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
}

// describe returns a comparable listing of a real directory: path -> kind,
// exec bit, content or link target.
func describe(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case fi.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "file " + fi.Mode().Perm().String() + " " + DigestOf(b).String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSnapshotMaterializeRoundTrip(t *testing.T) {
	s := newStore(t)
	src := t.TempDir()
	sampleTree(t, src)
	d, err := s.Snapshot(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := s.Materialize(d, dst); err != nil {
		t.Fatal(err)
	}
	want, got := describe(t, src), describe(t, dst)
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("materialized tree differs:\nwant %v\ngot  %v", want, got)
	}
	if got["bin/run.sh"][:15] != "file -rwxr-xr-x" || got["README.md"][:15] != "file -rw-r--r--" {
		t.Fatalf("modes: run.sh %q README %q", got["bin/run.sh"], got["README.md"])
	}
	if got["empty/nested-empty"] != "dir" {
		t.Fatal("empty directory not materialized")
	}
	// Snapshotting the copy gives the same digest.
	d2, err := s.Snapshot(dst)
	if err != nil {
		t.Fatal(err)
	}
	if d2 != d {
		t.Fatalf("snapshot of materialized copy = %s, want %s", d2, d)
	}
	// Materializing into an existing empty directory works too.
	empty := t.TempDir()
	if err := s.Materialize(d, empty); err != nil {
		t.Fatalf("Materialize into an empty dir: %v", err)
	}
}

func TestSnapshotDigestIgnoresMtimeAndNonExecBits(t *testing.T) {
	s := newStore(t)
	a := t.TempDir()
	sampleTree(t, a)
	da, err := s.Snapshot(a)
	if err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(t.TempDir(), "elsewhere")
	if err := s.Materialize(da, b); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(b, "README.md"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(b, "src", "pkg"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "README.md"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "bin", "run.sh"), 0o700); err != nil { // still executable
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "src"), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := s.Snapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	if db != da {
		t.Fatalf("mtime/permission changes altered the digest: %s vs %s", db, da)
	}
	// The exec bit does count.
	if err := os.Chmod(filepath.Join(b, "README.md"), 0o755); err != nil {
		t.Fatal(err)
	}
	if dx, _ := s.Snapshot(b); dx == da {
		t.Fatal("setting the exec bit did not change the digest")
	}
	if err := os.Chmod(filepath.Join(b, "README.md"), 0o644); err != nil {
		t.Fatal(err)
	}
	// So do content, names and symlink targets.
	for _, change := range []func(){
		func() { writeTestFile(t, filepath.Join(b, "README.md"), []byte("# sample!\n"), 0o644) },
		func() { os.Rename(filepath.Join(b, "README.md"), filepath.Join(b, "README.txt")) },
		func() {
			os.Remove(filepath.Join(b, "dangling"))
			os.Symlink("/does/not/exist2", filepath.Join(b, "dangling"))
		},
		func() { os.Remove(filepath.Join(b, "empty", "nested-empty")) },
	} {
		prev, _ := s.Snapshot(b)
		change()
		now, err := s.Snapshot(b)
		if err != nil {
			t.Fatal(err)
		}
		if now == prev {
			t.Fatal("a change to the tree did not change its digest")
		}
	}
}

func TestPutFilesEqualsSnapshot(t *testing.T) {
	s := newStore(t)
	files := map[string]File{
		"README.md":              {Data: []byte("# sample\n")},
		"bin/run.sh":             {Data: []byte("#!/bin/sh\necho hi\n"), Exec: true},
		"src/pkg/__init__.py":    {},
		"src/pkg/deep/mod.py":    {Data: []byte("x = 1\n")},
		"src/pkg/deep/other.txt": {Data: []byte("other")},
		"data/big.bin":           {Data: pseudoRandom(42, 5<<20)},
	}
	dir := t.TempDir()
	for p, f := range files {
		mode := os.FileMode(0o644)
		if f.Exec {
			mode = 0o755
		}
		writeTestFile(t, filepath.Join(dir, filepath.FromSlash(p)), f.Data, mode)
	}
	dp, err := s.PutFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := s.Snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dp != ds {
		t.Fatalf("PutFiles = %s, Snapshot = %s", dp, ds)
	}
	// An empty map is the empty tree.
	de, err := s.PutFiles(nil)
	if err != nil {
		t.Fatal(err)
	}
	et, err := s.EmptyTree()
	if err != nil || de != et {
		t.Fatalf("PutFiles(nil) = %s, EmptyTree = %s, %v", de, et, err)
	}
	ds2, err := s.Snapshot(t.TempDir())
	if err != nil || ds2 != et {
		t.Fatalf("Snapshot of empty dir = %s, want EmptyTree %s", ds2, et)
	}
}

func TestFilesReadFileWalk(t *testing.T) {
	s := newStore(t)
	src := t.TempDir()
	sampleTree(t, src)
	d, err := s.Snapshot(src)
	if err != nil {
		t.Fatal(err)
	}
	files, err := s.Files(d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	want := []string{"README.md", "bin/run.sh", "dangling", "data/big.bin", "src/pkg/__init__.py", "src/pkg/deep/mod.py", "src/readme-link"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("Files = %v\nwant    %v", names, want)
	}
	if e := files["bin/run.sh"]; e.Type != TypeFile || !e.Exec || e.Size != int64(len("#!/bin/sh\necho hi\n")) {
		t.Fatalf("run.sh entry = %+v", e)
	}
	if e := files["src/readme-link"]; e.Type != TypeSymlink || e.Target != "../README.md" || !e.Digest.IsZero() {
		t.Fatalf("symlink entry = %+v", e)
	}
	if e := files["data/big.bin"]; e.Size != 5<<20 || e.Digest != DigestOf(pseudoRandom(42, 5<<20)) {
		t.Fatalf("big.bin entry = %+v", e)
	}

	var walked []string
	err = s.Walk(d, func(p string, e TreeEntry) error {
		walked = append(walked, p+":"+e.Type)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantWalk := []string{
		"README.md:file", "bin:dir", "bin/run.sh:file", "dangling:symlink", "data:dir", "data/big.bin:file",
		"empty:dir", "empty/nested-empty:dir", "src:dir", "src/pkg:dir", "src/pkg/__init__.py:file",
		"src/pkg/deep:dir", "src/pkg/deep/mod.py:file", "src/readme-link:symlink",
	}
	if !reflect.DeepEqual(walked, wantWalk) {
		t.Fatalf("Walk order = %v\nwant         %v", walked, wantWalk)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Walk(d, func(string, TreeEntry) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk did not stop on the callback's error: %v after %d calls", err, n)
	}

	if b, err := s.ReadFile(d, "src/pkg/deep/mod.py"); err != nil || string(b) != "x = 1\n" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if b, err := s.ReadFile(d, "src/pkg/__init__.py"); err != nil || len(b) != 0 {
		t.Fatalf("ReadFile of empty file = %q, %v", b, err)
	}
	for _, p := range []string{"nope", "src/nope.py", "src/pkg/deep/mod.py/x", "", "/README.md", "../README.md"} {
		if _, err := s.ReadFile(d, p); err == nil {
			t.Errorf("ReadFile(%q) succeeded", p)
		}
	}
	if _, err := s.ReadFile(d, "src/nope.py"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "src/nope.py") {
		t.Errorf("ReadFile of a missing path: %v, want fs.ErrNotExist naming it", err)
	}
	for _, p := range []string{"src", "src/readme-link", "README.md/x"} {
		if _, err := s.ReadFile(d, p); err == nil || !strings.Contains(err.Error(), "not a file") {
			t.Errorf("ReadFile(%q) err = %v, want not a file", p, err)
		}
	}
	// Files of something that is not a tree fails clearly.
	blob := mustPut(t, s, []byte("plain text"))
	if _, err := s.Files(blob); err == nil || !strings.Contains(err.Error(), "not a tree") {
		t.Fatalf("Files of a plain blob: %v", err)
	}
}

func TestPutTreeRejectsBadEntries(t *testing.T) {
	s := newStore(t)
	d := mustPut(t, s, []byte("content"))
	for name, entries := range map[string][]TreeEntry{
		"slash":      {{Name: "a/b", Type: TypeFile, Digest: d}},
		"dotdot":     {{Name: "..", Type: TypeDir, Digest: d}},
		"dot":        {{Name: ".", Type: TypeDir, Digest: d}},
		"empty name": {{Name: "", Type: TypeFile, Digest: d}},
		"nul":        {{Name: "a\x00", Type: TypeFile, Digest: d}},
		"duplicate":  {{Name: "a", Type: TypeFile, Digest: d}, {Name: "a", Type: TypeSymlink, Target: "x"}},
		"no digest":  {{Name: "a", Type: TypeFile}},
		"bad type":   {{Name: "a", Type: "fifo", Digest: d}},
	} {
		if _, err := s.PutTree(&Tree{Entries: entries}); err == nil {
			t.Errorf("%s: PutTree accepted %+v", name, entries)
		}
	}
}

// craftTree stores raw JSON as a blob, bypassing PutTree's checks, as a
// damaged or hostile store could hold.
func craftTree(t *testing.T, s *Store, json string) Digest {
	t.Helper()
	return mustPut(t, s, []byte(json))
}

func TestGetTreeRejectsHostileTrees(t *testing.T) {
	s := newStore(t)
	file := mustPut(t, s, []byte("pwned\n"))
	f := file.String()
	for name, raw := range map[string]string{
		"dotdot name":   `{"entries":[{"name":"../x","type":"file","digest":"` + f + `"}]}`,
		"absolute name": `{"entries":[{"name":"/tmp/x","type":"file","digest":"` + f + `"}]}`,
		"bare dotdot":   `{"entries":[{"name":"..","type":"dir","digest":"` + f + `"}]}`,
		"unsorted":      `{"entries":[{"name":"b","type":"file","digest":"` + f + `"},{"name":"a","type":"file","digest":"` + f + `"}]}`,
		"duplicate":     `{"entries":[{"name":"a","type":"file","digest":"` + f + `"},{"name":"a","type":"file","digest":"` + f + `"}]}`,
		"unknown type":  `{"entries":[{"name":"a","type":"device","digest":"` + f + `"}]}`,
		"no digest":     `{"entries":[{"name":"a","type":"file"}]}`,
		"not json":      `entries: a`,
	} {
		d := craftTree(t, s, raw)
		if _, err := s.GetTree(d); err == nil {
			t.Errorf("%s: GetTree accepted %s", name, raw)
		}
		parent := t.TempDir()
		out := filepath.Join(parent, "out")
		if err := s.Materialize(d, out); err == nil {
			t.Errorf("%s: Materialize accepted %s", name, raw)
		}
		if names := dirEntries(t, parent); len(names) > 1 || (len(names) == 1 && names[0] != "out") {
			t.Errorf("%s: Materialize wrote outside its directory: %v", name, names)
		}
		if names := dirEntries(t, out); len(names) != 0 {
			t.Errorf("%s: Materialize wrote %v", name, names)
		}
	}
	// A hostile tree nested below a good one is caught too.
	bad := craftTree(t, s, `{"entries":[{"name":"../../escaped","type":"file","digest":"`+f+`"}]}`)
	top, err := s.PutTree(&Tree{Entries: []TreeEntry{{Name: "sub", Type: TypeDir, Digest: bad}}})
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	if err := s.Materialize(top, filepath.Join(parent, "a", "b")); err == nil || !strings.Contains(err.Error(), "invalid name") {
		t.Fatalf("Materialize of nested hostile tree: %v", err)
	}
	if _, err := os.Stat(filepath.Join(parent, "escaped")); !os.IsNotExist(err) {
		t.Fatal("a hostile tree escaped the target directory")
	}
}

func TestMaterializeRefusesNonEmptyDir(t *testing.T) {
	s := newStore(t)
	d, err := s.PutFiles(map[string]File{"a.txt": {Data: []byte("a")}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "existing"), []byte("keep me"), 0o644)
	if err := s.Materialize(d, dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Materialize into a non-empty dir: %v", err)
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Fatalf("Materialize changed a non-empty dir: %v", names)
	}
	// A missing file blob is reported, not silently skipped.
	gone := DigestOf([]byte("a"))
	if err := os.Remove(s.blobPath(gone)); err != nil {
		t.Fatal(err)
	}
	if err := s.Materialize(d, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrMissing) {
		t.Fatalf("Materialize with a missing blob: %v, want ErrMissing", err)
	}
}

func TestPutFilesRejectsBadPaths(t *testing.T) {
	s := newStore(t)
	for _, p := range []string{"", ".", "..", "/abs", "../x", "a/../b", "a//b", "./a", "a/", "a/./b"} {
		if _, err := s.PutFiles(map[string]File{p: {Data: []byte("x")}}); err == nil {
			t.Errorf("PutFiles accepted path %q", p)
		}
	}
	for i := range 20 { // map order varies: try both orders of the clash
		_ = i
		if _, err := s.PutFiles(map[string]File{"a": {}, "a/b": {}}); err == nil {
			t.Fatal("PutFiles accepted a path that is both file and directory")
		}
	}
}

func TestSnapshotRejectsSpecialFilesAndNonDirs(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "ok.txt"), []byte("ok"), 0o644)
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(dir); err == nil || !strings.Contains(err.Error(), fifo) {
		t.Fatalf("Snapshot with a fifo: %v, want an error naming it", err)
	}
	if _, err := s.Snapshot(filepath.Join(dir, "ok.txt")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Snapshot of a file: %v", err)
	}
	if _, err := s.Snapshot(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Snapshot of a missing dir succeeded")
	}
}

func TestTreeEntriesAreBlobsOfTheStore(t *testing.T) {
	// The same file content in two trees is stored once.
	s := newStore(t)
	content := bytes.Repeat([]byte("shared "), 1000)
	if _, err := s.PutFiles(map[string]File{"x/a": {Data: content}}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stats()
	if _, err := s.PutFiles(map[string]File{"y/b": {Data: content}}); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Stats()
	// Two new tree blobs (root and y), no new file blob.
	if after.Blobs-before.Blobs != 2 {
		t.Fatalf("second tree added %d blobs, want 2", after.Blobs-before.Blobs)
	}
}
