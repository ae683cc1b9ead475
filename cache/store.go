package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// ErrMissing is returned (wrapped) when a blob is not in the store.
var ErrMissing = errors.New("blob not in store")

// CorruptError reports a blob whose bytes no longer match its digest. The
// bad file has already been moved aside, so writing the blob again repairs
// the store.
type CorruptError struct {
	Digest Digest
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("cache: blob %s is corrupt (%s); it was moved aside and will be rebuilt", e.Digest, e.Reason)
}

// Store is a content-addressed store rooted at one directory. Any number of
// goroutines and processes may use one store at once: every write is a
// temporary file renamed into place, and every reader checks what it reads.
// A Store opened with Open holds a shared lock; OpenExclusive (for gc) holds
// the exclusive one.
type Store struct {
	root      string
	lock      *os.File
	exclusive bool

	// complete holds the blobs Missing found complete (see refs.go).
	complete sync.Map

	writes atomic.Uint64 // writes this process has completed
	syncMu sync.Mutex
	synced uint64 // writes known durable

	remote *remoteState // the shared tier behind the directory, if any (see SetRemote)
}

// Layout below the root:
//
//	blobs/ab/<hex>     zstd-compressed blob contents
//	memo/ab/<keyhex>   "sha256:<hex>\n": the result digest of a key
//	records/<group>/   build records (the roots of gc)
//	tmp/               temporary files on their way to one of the above
//	quarantine/        blobs found corrupt, kept for inspection
//	lock               flock: shared for builds, exclusive for gc
const (
	blobsDir      = "blobs"
	memoDir       = "memo"
	recordsDir    = "records"
	tmpDir        = "tmp"
	quarantineDir = "quarantine"
)

var (
	encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	decoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
)

// Open opens (creating if needed) the store at dir and takes a shared lock
// on it, so that gc cannot run underneath. Close releases it.
func Open(dir string) (*Store, error) { return open(dir, syscall.LOCK_SH|syscall.LOCK_NB) }

// OpenExclusive opens the store with the exclusive lock that gc needs. It
// fails at once if any other process has the store open.
func OpenExclusive(dir string) (*Store, error) { return open(dir, syscall.LOCK_EX|syscall.LOCK_NB) }

func open(dir string, how int) (*Store, error) {
	if dir == "" {
		return nil, errors.New("cache: no store directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	// The store is private to its owner: it holds whatever sources and
	// replies went into builds, whatever their modes were. A store made
	// here gets 0700 directories (parents the usual 0755); one that exists
	// keeps the modes it has.
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("cache: creating store at %s: %w", abs, err)
	}
	if err := os.Mkdir(abs, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("cache: creating store at %s: %w", abs, err)
	}
	for _, sub := range []string{blobsDir, memoDir, recordsDir, tmpDir, quarantineDir} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o700); err != nil {
			return nil, fmt.Errorf("cache: creating store at %s: %w", abs, err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(abs, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), how); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if how&syscall.LOCK_EX != 0 {
				return nil, fmt.Errorf("cache: store %s is in use by another dsbuild process; try again when it has finished", abs)
			}
			return nil, fmt.Errorf("cache: store %s is being garbage-collected; try again when gc has finished", abs)
		}
		return nil, fmt.Errorf("cache: locking %s: %w", abs, err)
	}
	return &Store{root: abs, lock: lf, exclusive: how&syscall.LOCK_EX != 0}, nil
}

// Close releases the store's lock.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

// TempDir is the store's directory for temporary files and work
// directories: on the store's file system (so a rename into the store is
// atomic), emptied by gc. Name work directories with internal/reap so that
// those of killed processes are reclaimed.
func (s *Store) TempDir() string { return filepath.Join(s.root, tmpDir) }

func (s *Store) blobPath(d Digest) string {
	h := d.Hex()
	return filepath.Join(s.root, blobsDir, h[:2], h)
}

func (s *Store) memoPath(k Key) string {
	h := k.String()
	return filepath.Join(s.root, memoDir, h[:2], h)
}

// Has reports whether the blob d is present (without verifying it): in the
// store's directory or, failing that, on its remote.
func (s *Store) Has(d Digest) bool {
	return s.hasLocal(d) || s.remote != nil && s.remoteHas(d)
}

