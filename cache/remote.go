package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Remote is a shared tier that the Stores of several machines build
// against: an object store holding the same blobs, memo entries and build
// records as a store directory, under these names:
//
//	blobs/<hex>              a blob's zstd-compressed bytes, exactly as in a
//	                         store directory's blobs/ (bytes travel compressed;
//	                         readers verify the sha256 of the content)
//	memo/<keyhex>            "sha256:<hex>\n", written first-writer-wins
//	records/<group>/<name>   a build record, as in records/
//	quarantine/<hex>         a remote blob a reader found corrupt
//
// A Remote only moves bytes; what they mean, and every check on them, is the
// Store's. Implementations must be safe for concurrent use. S3Remote is the
// one in this package.
type Remote interface {
	// String names the remote for messages ("s3://bucket/prefix"); it
	// never holds credentials.
	String() string
	// Get opens the object name. An absent object is an error wrapping
	// fs.ErrNotExist.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// Stat describes the object name; fs.ErrNotExist if absent.
	Stat(ctx context.Context, name string) (RemoteObject, error)
	// Put stores the size bytes read from r as name, replacing any object
	// there. Readers see the old object or the whole new one.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Create stores data as name only if no object has that name, and
	// reports whether it did: false means another writer's object was
	// there first and is kept. It is the one primitive first-writer-wins
	// memo entries rest on.
	Create(ctx context.Context, name string, data []byte) (created bool, err error)
	// List calls fn for every object whose name begins with prefix.
	List(ctx context.Context, prefix string, fn func(RemoteObject) error) error
	// Delete removes name; an absent object is not an error.
	Delete(ctx context.Context, name string) error
}

// RemoteObject describes one object of a Remote.
type RemoteObject struct {
	Name     string // as passed to Get: "blobs/<hex>", ...
	Size     int64
	Modified time.Time
}

// DefaultRemoteGrace is how old an unreachable remote object must be before
// GC deletes it. There is no lock across machines: while gc runs on one,
// another may be building, having uploaded blobs and memo entries that no
// record names yet (the record is written when its build ends). Anything
// younger than the grace period is kept, so a build shorter than it never
// loses what it wrote; gc on a remote must not run with a shorter one.
const DefaultRemoteGrace = 24 * time.Hour

// remoteState is what a Store with a remote tier keeps about it.
type remoteState struct {
	r     Remote
	grace time.Duration
	// onRemote holds the blobs known to be on the remote, so a blob is
	// looked up (or uploaded) there once per Store handle.
	onRemote sync.Map
}

// SetRemote puts the shared tier r behind s: the store's directory becomes
// a disk tier in front of it. Call it once, right after Open or
// OpenExclusive, before s is used. With a remote:
//
//   - Get, Open, Has, Missing, ReadFile and the tree reads fall back to the
//     remote on a local miss; a fetched blob is verified and kept locally,
//     so a hot blob is read from the remote once per machine (Has only asks
//     whether the remote has it, without fetching).
//   - Put, PutStream, PutTree and Snapshot write locally and upload what the
//     remote lacks.
//   - MemoGet falls back to the remote (and keeps the entry locally);
//     MemoPut, MemoPutMany and MemoPutFirst write the remote
//     first-writer-wins and keep the winner locally.
//   - PutRecord writes the record locally and to the remote; LatestRecord
//     and Records read the remote's, which are the roots of every machine.
//   - Verify and Repair check the local tier as before and then the
//     remote's blobs, memo entries and records (reporting only: nothing
//     remote is changed); GC collects the local tier as before and then the
//     remote, keeping everything younger than DefaultRemoteGrace.
func (s *Store) SetRemote(r Remote) {
	s.remote = &remoteState{r: r, grace: DefaultRemoteGrace}
}

// Remote returns the store's remote tier, nil if it has none.
func (s *Store) Remote() Remote {
	if s.remote == nil {
		return nil
	}
	return s.remote.r
}

func blobObject(d Digest) string { return "blobs/" + d.Hex() }
func memoObject(k Key) string    { return "memo/" + k.String() }

func recordObject(group, name string) string { return "records/" + group + "/" + name }

// remoteErr describes a failed remote operation.
func (s *Store) remoteErr(what string, err error) error {
	return fmt.Errorf("cache: %s on %s: %w", what, s.remote.r, err)
}

