package calc

import "testing"

func TestClamp(t *testing.T) {
	if Clamp(5, 0, 3) != 3 {
		t.Fatal("clamp")
	}
}