// Put stores data and returns its digest. Storing a blob that is already
// present costs one stat (and, with a remote, one lookup there per Store
// handle).
func (s *Store) Put(data []byte) (Digest, error) {
	d := DigestOf(data)
	if !s.hasLocal(d) {
		if err := s.writeAtomic(s.blobPath(d), encoder.EncodeAll(data, make([]byte, 0, len(data)/2+64))); err != nil {
			return d, err
		}
	}
	return d, s.upload(d)
}

// PutStream stores everything read from r, streaming (for large blobs such as
// image layers), and returns its digest and uncompressed size.
func (s *Store) PutStream(r io.Reader) (Digest, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "put-*")
	if err != nil {
		return Digest{}, 0, fmt.Errorf("cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	zw, err := zstd.NewWriter(tmp, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return Digest{}, 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(zw, h), r)
	if err != nil {
		zw.Close()
		return Digest{}, 0, fmt.Errorf("cache: storing stream: %w", err)
	}
	if err := zw.Close(); err != nil {
		return Digest{}, 0, fmt.Errorf("cache: storing stream: %w", err)
	}
	var d Digest
	h.Sum(d[:0])
	if s.hasLocal(d) {
		return d, n, s.upload(d)
	}
	// CreateTemp makes the file 0600; blobs written by Put are 0644.
	if err := tmp.Chmod(0o644); err != nil {
		return Digest{}, 0, fmt.Errorf("cache: %w", err)
	}
	dst := s.blobPath(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Digest{}, 0, fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Digest{}, 0, fmt.Errorf("cache: %w", err)
	}
	s.writes.Add(1)
	return d, n, s.upload(d)
}

// writeAtomic writes data to path through a temporary file and a rename,
// so a reader sees the whole file or none of it. Durability comes from
// barrier.
func (s *Store) writeAtomic(path string, data []byte) error {
	if err := writeFileMaybeSync(filepath.Join(s.root, tmpDir), path, data, false); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	s.writes.Add(1)
	return nil
}

// barrier makes every write this process has finished so far durable, with
// one syncfs(2) shared by all goroutines waiting at the same time. Memo
// entries and records are written only after a barrier, so nothing durable
// ever points at a blob that a power cut could lose; a lost write that
// nothing points at just reads as a miss. (One fsync per blob cost 2.5 ms
// on the reference machine, several times the work of a small node.)
func (s *Store) barrier() error {
	ticket := s.writes.Load()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= ticket {
		return nil // a sync that began after our writes has finished
	}
	upTo := s.writes.Load()
	if s.lock == nil {
		return errors.New("cache: store is closed")
	}
	if err := unix.Syncfs(int(s.lock.Fd())); err != nil {
		return fmt.Errorf("cache: syncing store: %w", err)
	}
	s.synced = upTo
	return nil
}

// WriteFileAtomic writes data to path by way of a temporary file in tmpDir
// (which must be on the same file system), fsync and rename. Parent
// directories of path are created as needed. An empty tmpDir means path's own
// directory.
func WriteFileAtomic(tmpDir, path string, data []byte) error {
	return writeFileMaybeSync(tmpDir, path, data, true)
}

// writeFileMaybeSync is WriteFileAtomic with the fsync optional: the store's own
// writes are made durable in batches by barrier.
func writeFileMaybeSync(tmpDir, path string, data []byte, sync bool) error {
	dir := filepath.Dir(path)
	if tmpDir == "" {
		tmpDir = dir
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(tmpDir, ".tmp-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(f.Name())
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	err = os.Rename(f.Name(), path)
	if errors.Is(err, fs.ErrNotExist) {
		// The shard directory does not exist yet: made on first use only,
		// which saves a MkdirAll on every write.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		err = os.Rename(f.Name(), path)
	}
	renamed = err == nil
	return err
}

// Get returns the blob d, verified against its digest.
func (s *Store) Get(d Digest) ([]byte, error) {
	raw, err := os.ReadFile(s.blobPath(d))
	if fetched, ferr := s.fetchOnMiss(d, err); fetched {
		raw, err = os.ReadFile(s.blobPath(d))
	} else if ferr != err {
		return nil, ferr
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cache: %s: %w", d, ErrMissing)
		}
		return nil, fmt.Errorf("cache: %w", err)
	}
	data, err := decoder.DecodeAll(raw, nil)
	if err != nil {
		return nil, s.quarantine(d, "does not decompress: "+err.Error())
	}
	if DigestOf(data) != d {
		return nil, s.quarantine(d, "content does not match digest")
	}
	return data, nil
}

// Open returns a reader over the blob d. The content is verified as it is
// read: the final Read returns a *CorruptError instead of io.EOF if the bytes
// do not match d.
func (s *Store) Open(d Digest) (io.ReadCloser, error) {
	f, err := os.Open(s.blobPath(d))
	if fetched, ferr := s.fetchOnMiss(d, err); fetched {
		f, err = os.Open(s.blobPath(d))
	} else if ferr != err {
		return nil, ferr
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cache: %s: %w", d, ErrMissing)
		}
		return nil, fmt.Errorf("cache: %w", err)
	}
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		f.Close()
		return nil, err
	}
	return &verifyingReader{s: s, d: d, f: f, zr: zr, h: sha256.New()}, nil
}

