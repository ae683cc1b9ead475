package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRecordsOrder(t *testing.T) {
	s := newStore(t)
	if _, ok, err := s.LatestRecord("quickstart"); ok || err != nil {
		t.Fatalf("LatestRecord of an empty group = %v, %v", ok, err)
	}
	if bodies, err := s.Records("quickstart", 5); err != nil || len(bodies) != 0 {
		t.Fatalf("Records of an empty group = %v, %v", bodies, err)
	}
	const n = 40 // quick succession: names must still sort in call order
	for i := range n {
		if err := s.PutRecord("quickstart", []byte(fmt.Sprintf(`{"n":%d}`, i)), nil, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutRecord("other", []byte(`{"n":"other"}`), nil, true); err != nil {
		t.Fatal(err)
	}
	body, ok, err := s.LatestRecord("quickstart")
	if err != nil || !ok || string(body) != fmt.Sprintf(`{"n":%d}`, n-1) {
		t.Fatalf("LatestRecord = %s, %v, %v", body, ok, err)
	}
	bodies, err := s.Records("quickstart", 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bodies {
		got = append(got, string(b))
	}
	want := []string{fmt.Sprintf(`{"n":%d}`, n-1), fmt.Sprintf(`{"n":%d}`, n-2), fmt.Sprintf(`{"n":%d}`, n-3)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Records(3) = %v, want %v", got, want)
	}
	all, err := s.Records("quickstart", 1000)
	if err != nil || len(all) != n {
		t.Fatalf("Records(1000) returned %d, %v", len(all), err)
	}
	for i, b := range all {
		if string(b) != fmt.Sprintf(`{"n":%d}`, n-1-i) {
			t.Fatalf("Records[%d] = %s: not newest first", i, b)
		}
	}
	if st, _ := s.Stats(); st.Records != n+1 {
		t.Fatalf("Stats.Records = %d, want %d", st.Records, n+1)
	}
}

func TestRecordAfterClockStepBack(t *testing.T) {
	s := newStore(t)
	// A record written while the clock was an hour ahead.
	future := time.Now().Add(time.Hour).UnixNano()
	raw, _ := json.Marshal(recordFile{Body: json.RawMessage(`"from the future"`)})
	writeTestFile(t, filepath.Join(s.Root(), "records", "g", fmt.Sprintf("%020d-00000000.json", future)), raw, 0o644)
	if err := s.PutRecord("g", []byte(`"now"`), nil, true); err != nil {
		t.Fatal(err)
	}
	body, ok, err := s.LatestRecord("g")
	if err != nil || !ok || string(body) != `"now"` {
		t.Fatalf("LatestRecord after a clock step back = %s, %v, %v; want the record just written", body, ok, err)
	}
}

func TestRecordBadInput(t *testing.T) {
	s := newStore(t)
	for _, g := range []string{"", ".", "..", "a/b", "../x", "with space", strings.Repeat("x", 129)} {
		if err := s.PutRecord(g, []byte(`{}`), nil, true); err == nil || !strings.Contains(err.Error(), "invalid record group") {
			t.Errorf("PutRecord(%q) err = %v", g, err)
		}
		if _, _, err := s.LatestRecord(g); err == nil {
			t.Errorf("LatestRecord(%q) succeeded", g)
		}
		if _, err := s.Records(g, 1); err == nil {
			t.Errorf("Records(%q) succeeded", g)
		}
	}
	if err := s.PutRecord("g", []byte(`{not json`), nil, true); err == nil {
		t.Error("PutRecord accepted a body that is not JSON")
	}
	if names := dirEntries(t, filepath.Join(s.Root(), "records")); len(names) != 0 {
		t.Fatalf("bad input wrote records: %v", names)
	}
	// A damaged record is reported with its name.
	writeTestFile(t, filepath.Join(s.Root(), "records", "g", "00000000000000000001-00000000.json"), []byte("{"), 0o644)
	if _, _, err := s.LatestRecord("g"); err == nil || !strings.Contains(err.Error(), "g/00000000000000000001-00000000.json") {
		t.Fatalf("LatestRecord of a damaged record: %v", err)
	}
}

// fixture is a store with a tree, memo entries and a record, all
// consistent.
type fixture struct {
	s                     *Store
	tree, file, out, memo Digest
	treeKey, key          Key
	loose                 Digest
	record                string // group/name
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := newStore(t)
	f := &fixture{s: s}
	ctx := context.Background()
	var err error
	f.tree, err = s.PutFiles(map[string]File{
		"a.txt":       {Data: []byte("alpha")},
		"dir/b.txt":   {Data: []byte("beta")},
		"dir/c/d.txt": {Data: []byte("delta")},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.file = DigestOf([]byte("delta"))
	// A node's result: JSON naming the tree.
	f.out = mustPut(t, s, []byte(fmt.Sprintf(`{"output":{"repo":"%s"}}`, f.tree)))
	f.treeKey, _ = KeyOf("node key")
	if err := s.MemoPut(ctx, f.treeKey, f.out); err != nil {
		t.Fatal(err)
	}
	f.memo = mustPut(t, s, []byte(`{"result":"memo only"}`))
	f.key, _ = KeyOf("memo key")
	if err := s.MemoPut(ctx, f.key, f.memo); err != nil {
		t.Fatal(err)
	}
	f.loose = mustPut(t, s, []byte(strings.Repeat("loose blob ", 100)))
	body := fmt.Sprintf(`{"outputs":{"repo":"%s"}}`, f.tree)
	if err := s.PutRecord("build", []byte(body), []Key{f.treeKey, f.key}, true); err != nil {
		t.Fatal(err)
	}
	names, _ := s.recordNames("build")
	f.record = "build/" + names[0]
	return f
}

func TestVerifyClean(t *testing.T) {
	f := newFixture(t)
	rep, err := f.s.Verify(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	// Blobs: 3 files, 3 trees (root, dir, dir/c), 2 memo results, loose.
	if len(rep.Problems) != 0 || rep.Blobs != 9 || rep.MemoEntries != 2 || rep.Records != 1 {
		t.Fatalf("Verify of a clean store = %+v", rep)
	}
}

// storeListing describes every file and directory under the store's root
// (mode and content digest), to show that Verify changed nothing.
func storeListing(t *testing.T, s *Store) map[string]string { return describe(t, s.Root()) }

func problemsByName(rep *VerifyReport) map[string]Problem {
	got := map[string]Problem{}
	for _, p := range rep.Problems {
		got[p.What+" "+p.Name] = p
	}
	return got
}

func TestVerifyFindsEachProblemAndChangesNothing(t *testing.T) {
	f := newFixture(t)
	s := f.s
	flipByte(t, s.blobPath(f.loose)) // a corrupt blob
	os.Remove(s.blobPath(f.memo))    // a memo entry pointing to a missing blob
	os.Remove(s.blobPath(f.file))    // a memo entry reaching a missing blob two trees down
	badKey, _ := KeyOf("bad memo")   // a malformed memo entry
	writeTestFile(t, s.memoPath(badKey), []byte("junk"), 0o644)
	const damaged = "build/00000000000000000001-00000000.json"
	writeTestFile(t, filepath.Join(s.Root(), "records", damaged), []byte("{"), 0o644)
	before := storeListing(t, s)

	rep, err := s.Verify(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	got := problemsByName(rep)
	want := []string{
		"corrupt blob " + f.loose.String(),
		"bad memo entry " + f.treeKey.String(),
		"bad memo entry " + f.key.String(),
		"bad memo entry " + badKey.String(),
		"missing blob " + f.file.String(), // reached from the record
		"missing blob " + f.memo.String(),
		"bad record " + damaged,
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("Verify did not report %q", w)
		}
	}
	if len(rep.Problems) != len(want) {
		t.Errorf("Verify reported %d problems, want %d: %v", len(rep.Problems), len(want), rep.Problems)
	}
	if p := got["missing blob "+f.file.String()]; !strings.Contains(p.Detail, f.record) || !strings.Contains(p.Detail, f.treeKey.String()) {
		t.Errorf("missing blob detail %q does not name the record and memo entry", p.Detail)
	}
	if p := got["bad memo entry "+f.treeKey.String()]; !strings.Contains(p.Detail, f.file.String()) {
		t.Errorf("bad memo entry detail %q does not name the missing blob", p.Detail)
	}
	for _, p := range rep.Problems {
		if p.Action != "" || strings.Contains(p.Detail, "removed") || strings.Contains(p.Detail, "quarantine") {
			t.Errorf("Verify claims to have acted: %v", p)
		}
	}
	if rep.Unrepaired() != len(rep.Problems) || rep.Quarantined != 0 || rep.MemoRemoved != 0 {
		t.Errorf("Verify report %+v claims repairs", rep)
	}
	if rep.Blobs != 7 || rep.MemoEntries != 3 || rep.Records != 2 {
		t.Errorf("counts = %d blobs, %d memo, %d records", rep.Blobs, rep.MemoEntries, rep.Records)
	}
	if after := storeListing(t, s); !reflect.DeepEqual(before, after) {
		t.Errorf("Verify changed the store:\nbefore %v\nafter  %v", before, after)
	}
	// Cancelled context: an error, not a partial report.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Verify(ctx, 1); err == nil {
		t.Error("Verify with a cancelled context succeeded")
	}

	// Repair needs the exclusive lock.
	if _, err := s.Repair(context.Background(), 2); err == nil || !strings.Contains(err.Error(), "OpenExclusive") {
		t.Fatalf("Repair on a shared store: %v", err)
	}
	root := s.Root()
	s.Close()
	ex, err := OpenExclusive(root)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	rep, err = ex.Repair(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	got = problemsByName(rep)
	if len(rep.Problems) != len(want) || rep.Quarantined != 1 || rep.MemoRemoved != 3 {
		t.Errorf("Repair = %+v", rep)
	}
	for _, w := range want {
		p := got[w]
		if (p.Action == "") != strings.HasPrefix(w, "bad record") {
			t.Errorf("Repair action for %q = %q", w, p.Action)
		}
	}
	if rep.Unrepaired() != 1 {
		t.Errorf("Repair left %d problems, want 1 (the damaged record)", rep.Unrepaired())
	}
	if _, err := os.Stat(filepath.Join(root, "quarantine", f.loose.Hex())); err != nil {
		t.Errorf("corrupt blob not in quarantine/: %v", err)
	}
	for _, k := range []Key{f.treeKey, f.key, badKey} {
		if _, err := os.Stat(ex.memoPath(k)); !os.IsNotExist(err) {
			t.Errorf("Repair kept memo entry %s", k)
		}
	}
	// The damaged record is reported, never deleted.
	if _, err := os.Stat(filepath.Join(root, "records", damaged)); err != nil {
		t.Errorf("Repair touched the damaged record: %v", err)
	}
	os.Remove(filepath.Join(root, "records", damaged))
	rep, err = ex.Verify(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Fatalf("Verify after Repair: %v", rep.Problems)
	}
}

// A corrupt blob that a memo entry names: Verify reports both and moves
// nothing; Repair quarantines the blob and drops the entry; Verify is then
// clean.
func TestVerifyCorruptMemoResult(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := mustPut(t, s, []byte(`{"answer":"`+strings.Repeat("forty-two ", 50)+`"}`))
	k, _ := KeyOf("a node")
	if err := s.MemoPut(ctx, k, d); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord("g", []byte(`{}`), []Key{k}, true); err != nil {
		t.Fatal(err)
	}
	replaceWithValidZstd(t, s.blobPath(d), []byte(`{"answer":"forged"}`))
	before := storeListing(t, s)
	rep, err := s.Verify(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := problemsByName(rep)
	for _, w := range []string{"corrupt blob " + d.String(), "bad memo entry " + k.String(), "missing blob " + d.String()} {
		if _, ok := got[w]; !ok {
			t.Errorf("Verify did not report %q: %v", w, rep.Problems)
		}
	}
	if after := storeListing(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("Verify changed the store:\nbefore %v\nafter  %v", before, after)
	}
	s.Close()
	ex, err := OpenExclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	rep, err = ex.Repair(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Quarantined != 1 || rep.MemoRemoved != 1 || rep.Unrepaired() != 0 {
		t.Fatalf("Repair = %+v", rep)
	}
	if _, ok, _ := ex.MemoGet(ctx, k); ok {
		t.Fatal("Repair kept the memo entry of a corrupt result")
	}
	if rep, err := ex.Verify(ctx, 1); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("Verify after Repair: %v %v", rep, err)
	}
}

// Digests in a record's body, and digests inside longer strings of a JSON
// result, are not references: a store whose only "missing" blobs are such
// text is healthy.
func TestVerifyIgnoresDigestsInRecordBodyAndText(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	absent := DigestOf([]byte("never stored"))
	absent2 := DigestOf([]byte("never stored either"))
	result := mustPut(t, s, []byte(fmt.Sprintf(`{"log":"pulled %s ok","note":"image@%s","%s":1}`, absent, absent2, absent)))
	k, _ := KeyOf("a node")
	if err := s.MemoPut(ctx, k, result); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"nodes":[{"params":{"pin":"%s"},"result":"%s"}],"recipe_digest":"%s"}`, absent, result, absent2)
	if err := s.PutRecord("g", []byte(body), []Key{k}, true); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Fatalf("problems on a healthy store: %v", rep.Problems)
	}
	// A string value that is exactly a digest is a reference.
	exact := mustPut(t, s, []byte(fmt.Sprintf(`{"tree":"%s"}`, absent)))
	k2, _ := KeyOf("another node")
	if err := s.MemoPut(ctx, k2, exact); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Verify(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := problemsByName(rep); len(rep.Problems) != 1 || !strings.Contains(got["bad memo entry "+k2.String()].Detail, absent.String()) {
		t.Fatalf("problems = %v, want the memo entry whose result names %s", rep.Problems, absent)
	}
}

func TestGC(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Old build: its own tree and memo entry.
	oldTree, err := s.PutFiles(map[string]File{"old.txt": {Data: []byte("old only")}, "shared.txt": {Data: []byte("shared")}})
	if err != nil {
		t.Fatal(err)
	}
	oldKey, _ := KeyOf("old key")
	oldResult := mustPut(t, s, []byte("old result"))
	if err := s.MemoPut(ctx, oldKey, oldResult); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord("g", []byte(fmt.Sprintf(`{"out":"%s"}`, oldTree)), []Key{oldKey}, true); err != nil {
		t.Fatal(err)
	}

	// New build: a nested tree referenced by the record body, and a kept
	// memo entry whose result is a JSON blob that references another blob
	// and a tree.
	newTree, err := s.PutFiles(map[string]File{
		"shared.txt":      {Data: []byte("shared")},
		"src/main.go":     {Data: []byte("package main")},
		"src/deep/x.bin":  {Data: pseudoRandom(5, 5000)},
		"src/deep/run.sh": {Data: []byte("#!/bin/sh"), Exec: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	layer := mustPut(t, s, pseudoRandom(6, 20000))
	memoTree, err := s.PutFiles(map[string]File{"m/n.txt": {Data: []byte("reached via memo")}})
	if err != nil {
		t.Fatal(err)
	}
	manifest := mustPut(t, s, []byte(fmt.Sprintf(`{"layers":["%s"],"tree":"%s"}`, layer, memoTree)))
	keptKey, _ := KeyOf("kept key")
	if err := s.MemoPut(ctx, keptKey, manifest); err != nil {
		t.Fatal(err)
	}
	droppedKey, _ := KeyOf("dropped key")
	droppedResult := mustPut(t, s, []byte("dropped result"))
	if err := s.MemoPut(ctx, droppedKey, droppedResult); err != nil {
		t.Fatal(err)
	}
	unreachable := mustPut(t, s, []byte("nobody references me"))
	time.Sleep(time.Millisecond)
	if err := s.PutRecord("g", []byte(fmt.Sprintf(`{"out":"%s"}`, newTree)), []Key{keptKey}, true); err != nil {
		t.Fatal(err)
	}
	// Another group's only record stays.
	otherBlob := mustPut(t, s, []byte("other group"))
	if err := s.PutRecord("h", []byte(fmt.Sprintf(`["%s"]`, otherBlob)), nil, true); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "tmp", "put-leftover"), []byte("killed mid-write"), 0o644)

	// GC needs the exclusive lock.
	if _, err := s.GC(1); err == nil || !strings.Contains(err.Error(), "OpenExclusive") {
		t.Fatalf("GC on a shared store: %v", err)
	}
	before, _ := s.Stats()
	s.Close()
	ex, err := OpenExclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	rep, err := ex.GC(1)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := ex.Stats()

	if rep.RecordsRemoved != 1 || rep.MemoRemoved != 2 {
		t.Errorf("GC report = %+v, want 1 record and 2 memo entries removed", rep)
	}
	if rep.BlobsRemoved != before.Blobs-after.Blobs || rep.BytesFreed != before.BlobBytes-after.BlobBytes || rep.BytesFreed <= 0 {
		t.Errorf("GC report %+v disagrees with Stats before %+v after %+v", rep, before, after)
	}
	// Gone: the old tree (root blob and its unique file), both unkept memo
	// entries' results, the unreachable blob.
	for name, d := range map[string]Digest{
		"old tree": oldTree, "old file": DigestOf([]byte("old only")), "old memo result": oldResult,
		"dropped memo result": droppedResult, "unreachable": unreachable,
	} {
		if ex.Has(d) {
			t.Errorf("GC kept %s %s", name, d)
		}
	}
	if rep.BlobsRemoved != 5 {
		t.Errorf("GC removed %d blobs, want 5", rep.BlobsRemoved)
	}
	for _, k := range []Key{oldKey, droppedKey} {
		if _, err := os.Stat(ex.memoPath(k)); !os.IsNotExist(err) {
			t.Errorf("GC kept memo entry %s", k)
		}
	}
	// Kept: everything the new record and the kept memo entry reach.
	if d, ok, err := ex.MemoGet(ctx, keptKey); !ok || err != nil || d != manifest {
		t.Errorf("kept memo entry: %s %v %v", d, ok, err)
	}
	for name, d := range map[string]Digest{"layer": layer, "other group": otherBlob, "shared file": DigestOf([]byte("shared"))} {
		if !ex.Has(d) {
			t.Errorf("GC removed %s", name)
		}
	}
	for tree, paths := range map[Digest][]string{
		newTree:  {"shared.txt", "src/main.go", "src/deep/x.bin", "src/deep/run.sh"},
		memoTree: {"m/n.txt"},
	} {
		for _, p := range paths {
			if _, err := ex.ReadFile(tree, p); err != nil {
				t.Errorf("after GC ReadFile(%s, %s): %v", tree.Short(), p, err)
			}
		}
	}
	if body, ok, _ := ex.LatestRecord("g"); !ok || !strings.Contains(string(body), newTree.String()) {
		t.Errorf("GC removed the newest record: %s", body)
	}
	if bodies, _ := ex.Records("g", 10); len(bodies) != 1 {
		t.Errorf("group g has %d records after GC(1), want 1", len(bodies))
	}
	if bodies, _ := ex.Records("h", 10); len(bodies) != 1 {
		t.Errorf("group h has %d records after GC(1), want 1", len(bodies))
	}
	if tmp := dirEntries(t, filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("GC left tmp/ entries %v", tmp)
	}
	vr, err := ex.Verify(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(vr.Problems) != 0 {
		t.Fatalf("Verify after GC: %v", vr.Problems)
	}
	// A second GC finds nothing more to do.
	rep2, err := ex.GC(1)
	if err != nil {
		t.Fatal(err)
	}
	if *rep2 != (GCReport{}) {
		t.Fatalf("second GC = %+v, want nothing removed", rep2)
	}
}

func TestGCKeepsMoreThanOne(t *testing.T) {
	dir := t.TempDir()
	ex, err := OpenExclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	var blobs []Digest
	for i := range 4 {
		d := mustPut(t, ex, []byte(fmt.Sprintf("build %d", i)))
		blobs = append(blobs, d)
		if err := ex.PutRecord("g", []byte(fmt.Sprintf(`{"out":"%s"}`, d)), nil, true); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := ex.GC(2)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RecordsRemoved != 2 || rep.BlobsRemoved != 2 {
		t.Fatalf("GC(2) = %+v", rep)
	}
	for i, d := range blobs {
		if ex.Has(d) != (i >= 2) {
			t.Errorf("blob of build %d present=%v", i, ex.Has(d))
		}
	}
	// A damaged kept record stops GC before it deletes any blob.
	writeTestFile(t, filepath.Join(dir, "records", "g", "99999999999999999999-00000000.json"), []byte("{"), 0o644)
	if _, err := ex.GC(2); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("GC with a damaged record: %v", err)
	}
	if !ex.Has(blobs[3]) {
		t.Fatal("GC removed blobs despite failing")
	}
}

func TestStats(t *testing.T) {
	f := newFixture(t)
	st, err := f.s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Root != f.s.Root() || st.Blobs != 9 || st.MemoEntries != 2 || st.Records != 1 || st.QuarantinedBlobs != 0 || st.BlobBytes <= 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

// A digest mentioned in text (a model's reply quoting a pip hash) is not a
// reference: verify neither reports it nor drops the memo entry.
func TestVerifyIgnoresDigestsInText(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	reply := []byte(`{"message":{"role":"assistant","content":"pin it: requests==2.31.0 --hash=sha256:` + strings.Repeat("ab", 32) + `"}}`)
	d, err := s.Put(reply)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := KeyOf("a model call")
	if err := s.MemoPut(ctx, k, d); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord("g", []byte(`{"result":"`+d.String()+`"}`), []Key{k}, true); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Fatalf("problems: %v", rep.Problems)
	}
	if _, ok, _ := s.MemoGet(ctx, k); !ok {
		t.Fatal("verify dropped a memo entry whose reply mentions a digest")
	}
}
