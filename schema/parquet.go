package schema

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// CreatedBy is the created_by string written into every Parquet footer. It
// is pinned so file bytes do not change with the library's version.
const CreatedBy = "dsbuild"

// pageCodec is the zstd codec of every shard. It compresses each page with
// EncodeAll at the "better compression" level (about zstd level 7; on
// trajectory data 7% smaller than the default level, for little time) and
// a 1 MiB window (pages are about that size), which gives the same bytes
// on every run. parquet-go's own zstd codec pools encoders with the 8 MiB
// default window, about 16 MiB of history each; one small-window encoder
// keeps the writer's memory bounded.
type pageCodec struct {
	mu  sync.Mutex
	enc *zstd.Encoder
	dec pqzstd.Codec
}

var zstdCodec = &pageCodec{}

func (c *pageCodec) String() string { return "ZSTD" }

func (c *pageCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *pageCodec) Encode(dst, src []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enc == nil {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(pageWindow),
			zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false),
		)
		if err != nil {
			return nil, err
		}
		c.enc = enc
	}
	return c.enc.EncodeAll(src, dst[:0]), nil
}

func (c *pageCodec) Decode(dst, src []byte) ([]byte, error) { return c.dec.Decode(dst, src) }

const pageWindow = 1 << 20

// pinnedCreatedBy sets the footer's created_by verbatim (parquet.CreatedBy
// would append " version ... (build ...)").
type pinnedCreatedBy string

func (p pinnedCreatedBy) ConfigureWriter(c *parquet.WriterConfig) { c.CreatedBy = string(p) }

// blobColumns are the free-text columns of dsbuild's tables (patches,
// problem statements, test lists, chat messages and tools): their min and
// max are meaningless and as large as the values, so they get null counts
// only, in the footer, and no page statistics.
var blobColumns = [][]string{
	{"patch"}, {"test_patch"}, {"problem_statement"}, {"hints_text"},
	{"FAIL_TO_PASS"}, {"PASS_TO_PASS"},
	{"messages", "list", "element"}, {"tools", "list", "element"},
}

// writerOptions are the Parquet settings of every file dsbuild writes:
// zstd, data page v1 (v2 leaves repetition/definition levels uncompressed,
// which made chat data several times larger), 1 MiB pages, pinned
// created_by, no row-count cap (row groups are cut by size, see shardSet).
// Statistics: every column chunk records its null count, and, except for
// blobColumns, its min and max (footer and page headers) and a column
// index of page bounds, so readers can skip row groups and pages by value
// (instance_id, task_type, repo, resolved, ...).
func writerOptions() []parquet.WriterOption {
	opts := []parquet.WriterOption{
		parquet.Compression(zstdCodec),
		parquet.DataPageVersion(1),
		parquet.PageBufferSize(pageWindow),
		parquet.WriteBufferSize(0), // hashingFile buffers, and counts what is written
		parquet.DataPageStatistics(true),
		pinnedCreatedBy(CreatedBy),
	}
	for _, path := range blobColumns {
		opts = append(opts, parquet.SkipPageBounds(path...), parquet.SkipPageStatistics(path...))
	}
	return opts
}

// DatasetFile describes one file of an exported dataset.
type DatasetFile struct {
	// Path is relative to the dataset directory, with forward slashes.
	Path string `json:"path"`
	// SHA256 is the hex sha256 of the file's bytes.
	SHA256 string `json:"sha256"`
	// Bytes is the file size.
	Bytes int64 `json:"bytes"`
	// Rows is the number of rows (Parquet) or lines (JSONL); 0 otherwise.
	Rows int64 `json:"rows"`
}

// hashingFile writes to a file through a buffer while counting bytes and
// hashing them, so a file's size is known as it grows and its digest when
// it is closed, without reading it again.
type hashingFile struct {
	f    *os.File
	buf  *bufio.Writer
	h    hash.Hash
	n    int64
	path string
}

func createHashingFile(path string) (*hashingFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &hashingFile{f: f, buf: bufio.NewWriterSize(f, 256<<10), h: sha256.New(), path: path}, nil
}

func (w *hashingFile) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// close syncs and closes the file and returns its size and hex digest.
func (w *hashingFile) close() (int64, string, error) {
	err := w.buf.Flush()
	if serr := w.f.Sync(); err == nil {
		err = serr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", fmt.Errorf("write %s: %w", w.path, err)
	}
	return w.n, hex.EncodeToString(w.h.Sum(nil)), nil
}

