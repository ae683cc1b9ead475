package cache

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestRefsOf(t *testing.T) {
	a, b, c := DigestOf([]byte("a")), DigestOf([]byte("b")), DigestOf([]byte("c"))
	upper := "sha256:" + strings.ToUpper(a.Hex())
	for _, tc := range []struct {
		name          string
		data          string
		nodes, leaves []Digest
	}{
		{"not JSON", "plain text " + a.String(), nil, nil},
		{"JSON lines are not one JSON value", `{"x":"` + a.String() + `"}` + "\n" + `{"y":1}`, nil, nil},
		{"leading space", ` {"x":"` + a.String() + `"}`, nil, nil},
		{"string values", `{"x":"` + a.String() + `","y":["` + b.String() + `",{"z":"` + c.String() + `"}]}`, []Digest{a, b, c}, nil},
		{"top-level array", `["` + a.String() + `",1,null,true]`, []Digest{a}, nil},
		{"keys are not references", `{"` + a.String() + `":"` + b.String() + `"}`, []Digest{b}, nil},
		{"text around a digest", `{"reply":"pin --hash=` + a.String() + `","img":"debian@` + b.String() + `","pad":"` + c.String() + ` "}`, nil, nil},
		{"uppercase hex", `{"x":"` + upper + `"}`, nil, nil},
		{"escaped digest", `{"x":"\u0073ha256:` + a.Hex() + `"}`, []Digest{a}, nil},
		{"escapes elsewhere", `{"q\"":"a\\","x":"` + a.String() + `","y":"\"` + b.String() + `\""}`, []Digest{a}, nil},
		{"tree", `{"entries":[{"name":"d","type":"dir","digest":"` + a.String() + `"},{"name":"f","type":"file","digest":"` + b.String() + `"},{"name":"l","type":"symlink","target":"` + c.String() + `"}]}`, []Digest{a}, []Digest{b}},
		{"not a tree: second key", `{"entries":[{"name":"f","type":"file","digest":"` + b.String() + `"}],"more":1}`, []Digest{b}, nil},
		{"oci manifest", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + a.String() + `","size":1},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + b.String() + `","size":2}],"annotations":{"org.opencontainers.image.base.digest":"` + c.String() + `"}}`, []Digest{a}, []Digest{b}},
		{"oci config", `{"architecture":"amd64","config":{"Image":"` + c.String() + `"},"os":"linux","rootfs":{"type":"layers","diff_ids":["` + a.String() + `","` + b.String() + `"]}}`, nil, []Digest{a, b}},
	} {
		got := refsOf([]byte(tc.data))
		if !reflect.DeepEqual(got.nodes, tc.nodes) || !reflect.DeepEqual(got.leaves, tc.leaves) {
			t.Errorf("%s: refsOf = nodes %v leaves %v, want %v %v", tc.name, got.nodes, got.leaves, tc.nodes, tc.leaves)
		}
	}
}

func TestMissingTwoLevelsDown(t *testing.T) {
	s := newStore(t)
	tree, err := s.PutFiles(map[string]File{"top.txt": {Data: []byte("top")}, "dir/sub/deep.txt": {Data: []byte("deep")}})
	if err != nil {
		t.Fatal(err)
	}
	deep := DigestOf([]byte("deep"))
	out := mustPut(t, s, []byte(fmt.Sprintf(`{"output":{"repo":"%s","n":3}}`, tree)))
	if m, err := s.Missing(out, tree); err != nil || len(m) != 0 {
		t.Fatalf("Missing on a complete store = %v, %v", m, err)
	}

	// Fresh handles: the first one remembers that out was complete.
	fresh := func() *Store {
		h, err := Open(s.Root())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	os.Remove(s.blobPath(deep))
	h := fresh()
	for _, root := range []Digest{tree, out} { // tree -> dir -> sub -> file; JSON -> tree -> ... -> file
		if m, err := h.Missing(root); err != nil || !reflect.DeepEqual(m, []Digest{deep}) {
			t.Fatalf("Missing(%s) = %v, %v; want [%s]", root.Short(), m, err, deep)
		}
	}
	// Not remembered: once the file is stored again, nothing is missing.
	mustPut(t, s, []byte("deep"))
	if m, err := h.Missing(out); err != nil || len(m) != 0 {
		t.Fatalf("Missing after the blob was stored again = %v, %v", m, err)
	}

	// A missing directory tree is reported, not what is below it.
	dirTree := mustGetEntry(t, s, tree, "dir").Digest
	os.Remove(s.blobPath(dirTree))
	if m, err := fresh().Missing(out); err != nil || !reflect.DeepEqual(m, []Digest{dirTree}) {
		t.Fatalf("Missing with the dir tree gone = %v, %v; want [%s]", m, err, dirTree)
	}
}

func mustGetEntry(t *testing.T, s *Store, tree Digest, name string) TreeEntry {
	t.Helper()
	tr, err := s.GetTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tr.Entries {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no %s in tree %s", name, tree)
	return TreeEntry{}
}

func TestMissingDoesNotReadLeaves(t *testing.T) {
	s := newStore(t)
	absent := DigestOf([]byte("never stored"))
	jsonFile := []byte(fmt.Sprintf(`{"lock":"%s"}`, absent))
	tree, err := s.PutFiles(map[string]File{"package-lock.json": {Data: jsonFile}, "data.bin": {Data: pseudoRandom(1, 4096)}})
	if err != nil {
		t.Fatal(err)
	}
	bin := DigestOf(pseudoRandom(1, 4096))
	flipByte(t, s.blobPath(bin)) // a leaf that would fail a read
	m, err := s.Missing(tree)
	if err != nil || len(m) != 0 {
		t.Fatalf("Missing = %v, %v; want nothing: file leaves are checked with a stat only", m, err)
	}
	if !s.Has(bin) {
		t.Fatal("Missing read (and quarantined) a file leaf")
	}
	if st, _ := s.Stats(); st.QuarantinedBlobs != 0 {
		t.Fatalf("Missing quarantined %d blobs", st.QuarantinedBlobs)
	}
	// The same JSON bytes reached through a JSON reference are followed.
	out := mustPut(t, s, []byte(fmt.Sprintf(`{"lockfile":"%s"}`, DigestOf(jsonFile))))
	if m, err := s.Missing(out); err != nil || !reflect.DeepEqual(m, []Digest{absent}) {
		t.Fatalf("Missing(out) = %v, %v; want [%s]", m, err, absent)
	}
}

func TestMissingCorruptNestedJSON(t *testing.T) {
	s := newStore(t)
	innerData := []byte(`{"reply":"` + strings.Repeat("text ", 100) + `"}`)
	inner := mustPut(t, s, innerData)
	out := mustPut(t, s, []byte(fmt.Sprintf(`{"calls":["%s"]}`, inner)))
	replaceWithValidZstd(t, s.blobPath(inner), []byte(`{"reply":"forged"}`))
	m, err := s.Missing(out)
	if err != nil || !reflect.DeepEqual(m, []Digest{inner}) {
		t.Fatalf("Missing = %v, %v; want the corrupt blob %s", m, err, inner)
	}
	// Found while reading: moved aside like Get does, so it reads as missing.
	if s.Has(inner) {
		t.Fatal("the corrupt blob was left in place")
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "quarantine", inner.Hex())); err != nil {
		t.Fatalf("corrupt blob not in quarantine/: %v", err)
	}
	mustPut(t, s, innerData)
	if m, err := s.Missing(out); err != nil || len(m) != 0 {
		t.Fatalf("Missing after the blob was stored again = %v, %v", m, err)
	}
}

func TestMissingMissingRootAndText(t *testing.T) {
	s := newStore(t)
	absent := DigestOf([]byte("never stored"))
	if m, err := s.Missing(absent); err != nil || !reflect.DeepEqual(m, []Digest{absent}) {
		t.Fatalf("Missing(absent root) = %v, %v", m, err)
	}
	reply := mustPut(t, s, []byte(fmt.Sprintf(`{"content":"use requests --hash=%s","%s":true}`, absent, absent)))
	if m, err := s.Missing(reply); err != nil || len(m) != 0 {
		t.Fatalf("Missing of a reply quoting a digest = %v, %v", m, err)
	}
	// Reached twice, once as a leaf and once as a node: listed once.
	tree, err := s.PutTree(&Tree{Entries: []TreeEntry{{Name: "f", Type: TypeFile, Digest: absent}}})
	if err != nil {
		t.Fatal(err)
	}
	out := mustPut(t, s, []byte(fmt.Sprintf(`["%s","%s","%s"]`, tree, absent, absent)))
	if m, err := s.Missing(out); err != nil || !reflect.DeepEqual(m, []Digest{absent}) {
		t.Fatalf("Missing = %v, %v; want [%s] once", m, err, absent)
	}
}

func TestMissingOCIImage(t *testing.T) {
	s := newStore(t)
	layer := mustPut(t, s, pseudoRandom(3, 10000))
	diff := mustPut(t, s, pseudoRandom(4, 10000))
	upstream := DigestOf([]byte("upstream base manifest, never stored"))
	config := mustPut(t, s, []byte(fmt.Sprintf(`{"architecture":"amd64","config":{"Image":"%s"},"os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}`, upstream, diff)))
	manifest := mustPut(t, s, []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":1,"digest":"%s"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1,"digest":"%s"}],"annotations":{"org.opencontainers.image.base.digest":"%s"}}`, config, layer, upstream)))
	img := mustPut(t, s, []byte(fmt.Sprintf(`{"image":{"digest":"%s","layers":["%s"]}}`, manifest, diff)))
	if m, err := s.Missing(img); err != nil || len(m) != 0 {
		t.Fatalf("Missing of a complete image = %v, %v", m, err)
	}
	os.Remove(s.blobPath(diff))
	os.Remove(s.blobPath(layer))
	h, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	want := []Digest{layer, diff}
	sortDigests(want)
	if m, err := h.Missing(manifest); err != nil || !reflect.DeepEqual(m, want) {
		t.Fatalf("Missing(manifest) = %v, %v; want %v", m, err, want)
	}
}

// Blobs stored by PutStream carry no content size and are streamed: a JSON
// one is read whole and followed, another is read only to its first byte.
func TestMissingStreamedBlobs(t *testing.T) {
	s := newStore(t)
	absent := DigestOf([]byte("never stored"))
	big := pseudoRandom(5, 3<<20)
	bigD, _, err := s.PutStream(bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	// A small file holding a large content: streamed, not decoded whole.
	zeros := make([]byte, maxWholeBlob+1)
	zerosD, _, err := s.PutStream(bytes.NewReader(zeros))
	if err != nil {
		t.Fatal(err)
	}
	js := []byte(fmt.Sprintf(`{"layer":"%s","gone":"%s","zeros":"%s","pad":"%s"}`, bigD, absent, zerosD, strings.Repeat("x", 1000)))
	jsD, _, err := s.PutStream(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.Missing(jsD); err != nil || !reflect.DeepEqual(m, []Digest{absent}) {
		t.Fatalf("Missing = %v, %v; want [%s]", m, err, absent)
	}
	// Verify reads both whole and finds them intact.
	rep, err := s.Verify(t.Context(), 2)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("Verify = %v, %v", rep, err)
	}
}

// Many goroutines checking outputs that share subtrees agree, and see a
// blob that goes missing only through handles that did not yet find it
// complete.
func TestMissingConcurrent(t *testing.T) {
	s := newStore(t)
	shared, err := s.PutFiles(map[string]File{"lib/a.py": {Data: []byte("a")}, "lib/b.py": {Data: []byte("b")}})
	if err != nil {
		t.Fatal(err)
	}
	var outs []Digest
	for i := range 200 {
		outs = append(outs, mustPut(t, s, []byte(fmt.Sprintf(`{"n":%d,"tree":"%s"}`, i, shared))))
	}
	os.Remove(s.blobPath(DigestOf([]byte("b"))))
	var wg sync.WaitGroup
	errs := make(chan string, len(outs))
	for _, o := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := s.Missing(o)
			if err != nil || !reflect.DeepEqual(m, []Digest{DigestOf([]byte("b"))}) {
				errs <- fmt.Sprintf("Missing(%s) = %v, %v", o.Short(), m, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// BenchmarkMissing measures the check a build makes on every cache hit.
func BenchmarkMissing(b *testing.B) {
	// One node's output: a small JSON blob without references, not yet
	// known complete (the common case on a no-op rebuild).
	b.Run("small-json-cold", func(b *testing.B) {
		s := newStore(b)
		d := mustPut(b, s, []byte(`{"output":{"text":"hello world"},"counts":{"items":1}}`))
		b.ReportAllocs()
		for b.Loop() {
			s.forgetComplete()
			if m, err := s.Missing(d); err != nil || len(m) != 0 {
				b.Fatal(m, err)
			}
		}
	})
	// The same output checked again through the same handle.
	b.Run("small-json-warm", func(b *testing.B) {
		s := newStore(b)
		d := mustPut(b, s, []byte(`{"output":{"text":"hello world"},"counts":{"items":1}}`))
		s.Missing(d)
		b.ReportAllocs()
		for b.Loop() {
			if m, err := s.Missing(d); err != nil || len(m) != 0 {
				b.Fatal(m, err)
			}
		}
	})
	// A no-op rebuild of 10,000 nodes: each output names one of 100 repo
	// snapshots (40 files in 5 directories, a shared vendored directory).
	b.Run("10k-nodes-shared-trees", func(b *testing.B) {
		s := newStore(b)
		vendored := map[string]File{}
		for i := range 20 {
			vendored[fmt.Sprintf("vendor/pkg%d/mod.py", i)] = File{Data: []byte(fmt.Sprintf("vendored %d", i))}
		}
		var trees []Digest
		for r := range 100 {
			files := map[string]File{}
			for k, v := range vendored {
				files[k] = v
			}
			for i := range 20 {
				files[fmt.Sprintf("src/d%d/f%d.py", i%4, i)] = File{Data: []byte(fmt.Sprintf("repo %d file %d", r, i))}
			}
			tr, err := s.PutFiles(files)
			if err != nil {
				b.Fatal(err)
			}
			trees = append(trees, tr)
		}
		outs := make([]Digest, 10000)
		for i := range outs {
			outs[i] = mustPut(b, s, []byte(fmt.Sprintf(`{"output":{"repo":"%s","bug":%d}}`, trees[i%len(trees)], i)))
		}
		b.ReportAllocs()
		for b.Loop() {
			s.forgetComplete()
			for _, o := range outs {
				if m, err := s.Missing(o); err != nil || len(m) != 0 {
					b.Fatal(m, err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(outs)), "ns/node")
	})
}
