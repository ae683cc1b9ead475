package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestPutGetRoundTrip(t *testing.T) {
	s := newStore(t)
	for _, data := range [][]byte{nil, []byte("x"), []byte(strings.Repeat("compressible ", 10000)), pseudoRandom(1, 100_000)} {
		d, err := s.Put(data)
		if err != nil {
			t.Fatal(err)
		}
		if d != DigestOf(data) {
			t.Fatalf("Put returned %s, want %s", d, DigestOf(data))
		}
		if !s.Has(d) {
			t.Fatalf("Has(%s) = false after Put", d)
		}
		got, err := s.Get(d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("Get returned %d bytes, want %d", len(got), len(data))
		}
	}
	// Blobs are stored compressed under blobs/<2 hex>/<hex>.
	big := []byte(strings.Repeat("compressible ", 10000))
	fi, err := os.Stat(filepath.Join(s.Root(), "blobs", DigestOf(big).Hex()[:2], DigestOf(big).Hex()))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= int64(len(big))/10 {
		t.Fatalf("blob file is %d bytes for %d compressible bytes; not compressed?", fi.Size(), len(big))
	}
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("blob file mode %v, want 0644", fi.Mode().Perm())
	}
	if tmp := dirEntries(t, filepath.Join(s.Root(), "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty after Put: %v", tmp)
	}
}

func TestPutExistingIsNoOp(t *testing.T) {
	s := newStore(t)
	d := mustPut(t, s, []byte("same"))
	p := s.blobPath(d)
	before, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	// Mark the file so a rewrite would be visible: a second Put must not
	// replace it (it would get a new inode).
	if d2 := mustPut(t, s, []byte("same")); d2 != d {
		t.Fatalf("second Put returned %s, want %s", d2, d)
	}
	after, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("Put of an existing blob rewrote the file")
	}
}

func TestPutStreamAndOpen(t *testing.T) {
	s := newStore(t)
	data := pseudoRandom(7, 5<<20+123)
	d, n, err := s.PutStream(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if d != DigestOf(data) || n != int64(len(data)) {
		t.Fatalf("PutStream = %s, %d; want %s, %d", d, n, DigestOf(data), len(data))
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("streamed blob file mode %v, want 0644 like Put", fi.Mode().Perm())
	}
	r, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got bytes.Buffer
	buf := make([]byte, 4096) // small reads: many calls before EOF
	if _, err := io.CopyBuffer(&got, struct{ io.Reader }{r}, buf); err != nil {
		t.Fatalf("streaming read: %v", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("Open returned different bytes")
	}
	// Same stream again: already present, same answer, nothing left in tmp/.
	d2, n2, err := s.PutStream(bytes.NewReader(data))
	if err != nil || d2 != d || n2 != n {
		t.Fatalf("second PutStream = %s, %d, %v", d2, n2, err)
	}
	if tmp := dirEntries(t, filepath.Join(s.Root(), "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty after PutStream: %v", tmp)
	}
	// Get agrees with the streamed blob.
	if b, err := s.Get(d); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("Get after PutStream: %v", err)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	m := min(len(p), f.n)
	f.n -= m
	return m, nil
}

func TestPutStreamReaderError(t *testing.T) {
	s := newStore(t)
	_, _, err := s.PutStream(&failingReader{n: 100_000})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v, want the reader's error", err)
	}
	if st, _ := s.Stats(); st.Blobs != 0 {
		t.Fatalf("a failed stream left %d blobs", st.Blobs)
	}
	if tmp := dirEntries(t, filepath.Join(s.Root(), "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty after a failed PutStream: %v", tmp)
	}
}

func TestGetMissing(t *testing.T) {
	s := newStore(t)
	d := DigestOf([]byte("never stored"))
	if s.Has(d) {
		t.Fatal("Has of a missing blob")
	}
	_, err := s.Get(d)
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("Get err = %v, want ErrMissing naming the digest", err)
	}
	_, err = s.Open(d)
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("Open err = %v, want ErrMissing", err)
	}
}