// hasLocal reports whether the blob d is in the store's directory.
func (s *Store) hasLocal(d Digest) bool {
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

// remoteHas reports whether the remote holds the blob d. An unreachable
// remote reads as not having it: the work is redone, never skipped.
func (s *Store) remoteHas(d Digest) bool {
	if _, ok := s.remote.onRemote.Load(d); ok {
		return true
	}
	if _, err := s.remote.r.Stat(context.Background(), blobObject(d)); err != nil {
		return false
	}
	s.remote.onRemote.Store(d, struct{}{})
	return true
}

// upload makes sure the remote holds the blob d, which is in the store's
// directory. It does nothing without a remote.
func (s *Store) upload(d Digest) error {
	if s.remote == nil || s.remoteHas(d) {
		return nil
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return fmt.Errorf("cache: uploading %s: %w", d, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cache: uploading %s: %w", d, err)
	}
	if err := s.remote.r.Put(context.Background(), blobObject(d), f, fi.Size()); err != nil {
		return s.remoteErr("uploading blob "+d.String(), err)
	}
	s.remote.onRemote.Store(d, struct{}{})
	return nil
}

// fetch copies the blob d from the remote into the store's directory,
// checking it first. A blob the remote lacks is an error wrapping
// ErrMissing. A remote copy that does not match its digest is moved to the
// remote's quarantine/ (so it reads as missing on every machine and the
// next Put repairs it) and reported as a *CorruptError.
func (s *Store) fetch(d Digest) error {
	ctx := context.Background()
	rc, err := s.remote.r.Get(ctx, blobObject(d))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: %s: %w", d, ErrMissing)
	}
	if err != nil {
		return s.remoteErr("reading blob "+d.String(), err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "fetch-*")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// Download first, check second: a broken connection is an error, not
	// a corrupt blob.
	size, err := io.Copy(tmp, rc)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: %s: %w", d, ErrMissing)
	}
	if err != nil {
		return s.remoteErr("reading blob "+d.String(), err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if reason := checkCompressed(tmp, d); reason != "" {
		if _, err := tmp.Seek(0, io.SeekStart); err == nil {
			_ = s.remote.r.Put(ctx, "quarantine/"+d.Hex(), tmp, size)
		}
		_ = s.remote.r.Delete(ctx, blobObject(d))
		s.remote.onRemote.Delete(d)
		s.forgetComplete()
		return &CorruptError{Digest: d, Reason: "the copy on " + s.remote.r.String() + " " + reason}
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	dst := s.blobPath(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	s.writes.Add(1)
	s.remote.onRemote.Store(d, struct{}{})
	return nil
}

// checkCompressed reads zstd-compressed bytes from r and says what is
// wrong with them as the blob d ("" if nothing).
func checkCompressed(r io.Reader, d Digest) string {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return "does not decompress: " + err.Error()
	}
	defer zr.Close()
	h := sha256.New()
	if _, err := io.Copy(h, zr); err != nil {
		return "does not decompress: " + err.Error()
	}
	var got Digest
	h.Sum(got[:0])
	if got != d {
		return "content does not match digest"
	}
	return ""
}

// fetchOnMiss fetches d if err says it is missing locally and s has a
// remote, and reports whether it did (so the caller reads again); other
// outcomes leave err as it was, or replace it with the fetch's error.
func (s *Store) fetchOnMiss(d Digest, err error) (fetched bool, _ error) {
	if s.remote == nil || !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if ferr := s.fetch(d); ferr != nil {
		return false, ferr
	}
	return true, nil
}

// inspectTiered is inspect, fetching d from the remote on a local miss.
func (s *Store) inspectTiered(d Digest, whole, move bool) (blobRefs, error) {
	refs, err := s.inspect(d, whole, move)
	if s.remote == nil || !errors.Is(err, ErrMissing) {
		return refs, err
	}
	if err := s.fetch(d); err != nil {
		return blobRefs{}, err
	}
	return s.inspect(d, whole, move)
}

// memoGetRemote looks k up on the remote after a local miss and keeps a
// hit locally.
func (s *Store) memoGetRemote(ctx context.Context, k Key) (Digest, bool, error) {
	raw, err := s.readRemote(ctx, memoObject(k))
	if errors.Is(err, fs.ErrNotExist) {
		return Digest{}, false, nil
	}
	if err != nil {
		return Digest{}, false, s.remoteErr("memo "+k.String(), err)
	}
	d, err := parseMemo(raw)
	if err != nil || !s.Has(d) {
		return Digest{}, false, nil // a damaged entry or a lost blob is a miss
	}
	if err := s.writeAtomic(s.memoPath(k), raw); err != nil {
		return Digest{}, false, err
	}
	return d, true, nil
}

// memoPutRemote records d as the result of k on the remote,
// first-writer-wins, and returns the result k holds there afterwards. The
// blob d is uploaded first, so no remote memo entry ever names a blob the
// remote lacks. An entry that is damaged or whose blob is gone from the
// remote is replaced by d.
func (s *Store) memoPutRemote(ctx context.Context, k Key, d Digest) (Digest, error) {
	if err := s.upload(d); err != nil {
		return Digest{}, err
	}
	entry := []byte(d.String() + "\n")
	name := memoObject(k)
	for range 4 {
		created, err := s.remote.r.Create(ctx, name, entry)
		if err != nil {
			return Digest{}, s.remoteErr("memo "+k.String(), err)
		}
		if created {
			return d, nil
		}
		raw, err := s.readRemote(ctx, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since (gc); try again
		}
		if err != nil {
			return Digest{}, s.remoteErr("memo "+k.String(), err)
		}
		if won, err := parseMemo(raw); err == nil && s.remoteHas(won) {
			return won, nil
		}
		// Damaged, or its blob is gone: a miss, replaced. As in the local
		// store, two writers repairing one damaged entry at once may both
		// return their own result.
		if err := s.remote.r.Put(ctx, name, bytes.NewReader(entry), int64(len(entry))); err != nil {
			return Digest{}, s.remoteErr("memo "+k.String(), err)
		}
		return d, nil
	}
	return Digest{}, fmt.Errorf("cache: memo %s on %s keeps changing under concurrent writers", k, s.remote.r)
}

// memoPutManyRemote writes entries to the remote, a few at a time, and
// keeps locally whichever result won there.
func (s *Store) memoPutManyRemote(entries []MemoEntry) error {
	const parallel = 8
	errs := make([]error, len(entries))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			won, err := s.memoPutRemote(context.Background(), e.Key, e.Result)
			if err == nil && won != e.Result {
				err = s.writeAtomic(s.memoPath(e.Key), []byte(won.String()+"\n"))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readRemote reads a whole (small) remote object.
func (s *Store) readRemote(ctx context.Context, name string) ([]byte, error) {
	rc, err := s.remote.r.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// putRecordRemote writes a record the store has just written locally.
func (s *Store) putRecordRemote(group, name string, raw []byte) error {
	if err := s.remote.r.Put(context.Background(), recordObject(group, name), bytes.NewReader(raw), int64(len(raw))); err != nil {
		return s.remoteErr("writing record "+group+"/"+name, err)
	}
	return nil
}

// remoteRecords lists the remote's records: group -> names, sorted.
func (s *Store) remoteRecords(ctx context.Context, group string) (map[string][]RemoteObject, error) {
	prefix := "records/"
	if group != "" {
		prefix += group + "/"
	}
	out := map[string][]RemoteObject{}
	err := s.remote.r.List(ctx, prefix, func(o RemoteObject) error {
		g, n, ok := strings.Cut(strings.TrimPrefix(o.Name, "records/"), "/")
		if ok && validGroup(g) && strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") && !strings.Contains(n, "/") {
			o.Name = n
			out[g] = append(out[g], o)
		}
		return nil
	})
	if err != nil {
		return nil, s.remoteErr("listing records", err)
	}
	for _, os := range out {
		sort.Slice(os, func(i, j int) bool { return os[i].Name < os[j].Name })
	}
	return out, nil
}

func (s *Store) remoteRecordNames(group string) ([]string, error) {
	recs, err := s.remoteRecords(context.Background(), group)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, o := range recs[group] {
		names = append(names, o.Name)
	}
	return names, nil
}

func (s *Store) readRemoteRecord(group, name string) (*recordFile, error) {
	raw, err := s.readRemote(context.Background(), recordObject(group, name))
	if err != nil {
		return nil, s.remoteErr("reading record "+group+"/"+name, err)
	}
	return parseRecord(group, name, raw)
}
