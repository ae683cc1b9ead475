// Package edge is the root package of the Go profile's runner fixture.
package edge

// One returns 1.
func One() int { return 1 }
