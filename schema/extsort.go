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

	"github.com/klauspost/compress/s2"
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
// limit bytes, spills each full buffer as a sorted, S2-compressed run file
// in dir, and merges the runs (plus the last buffer) on iteration. Memory is
// bounded by limit plus one small reader per open run (at most
// maxMergeFanIn are open; more runs are first merged in groups).
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

// runBlockSize is the S2 block size of run files; each open run holds
// about two blocks, so merging many runs stays cheap.
const runBlockSize = 256 << 10

// maxMergeFanIn bounds how many runs are open at once; with more runs the
// merge first combines groups of runs into bigger ones.
const maxMergeFanIn = 64

func (s *externalSorter) spill() error {
	if len(s.buf) == 0 {
		return nil
	}
	slices.SortFunc(s.buf, compareRecords)
	rw, err := s.createRun()
	if err != nil {
		return err
	}
	for _, r := range s.buf {
		rw.write(r)
	}
	if err := rw.close(); err != nil {
		return err
	}
	clear(s.buf)
	s.buf = s.buf[:0]
	s.bufBytes = 0
	return nil
}

// runWriter writes one sorted run: S2-compressed records, each
// uvarint(len key) uvarint(len payload) key payload.
type runWriter struct {
	name string
	f    *os.File
	zw   *s2.Writer
	hdr  [2 * binary.MaxVarintLen64]byte
}

func (s *externalSorter) createRun() (*runWriter, error) {
	f, err := os.CreateTemp(s.dir, "run-*.s2")
	if err != nil {
		return nil, fmt.Errorf("sort spill: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	zw := s2.NewWriter(f, s2.WriterBlockSize(runBlockSize), s2.WriterConcurrency(1))
	return &runWriter{name: f.Name(), f: f, zw: zw}, nil
}

// write buffers r; errors are sticky in the S2 writer and reported by close.
func (w *runWriter) write(r sortRecord) {
	n := binary.PutUvarint(w.hdr[:], uint64(len(r.key)))
	n += binary.PutUvarint(w.hdr[n:], uint64(len(r.payload)))
	w.zw.Write(w.hdr[:n])
	w.zw.Write([]byte(r.key))
	w.zw.Write(r.payload)
}

func (w *runWriter) close() error {
	err := w.zw.Close()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sort spill %s: %w", w.name, err)
	}
	return nil
}

// runReader reads back one run file in order.
type runReader struct {
	name string
	f    *os.File
	br   *bufio.Reader
	cur  sortRecord
}

func openRun(name string) (*runReader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("sort merge: %w", err)
	}
	zr := s2.NewReader(f, s2.ReaderMaxBlockSize(runBlockSize))
	return &runReader{name: name, f: f, br: bufio.NewReaderSize(zr, 16<<10)}, nil
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

func (r *runReader) close() { r.f.Close() }

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
	for len(s.runs) > maxMergeFanIn {
		if err := s.combineRuns(); err != nil {
			return err
		}
	}
	return mergeRuns(s.runs, fn)
}

// combineRuns merges the first maxMergeFanIn runs into one new run.
func (s *externalSorter) combineRuns() error {
	group := s.runs[:maxMergeFanIn]
	rest := slices.Clone(s.runs[maxMergeFanIn:])
	s.runs = rest
	rw, err := s.createRun()
	if err != nil {
		return err
	}
	err = mergeRuns(group, func(key string, payload []byte) error {
		rw.write(sortRecord{key: key, payload: payload})
		return nil
	})
	if cerr := rw.close(); err == nil {
		err = cerr
	}
	for _, name := range group {
		os.Remove(name)
	}
	return err
}

// mergeRuns calls fn with the records of the given runs in sorted order.
func mergeRuns(runs []string, fn func(key string, payload []byte) error) error {
	h := make(mergeHeap, 0, len(runs))
	defer func() {
		for _, r := range h {
			r.close()
		}
	}()
	for _, name := range runs {
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
