package patch

// Binary files are written as git's binary patches ("GIT binary patch",
// literal form), which `git apply` accepts: an `index <old>..<new>` line
// with both sides' full git blob hashes (git apply refuses a binary patch
// without it), then a forward hunk `literal <size>` holding the new content
// and a reverse hunk holding the old content, each zlib-compressed and
// base85-encoded in lines of at most 52 bytes. The zlib stream is written
// with stored (uncompressed) blocks only, so the bytes depend on nothing but
// the content. Apply takes literal hunks and refuses delta hunks (which Diff
// never writes).

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/adler32"
	"io"
	"strconv"
	"strings"
)

// nullHash is git's all-zero object name, for the missing side of a diff.
const nullHash = "0000000000000000000000000000000000000000"

// gitBlobHash is the object name git gives a blob with content data.
func gitBlobHash(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// writeBinary writes the index line and the binary patch of a section whose
// sides are a (nil: absent) and b (nil: absent), at least one binary.
func writeBinary(out *strings.Builder, a, b *fileState) {
	oldHash, newHash := nullHash, nullHash
	var da, db []byte
	if a != nil {
		oldHash, da = gitBlobHash(a.data), a.data
	}
	if b != nil {
		newHash, db = gitBlobHash(b.data), b.data
	}
	fmt.Fprintf(out, "index %s..%s", oldHash, newHash)
	if a != nil && b != nil && a.mode == b.mode {
		fmt.Fprintf(out, " %s", a.mode)
	}
	out.WriteString("\nGIT binary patch\n")
	writeLiteral(out, db)
	out.WriteByte('\n')
	writeLiteral(out, da)
	out.WriteByte('\n')
}

func writeLiteral(out *strings.Builder, data []byte) {
	fmt.Fprintf(out, "literal %d\n", len(data))
	z := storedZlib(data)
	for len(z) > 0 {
		n := min(len(z), 52)
		if n <= 26 {
			out.WriteByte(byte('A' + n - 1))
		} else {
			out.WriteByte(byte('a' + n - 27))
		}
		out.WriteString(encode85(z[:n]))
		out.WriteByte('\n')
		z = z[n:]
	}
}

// storedZlib is data as a zlib stream of stored blocks.
func storedZlib(data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0x78, 0x01})
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], adler32.Checksum(data))
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), 0xffff)
		final := byte(0)
		if n == len(data) {
			final = 1
		}
		b.WriteByte(final)
		var hdr [4]byte
		binary.LittleEndian.PutUint16(hdr[0:], uint16(n))
		binary.LittleEndian.PutUint16(hdr[2:], ^uint16(n))
		b.Write(hdr[:])
		b.Write(data[:n])
		data = data[n:]
	}
	b.Write(sum[:])
	return b.Bytes()
}

const alphabet85 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"

// encode85 is git's base85: each 4 bytes (zero-padded) as 5 characters,
// most significant first.
func encode85(b []byte) string {
	var out strings.Builder
	for i := 0; i < len(b); i += 4 {
		var v uint32
		for j := 0; j < 4; j++ {
			v <<= 8
			if i+j < len(b) {
				v |= uint32(b[i+j])
			}
		}
		var c [5]byte
		for j := 4; j >= 0; j-- {
			c[j] = alphabet85[v%85]
			v /= 85
		}
		out.Write(c[:])
	}
	return out.String()
}

var index85 = func() (t [256]int) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet85); i++ {
		t[alphabet85[i]] = i
	}
	return t
}()

// decode85 decodes one line's characters into n bytes.
func decode85(s string, n int) ([]byte, error) {
	if len(s) != (n+3)/4*5 {
		return nil, fmt.Errorf("base85 line of %d bytes has %d characters, want %d", n, len(s), (n+3)/4*5)
	}
	out := make([]byte, 0, len(s)/5*4)
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for j := 0; j < 5; j++ {
			d := index85[s[i+j]]
			if d < 0 {
				return nil, fmt.Errorf("invalid base85 character %q", s[i+j])
			}
			v = v*85 + uint64(d)
		}
		if v > 0xffffffff {
			return nil, fmt.Errorf("base85 group %q overflows", s[i:i+5])
		}
		out = append(out, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return out[:n], nil
}

// parseBinary reads the hunks of a "GIT binary patch" starting at lines[i]
// (the line after the marker). It returns the forward hunk's content and the
// index of the first line after the patch.
func parseBinary(lines []string, i int) ([]byte, int, error) {
	data, next, err := parseLiteral(lines, i)
	if err != nil {
		return nil, 0, err
	}
	// An optional reverse hunk follows; its content is not needed.
	if next < len(lines) && (strings.HasPrefix(lines[next], "literal ") || strings.HasPrefix(lines[next], "delta ")) {
		if _, next, err = parseLiteral(lines, next); err != nil {
			return nil, 0, err
		}
	}
	return data, next, nil
}

func parseLiteral(lines []string, i int) ([]byte, int, error) {
	if i >= len(lines) {
		return nil, 0, fmt.Errorf("patch line %d: binary patch ends before its hunk", i+1)
	}
	head := lines[i]
	if strings.HasPrefix(head, "delta ") {
		return nil, 0, fmt.Errorf("patch line %d: binary delta hunks are not supported (only literal)", i+1)
	}
	size, err := strconv.Atoi(strings.TrimPrefix(head, "literal "))
	if !strings.HasPrefix(head, "literal ") || err != nil || size < 0 {
		return nil, 0, fmt.Errorf("patch line %d: expected \"literal <size>\", got %q", i+1, head)
	}
	var z []byte
	j := i + 1
	for ; j < len(lines) && lines[j] != ""; j++ {
		l := lines[j]
		c := l[0]
		var n int
		switch {
		case c >= 'A' && c <= 'Z':
			n = int(c-'A') + 1
		case c >= 'a' && c <= 'z':
			n = int(c-'a') + 27
		default:
			return nil, 0, fmt.Errorf("patch line %d: bad binary line length character %q", j+1, c)
		}
		b, err := decode85(l[1:], n)
		if err != nil {
			return nil, 0, fmt.Errorf("patch line %d: %v", j+1, err)
		}
		z = append(z, b...)
	}
	if j < len(lines) {
		j++ // the blank line ending the hunk
	}
	r, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, 0, fmt.Errorf("patch line %d: binary hunk: %v", i+1, err)
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(size)+1))
	if err == nil {
		err = r.Close()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("patch line %d: binary hunk: %v", i+1, err)
	}
	if len(data) != size {
		return nil, 0, fmt.Errorf("patch line %d: binary hunk holds %d bytes, its header says %d", i+1, len(data), size)
	}
	return data, j, nil
}
