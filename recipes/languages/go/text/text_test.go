package text

import (
	"reflect"
	"testing"
)

func TestReverse(t *testing.T) {
	for in, want := range map[string]string{"": "", "abc": "cba", "héllo": "olléh"} {
		if got := Reverse(in); got != want {
			t.Errorf("Reverse(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsPalindrome(t *testing.T) {
	for _, s := range []string{"", "a", "Racecar", "A man, a plan, a canal: Panama", "12321"} {
		if !IsPalindrome(s) {
			t.Errorf("IsPalindrome(%q) = false", s)
		}
	}
	for _, s := range []string{"ab", "hello", "12 3"} {
		if IsPalindrome(s) {
			t.Errorf("IsPalindrome(%q) = true", s)
		}
	}
}

func TestWordFreq(t *testing.T) {
	got := WordFreq("The cat and the hat; the END. Don't stop")
	want := map[string]int{"the": 3, "cat": 1, "and": 1, "hat": 1, "end": 1, "don't": 1, "stop": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("WordFreq = %v, want %v", got, want)
	}
}

func TestCaesar(t *testing.T) {
	cases := []struct {
		in    string
		shift int
		want  string
	}{
		{"abc", 1, "bcd"},
		{"xyz", 3, "abc"},
		{"Hello, World!", 13, "Uryyb, Jbeyq!"},
		{"abc", -1, "zab"},
		{"abc", 27, "bcd"},
	}
	for _, c := range cases {
		if got := Caesar(c.in, c.shift); got != c.want {
			t.Errorf("Caesar(%q, %d) = %q, want %q", c.in, c.shift, got, c.want)
		}
	}
}

func TestRunLengthEncode(t *testing.T) {
	for in, want := range map[string]string{"": "", "aaab": "3a1b", "abc": "1a1b1c", "zzzzzzzzzzzz": "12z"} {
		if got := RunLengthEncode(in); got != want {
			t.Errorf("RunLengthEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRunLengthDecode(t *testing.T) {
	got, err := RunLengthDecode("3a1b12z")
	if err != nil || got != "aaabzzzzzzzzzzzz" {
		t.Errorf("RunLengthDecode = %q, %v", got, err)
	}
	for _, bad := range []string{"a", "3", "2a b"} {
		if _, err := RunLengthDecode(bad); err == nil {
			t.Errorf("RunLengthDecode(%q) did not fail", bad)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"hello  world", "aabbbcccc", "x"} {
		got, err := RunLengthDecode(RunLengthEncode(s))
		if err != nil || got != s {
			t.Errorf("round trip of %q = %q, %v", s, got, err)
		}
	}
}

func TestWrap(t *testing.T) {
	got := Wrap("the quick brown fox jumps over the lazy dog", 10)
	want := []string{"the quick", "brown fox", "jumps over", "the lazy", "dog"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Wrap = %q, want %q", got, want)
	}
	if got := Wrap("supercalifragilistic is long", 5); !reflect.DeepEqual(got, []string{"supercalifragilistic", "is", "long"}) {
		t.Errorf("Wrap of a long word = %q", got)
	}
	if got := Wrap("   ", 5); got != nil {
		t.Errorf("Wrap of blanks = %q, want nil", got)
	}
}
