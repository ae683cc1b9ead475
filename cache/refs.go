// # What a reference is
//
// One blob refers to another only in these ways, and verify, gc and the
// build engine (through [Store.Missing]) all follow this one rule:
//
//   - A tree blob (a [Tree]: one key, "entries", every entry with a name and
//     a known type) refers to its entries' digests. A directory entry names
//     a blob that is followed in turn; a file entry (and a symlink entry, if
//     it has a digest) names a leaf: its presence is what counts, and its
//     content is never parsed, so a file that happens to hold JSON with
//     "sha256:..." text refers to nothing.
//   - An OCI image manifest (an object with "schemaVersion": 2, a "config"
//     descriptor and "layers") refers to its config (followed) and its
//     layers (leaves), and an OCI image config (an object whose "rootfs" has
//     type "layers") to its "diff_ids" (leaves). Nothing else in them is a
//     reference: images imported from registries are kept byte for byte, and
//     their annotations (org.opencontainers.image.base.digest) or a docker
//     config's "Image" field name digests of things that were never stored.
//   - Any other JSON blob (object or array) refers to every JSON string
//     value that is exactly "sha256:" and 64 lowercase hex digits, which is
//     how every dsbuild digest field encodes ([Digest.MarshalText]). Object
//     keys are not references, and neither is text that merely contains a
//     digest: a model's reply quoting a pip hash, a log line, a parameter
//     with more characters around the digest.
//   - Other blobs (file contents, layer tarballs) refer to nothing. A blob is
//     taken for JSON only if its first byte is '{' or '[' and it parses as
//     JSON.
//
// A blob reached through a reference that is not a leaf is read and its own
// references followed; a leaf is only checked to be present. A JSON string
// value that is exactly a digest is taken for a reference whatever its
// field, so dsbuild JSON must not hold, as a whole string, the digest of
// something it does not store: it would read as missing.
//
// The roots are memo results: verify checks every memo entry's result and
// what it reaches, and a build record's kept memo entries (its body is not
// searched). gc keeps what kept records' memo entries reach and, besides,
// what a kept record's body refers to by the JSON rule above (the recipe's
// text, results of work that was not memoised).
package cache

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// blobRefs is what one blob refers to: nodes are followed (read, and their
// own references followed in turn); leaves are only checked to be present.
type blobRefs struct {
	nodes, leaves []Digest
}

// refsOf returns the references of a blob whose content is data.
func refsOf(data []byte) blobRefs {
	if len(data) == 0 || (data[0] != '{' && data[0] != '[') || !json.Valid(data) {
		return blobRefs{}
	}
	if data[0] == '{' {
		if r, ok := treeRefs(data); ok {
			return r
		}
		if r, ok := ociRefs(data); ok {
			return r
		}
	}
	var r blobRefs
	scanDigestValues(data, func(d Digest) { r.nodes = append(r.nodes, d) })
	return r
}

func treeRefs(data []byte) (blobRefs, bool) {
	if !bytes.Contains(data, []byte(`"entries"`)) {
		return blobRefs{}, false
	}
	t, ok := asTree(data)
	if !ok {
		return blobRefs{}, false
	}
	var r blobRefs
	for _, e := range t.Entries {
		switch {
		case e.Digest.IsZero():
		case e.Type == TypeDir:
			r.nodes = append(r.nodes, e.Digest)
		default:
			r.leaves = append(r.leaves, e.Digest)
		}
	}
	return r, true
}

// asTree parses data as a Tree blob: exactly one key, "entries", whose
// entries all have a name and a known type.
func asTree(data []byte) (*Tree, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil || len(top) != 1 || top["entries"] == nil {
		return nil, false
	}
	var t Tree
	if json.Unmarshal(data, &t) != nil {
		return nil, false
	}
	for _, e := range t.Entries {
		if e.Name == "" || (e.Type != TypeFile && e.Type != TypeDir && e.Type != TypeSymlink) {
			return nil, false
		}
	}
	return &t, true
}

