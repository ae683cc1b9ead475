package cache

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
)

func TestCanonicalSortsKeysAndDropsWhitespace(t *testing.T) {
	in := map[string]any{
		"zeta":  1,
		"alpha": []any{3, "x", map[string]any{"b": true, "a": nil}},
		"mid":   map[string]any{"y": 2.5, "x": "s"},
	}
	got, err := Canonical(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"alpha":[3,"x",{"a":null,"b":true}],"mid":{"x":"s","y":2.5},"zeta":1}`
	if string(got) != want {
		t.Fatalf("Canonical = %s\nwant        %s", got, want)
	}
}

func TestCanonicalStructAndMapAgree(t *testing.T) {
	type inner struct {
		Zed int    `json:"zed"`
		Abc string `json:"abc"`
	}
	type outer struct {
		Version int               `json:"version"`
		Kind    string            `json:"kind"`
		Inputs  map[string]string `json:"inputs"`
		Inner   inner             `json:"inner"`
		Skip    string            `json:"skip,omitempty"`
	}
	s := outer{Version: 2, Kind: "validate", Inputs: map[string]string{"b": "2", "a": "1"}, Inner: inner{Zed: 9, Abc: "q"}}
	m := map[string]any{
		"inner":   map[string]any{"abc": "q", "zed": 9},
		"kind":    "validate",
		"inputs":  map[string]any{"a": "1", "b": "2"},
		"version": 2,
	}
	cs, err := Canonical(s)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := Canonical(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(cs) != string(cm) {
		t.Fatalf("struct and map disagree:\n%s\n%s", cs, cm)
	}
	ks, _ := KeyOf(s)
	km, _ := KeyOf(m)
	if ks != km {
		t.Fatalf("KeyOf(struct) %s != KeyOf(map) %s", ks, km)
	}
	if ks != Key(sha256.Sum256(cs)) {
		t.Fatal("KeyOf is not sha256 over Canonical")
	}
	// A different value gives a different key.
	s.Version = 3
	if k3, _ := KeyOf(s); k3 == ks {
		t.Fatal("changing a field did not change the key")
	}
}

func TestCanonicalNoHTMLEscaping(t *testing.T) {
	got, err := Canonical(map[string]string{"cmd": "a < b && c > d"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"cmd":"a < b && c > d"}`; string(got) != want {
		t.Fatalf("Canonical = %s, want %s", got, want)
	}
	// Escaped and unescaped spellings of the same JSON agree.
	esc, err := Canonical(json.RawMessage(`{"cmd" : "a \u003c b \u0026\u0026 c \u003e d"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(esc) != string(got) {
		t.Fatalf("escaped input canonicalised to %s, want %s", esc, got)
	}
}

func TestCanonicalNumbersKeptExactly(t *testing.T) {
	got, err := Canonical(map[string]any{"big": uint64(1<<63 + 1), "f": 0.1, "i": -7})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"big":9223372036854775809,"f":0.1,"i":-7}`; string(got) != want {
		t.Fatalf("Canonical = %s, want %s", got, want)
	}
}

func TestCanonicalStableAcrossCalls(t *testing.T) {
	v := map[string]any{}
	for i := range 200 {
		v[strings.Repeat("k", i%7)+string(rune('a'+i%26))+string(rune('A'+i/26))] = i
	}
	first, err := KeyOf(v)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		k, err := KeyOf(v)
		if err != nil {
			t.Fatal(err)
		}
		if k != first {
			t.Fatal("KeyOf is not stable across calls")
		}
	}
}

func TestCanonicalRejectsUnencodable(t *testing.T) {
	if _, err := Canonical(map[string]any{"f": func() {}}); err == nil || !strings.Contains(err.Error(), "canonical encoding") {
		t.Fatalf("err = %v, want a canonical encoding error", err)
	}
	if _, err := KeyOf(make(chan int)); err == nil {
		t.Fatal("KeyOf of a channel succeeded")
	}
}

func TestDigestText(t *testing.T) {
	d := DigestOf([]byte("hello"))
	const hexHello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if d.String() != "sha256:"+hexHello || d.Hex() != hexHello || d.Short() != hexHello[:12] {
		t.Fatalf("String=%s Hex=%s Short=%s", d, d.Hex(), d.Short())
	}
	p, err := ParseDigest(d.String())
	if err != nil || p != d {
		t.Fatalf("ParseDigest round trip: %v %v", p, err)
	}
	if d.IsZero() || !(Digest{}).IsZero() {
		t.Fatal("IsZero wrong")
	}
	// JSON uses the text form, in both directions.
	b, err := json.Marshal(struct{ D Digest }{d})
	if err != nil || string(b) != `{"D":"sha256:`+hexHello+`"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var back struct{ D Digest }
	if err := json.Unmarshal(b, &back); err != nil || back.D != d {
		t.Fatalf("Unmarshal = %v, %v", back.D, err)
	}
	for _, bad := range []string{
		"", hexHello, "sha256:", "sha256:" + hexHello[:63], "sha256:" + hexHello + "0",
		"sha512:" + hexHello, "sha256:" + hexHello[:63] + "g", "SHA256:" + hexHello,
	} {
		if _, err := ParseDigest(bad); err == nil || !strings.Contains(err.Error(), "malformed digest") {
			t.Errorf("ParseDigest(%q) err = %v, want malformed digest", bad, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"D":"nope"}`), &back); err == nil {
		t.Error("Unmarshal of a bad digest succeeded")
	}
}

func TestKeyText(t *testing.T) {
	k, err := KeyOf("x")
	if err != nil {
		t.Fatal(err)
	}
	if len(k.String()) != 64 || strings.HasPrefix(k.String(), "sha256:") || k.Short() != k.String()[:12] {
		t.Fatalf("String=%s Short=%s", k, k.Short())
	}
	p, err := ParseKey(k.String())
	if err != nil || p != k {
		t.Fatalf("ParseKey round trip: %v %v", p, err)
	}
	b, _ := k.MarshalText()
	var back Key
	if err := back.UnmarshalText(b); err != nil || back != k {
		t.Fatalf("text round trip: %v %v", back, err)
	}
	if k.IsZero() || !(Key{}).IsZero() {
		t.Fatal("IsZero wrong")
	}
	for _, bad := range []string{"", "sha256:" + k.String(), k.String()[:63], k.String() + "0", k.String()[:63] + "z"} {
		if _, err := ParseKey(bad); err == nil || !strings.Contains(err.Error(), "malformed key") {
			t.Errorf("ParseKey(%q) err = %v, want malformed key", bad, err)
		}
	}
	if err := back.UnmarshalText([]byte("zz")); err == nil {
		t.Error("UnmarshalText of a bad key succeeded")
	}
}
