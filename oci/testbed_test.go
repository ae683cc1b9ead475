package oci

import (
	"context"
	"testing"
)

// TreeAt reads back exactly the tree WithTree put in the image, executable
// bits included (the fixture has an executable file), and a second image on top of the first (the usual
// base -> task layering) gives the upper tree, not a mix.
func TestTreeAtInvertsWithTree(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	b := NewBuilder(s, Options{Offline: true})
	base := syntheticBase(t, s)
	for _, at := range []string{"/testbed", "/work/repo"} {
		tree := projectTree(t, s, 1)
		img, err := b.WithTree(ctx, base, tree, at, ConfigOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := TreeAt(ctx, s, img, at)
		if err != nil {
			t.Fatal(err)
		}
		if got != tree {
			t.Fatalf("%s: TreeAt gave %s, WithTree put %s", at, got, tree)
		}
		other := projectTree(t, s, 2)
		img2, err := b.WithTree(ctx, img, other, at, ConfigOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := TreeAt(ctx, s, img2, at); err != nil || got != other {
			t.Fatalf("%s: stacked image: TreeAt gave %s (%v), want the upper tree %s", at, got, err, other)
		}
	}
	if _, err := TreeAt(ctx, s, base, "/testbed"); err == nil {
		t.Fatal("TreeAt of an image whose top layer is the base gave no error")
	}
}
