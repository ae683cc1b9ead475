package gitrepo

import (
	"archive/tar"
	"crypto/sha1"
	"encoding/binary"
	"time"
)

// indexEntry is one file of the index.
type indexEntry struct {
	path string
	mode uint32
	id   ID
	size int64
}

// indexFile returns a version 2 index (git's Documentation/gitformat-index)
// of entries, which must be sorted by path bytes: every stat field but the
// mode and size is zero, no extensions, and the SHA-1 of all of it at the
// end.
func indexFile(entries []indexEntry) []byte {
	b := []byte("DIRC")
	b = binary.BigEndian.AppendUint32(b, 2)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		start := len(b)
		b = append(b, make([]byte, 6*4)...) // ctime, mtime (s, ns); dev; ino
		b = binary.BigEndian.AppendUint32(b, e.mode)
		b = append(b, make([]byte, 2*4)...) // uid, gid
		b = binary.BigEndian.AppendUint32(b, uint32(e.size))
		b = append(b, e.id[:]...)
		flags := min(len(e.path), 0xfff)
		b = binary.BigEndian.AppendUint16(b, uint16(flags))
		b = append(b, e.path...)
		// NUL-padded to a multiple of 8 bytes, at least one NUL.
		n := len(b) - start
		b = append(b, make([]byte, 8-n%8)...)
	}
	sum := sha1.Sum(b)
	return append(b, sum[:]...)
}

// tarWriter writes entries below dir, keeping the first error.
type tarWriter struct {
	tw  *tar.Writer
	dir string
	err error
}

// epoch is the mtime of every entry.
var epoch = time.Unix(0, 0).UTC()

func (w *tarWriter) name(rel string) string {
	if rel == "" {
		return w.dir
	}
	return w.dir + "/" + rel
}

func (w *tarWriter) dirEntry(rel string) {
	if w.err != nil {
		return
	}
	w.err = w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: w.name(rel) + "/", Mode: 0o755, ModTime: epoch})
}

func (w *tarWriter) file(rel string, mode int64, data []byte) {
	if w.err != nil {
		return
	}
	if w.err = w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: w.name(rel), Size: int64(len(data)), Mode: mode, ModTime: epoch}); w.err != nil {
		return
	}
	_, w.err = w.tw.Write(data)
}