// ociShape holds the fields that tell an OCI image manifest or config.
type ociShape struct {
	SchemaVersion *int `json:"schemaVersion"`
	Config        *struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
	RootFS *struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

func ociRefs(data []byte) (blobRefs, bool) {
	manifest := bytes.Contains(data, []byte(`"schemaVersion"`)) && bytes.Contains(data, []byte(`"layers"`))
	config := bytes.Contains(data, []byte(`"rootfs"`))
	if !manifest && !config {
		return blobRefs{}, false
	}
	var m ociShape
	if json.Unmarshal(data, &m) != nil {
		return blobRefs{}, false
	}
	var r blobRefs
	switch {
	case m.SchemaVersion != nil && *m.SchemaVersion == 2 && m.Config != nil && m.Config.MediaType != "" && m.Layers != nil:
		if d, ok := digestString(m.Config.Digest); ok {
			r.nodes = append(r.nodes, d)
		}
		for _, l := range m.Layers {
			if d, ok := digestString(l.Digest); ok {
				r.leaves = append(r.leaves, d)
			}
		}
		return r, true
	case m.SchemaVersion == nil && m.RootFS != nil && m.RootFS.Type == "layers":
		for _, s := range m.RootFS.DiffIDs {
			if d, ok := digestString(s); ok {
				r.leaves = append(r.leaves, d)
			}
		}
		return r, true
	}
	return blobRefs{}, false
}

// digestString parses s if it is exactly "sha256:" and 64 lowercase hex
// digits.
func digestString(s string) (Digest, bool) {
	var d Digest
	if len(s) != 71 || s[:7] != "sha256:" {
		return d, false
	}
	for i := range 32 {
		hi, ok1 := lowerHex(s[7+2*i])
		lo, ok2 := lowerHex(s[8+2*i])
		if !ok1 || !ok2 {
			return d, false
		}
		d[i] = hi<<4 | lo
	}
	return d, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// scanDigestValues calls fn for every string value (not object key) in the
// valid JSON data that is exactly a digest.
func scanDigestValues(data []byte, fn func(Digest)) {
	var stackBuf [32]byte
	stack := stackBuf[:0] // '{' or '[' per open container
	key := false          // the next string is an object key
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			stack = append(stack, '{')
			key = true
		case '[':
			stack = append(stack, '[')
			key = false
		case '}', ']':
			stack = stack[:len(stack)-1]
			key = false
		case ',':
			key = len(stack) > 0 && stack[len(stack)-1] == '{'
		case ':':
			key = false
		case '"':
			start, escaped := i+1, false
			j := start
			for {
				k := bytes.IndexAny(data[j:], `"\`)
				if k < 0 { // cannot happen in valid JSON
					return
				}
				j += k
				if data[j] == '"' {
					break
				}
				escaped = true
				j += 2 // the backslash and the character it escapes
			}
			if !key {
				raw := data[start:j]
				if !escaped && len(raw) == 71 {
					if d, ok := digestString(string(raw)); ok {
						fn(d)
					}
				} else if escaped && len(raw) > 71 && len(raw) <= 71*6 { // \u0073 is the longest escape
					var s string
					if json.Unmarshal(data[i:j+1], &s) == nil {
						if d, ok := digestString(s); ok {
							fn(d)
						}
					}
				}
			}
			i = j
		}
	}
}

// blobDamage reports a blob whose bytes do not match its digest, found by a
// read that leaves the blob where it is (unlike Get and Open, which move it
// to quarantine/ and return a *CorruptError).
type blobDamage struct {
	Digest Digest
	Reason string
}

func (e *blobDamage) Error() string {
	return fmt.Sprintf("cache: blob %s is corrupt (%s)", e.Digest, e.Reason)
}

// unusable reports whether err means the blob is absent or corrupt (as
// opposed to the store being unreadable).
func unusable(err error) bool {
	var ce *CorruptError
	var bd *blobDamage
	return errors.Is(err, ErrMissing) || errors.As(err, &ce) || errors.As(err, &bd)
}

const (
	// A blob file up to maxWholeFile bytes is read and decoded in one go,
	// unless its content turns out larger than maxWholeBlob; larger files,
	// and larger contents, are streamed.
	maxWholeFile = 1 << 20
	maxWholeBlob = 32 << 20
)

// wholeDecoder decodes small blobs in one call, refusing output larger than
// maxWholeBlob (a small file can expand to far more than that).
var wholeDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxWholeBlob))

// inspect reads the blob d, checks it against its digest and returns its
// references. A blob that is not JSON is read only as far as its first
// byte unless whole is set, so a multi-gigabyte layer costs one small read;
// with whole set every byte is read and checked. A corrupt blob is moved to
// quarantine/ if move is set (as Get does) and left in place otherwise. An
// absent blob is an error wrapping ErrMissing, a corrupt one a
// *CorruptError (moved) or *blobDamage (left in place).
func (s *Store) inspect(d Digest, whole, move bool) (blobRefs, error) {
	damaged := func(reason string) error {
		if move {
			return s.quarantine(d, reason)
		}
		return &blobDamage{Digest: d, Reason: reason}
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return blobRefs{}, fmt.Errorf("cache: %s: %w", d, ErrMissing)
		}
		return blobRefs{}, fmt.Errorf("cache: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return blobRefs{}, fmt.Errorf("cache: %w", err)
	}
	return inspectReader(d, f, fi.Size(), whole, damaged)
}

// inspectReader is inspect over the size compressed bytes of the blob d
// read from f, wherever they are stored; damaged makes the error for a
// blob that does not match d.
func inspectReader(d Digest, f io.Reader, size int64, whole bool, damaged func(reason string) error) (blobRefs, error) {
	var src io.Reader = f
	if size <= maxWholeFile {
		raw := make([]byte, size)
		if _, err := io.ReadFull(f, raw); err != nil {
			return blobRefs{}, fmt.Errorf("cache: reading blob %s: %w", d, err)
		}
		var h zstd.Header
		if h.Decode(raw) == nil && (!h.HasFCS || h.FrameContentSize <= maxWholeBlob) {
			size := h.FrameContentSize
			if !h.HasFCS {
				size = uint64(len(raw)) * 4
			}
			data, err := wholeDecoder.DecodeAll(raw, make([]byte, 0, size))
			switch {
			case errors.Is(err, zstd.ErrDecoderSizeExceeded):
				// Larger than it looked: stream it below.
			case err != nil:
				return blobRefs{}, damaged("does not decompress: " + err.Error())
			case DigestOf(data) != d:
				return blobRefs{}, damaged("content does not match digest")
			default:
				return refsOf(data), nil
			}
		}
		src = bytes.NewReader(raw)
	}
	zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return blobRefs{}, fmt.Errorf("cache: reading blob %s: %w", d, err)
	}
	defer zr.Close()
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(zr, h), 64<<10)
	first, err := br.Peek(1)
	isJSON := err == nil && (first[0] == '{' || first[0] == '[')
	switch {
	case err != nil && err != io.EOF:
		return blobRefs{}, damaged("does not decompress: " + err.Error())
	case !isJSON && !whole && err == nil:
		return blobRefs{}, nil // present and decodes; not read further
	}
	var data []byte
	if isJSON {
		data, err = io.ReadAll(br)
	} else {
		_, err = io.Copy(io.Discard, br)
	}
	if err != nil {
		return blobRefs{}, damaged("does not decompress: " + err.Error())
	}
	var got Digest
	h.Sum(got[:0])
	if got != d {
		return blobRefs{}, damaged("content does not match digest")
	}
	return refsOf(data), nil
}

// completeSet holds, per Store handle, the blobs Missing found present and
// intact together with everything they reach.
func (s *Store) completeSet() *sync.Map { return &s.complete }

// forgetComplete empties s's set of blobs known complete, after blobs were
// removed or moved.
func (s *Store) forgetComplete() { s.completeSet().Clear() }

// Missing returns, sorted, the blobs reachable from roots (see "What a
// reference is" in the package doc) that are absent or corrupt; none means
// every root and everything it reaches can be read. A root or followed blob
// is read and checked, and one found corrupt is moved to quarantine/ as Get
// does, so that it reads as missing and the next Put of the same content
// repairs the store. Leaves (the files of a tree, the layers of an image)
// are only checked to be present, never read. A blob that is not JSON is
// read only as far as its first byte.
//
// Blobs found complete (present and intact with everything below them) are
// remembered for the life of the Store handle, so repeated calls over
// outputs that share subtrees read each such blob once; missing blobs are
// not remembered, so a call after the blob is stored again finds it. The
// error is for a store that cannot be read (permissions, I/O), not for
// missing blobs. Missing is safe for concurrent use.
func (s *Store) Missing(roots ...Digest) ([]Digest, error) {
	w := missingWalk{s: s, done: s.completeSet()}
	for _, d := range roots {
		if _, err := w.node(d); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(w.missing, func(a, b Digest) int { return bytes.Compare(a[:], b[:]) })
	return w.missing, nil
}

type missingWalk struct {
	s       *Store
	done    *sync.Map       // blobs complete with everything below them
	seen    map[Digest]bool // this walk's nodes: complete or not
	leaves  map[Digest]bool // this walk's leaves: present or not
	missing []Digest
}

// node checks d and everything it reaches, and reports whether all of it is
// present and intact.
func (w *missingWalk) node(d Digest) (bool, error) {
	if _, ok := w.done.Load(d); ok {
		return true, nil
	}
	if ok, seen := w.seen[d]; seen {
		return ok, nil
	}
	if w.seen == nil {
		w.seen = map[Digest]bool{}
	}
	w.seen[d] = true // content addressing rules out cycles; this guards anyway
	refs, err := w.s.inspectTiered(d, false, true)
	if err != nil {
		if !unusable(err) {
			return false, err
		}
		w.seen[d] = false
		w.addMissing(d)
		return false, nil
	}
	ok := true
	for _, l := range refs.leaves {
		ok = w.leaf(l) && ok
	}
	for _, n := range refs.nodes {
		nok, err := w.node(n)
		if err != nil {
			return false, err
		}
		ok = nok && ok
	}
	w.seen[d] = ok
	if ok {
		w.done.Store(d, struct{}{})
	}
	return ok, nil
}

func (w *missingWalk) leaf(d Digest) bool {
	if present, seen := w.leaves[d]; seen {
		return present
	}
	if _, ok := w.done.Load(d); ok {
		return true
	}
	if w.leaves == nil {
		w.leaves = map[Digest]bool{}
	}
	present := w.s.Has(d)
	w.leaves[d] = present
	if !present {
		w.addMissing(d)
	}
	return present
}

// addMissing notes d as missing once (it may be reached both as a leaf and
// as a node; the list is short).
func (w *missingWalk) addMissing(d Digest) {
	if !slices.Contains(w.missing, d) {
		w.missing = append(w.missing, d)
	}
}

// reachable returns every blob reachable from roots that gc must keep,
// reading blobs with inspect, which must leave them as they are: a blob
// that cannot be read is kept if present and its references are not
// followed.
func reachable(inspect func(Digest) (blobRefs, error), roots, leaves []Digest) map[Digest]bool {
	const kept, followed = 1, 2
	state := map[Digest]uint8{}
	for _, l := range leaves {
		state[l] |= kept
	}
	stack := slices.Clone(roots)
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if state[d]&followed != 0 {
			continue
		}
		state[d] |= kept | followed
		refs, err := inspect(d)
		if err != nil {
			continue
		}
		for _, l := range refs.leaves {
			state[l] |= kept
		}
		stack = append(stack, refs.nodes...)
	}
	live := make(map[Digest]bool, len(state))
	for d := range state {
		live[d] = true
	}
	return live
}

// HasReferences reports whether the blob d refers to any other blob (see
// "What a reference is"). A blob's references are fixed by its digest, so
// a caller may remember the answer: the build engine does, to check a
// cached output that refers to nothing with a stat rather than a read.
func (s *Store) HasReferences(d Digest) (bool, error) {
	r, err := s.inspectTiered(d, false, true)
	if err != nil {
		return false, err
	}
	return len(r.nodes)+len(r.leaves) > 0, nil
}