type verifyingReader struct {
	s  *Store
	d  Digest
	f  *os.File
	zr *zstd.Decoder
	h  hash.Hash
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.zr.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		var got Digest
		v.h.Sum(got[:0])
		if got != v.d {
			return n, v.s.quarantine(v.d, "content does not match digest")
		}
	} else if err != nil {
		return n, v.s.quarantine(v.d, "does not decompress: "+err.Error())
	}
	return n, err
}

func (v *verifyingReader) Close() error {
	v.zr.Close()
	return v.f.Close()
}

// quarantine moves a corrupt blob out of the way so that it reads as missing
// and the next write of the same content repairs the store.
func (s *Store) quarantine(d Digest, reason string) error {
	_ = os.Rename(s.blobPath(d), filepath.Join(s.root, quarantineDir, d.Hex()))
	s.forgetComplete() // whatever reached d is no longer complete
	return &CorruptError{Digest: d, Reason: reason}
}

// Recorder collects the memo keys a piece of work looks up or stores, so that
// a build record can name every memo entry it depends on (gc keeps those).
// It also collects the reasons, if any, why the work's result is
// provisional: it depends on something a later run could see differently
// (see MarkProvisional) and must not be memoised as final.
type Recorder struct {
	mu          sync.Mutex
	keys        map[Key]struct{}
	provisional map[string]struct{}
}

// MarkProvisional notes in ctx's Recorder that the work under way used a
// result that is not a pure function of its key, such as a run stopped by a
// wall-clock timeout that machine load may have caused. Whatever the work
// produces is then provisional: its caller uses it for this build but does
// not memoise it as final, so a later build does the work again. Outside a
// recorded context it does nothing.
func MarkProvisional(ctx context.Context, reason string) {
	if r, ok := ctx.Value(recorderKey{}).(*Recorder); ok && r != nil {
		r.mu.Lock()
		if r.provisional == nil {
			r.provisional = make(map[string]struct{})
		}
		r.provisional[reason] = struct{}{}
		r.mu.Unlock()
	}
}

// Provisional returns the sorted reasons MarkProvisional noted; none means
// the recorded work's result is final.
func (r *Recorder) Provisional() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.provisional))
}

type recorderKey struct{}

// WithRecorder returns a context whose memo lookups and stores are noted in r.
func WithRecorder(ctx context.Context, r *Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

func (r *Recorder) note(k Key) {
	r.mu.Lock()
	if r.keys == nil {
		r.keys = make(map[Key]struct{})
	}
	r.keys[k] = struct{}{}
	r.mu.Unlock()
}

// Keys returns the noted keys, sorted.
func (r *Recorder) Keys() []Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Key, 0, len(r.keys))
	for k := range r.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i][:]) < string(out[j][:]) })
	return out
}

func noteKey(ctx context.Context, k Key) {
	if r, ok := ctx.Value(recorderKey{}).(*Recorder); ok && r != nil {
		r.note(k)
	}
}

// MemoGet returns the result digest stored for k. A hit is reported only if
// the result blob is present, so a memo entry whose blob was lost reads as a
// miss and the work is redone.
func (s *Store) MemoGet(ctx context.Context, k Key) (Digest, bool, error) {
	noteKey(ctx, k)
	raw, err := os.ReadFile(s.memoPath(k))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if s.remote != nil {
				return s.memoGetRemote(ctx, k)
			}
			return Digest{}, false, nil
		}
		return Digest{}, false, fmt.Errorf("cache: memo %s: %w", k, err)
	}
	d, err := parseMemo(raw)
	if err != nil {
		// A damaged entry is a miss; the work is redone and the entry rewritten.
		return Digest{}, false, nil
	}
	if !s.Has(d) {
		return Digest{}, false, nil
	}
	return d, true, nil
}

