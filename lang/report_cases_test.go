package lang_test

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/dsbuild/dsbuild/lang"
)

// runnerCase is one fixture project under testdata/runner run by its
// profile's TestCommand, with the report its output must give. The same
// expectations are checked against the real run in the sandbox
// (TestInSandbox/runner) and against the copy of that run's output
// kept in testdata/captured (TestParseCapturedOutput).
type runnerCase struct {
	name     string            // captured output: testdata/captured/<name>.out
	language string            // profile
	project  string            // directory under testdata/runner
	extra    map[string]string // files added to the project
	status   map[string]string
	errors   []string
}

const (
	passed  = lang.StatusPassed
	failed  = lang.StatusFailed
	skipped = lang.StatusSkipped
)

var runnerCases = []runnerCase{
	{
		name: "go", language: "go", project: "go",
		status: map[string]string{
			"calc::TestAdd":                  passed,
			"calc::TestSubFails":             failed,
			"calc::TestSkipped":              skipped,
			"calc::TestÜbersicht":            passed,
			"calc::TestTable":                failed,
			"calc::TestTable/two_plus_two":   passed,
			"calc::TestTable/négatif_ü":      passed,
			"calc::TestTable/minus":          failed,
			"calc::TestTable/later":          skipped,
			"panicky::TestBefore":            passed,
			"panicky::TestPanics":            failed,
			"panicky::TestNeverRuns":         passed,
			".::TestRoot":                    passed,
			"calc/deep::TestDeep/with_space": passed,
			"calc/deep::TestDeep":            passed,
		},
		errors: []string{"broken"},
	},
	{
		name: "javascript", language: "javascript", project: "javascript",
		status: map[string]string{
			"test/calc.test.js::adds two numbers":                        passed,
			"test/calc.test.js::subtracts":                               failed,
			"test/calc.test.js::throws an error":                         failed,
			"test/calc.test.js::skipped for now":                         skipped,
			"test/calc.test.js::todo later":                              passed,
			"test/calc.test.js::grüße ünïcode 🎉":                         passed,
			`test/calc.test.js::handles # hash and \ backslash`:          passed,
			"test/calc.test.js::table":                                   failed,
			"test/calc.test.js::table > two plus two":                    passed,
			"test/calc.test.js::table > minus":                           failed,
			"test/calc.test.js::table > nested":                          passed,
			"test/calc.test.js::table > nested > deep ok":                passed,
			"test/calc.test.js::table > nested > deep skip":              skipped,
			"test/calc.test.js::suite of things":                         failed,
			"test/calc.test.js::suite of things > works inside describe": passed,
			"test/calc.test.js::suite of things > fails inside describe": failed,
			"test/calc.test.js::suite of things > skipped it":            skipped,
			"test/helper-ok.test.js::passes in a second file":            passed,
			"lib/sum.spec.mjs::sums in a module":                         passed,
		},
		errors: []string{"test/broken.test.js"},
	},
	{
		name: "rust", language: "rust", project: "rust",
		status: map[string]string{
			"edge::tests::adds":                      passed,
			"edge::tests::subtracts":                 failed,
			"edge::tests::ignored_for_now":           skipped,
			"edge::tests::index_out_of_range_panics": passed,
			"edge::tests::größe_ünïcode":             passed,
			"aborts::aborts_the_process":             failed,
			"integration::adds_from_outside":         passed,
			"integration::panics_on_index":           failed,
			"integration::subtracts_from_outside":    failed,
			"integration::slow_one":                  skipped,
			"integration::nested::in_a_module":       passed,
			"edge::src/lib.rs - add":                 passed,
			"edge::src/lib.rs - sub":                 failed,
			"edge::src/lib.rs - index (1)":           passed,
			"edge::src/lib.rs - index (2)":           failed,
		},
	},
	{
		name: "rust-compile-error", language: "rust", project: "rust",
		extra: map[string]string{"tests/broken.rs": `#[test]
fn does_not_compile() {
    let n: i64 = "two";
    assert_eq!(edge::add(n, 1), 3);
}
`},
		status: map[string]string{},
		errors: []string{"tests/broken.rs"},
	},
}

// projectFiles reads a runner case's project, with its extra files.
func projectFiles(t *testing.T, c runnerCase) map[string][]byte {
	t.Helper()
	root := filepath.Join("testdata", "runner", c.project)
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, s := range c.extra {
		files[p] = []byte(s)
	}
	return files
}

// checkReport compares a parsed report with the case's expectations.
func checkReport(t *testing.T, c runnerCase, got lang.Report, output string) {
	t.Helper()
	if !reflect.DeepEqual(got.Status, c.status) {
		var ids []string
		for id := range got.Status {
			ids = append(ids, id)
		}
		for id := range c.status {
			if _, ok := got.Status[id]; !ok {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			if got.Status[id] != c.status[id] {
				t.Errorf("%s: %q: got %q, want %q", c.name, id, got.Status[id], c.status[id])
			}
		}
		t.Logf("output:\n%s", output)
	}
	if !reflect.DeepEqual(got.CollectionErrors, c.errors) {
		t.Errorf("%s: collection errors %q, want %q", c.name, got.CollectionErrors, c.errors)
	}
}

// TestParseCapturedOutput parses the runner output captured from
// TestInSandbox/runner (run it with DSBUILD_CAPTURE=1 to write
// testdata/captured/<case>.out again after changing a fixture).
func TestParseCapturedOutput(t *testing.T) {
	for _, c := range runnerCases {
		t.Run(c.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "captured", c.name+".out"))
			if err != nil {
				t.Fatal(err)
			}
			p, err := lang.Get(c.language)
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, c, p.ParseReport(string(b)), string(b))
		})
	}
}
