package lang

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Every Go bug candidate of the fixture compiles (go vet type-checks the
// package and its tests, and rejects unused variables and imports as the
// compiler does).
func TestTreeSitterGoBugsCompile(t *testing.T) {
	root := filepath.Join("testdata", "ts", "go")
	src := dirSource(t, root)
	cs := candidates(t, "go", src, ModeBugs, CandidateOptions{Seed: 1})
	checkCandidates(t, "go", src, cs)
	counts := byTransform(cs)
	t.Logf("go bug candidates: %d %v", len(cs), counts)
	for _, name := range treeSitterTransformNames("go") {
		if counts[name] == 0 {
			t.Errorf("no %s candidate in the Go fixture", name)
		}
	}
	for _, c := range cs {
		if strings.Contains(c.File, "gen.go") || strings.HasSuffix(c.File, "_test.go") {
			t.Errorf("%s changes generated or test code", c.ID)
		}
	}
	if failed := compileEach(t, root, cs, false, "go", "vet", "./..."); len(failed) > 0 {
		for id, out := range failed {
			t.Errorf("%s does not compile:\n%s", id, out)
		}
	}
}

func TestTreeSitterGoStubs(t *testing.T) {
	root := filepath.Join("testdata", "ts", "go")
	src := dirSource(t, root)
	cs := candidates(t, "go", src, ModeStub, CandidateOptions{Keep: []string{"calc/calc.go::Diff"}})
	checkCandidates(t, "go", src, cs)
	var got []string
	for _, c := range cs {
		got = append(got, c.Function)
		if c.Transform != "stub" || c.ID != "stub-"+c.File+"-"+c.Function {
			t.Errorf("stub id/transform: %+v", c)
		}
		if !strings.Contains(c.Edit.Replacement, `panic("not implemented")`) {
			t.Errorf("%s: replacement %q", c.ID, c.Edit.Replacement)
		}
	}
	sort.Strings(got)
	// Not stubbed: defaultLimit and scale (package initialisation runs
	// them), init, Total (a lone return of a field), Diff (Keep),
	// Words, Label and Mean (the only users of unicode, strings and
	// errors: the stub would leave the import unused).
	want := []string{"Between", "Calc.Add", "Clamp", "Count", "Last", "Repeat", "Sum"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stubbed %v, want %v", got, want)
	}
	if failed := compileEach(t, root, cs, false, "go", "vet", "./..."); len(failed) > 0 {
		for id, out := range failed {
			t.Errorf("%s does not compile:\n%s", id, out)
		}
	}
}

// The removal rule keeps Go's "declared and not used" and unused imports
// away, and the string rule keeps `+` on strings.
func TestTreeSitterGoConservative(t *testing.T) {
	src := memSource(map[string]string{"p/p.go": `package p

import "fmt"

func F(a, b int, s string) string {
	x := a + 1
	y := 0
	y = b
	total := 0
	total += y
	fmt.Println(x)
	t := s + "!"
	return t + fmt.Sprint(total)
}
`})
	cs := candidates(t, "go", src, ModeBugs, CandidateOptions{Transforms: []string{"remove_statement", "swap_arith"}})
	var got []string
	for _, c := range cs {
		got = append(got, c.Description)
	}
	sort.Strings(got)
	want := []string{
		"removed the statement `y = b` in F (p/p.go)",
		"replaced `a + 1` with `a - 1` in F (p/p.go)",
		"replaced `total += y` with `total -= y` in F (p/p.go)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