func parseMemo(raw []byte) (Digest, error) {
	if len(raw) != 72 || raw[71] != '\n' {
		return Digest{}, errors.New("malformed memo entry")
	}
	return ParseDigest(string(raw[:71]))
}

// MemoPut records d as the result of k. The blob d must already be stored.
func (s *Store) MemoPut(ctx context.Context, k Key, d Digest) error {
	noteKey(ctx, k)
	if !s.Has(d) {
		return fmt.Errorf("cache: memo %s: result %s is not stored", k, d)
	}
	if err := s.barrier(); err != nil {
		return err
	}
	if s.remote != nil {
		won, err := s.memoPutRemote(ctx, k, d)
		if err != nil {
			return err
		}
		d = won
	}
	return s.writeAtomic(s.memoPath(k), []byte(d.String()+"\n"))
}

// MemoEntry is a key and the digest of its result, for MemoPutMany.
type MemoEntry struct {
	Key    Key
	Result Digest
}

// MemoPutMany records several results like MemoPut, with one durability
// barrier for all of them: a caller that can wait to make many results
// durable (a build finishing thousands of small nodes) pays one syncfs per
// batch instead of one per entry. Every blob must already be stored.
func (s *Store) MemoPutMany(entries []MemoEntry) error {
	for _, e := range entries {
		if !s.Has(e.Result) {
			return fmt.Errorf("cache: memo %s: result %s is not stored", e.Key, e.Result)
		}
	}
	if err := s.barrier(); err != nil {
		return err
	}
	for _, e := range entries {
		if err := s.writeAtomic(s.memoPath(e.Key), []byte(e.Result.String()+"\n")); err != nil {
			return err
		}
	}
	if s.remote != nil {
		return s.memoPutManyRemote(entries)
	}
	return nil
}

// MemoPutFirst records d as the result of k unless k already has a usable
// result, and returns the result that k holds afterwards: d if this call
// created the entry, else the digest another writer stored first. Work whose
// result is not a pure function of its key (a model reply, a timed test run)
// uses it so that concurrent writers, in this process or another, agree on
// one result, and a build that used the first result still replays. An
// existing entry that is damaged or whose blob is gone counts as absent and
// is replaced by d. The blob d must already be stored. Like MemoPut, it
// notes k in ctx's Recorder.
func (s *Store) MemoPutFirst(ctx context.Context, k Key, d Digest) (Digest, error) {
	noteKey(ctx, k)
	if !s.Has(d) {
		return Digest{}, fmt.Errorf("cache: memo %s: result %s is not stored", k, d)
	}
	if err := s.barrier(); err != nil {
		return Digest{}, err
	}
	if s.remote != nil {
		// The remote decides, for every machine; this one keeps its answer.
		won, err := s.memoPutRemote(ctx, k, d)
		if err != nil {
			return Digest{}, err
		}
		return won, s.writeAtomic(s.memoPath(k), []byte(won.String()+"\n"))
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "memo-*")
	if err != nil {
		return Digest{}, fmt.Errorf("cache: memo %s: %w", k, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	_, err = tmp.WriteString(d.String() + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmpName, 0o644)
	}
	if err != nil {
		return Digest{}, fmt.Errorf("cache: memo %s: %w", k, err)
	}
	final := s.memoPath(k)
	// A few rounds at most: each failed round means another writer created
	// or removed the entry between our link and our read.
	for range 8 {
		err := os.Link(tmpName, final)
		if err == nil {
			s.writes.Add(1)
			return d, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			// The shard directory does not exist yet.
			if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
				return Digest{}, fmt.Errorf("cache: memo %s: %w", k, err)
			}
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return Digest{}, fmt.Errorf("cache: memo %s: %w", k, err)
		}
		raw, err := os.ReadFile(final)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed under us (gc of a damaged entry); try again
		}
		if err != nil {
			return Digest{}, fmt.Errorf("cache: memo %s: %w", k, err)
		}
		if won, err := parseMemo(raw); err == nil && s.Has(won) {
			return won, nil
		}
		// A damaged entry, or one whose blob is gone, is a miss: replace it.
		// Two writers repairing the same damaged entry at once may both
		// return their own result; damage is rare enough to accept that.
		if err := os.Rename(tmpName, final); err != nil {
			return Digest{}, fmt.Errorf("cache: memo %s: %w", k, err)
		}
		s.writes.Add(1)
		return d, nil
	}
	return Digest{}, fmt.Errorf("cache: memo %s: entry keeps changing under concurrent writers", k)
}
