// Package notests has no tests.
package notests

// Zero returns 0.
func Zero() int { return 0 }
