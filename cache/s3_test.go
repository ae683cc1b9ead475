package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/klauspost/compress/zstd"
)

// remoteStore opens a store in a fresh directory in front of the remote at
// url, as one machine of several would.
func remoteStore(t *testing.T, url string) *cache.Store {
	t.Helper()
	s, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r, err := cache.OpenS3(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	s.SetRemote(r)
	return s
}

func localBlob(s *cache.Store, d cache.Digest) string {
	return filepath.Join(s.Root(), "blobs", d.Hex()[:2], d.Hex())
}

// A second store directory over the same bucket reads what the first
// wrote: blobs (kept locally once read), trees, memo entries and records,
// without running anything.
func TestRemoteSecondMachineReadsWhatTheFirstWrote(t *testing.T) {
	srv := testenv.S3(t)
	srv.Setenv(t)
	url := srv.Bucket(t) + "/team/shared"
	a := remoteStore(t, url)
	ctx := context.Background()

	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "pkg"), 0o755)
	os.WriteFile(filepath.Join(src, "pkg", "mod.py"), []byte("def f():\n    return 1\n"), 0o644)
	os.WriteFile(filepath.Join(src, "big.bin"), bytes.Repeat([]byte("0123456789abcdef"), 400_000), 0o755) // PutStream path
	tree, err := a.Snapshot(src)
	if err != nil {
		t.Fatal(err)
	}
	result, err := a.Put([]byte(`{"tree":"` + tree.String() + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := cache.KeyOf("node that ran on machine A")
	if err := a.MemoPut(ctx, k, result); err != nil {
		t.Fatal(err)
	}
	if err := a.PutRecord("quickstart", []byte(`{"built":"on A"}`), []cache.Key{k}, true); err != nil {
		t.Fatal(err)
	}
	// The objects are where the layout says, below the prefix.
	if m, _ := filepath.Glob(filepath.Join(srv.Dir, "*", "team", "shared", "memo", k.String())); len(m) != 1 {
		t.Fatalf("memo entry not at <prefix>/memo/<key>: %v", m)
	}

	b := remoteStore(t, url)
	if b.Has(result) == false {
		t.Fatal("B: Has is false for a blob on the remote")
	}
	if _, err := os.Stat(localBlob(b, result)); err == nil {
		t.Fatal("B: Has fetched the blob; it should only ask the remote")
	}
	got, hit, err := b.MemoGet(ctx, k)
	if err != nil || !hit || got != result {
		t.Fatalf("B: MemoGet = %s, %v, %v; want a hit on %s", got, hit, err, result)
	}
	missing, err := b.Missing(result)
	if err != nil || len(missing) != 0 {
		t.Fatalf("B: Missing(result) = %v, %v; want nothing missing", missing, err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := b.Materialize(tree, out); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pkg/mod.py", "big.bin"} {
		want, _ := os.ReadFile(filepath.Join(src, p))
		have, err := os.ReadFile(filepath.Join(out, p))
		if err != nil || !bytes.Equal(have, want) {
			t.Fatalf("B: materialized %s differs from what A stored (%v)", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, "big.bin")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("B: big.bin lost its executable bit: %v", err)
	}
	// Read once per machine: the blobs B read are now in its directory.
	for _, d := range []cache.Digest{result, tree} {
		if _, err := os.Stat(localBlob(b, d)); err != nil {
			t.Fatalf("B: %s was not kept locally after a remote read: %v", d, err)
		}
	}
	// The memo entry too, and the record B sees is A's.
	if _, err := os.Stat(filepath.Join(b.Root(), "memo", k.String()[:2], k.String())); err != nil {
		t.Fatalf("B: memo entry not kept locally: %v", err)
	}
	body, ok, err := b.LatestRecord("quickstart")
	if err != nil || !ok || string(body) != `{"built":"on A"}` {
		t.Fatalf("B: LatestRecord = %q, %v, %v; want A's record", body, ok, err)
	}
	// A blob B writes and A never saw reaches A through the remote.
	d, err := b.Put([]byte("written by B"))
	if err != nil {
		t.Fatal(err)
	}
	if data, err := a.Get(d); err != nil || string(data) != "written by B" {
		t.Fatalf("A: Get of B's blob = %q, %v", data, err)
	}
	// Both tiers verify clean.
	for name, s := range map[string]*cache.Store{"A": a, "B": b} {
		rep, err := s.Verify(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 0 || rep.Remote == nil || len(rep.Remote.Problems) != 0 || rep.Remote.Blobs < 5 || rep.Remote.MemoEntries != 1 || rep.Remote.Records != 1 {
			t.Fatalf("%s: verify = %+v, remote %+v; want no problems and the remote's 5+ blobs, 1 memo entry, 1 record", name, rep, rep.Remote)
		}
	}
}

// A remote blob whose bytes no longer match its digest is found by verify,
// refused by a reader (and moved to the remote's quarantine/, so it reads
// as missing everywhere), and written again by the next store that has it.
func TestRemoteCorruptBlobIsDetected(t *testing.T) {
	srv := testenv.S3(t)
	srv.Setenv(t)
	url := srv.Bucket(t)
	a := remoteStore(t, url)
	data := []byte("the content the digest names")
	d, err := a.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	objs, _ := filepath.Glob(filepath.Join(srv.Dir, "*", "blobs", d.Hex()))
	if len(objs) != 1 {
		t.Fatalf("remote blob not found in the server's directory: %v", objs)
	}
	bad, _ := zstd.NewWriter(nil)
	if err := os.WriteFile(objs[0], bad.EncodeAll([]byte("something else entirely"), nil), 0o644); err != nil {
		t.Fatal(err)
	}

	rep, err := a.Verify(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Remote == nil || len(rep.Remote.Problems) != 1 ||
		rep.Remote.Problems[0].What != "corrupt blob" || rep.Remote.Problems[0].Name != d.String() || !strings.Contains(rep.Remote.Problems[0].Detail, url) {
		t.Fatalf("verify: local %v, remote %+v; want one corrupt remote blob %s", rep.Problems, rep.Remote, d)
	}

	b := remoteStore(t, url)
	_, err = b.Get(d)
	var ce *cache.CorruptError
	if !errors.As(err, &ce) || ce.Digest != d {
		t.Fatalf("B: Get of a corrupt remote blob = %v; want a *CorruptError", err)
	}
	if _, err := os.Stat(localBlob(b, d)); err == nil {
		t.Fatal("B: the corrupt blob was kept locally")
	}
	if b.Has(d) {
		t.Fatal("B: a quarantined remote blob still reads as present")
	}
	// A third machine that has the content writes it again.
	c := remoteStore(t, url)
	if _, err := c.Put(data); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(d); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("B: after the repair Get = %q, %v", got, err)
	}
}

// gc over the remote keeps what the remote's newest records reach and
// removes the rest, but only once it is older than the grace period.
func TestRemoteGC(t *testing.T) {
	srv := testenv.S3(t)
	srv.Setenv(t)
	url := srv.Bucket(t) + "/p"
	ctx := context.Background()
	a := remoteStore(t, url)
	put := func(s string) cache.Digest {
		d, err := a.Put([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	leaf := put("a file of the kept build")
	tree, err := a.PutTree(&cache.Tree{Entries: []cache.TreeEntry{{Name: "f", Type: cache.TypeFile, Digest: leaf}}})
	if err != nil {
		t.Fatal(err)
	}
	oldResult := put("result of the old build")
	kOld, _ := cache.KeyOf("old")
	kNew, _ := cache.KeyOf("new")
	a.MemoPut(ctx, kOld, oldResult)
	a.MemoPut(ctx, kNew, tree)
	if err := a.PutRecord("r", []byte(`{}`), []cache.Key{kOld}, true); err != nil {
		t.Fatal(err)
	}
	if err := a.PutRecord("r", []byte(`{}`), []cache.Key{kNew}, true); err != nil {
		t.Fatal(err)
	}
	stray := put("uploaded by a build that has no record yet")

	// Another machine collects: with the default grace nothing young goes.
	g, err := cache.OpenExclusive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r, err := cache.OpenS3(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	g.SetRemote(r)
	rep, err := g.GC(1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Remote == nil || rep.Remote.RecordsRemoved != 1 || rep.Remote.MemoRemoved != 0 || rep.Remote.BlobsRemoved != 0 {
		t.Fatalf("gc with the default grace: %+v; want only the old record removed", rep.Remote)
	}
	cache.SetRemoteGrace(g, 0)
	rep, err = g.GC(1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Remote.MemoRemoved != 1 || rep.Remote.BlobsRemoved != 2 {
		t.Fatalf("gc with no grace: %+v; want the old memo entry, its result and the stray blob removed", rep.Remote)
	}
	b := remoteStore(t, url)
	for _, d := range []cache.Digest{leaf, tree} {
		if !b.Has(d) {
			t.Fatalf("gc removed %s, which the kept record reaches", d)
		}
	}
	for _, d := range []cache.Digest{oldResult, stray} {
		if b.Has(d) {
			t.Fatalf("gc kept %s, which nothing kept reaches", d)
		}
	}
	if _, hit, _ := b.MemoGet(ctx, kOld); hit {
		t.Fatal("gc kept the old build's memo entry")
	}
	if d, hit, _ := b.MemoGet(ctx, kNew); !hit || d != tree {
		t.Fatal("gc removed the kept build's memo entry")
	}
	v, err := b.Verify(ctx, 2)
	if err != nil || len(v.Remote.Problems) != 0 || v.Remote.Records != 1 {
		t.Fatalf("verify after gc: %+v, %v", v.Remote, err)
	}
}

// Two machines storing different results for one key at once agree on one
// winner, which is what the remote holds.
func TestRemoteMemoPutFirstOneWinner(t *testing.T) {
	srv := testenv.S3(t)
	srv.Setenv(t)
	url := srv.Bucket(t)
	a, b := remoteStore(t, url), remoteStore(t, url)
	ctx := context.Background()
	for round := range 10 {
		k, _ := cache.KeyOf(fmt.Sprintf("model call %d", round))
		var da, db cache.Digest
		var err error
		if da, err = a.Put(fmt.Appendf(nil, "reply from A, round %d", round)); err != nil {
			t.Fatal(err)
		}
		if db, err = b.Put(fmt.Appendf(nil, "reply from B, round %d", round)); err != nil {
			t.Fatal(err)
		}
		var wa, wb cache.Digest
		var ea, eb error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); wa, ea = a.MemoPutFirst(ctx, k, da) }()
		go func() { defer wg.Done(); wb, eb = b.MemoPutFirst(ctx, k, db) }()
		wg.Wait()
		if ea != nil || eb != nil {
			t.Fatal(ea, eb)
		}
		if wa != wb || (wa != da && wa != db) {
			t.Fatalf("round %d: A got %s, B got %s; want one winner of %s and %s", round, wa, wb, da, db)
		}
		// A third machine reads the same winner, and a late writer gets it back.
		c := remoteStore(t, url)
		if got, hit, err := c.MemoGet(ctx, k); err != nil || !hit || got != wa {
			t.Fatalf("round %d: C reads %s, %v, %v; want %s", round, got, hit, err, wa)
		}
		late, _ := c.Put([]byte("late reply"))
		if got, err := c.MemoPutFirst(ctx, k, late); err != nil || got != wa {
			t.Fatalf("round %d: a late MemoPutFirst got %s, %v; want the winner %s", round, got, err, wa)
		}
	}
}

// Credentials never show in errors: a wrong secret is refused with the
// server's reason, not the secret. Nor in the remote's name.
func TestS3SecretNotInErrors(t *testing.T) {
	srv := testenv.S3(t)
	srv.Setenv(t)
	url := srv.Bucket(t)
	const wrong = "wrong-secret-Zq7Xv93kLmN0pQ"
	t.Setenv("AWS_SECRET_ACCESS_KEY", wrong)
	_, err := cache.OpenS3(context.Background(), url+"/x")
	if err == nil {
		t.Fatal("OpenS3 with a wrong secret succeeded")
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("error holds a secret: %v", err)
	}
	if !strings.Contains(err.Error(), "Signature") && !strings.Contains(err.Error(), "Access") {
		t.Fatalf("error does not say why: %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	// Credentials in the URL are refused, and not echoed.
	_, err = cache.OpenS3(context.Background(), "s3://"+srv.AccessKey+":"+srv.SecretKey+"@bucket/p")
	if err == nil || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("OpenS3 with credentials in the URL: %v", err)
	}
	_, err = cache.OpenS3(context.Background(), "s3://no-such-bucket-here")
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("OpenS3 of a missing bucket: %v", err)
	}
	r, err := cache.OpenS3(context.Background(), url+"/x/")
	if err != nil {
		t.Fatal(err)
	}
	if r.String() != url+"/x" {
		t.Fatalf("remote name %q, want %q", r.String(), url+"/x")
	}
	// The credentials file works when the environment has none.
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".aws"), 0o700)
	os.WriteFile(filepath.Join(home, ".aws", "credentials"), []byte("[default]\naws_access_key_id = "+srv.AccessKey+"\naws_secret_access_key = "+srv.SecretKey+"\n"), 0o600)
	t.Setenv("HOME", home)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	os.Unsetenv("AWS_ACCESS_KEY_ID")
	os.Unsetenv("AWS_SECRET_ACCESS_KEY")
	if _, err := cache.OpenS3(context.Background(), url); err != nil {
		t.Fatalf("OpenS3 with ~/.aws/credentials: %v", err)
	}
}
