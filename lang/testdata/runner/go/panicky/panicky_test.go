package panicky

import "testing"

func TestBefore(t *testing.T) {
	if Index([]int{1, 2}, 1) != 2 {
		t.Fatal("Index")
	}
}

func TestPanics(t *testing.T) {
	Index(nil, 3)
}

func TestNeverRuns(t *testing.T) {}
