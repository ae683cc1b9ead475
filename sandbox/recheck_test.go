package sandbox

import (
	"context"
	"errors"
	"testing"
)

// With Options.Recheck a memoised run runs again: one that ends the same
// way returns its memoised result, one whose output differs is an error
// naming its key.
func TestRecheckFindsANondeterministicRun(t *testing.T) {
	r, img := setup(t)
	ctx := context.Background()
	same := Spec{Image: img, Argv: []string{"sh", "-c", "echo stable > out"}, Env: []string{"T=" + t.Name()}}
	random := Spec{Image: img, Argv: []string{"sh", "-c", "head -c 16 /dev/urandom > out"}, Env: []string{"T=" + t.Name()}}
	for _, s := range []Spec{same, random} {
		if _, err := r.Run(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	checker, err := New(r.store, Options{Recheck: 1, WorkDir: r.workDir})
	if err != nil {
		t.Fatal(err)
	}
	res, err := checker.Run(ctx, same)
	if err != nil || !res.Cached {
		t.Fatalf("recheck of a deterministic run: %+v, %v", res, err)
	}
	_, err = checker.Run(ctx, random)
	var re *RecheckError
	if !errors.As(err, &re) {
		t.Fatalf("recheck of a run writing random bytes: err = %v", err)
	}
	key, _ := r.Key(random)
	if re.Key != key {
		t.Fatalf("recheck error names %s, want %s", re.Key, key)
	}
	// Without Recheck the memoised result is replayed as before.
	if res, err := r.Run(ctx, random); err != nil || !res.Cached {
		t.Fatalf("replay: %+v, %v", res, err)
	}
}
