package lang

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Every JavaScript candidate of the fixture passes `node --check`.
func TestTreeSitterJavaScriptBugsCheck(t *testing.T) {
	root := filepath.Join("testdata", "ts", "javascript")
	src := dirSource(t, root)
	cs := candidates(t, "javascript", src, ModeBugs, CandidateOptions{Seed: 1})
	checkCandidates(t, "javascript", src, cs)
	counts := byTransform(cs)
	t.Logf("javascript bug candidates: %d %v", len(cs), counts)
	for _, name := range treeSitterTransformNames("javascript") {
		if counts[name] == 0 {
			t.Errorf("no %s candidate in the JavaScript fixture", name)
		}
	}
	for _, c := range cs {
		if strings.HasPrefix(c.File, "test/") {
			t.Errorf("%s changes test code", c.ID)
		}
		if c.Transform == "swap_arith" && strings.Contains(c.Description, "': '") {
			t.Errorf("%s swaps string concatenation", c.ID)
		}
	}
	if failed := compileEach(t, root, cs, true, "node", "--check"); len(failed) > 0 {
		for id, out := range failed {
			t.Errorf("%s fails node --check:\n%s", id, out)
		}
	}
}

func TestTreeSitterJavaScriptStubs(t *testing.T) {
	root := filepath.Join("testdata", "ts", "javascript")
	src := dirSource(t, root)
	cs := candidates(t, "javascript", src, ModeStub, CandidateOptions{Keep: []string{"src/stack.mjs::range"}})
	checkCandidates(t, "javascript", src, cs)
	var got []string
	for _, c := range cs {
		got = append(got, c.Function)
		if !strings.Contains(c.Edit.Replacement, `throw new Error("not implemented");`) {
			t.Errorf("%s: replacement %q", c.ID, c.Edit.Replacement)
		}
	}
	sort.Strings(got)
	// Not stubbed: makeStep (top-level code calls it), the constructors,
	// the getter, range (Keep).
	want := []string{"Counter.reset", "Counter.step", "Stack.peek", "Stack.pop", "Stack.push", "between", "clamp", "first", "label", "sum"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stubbed %v, want %v", got, want)
	}
	if failed := compileEach(t, root, cs, true, "node", "--check"); len(failed) > 0 {
		for id, out := range failed {
			t.Errorf("%s fails node --check:\n%s", id, out)
		}
	}
}
