// Package panicky is a fixture whose second test panics.
package panicky

// Index returns xs[i].
func Index(xs []int, i int) int { return xs[i] }
