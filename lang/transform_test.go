package lang

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// dirSource is a Source over a directory on disk, without Run.
func dirSource(t testing.TB, root string) Source {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return Source{Files: files, ReadFile: func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(root, p)) }}
}

// memSource is a Source over files held in memory.
func memSource(files map[string]string) Source {
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return Source{Files: names, ReadFile: func(p string) ([]byte, error) {
		s, ok := files[p]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return []byte(s), nil
	}}
}

// applyEdit returns src with the edit made, checking that its span is
// whole lines.
func applyEdit(t testing.TB, c Candidate, src []byte) []byte {
	t.Helper()
	e := c.Edit
	if e.Start < 0 || e.End > len(src) || e.Start > e.End {
		t.Fatalf("%s: edit %d..%d outside the file (%d bytes)", c.ID, e.Start, e.End, len(src))
	}
	if e.Start > 0 && src[e.Start-1] != '\n' || e.End < len(src) && src[e.End-1] != '\n' {
		t.Fatalf("%s: edit %d..%d is not whole lines", c.ID, e.Start, e.End)
	}
	return splice(src, e.Start, e.End, e.Replacement)
}

func candidates(t testing.TB, language string, src Source, mode Mode, opts CandidateOptions) []Candidate {
	t.Helper()
	cs, err := treeSitterCandidates(context.Background(), language, src, mode, opts)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// checkCandidates: ids unique, every edited file re-parses without errors
// (with a parser of its own), every candidate changes its file.
func checkCandidates(t *testing.T, language string, src Source, cs []Candidate) {
	t.Helper()
	g, err := tsGrammarFor(language)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := newTSParser(g)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.close()
	ids := map[string]bool{}
	for _, c := range cs {
		if ids[c.ID] {
			t.Errorf("duplicate id %s", c.ID)
		}
		ids[c.ID] = true
		old, err := src.ReadFile(c.File)
		if err != nil {
			t.Fatal(err)
		}
		new := applyEdit(t, c, old)
		if string(new) == string(old) {
			t.Errorf("%s changes nothing", c.ID)
		}
		tree := tp.parse(context.Background(), new)
		if tree == nil {
			t.Errorf("%s: the edited %s does not parse:\n%s", c.ID, c.File, new)
			continue
		}
		tree.Close()
		if c.Description == "" || c.Function == "" || c.Line < 1 {
			t.Errorf("%s: incomplete candidate %+v", c.ID, c)
		}
	}
}

func countBy(cs []Candidate, key func(Candidate) string) map[string]int {
	out := map[string]int{}
	for _, c := range cs {
		out[key(c)]++
	}
	return out
}

func byTransform(cs []Candidate) map[string]int {
	return countBy(cs, func(c Candidate) string { return c.Transform })
}

func sortedIDs(cs []Candidate) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	return ids
}

