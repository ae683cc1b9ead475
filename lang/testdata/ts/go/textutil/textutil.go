// Package textutil is a fixture for the tree-sitter transforms.
package textutil

import (
	"strings"
	"unicode"
)

// Words splits s into words.
func Words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) })
}

// Count counts the words of s longer than min.
func Count(s string, min int) int {
	n := 0
	for _, w := range Words(s) {
		if len(w) > min {
			n++
		}
	}
	return n
}

// Repeat joins n copies of s with sep.
func Repeat(s, sep string, n int) string {
	parts := []string{}
	for i := 0; i < n; i++ {
		parts = append(parts, s)
	}
	return strings.Join(parts, sep)
}
