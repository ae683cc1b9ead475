// Package cache owns dsbuild's content-addressed store: blobs addressed by the
// sha256 of their bytes (kept zstd-compressed, written atomically, verified on
// read), Merkle trees for directory snapshots, and the memo table that maps a
// key (the digest of a canonical description of some work) to the digest of
// its result. It also owns the one canonical encoding every key is made from.
//
// A store may have a shared remote tier behind its directory (SetRemote,
// Remote, S3Remote): several machines then build against one bucket, each
// directory a disk tier in front of it that fetches a blob once, memo
// entries first-writer-wins across machines, build records shared as every
// machine's gc roots. Without one, the store is exactly a directory.
//
// The package imports nothing of the project but internal/reap (removal of
// killed processes' work directories) and knows nothing of stages, models
// or sandboxes: it stores bytes and remembers results.
package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Digest names a blob: the sha256 of its uncompressed bytes. Its text form is
// "sha256:" followed by 64 lowercase hex digits.
type Digest [32]byte

// DigestOf returns the digest of data.
func DigestOf(data []byte) Digest { return sha256.Sum256(data) }

// String returns the "sha256:<hex>" form.
func (d Digest) String() string { return "sha256:" + hex.EncodeToString(d[:]) }

// Hex returns the 64 hex digits without the algorithm prefix.
func (d Digest) Hex() string { return hex.EncodeToString(d[:]) }

// Short returns the first 12 hex digits, for display.
func (d Digest) Short() string { return hex.EncodeToString(d[:6]) }

// IsZero reports whether d is the zero value (no digest).
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText encodes d as "sha256:<hex>".
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses the "sha256:<hex>" form.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// ParseDigest parses "sha256:<64 hex digits>".
func ParseDigest(s string) (Digest, error) {
	var d Digest
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return d, fmt.Errorf("malformed digest %q: want sha256:<64 hex digits>", s)
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("malformed digest %q: %v", s, err)
	}
	return d, nil
}

// Key names a piece of work in the memo table: the sha256 of the canonical
// encoding of everything that determines the work's result. Its text form is
// 64 hex digits with no prefix, so keys are never mistaken for blob
// references.
type Key [32]byte

// KeyOf returns the key of v: sha256 over Canonical(v). It is the one
// function that turns a description of work into a key.
func KeyOf(v any) (Key, error) {
	b, err := Canonical(v)
	if err != nil {
		return Key{}, err
	}
	return sha256.Sum256(b), nil
}

// String returns the 64 hex digits.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Short returns the first 12 hex digits, for display.
func (k Key) Short() string { return hex.EncodeToString(k[:6]) }

// IsZero reports whether k is the zero value.
func (k Key) IsZero() bool { return k == Key{} }

// MarshalText encodes k as 64 hex digits.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses 64 hex digits.
func (k *Key) UnmarshalText(b []byte) error {
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// ParseKey parses the 64-hex-digit form of a key.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 64 {
		return k, fmt.Errorf("malformed key %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("malformed key %q: %v", s, err)
	}
	return k, nil
}

// Canonical encodes v as canonical JSON: object keys sorted, no
// insignificant whitespace, no HTML escaping, numbers as written by
// encoding/json. Struct fields are reordered by name like map keys, so two
// values that encode to equal JSON objects have equal canonical bytes.
func Canonical(v any) ([]byte, error) {
	raw, err := marshalNoEscape(v)
	if err != nil {
		return nil, fmt.Errorf("canonical encoding: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("canonical encoding: %w", err)
	}
	out, err := marshalNoEscape(generic)
	if err != nil {
		return nil, fmt.Errorf("canonical encoding: %w", err)
	}
	return out, nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Sampled reports whether the work keyed k is among the fraction (0 to 1)
// of keys chosen for a sample, such as the cache hits `--recheck` runs
// again. The choice is a function of the key alone, so the same fraction
// picks the same work every time.
func Sampled(k Key, fraction float64) bool {
	if fraction <= 0 {
		return false
	}
	return float64(uint32(k[8])<<24|uint32(k[9])<<16|uint32(k[10])<<8|uint32(k[11])) < fraction*(1<<32)
}
