// Package calc is a fixture of the Go profile's runner test.
package calc

// Add returns a+b.
func Add(a, b int) int { return a + b }

// Sub returns a-b, wrongly.
func Sub(a, b int) int { return a + b }
