// Package text transforms and measures strings.
package text

import (
	"strconv"
	"strings"
	"unicode"
)

// Reverse returns s with its runes in reverse order.
func Reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// IsPalindrome reports whether s reads the same both ways, ignoring case
// and anything but letters and digits.
func IsPalindrome(s string) bool {
	var r []rune
	for _, c := range s {
		if unicode.IsLetter(c) || unicode.IsDigit(c) {
			r = append(r, unicode.ToLower(c))
		}
	}
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		if r[i] != r[j] {
			return false
		}
	}
	return true
}

// WordFreq counts the lower-cased words of s (runs of letters, digits and
// apostrophes).
func WordFreq(s string) map[string]int {
	out := map[string]int{}
	words := strings.FieldsFunc(strings.ToLower(s), func(c rune) bool {
		return !unicode.IsLetter(c) && !unicode.IsDigit(c) && c != '\''
	})
	for _, w := range words {
		out[w]++
	}
	return out
}

// Caesar shifts the ASCII letters of s by shift places, wrapping around
// the alphabet and keeping case; other characters are unchanged.
func Caesar(s string, shift int) string {
	shift = ((shift % 26) + 26) % 26
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteRune('a' + (c-'a'+rune(shift))%26)
		case c >= 'A' && c <= 'Z':
			b.WriteRune('A' + (c-'A'+rune(shift))%26)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// RunLengthEncode writes each run of a repeated rune as its count followed
// by the rune: "aaab" is "3a1b".
func RunLengthEncode(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i := 0; i < len(r); {
		j := i
		for j < len(r) && r[j] == r[i] {
			j++
		}
		b.WriteString(strconv.Itoa(j - i))
		b.WriteRune(r[i])
		i = j
	}
	return b.String()
}

// RunLengthDecode undoes RunLengthEncode; it fails on a rune without a
// count.
func RunLengthDecode(s string) (string, error) {
	var b strings.Builder
	count := 0
	digits := false
	for _, c := range s {
		if c >= '0' && c <= '9' {
			count = count*10 + int(c-'0')
			digits = true
			continue
		}
		if !digits {
			return "", strconv.ErrSyntax
		}
		b.WriteString(strings.Repeat(string(c), count))
		count, digits = 0, false
	}
	if digits {
		return "", strconv.ErrSyntax
	}
	return b.String(), nil
}

// Wrap breaks s into lines of at most width runes at spaces; a word longer
// than width gets a line of its own.
func Wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case len([]rune(line))+1+len([]rune(w)) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