// abort closes the file without caring about errors (it will be removed
// with the staging directory).
func (w *hashingFile) abort() { w.f.Close() }

// shardSet writes rows of type T into Parquet shards named
// <prefix>-00000-of-0000N.parquet under root. Rows arrive in their final
// order. A row group is cut after rowGroupBytes of encoded input, and a
// shard is closed after the first row group that takes it past
// targetBytes, so memory holds at most one row group and both cuts depend
// only on the rows. Shards get temporary names until the count is known.
type shardSet[T any] struct {
	root          string
	prefix        string
	targetBytes   int64
	rowGroupBytes int64

	out        *hashingFile
	w          *parquet.GenericWriter[T]
	batch      []T
	groupBytes int64
	rows       int64
	done       []DatasetFile // Path holds the temporary name until finish
}

const writeBatch = 64

func newShardSet[T any](root, prefix string, targetBytes, rowGroupBytes int64) *shardSet[T] {
	return &shardSet[T]{root: root, prefix: prefix, targetBytes: targetBytes, rowGroupBytes: rowGroupBytes}
}

func (s *shardSet[T]) tmpName(i int) string {
	return fmt.Sprintf("%s-%05d.parquet.partial", s.prefix, i)
}

// write appends row; size is its encoded size, used to cut row groups.
func (s *shardSet[T]) write(row T, size int) error {
	if s.w == nil {
		out, err := createHashingFile(filepath.Join(s.root, filepath.FromSlash(s.tmpName(len(s.done)))))
		if err != nil {
			return fmt.Errorf("shard %s: %w", s.prefix, err)
		}
		s.out = out
		s.w = parquet.NewGenericWriter[T](out, writerOptions()...)
		s.rows = 0
	}
	s.batch = append(s.batch, row)
	s.rows++
	s.groupBytes += int64(size)
	if len(s.batch) >= writeBatch {
		if err := s.writeBatch(); err != nil {
			return err
		}
	}
	if s.groupBytes >= s.rowGroupBytes {
		if err := s.writeBatch(); err != nil {
			return err
		}
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("shard %s: flush row group: %w", s.out.path, err)
		}
		s.groupBytes = 0
		if s.out.n >= s.targetBytes {
			return s.closeShard()
		}
	}
	return nil
}

func (s *shardSet[T]) writeBatch() error {
	if len(s.batch) == 0 {
		return nil
	}
	if _, err := s.w.Write(s.batch); err != nil {
		return fmt.Errorf("shard %s: %w", s.out.path, err)
	}
	clear(s.batch)
	s.batch = s.batch[:0]
	return nil
}

func (s *shardSet[T]) closeShard() error {
	if err := s.writeBatch(); err != nil {
		return err
	}
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("shard %s: close: %w", s.out.path, err)
	}
	n, sum, err := s.out.close()
	if err != nil {
		return err
	}
	s.done = append(s.done, DatasetFile{Path: s.tmpName(len(s.done)), SHA256: sum, Bytes: n, Rows: s.rows})
	s.w, s.out, s.groupBytes = nil, nil, 0
	return nil
}

// finish closes the last shard, renames all shards to their final
// -of-N names and returns them in order.
func (s *shardSet[T]) finish() ([]DatasetFile, error) {
	if s.w != nil {
		if err := s.closeShard(); err != nil {
			return nil, err
		}
	}
	files := make([]DatasetFile, len(s.done))
	for i, f := range s.done {
		f.Path = fmt.Sprintf("%s-%05d-of-%05d.parquet", s.prefix, i, len(s.done))
		if err := os.Rename(filepath.Join(s.root, filepath.FromSlash(s.tmpName(i))), filepath.Join(s.root, filepath.FromSlash(f.Path))); err != nil {
			return nil, fmt.Errorf("shard %s: %w", f.Path, err)
		}
		files[i] = f
	}
	return files, nil
}

// abort drops an unfinished shard (the staging directory is removed later).
func (s *shardSet[T]) abort() {
	if s.out != nil {
		s.out.abort()
	}
}

// WriteParquet writes rows to w as one Parquet file with dsbuild's settings
// (zstd, data page v1, pinned created_by), in a single row group. It is for
// small tables; DatasetWriter shards and streams large ones.
func WriteParquet[T any](w io.Writer, rows []T) error {
	pw := parquet.NewGenericWriter[T](w, writerOptions()...)
	if _, err := pw.Write(rows); err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	return nil
}
