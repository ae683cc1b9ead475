package edge

import "testing"

func TestRoot(t *testing.T) {
	if One() != 1 {
		t.Fatal("One() != 1")
	}
}