// compileEach copies the fixture at root to a temporary directory once and,
// for every candidate, writes the edited file, runs check (argv run in
// the copy, with the edited file's path appended when withFile), restores
// the file. It returns the candidates that failed with their output.
func compileEach(t *testing.T, root string, cs []Candidate, withFile bool, argv ...string) map[string]string {
	t.Helper()
	if _, err := exec.LookPath(argv[0]); err != nil {
		t.Fatalf("%s is needed to prove candidates compile: %v", argv[0], err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	failed := map[string]string{}
	for _, c := range cs {
		p := filepath.Join(dir, filepath.FromSlash(c.File))
		old, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, applyEdit(t, c, old), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{}, argv[1:]...)
		if withFile {
			args = append(args, c.File)
		}
		cmd := exec.Command(argv[0], args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			failed[c.ID] = string(out)
		}
		if err := os.WriteFile(p, old, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return failed
}

func TestTreeSitterCandidatesDeterministicPerSeed(t *testing.T) {
	for _, language := range []string{"go", "javascript", "rust"} {
		t.Run(language, func(t *testing.T) {
			src := dirSource(t, filepath.Join("testdata", "ts", language))
			a := candidates(t, language, src, ModeBugs, CandidateOptions{Seed: 7})
			b := candidates(t, language, src, ModeBugs, CandidateOptions{Seed: 7})
			c := candidates(t, language, src, ModeBugs, CandidateOptions{Seed: 8})
			if !reflect.DeepEqual(a, b) {
				t.Fatal("the same seed gave different lists")
			}
			if reflect.DeepEqual(a, c) {
				t.Fatal("seeds 7 and 8 gave the same order")
			}
			if !reflect.DeepEqual(sortedIDs(a), sortedIDs(c)) {
				t.Fatal("seeds 7 and 8 gave different sets of candidates")
			}
			max := candidates(t, language, src, ModeBugs, CandidateOptions{Seed: 7, Max: 5})
			if !reflect.DeepEqual(max, a[:5]) {
				t.Fatalf("Max 5 is not the first 5 of the shuffle: %v", sortedIDs(max))
			}
		})
	}
}

func TestTreeSitterCandidatesOptions(t *testing.T) {
	src := dirSource(t, filepath.Join("testdata", "ts", "go"))
	only := candidates(t, "go", src, ModeBugs, CandidateOptions{Transforms: []string{"swap_comparison", "off_by_one"}})
	if got := byTransform(only); len(got) != 2 || got["swap_comparison"] == 0 || got["off_by_one"] == 0 {
		t.Fatalf("Transforms: got %v", got)
	}
	inc := candidates(t, "go", src, ModeBugs, CandidateOptions{Include: []string{"**/textutil*.go"}})
	if len(inc) == 0 {
		t.Fatal("Include **/textutil*.go matched nothing")
	}
	for _, c := range inc {
		if c.File != "textutil/textutil.go" {
			t.Fatalf("Include let %s through", c.File)
		}
	}
	if _, err := treeSitterCandidates(context.Background(), "go", src, ModeBugs, CandidateOptions{Transforms: []string{"swap_comparison", "nonsense"}}); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Fatalf("unknown transform: err = %v", err)
	}
	if _, err := treeSitterCandidates(context.Background(), "go", src, ModeBugs, CandidateOptions{Max: -1}); err == nil {
		t.Fatal("Max -1 accepted")
	}
	if _, err := treeSitterCandidates(context.Background(), "cobol", src, ModeBugs, CandidateOptions{}); err == nil {
		t.Fatal("unknown language accepted")
	}
}

func TestTreeSitterFilesConsidered(t *testing.T) {
	body := func(name string) string {
		return "package p\n\nfunc " + name + "(a int) int {\n\tif a > 1 {\n\t\treturn a - 1\n\t}\n\treturn a\n}\n"
	}
	goSrc := memSource(map[string]string{
		"p/p.go":             body("Keep"),
		"p/p_test.go":        body("InTest"),
		"vendor/x/x.go":      body("Vendored"),
		"p/testdata/t.go":    body("Fixture"),
		"_old/o.go":          body("Underscore"),
		"p/broken.go":        "package p\n\nfunc Broken( {\n",
		"p/gen.go":           "// Code generated by x. DO NOT EDIT.\n\n" + body("Generated"),
		".hidden/h.go":       body("Hidden"),
		"p/not_go.txt":       body("Text"),
		"cmd/tool/main.go":   body("Tool"),
		"p/deep/more/new.go": body("Deep"),
	})
	got := countBy(candidates(t, "go", goSrc, ModeBugs, CandidateOptions{}), func(c Candidate) string { return c.Function })
	want := []string{"Deep", "Keep", "Tool"}
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("go: functions changed %v, want %v", names, want)
	}

	jsBody := func(name string) string {
		return "function " + name + "(a) {\n  if (a > 1) {\n    return a - 1;\n  }\n  return a;\n}\n"
	}
	jsSrc := memSource(map[string]string{
		"src/a.js":                   jsBody("a"),
		"src/b.mjs":                  jsBody("b"),
		"lib/c.cjs":                  jsBody("c"),
		"src/a.test.js":              jsBody("t1"),
		"src/a.spec.mjs":             jsBody("t2"),
		"test/x.js":                  jsBody("t3"),
		"src/__tests__/y.js":         jsBody("t4"),
		"node_modules/dep/index.js":  jsBody("dep"),
		"dist/bundle.js":             jsBody("dist"),
		"src/broken.js":              "function broken( {\n",
		"src/types.ts":               jsBody("ts"),
		"packages/p/lib/index.js":    jsBody("nested"),
		"packages/p/tests/helper.js": jsBody("t5"),
	})
	got = countBy(candidates(t, "javascript", jsSrc, ModeBugs, CandidateOptions{}), func(c Candidate) string { return c.Function })
	names = nil
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := []string{"a", "b", "c", "nested"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("javascript: functions changed %v, want %v", names, want)
	}
	inc := countBy(candidates(t, "javascript", jsSrc, ModeBugs, CandidateOptions{Include: []string{"src/*.js", "packages/**"}}), func(c Candidate) string { return c.File })
	if len(inc) != 2 || inc["src/a.js"] == 0 || inc["packages/p/lib/index.js"] == 0 {
		t.Fatalf("javascript Include: files %v", inc)
	}

	rsBody := func(name string) string {
		return "pub fn " + name + "(a: i64) -> i64 {\n    if a > 1 {\n        return a - 1;\n    }\n    a\n}\n"
	}
	rsSrc := memSource(map[string]string{
		"src/lib.rs":            rsBody("lib") + "\n#[cfg(test)]\nmod tests {\n" + rsBody("in_tests") + "}\n\n#[test]\nfn t() {\n    assert!(1 > 0);\n}\n",
		"src/util/mod.rs":       "mod inner {\n" + rsBody("inner") + "}\n",
		"tests/it.rs":           rsBody("integration"),
		"benches/b.rs":          rsBody("bench"),
		"examples/e.rs":         rsBody("example"),
		"build.rs":              rsBody("build"),
		"crates/c/src/lib.rs":   rsBody("crate_c"),
		"target/debug/build.rs": rsBody("target"),
	})
	got = countBy(candidates(t, "rust", rsSrc, ModeBugs, CandidateOptions{}), func(c Candidate) string { return c.Function })
	names = nil
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := []string{"crate_c", "inner.inner", "lib"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("rust: functions changed %v, want %v", names, want)
	}
}

func TestEditOfIsWholeLines(t *testing.T) {
	old := []byte("a\nbcd\ne\n")
	for _, tc := range []struct {
		new  string
		want Edit
	}{
		{"a\nbxd\ne\n", Edit{2, 6, "bxd\n"}},
		{"a\ne\n", Edit{2, 6, ""}},
		{"a\nbcd\ne\nf\n", Edit{8, 8, "f\n"}},
		{"a\nbcd\ne", Edit{6, 8, "e"}},
	} {
		if got := editOf(old, []byte(tc.new)); got != tc.want {
			t.Errorf("editOf(%q) = %+v, want %+v", tc.new, got, tc.want)
		}
	}
}

func TestGlobRegexp(t *testing.T) {
	for _, tc := range []struct {
		glob, path string
		want       bool
	}{
		{"**/*.go", "a.go", true},
		{"**/*.go", "a/b/c.go", true},
		{"src/*.js", "src/a.js", true},
		{"src/*.js", "src/x/a.js", false},
		{"src/**", "src/x/a.js", true},
		{"a?.rs", "ab.rs", true},
		{"a?.rs", "a/.rs", false},
	} {
		if got := globRegexp(tc.glob).MatchString(tc.path); got != tc.want {
			t.Errorf("glob %q on %q = %v", tc.glob, tc.path, got)
		}
	}
}
