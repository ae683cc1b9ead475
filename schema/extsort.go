package schema

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// sortRecord is one row waiting to be sorted: its sort key and its encoded
// bytes. Records are ordered by key, then by payload, so the order is total
// and never depends on the order they were added.
type sortRecord struct {
	key     string
	payload []byte
}

func compareRecords(a, b sortRecord) int {
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	return bytes.Compare(a.payload, b.payload)
}

// externalSorter sorts records that may not fit in memory: it buffers up to
// limit bytes, spills each full buffer as a sorted, zstd-compressed run file
// in dir, and merges the runs (plus the last buffer) on iteration. Memory is
// bounded by limit plus one buffered reader per run.
type externalSorter struct {
	dir      string
	limit    int
	buf      []sortRecord
	bufBytes int
	runs     []string
}

func newExternalSorter(dir string, limit int) *externalSorter {
	return &externalSorter{dir: dir, limit: limit}
}

// recordOverhead approximates the memory of a sortRecord beyond its bytes.
const recordOverhead = 64

func (s *externalSorter) add(key string, payload []byte) error {
	s.buf = append(s.buf, sortRecord{key: key, payload: payload})
	s.bufBytes += len(key) + len(payload) + recordOverhead
	if s.bufBytes >= s.limit {
		return s.spill()
	}
	return nil
}

// runEncoderOptions keep run files cheap to write and to hold open: a small
// window bounds each merge reader's memory.
var runEncoderOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithEncoderConcurrency(1),
	zstd.WithWindowSize(1 << 20),
	zstd.WithEncoderCRC(false),
}

func (s *externalSorter) spill() error {
	if len(s.buf) == 0 {
		return nil
	}
	slices.SortFunc(s.buf, compareRecords)
	f, err := os.CreateTemp(s.dir, "run-*.zst")
	if err != nil {
		return fmt.Errorf("sort spill: %w", err)
	}
	name := f.Name()
	s.runs = append(s.runs, name)
	zw, err := zstd.NewWriter(f, runEncoderOptions...)
	if err != nil {
		f.Close()
		return fmt.Errorf("sort spill %s: %w", name, err)
	}
	bw := bufio.NewWriterSize(zw, 256<<10)
	var hdr [2 * binary.MaxVarintLen64]byte
	for _, r := range s.buf {
		n := binary.PutUvarint(hdr[:], uint64(len(r.key)))
		n += binary.PutUvarint(hdr[n:], uint64(len(r.payload)))
		bw.Write(hdr[:n])
		bw.WriteString(r.key)
		bw.Write(r.payload)
	}
	err = bw.Flush()
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sort spill %s: %w", name, err)
	}
	clear(s.buf)
	s.buf = s.buf[:0]
	s.bufBytes = 0
	return nil
}

// runReader reads back one run file in order.
type runReader struct {
	name string
	f    *os.File
	zr   *zstd.Decoder
	br   *bufio.Reader
	cur  sortRecord
}

func openRun(name string) (*runReader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("sort merge: %w", err)
	}
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(1<<20))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sort merge %s: %w", name, err)
	}
	return &runReader{name: name, f: f, zr: zr, br: bufio.NewReaderSize(zr, 64<<10)}, nil
}

// next loads the next record into r.cur; it returns io.EOF at the end.
func (r *runReader) next() error {
	klen, err := binary.ReadUvarint(r.br)
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return fmt.Errorf("sort merge %s: %w", r.name, err)
	}
	plen, err := binary.ReadUvarint(r.br)
	if err != nil {
		return fmt.Errorf("sort merge %s: truncated record: %w", r.name, err)
	}
	b := make([]byte, klen+plen)
	if _, err := io.ReadFull(r.br, b); err != nil {
		return fmt.Errorf("sort merge %s: truncated record: %w", r.name, err)
	}
	r.cur = sortRecord{key: string(b[:klen]), payload: b[klen:]}
	return nil
}

func (r *runReader) close() {
	r.zr.Close()
	r.f.Close()
}

// mergeHeap orders run readers by their current record.
type mergeHeap []*runReader

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return compareRecords(h[i].cur, h[j].cur) < 0 }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *mergeHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

// each calls fn with every record in sorted order. When everything fitted
// in memory it sorts in place; otherwise it spills the rest and merges all
// runs. The payload passed to fn must not be retained after fn returns
// unless copied (it is not reused today, but callers should not rely on
// that). each consumes the sorter; run files are removed afterwards.
func (s *externalSorter) each(fn func(key string, payload []byte) error) (err error) {
	if len(s.runs) == 0 {
		slices.SortFunc(s.buf, compareRecords)
		for i, r := range s.buf {
			if err := fn(r.key, r.payload); err != nil {
				return err
			}
			s.buf[i] = sortRecord{} // let the GC reclaim written rows
		}
		s.buf = nil
		return nil
	}
	if err := s.spill(); err != nil {
		return err
	}
	s.buf = nil
	defer s.removeRuns()
	h := make(mergeHeap, 0, len(s.runs))
	defer func() {
		for _, r := range h {
			r.close()
		}
	}()
	for _, name := range s.runs {
		r, err := openRun(name)
		if err != nil {
			return err
		}
		if err := r.next(); err != nil {
			r.close()
			if errors.Is(err, io.EOF) {
				continue
			}
			return err
		}
		h = append(h, r)
	}
	heap.Init(&h)
	for len(h) > 0 {
		r := h[0]
		if err := fn(r.cur.key, r.cur.payload); err != nil {
			return err
		}
		if err := r.next(); err != nil {
			if !errors.Is(err, io.EOF) {
				return err
			}
			heap.Pop(&h)
			r.close()
			continue
		}
		heap.Fix(&h, 0)
	}
	return nil
}

func (s *externalSorter) removeRuns() {
	for _, name := range s.runs {
		os.Remove(name)
	}
	s.runs = nil
}

// runDir is where a sorter keeps its runs inside a staging directory.
func runDir(staging, name string) (string, error) {
	dir := filepath.Join(staging, ".sort-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("sort: %w", err)
	}
	return dir, nil
}