// checkQuarantined asserts err is a *CorruptError for d, the blob reads as
// missing, the bad file sits in quarantine/, and a Put repairs the store.
func checkQuarantined(t *testing.T, s *Store, d Digest, data []byte, err error, reason string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want *CorruptError", err, err)
	}
	if ce.Digest != d || !strings.Contains(ce.Reason, reason) || !strings.Contains(ce.Error(), d.String()) {
		t.Fatalf("CorruptError = %+v, want digest %s and reason containing %q", ce, d, reason)
	}
	if s.Has(d) {
		t.Fatal("corrupt blob still in blobs/")
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "quarantine", d.Hex())); err != nil {
		t.Fatalf("corrupt blob not in quarantine/: %v", err)
	}
	if _, err := s.Get(d); !errors.Is(err, ErrMissing) {
		t.Fatalf("Get after quarantine: %v, want ErrMissing", err)
	}
	if _, err := s.Put(data); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after repairing Put: %v", err)
	}
}

func TestGetDetectsCorruption(t *testing.T) {
	data := []byte(strings.Repeat("the quick brown fox ", 500))
	t.Run("flipped byte", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, data)
		flipByte(t, s.blobPath(d))
		_, err := s.Get(d)
		checkQuarantined(t, s, d, data, err, "")
	})
	t.Run("other valid content", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, data)
		replaceWithValidZstd(t, s.blobPath(d), []byte(strings.Repeat("the quick brown cat ", 500)))
		_, err := s.Get(d)
		checkQuarantined(t, s, d, data, err, "does not match digest")
	})
	t.Run("not zstd at all", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, data)
		if err := os.WriteFile(s.blobPath(d), data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := s.Get(d)
		checkQuarantined(t, s, d, data, err, "does not decompress")
	})
	t.Run("put over corrupt file is a no-op until quarantined", func(t *testing.T) {
		// Documents the design: Put trusts presence; the verified read is
		// what moves the bad file aside.
		s := newStore(t)
		d := mustPut(t, s, data)
		flipByte(t, s.blobPath(d))
		mustPut(t, s, data)
		_, err := s.Get(d)
		checkQuarantined(t, s, d, data, err, "")
	})
}

func TestOpenDetectsCorruptionAtEnd(t *testing.T) {
	data := pseudoRandom(3, 1<<20)
	other := pseudoRandom(4, 1<<20)
	readAll := func(s *Store, d Digest) ([]byte, error) {
		r, err := s.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	t.Run("other valid content", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, data)
		replaceWithValidZstd(t, s.blobPath(d), other)
		got, err := readAll(s, d)
		// All of the (wrong) content is delivered; the error comes last.
		if len(got) != len(other) {
			t.Fatalf("read %d bytes before the error, want %d", len(got), len(other))
		}
		checkQuarantined(t, s, d, data, err, "does not match digest")
	})
	t.Run("flipped byte", func(t *testing.T) {
		s := newStore(t)
		d := mustPut(t, s, data)
		flipByte(t, s.blobPath(d))
		_, err := readAll(s, d)
		checkQuarantined(t, s, d, data, err, "")
	})
}

