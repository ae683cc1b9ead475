package lang

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var rustcArgv = []string{"rustc", "--edition", "2021", "--crate-type", "lib", "--emit", "metadata", "-o", "candidate.rmeta"} // in the test's temp dir: rustc renames its output over the -o path, so -o /dev/null would replace the device

// Every Rust candidate of the single-file fixture compiles with rustc.
func TestTreeSitterRustBugsCompile(t *testing.T) {
	root := filepath.Join("testdata", "ts", "rust")
	src := dirSource(t, root)
	cs := candidates(t, "rust", src, ModeBugs, CandidateOptions{Seed: 1})
	checkCandidates(t, "rust", src, cs)
	counts := byTransform(cs)
	t.Logf("rust bug candidates: %d %v", len(cs), counts)
	for _, name := range treeSitterTransformNames("rust") {
		if counts[name] == 0 {
			t.Errorf("no %s candidate in the Rust fixture", name)
		}
	}
	for _, c := range cs {
		if strings.HasPrefix(c.Function, "tests.") {
			t.Errorf("%s changes test code", c.ID)
		}
	}
	if failed := compileEach(t, root, cs, true, rustcArgv...); len(failed) > 0 {
		for id, out := range failed {
			t.Errorf("%s does not compile:\n%s", id, out)
		}
	}
}

func TestTreeSitterRustStubs(t *testing.T) {
	root := filepath.Join("testdata", "ts", "rust")
	src := dirSource(t, root)
	cs := candidates(t, "rust", src, ModeStub, CandidateOptions{Keep: []string{"src/lib.rs::window"}})
	checkCandidates(t, "rust", src, cs)
	var got []string
	for _, c := range cs {
		got = append(got, c.Function)
		if !strings.Contains(c.Edit.Replacement, "unimplemented!()") {
			t.Errorf("%s: replacement %q", c.ID, c.Edit.Replacement)
		}
	}
	sort.Strings(got)
	// Not stubbed: the const fn limit, Counter.total (a lone field), the
	// trait's declaration without body, evens (-> impl Iterator), window
	// (Keep), the test module.
	want := []string{"Counter.add", "Counter.new", "Shape.double", "between", "bounded", "clamp", "label", "sum"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stubbed %v, want %v", got, want)
	}
	if failed := compileEach(t, root, cs, true, rustcArgv...); len(failed) > 0 {
		for id, out := range failed {
			t.Errorf("%s does not compile:\n%s", id, out)
		}
	}
}
