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

// Files the go tool leaves out of the build in the sandbox (linux/amd64,
// no cgo) give no candidates: a bug there changes nothing the tests see
// (google/btree keeps a "!go1.18" fallback beside its generic code, and a
// "+build ignore" program).
func TestTreeSitterGoBuildConstraints(t *testing.T) {
	body := "\nfunc F(a int) int {\n\tb := a + 1\n\treturn b * 2\n}\n"
	src := memSource(map[string]string{
		"p/plain.go":       "package p\n" + body,
		"p/old.go":         "// Copyright\n\n//go:build !go1.18\n// +build !go1.18\n\npackage p\n" + body,
		"p/new.go":         "//go:build go1.99 && (linux || darwin)\n\npackage p\n" + body,
		"p/gen.go":         "// +build ignore\n\npackage main\n" + body,
		"p/cgo.go":         "//go:build cgo\n\npackage p\n" + body,
		"p/x_windows.go":   "package p\n" + body,
		"p/x_linux_arm.go": "package p\n" + body,
		"p/x_linux.go":     "package p\n" + body,
		"p/x_amd64.go":     "package p\n" + body,
		"p/linux.go":       "package p\n" + body,
		"p/late.go":        "package p\n\n//go:build ignore\n" + body,
	})
	for _, mode := range []Mode{ModeBugs, ModeStub} {
		files := map[string]bool{}
		for _, c := range candidates(t, "go", src, mode, CandidateOptions{}) {
			files[c.File] = true
		}
		var got []string
		for f := range files {
			got = append(got, f)
		}
		sort.Strings(got)
		want := "p/late.go p/linux.go p/new.go p/plain.go p/x_amd64.go p/x_linux.go"
		if strings.Join(got, " ") != want {
			t.Errorf("%s: candidates in %v, want %s", mode, got, want)
		}
	}
}