func TestMemo(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	k, _ := KeyOf(map[string]any{"kind": "validate", "item": "repo-1"})
	if _, ok, err := s.MemoGet(ctx, k); ok || err != nil {
		t.Fatalf("MemoGet of a new key = %v, %v; want a miss", ok, err)
	}
	d := mustPut(t, s, []byte(`{"ok":true}`))
	if err := s.MemoPut(ctx, k, d); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.MemoGet(ctx, k)
	if err != nil || !ok || got != d {
		t.Fatalf("MemoGet = %s, %v, %v; want hit %s", got, ok, err, d)
	}
	raw, err := os.ReadFile(s.memoPath(k))
	if err != nil || string(raw) != d.String()+"\n" {
		t.Fatalf("memo file = %q, %v", raw, err)
	}
	// Overwriting points the key at the new result.
	d2 := mustPut(t, s, []byte(`{"ok":false}`))
	if err := s.MemoPut(ctx, k, d2); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := s.MemoGet(ctx, k); !ok || got != d2 {
		t.Fatalf("after overwrite MemoGet = %s, %v; want %s", got, ok, d2)
	}

	t.Run("result blob gone", func(t *testing.T) {
		if err := os.Remove(s.blobPath(d2)); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.MemoGet(ctx, k); ok || err != nil {
			t.Fatalf("MemoGet with its blob gone = %v, %v; want a miss", ok, err)
		}
	})
	t.Run("damaged entry", func(t *testing.T) {
		k2, _ := KeyOf("damaged")
		d3 := mustPut(t, s, []byte("3"))
		if err := s.MemoPut(ctx, k2, d3); err != nil {
			t.Fatal(err)
		}
		for _, junk := range []string{"", "garbage", d3.String(), d3.String() + "\n\n", strings.ToUpper(d3.String()[:7]) + d3.Hex() + "\n", "sha256:" + strings.Repeat("z", 64) + "\n"} {
			if err := os.WriteFile(s.memoPath(k2), []byte(junk), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := s.MemoGet(ctx, k2); ok || err != nil {
				t.Fatalf("MemoGet of damaged entry %q = %v, %v; want a miss", junk, ok, err)
			}
		}
		// Rewriting repairs it.
		if err := s.MemoPut(ctx, k2, d3); err != nil {
			t.Fatal(err)
		}
		if got, ok, _ := s.MemoGet(ctx, k2); !ok || got != d3 {
			t.Fatal("MemoPut did not repair a damaged entry")
		}
	})
	t.Run("result not stored", func(t *testing.T) {
		k3, _ := KeyOf("unstored")
		missing := DigestOf([]byte("not in store"))
		err := s.MemoPut(ctx, k3, missing)
		if err == nil || !strings.Contains(err.Error(), missing.String()) || !strings.Contains(err.Error(), "not stored") {
			t.Fatalf("MemoPut of an unstored result: err = %v", err)
		}
		if _, err := os.Stat(s.memoPath(k3)); !os.IsNotExist(err) {
			t.Fatal("MemoPut of an unstored result wrote an entry")
		}
	})
}

func TestRecorderNotesKeys(t *testing.T) {
	s := newStore(t)
	var rec Recorder
	ctx := WithRecorder(context.Background(), &rec)
	kGet, _ := KeyOf("looked up")
	kPut, _ := KeyOf("stored")
	kOther, _ := KeyOf("not recorded")
	d := mustPut(t, s, []byte("r"))
	if _, _, err := s.MemoGet(ctx, kGet); err != nil {
		t.Fatal(err)
	}
	if err := s.MemoPut(ctx, kPut, d); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.MemoGet(ctx, kPut); err != nil { // noted once
		t.Fatal(err)
	}
	if err := s.MemoPut(context.Background(), kOther, d); err != nil {
		t.Fatal(err)
	}
	want := []Key{kGet, kPut}
	if string(kPut[:]) < string(kGet[:]) {
		want = []Key{kPut, kGet}
	}
	got := rec.Keys()
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Recorder.Keys() = %v, want %v (sorted)", got, want)
	}
	// A nil recorder in the context is tolerated.
	if _, _, err := s.MemoGet(WithRecorder(context.Background(), nil), kGet); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	s := newStore(t)
	const workers, per = 16, 20
	shared := []byte(strings.Repeat("shared ", 1000))
	var wg sync.WaitGroup
	errs := make(chan error, workers*per*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if d, err := s.Put(shared); err != nil || d != DigestOf(shared) {
					errs <- fmt.Errorf("shared put: %v", err)
				}
				own := []byte(fmt.Sprintf("worker %d blob %d", w, i))
				if _, err := s.Put(own); err != nil {
					errs <- err
				}
				if b, err := s.Get(DigestOf(shared)); err != nil || !bytes.Equal(b, shared) {
					errs <- fmt.Errorf("shared get: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range workers {
		for i := range per {
			own := []byte(fmt.Sprintf("worker %d blob %d", w, i))
			if b, err := s.Get(DigestOf(own)); err != nil || !bytes.Equal(b, own) {
				t.Fatalf("Get(%q): %v", own, err)
			}
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != workers*per+1 {
		t.Fatalf("store holds %d blobs, want %d", st.Blobs, workers*per+1)
	}
	if tmp := dirEntries(t, filepath.Join(s.Root(), "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty: %v", tmp)
	}
}

func TestTwoHandlesWriteSameContent(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(dir) // a second shared holder, as another process would be
	if err != nil {
		t.Fatalf("second shared Open: %v", err)
	}
	defer b.Close()
	blobs := make([][]byte, 8)
	for i := range blobs {
		blobs[i] = pseudoRandom(uint64(100+i), 64<<10+i)
	}
	big := pseudoRandom(99, 2<<20)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 8 {
		s := a
		if g%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 5 {
				for i, data := range blobs {
					d, err := s.Put(data)
					if err != nil {
						errs <- err
						continue
					}
					k, _ := KeyOf([]int{i})
					if err := s.MemoPut(ctx, k, d); err != nil {
						errs <- err
					}
				}
				if round%2 == 0 {
					if _, _, err := s.PutStream(bytes.NewReader(big)); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, data := range blobs {
		for _, s := range []*Store{a, b} {
			k, _ := KeyOf([]int{i})
			d, ok, err := s.MemoGet(ctx, k)
			if err != nil || !ok || d != DigestOf(data) {
				t.Fatalf("MemoGet %d = %s %v %v", i, d, ok, err)
			}
			if got, err := s.Get(d); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get %d: %v", i, err)
			}
		}
	}
	if got, err := b.Get(DigestOf(big)); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Get of the streamed blob: %v", err)
	}
	rep, err := a.Verify(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Blobs != len(blobs)+1 || rep.MemoEntries != len(blobs) {
		t.Fatalf("Verify after concurrent writes: %+v", rep)
	}
	if tmp := dirEntries(t, filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty: %v", tmp)
	}
}

func TestLocking(t *testing.T) {
	dir := t.TempDir()
	shared, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	shared2, err := Open(dir)
	if err != nil {
		t.Fatalf("two shared opens must coexist: %v", err)
	}
	if _, err := OpenExclusive(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("OpenExclusive while shared held: err = %v", err)
	}
	shared.Close()
	if _, err := OpenExclusive(dir); err == nil {
		t.Fatal("OpenExclusive succeeded while one shared holder remains")
	}
	if err := shared2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shared2.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	ex, err := OpenExclusive(dir)
	if err != nil {
		t.Fatalf("OpenExclusive after all closed: %v", err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "garbage-collected") {
		t.Fatalf("Open while exclusive held: err = %v", err)
	}
	if _, err := OpenExclusive(dir); err == nil {
		t.Fatal("two exclusive opens")
	}
	ex.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after exclusive released: %v", err)
	}
	s.Close()
}

func TestOpenBadDir(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Fatal("Open of empty path succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	writeTestFile(t, f, []byte("x"), 0o644)
	if _, err := Open(f); err == nil || !strings.Contains(err.Error(), f) {
		t.Fatalf("Open of a file: err = %v, want it to name the path", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b", "out.txt")
	if err := WriteFileAtomic("", p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic("", p, []byte("two")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "two" {
		t.Fatalf("content %q, %v", got, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
	}
	if names := dirEntries(t, filepath.Dir(p)); len(names) != 1 {
		t.Fatalf("leftover temporary files: %v", names)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "no-such-tmp"), filepath.Join(dir, "x"), nil); err == nil {
		t.Fatal("WriteFileAtomic with a missing tmp dir succeeded")
	}
}
