package lang_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/lang"
)

func profile(t *testing.T, name string) lang.Profile {
	t.Helper()
	p, err := lang.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		files []string
		want  string
	}{
		{[]string{"go.mod", "main.go"}, "go"},
		{[]string{"index.js", "package.json"}, "javascript"},
		{[]string{"Cargo.toml", "src/lib.rs"}, "rust"},
		{[]string{"Cargo.toml", "package.json", "src/lib.rs"}, "rust"},
		{[]string{"go.mod", "package.json"}, "go"},
		{[]string{"sub/go.mod", "README.md"}, ""},
	} {
		got := ""
		for _, n := range []string{"go", "javascript", "rust"} {
			if profile(t, n).Detect(c.files) {
				if got != "" {
					t.Errorf("%q: both %s and %s detect it", c.files, got, n)
				}
				got = n
			}
		}
		if got != c.want {
			t.Errorf("%q detected as %q, want %q", c.files, got, c.want)
		}
	}
}

func TestIsTestFile(t *testing.T) {
	for _, c := range []struct {
		language string
		yes, no  []string
	}{
		{"go", []string{"a_test.go", "pkg/b_test.go", "testdata/x.txt", "pkg/testdata/in.json"},
			[]string{"a.go", "pkg/test.go", "pkg/testing.go", "go.mod"}},
		{"javascript", []string{"test/a.js", "tests/helpers.js", "src/__tests__/x.js", "a.test.js", "lib/b.spec.mjs",
			"test.js", "test-parse.cjs", "x-test.js", "x_test.mjs", "test/fixtures/data.json"},
			[]string{"src/a.js", "testing.js", "contest.js", "src/latest.js", "test-.js", ".test.js", "package.json"}},
		{"rust", []string{"tests/a.rs", "tests/common/mod.rs", "benches/b.rs", "crates/x/tests/y.rs"},
			[]string{"src/lib.rs", "src/tests.rs", "Cargo.toml", "examples/e.rs"}},
	} {
		p := profile(t, c.language)
		for _, f := range c.yes {
			if !p.IsTestFile(f) {
				t.Errorf("%s: IsTestFile(%q) = false", c.language, f)
			}
		}
		for _, f := range c.no {
			if p.IsTestFile(f) {
				t.Errorf("%s: IsTestFile(%q) = true", c.language, f)
			}
		}
	}
}

func TestTestFiles(t *testing.T) {
	for _, c := range []struct {
		language string
		ids      []string
		files    []string
		want     []string
	}{
		{"go", []string{"calc::TestAdd", "calc::TestSub/x", ".::TestRoot", "gone::TestX"},
			[]string{"calc/calc.go", "calc/calc_test.go", "calc/more_test.go", "calc/deep/d_test.go", "root_test.go", "root.go"},
			[]string{"calc/calc_test.go", "calc/more_test.go", "root_test.go"}},
		{"javascript", []string{"test/a.test.js::x > y", "test/a.test.js::z", "lib/b.spec.mjs::w", "gone.test.js::v"},
			[]string{"lib/b.spec.mjs", "src/a.js", "test/a.test.js"},
			[]string{"lib/b.spec.mjs", "test/a.test.js"}},
		{"rust", []string{"api::adds", "calc::tests::unit", "suite::nested::t", "calc::src/lib.rs - add"},
			[]string{"src/lib.rs", "tests/api.rs", "tests/suite/main.rs", "tests/suite/helpers.rs", "tests/other.rs", "tests/data.txt", "crates/m/tests/api.rs"},
			[]string{"crates/m/tests/api.rs", "tests/api.rs", "tests/suite/helpers.rs", "tests/suite/main.rs"}},
	} {
		if got := profile(t, c.language).TestFiles(c.ids, c.files); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: TestFiles = %q, want %q", c.language, got, c.want)
		}
	}
}

func TestTestCommand(t *testing.T) {
	for _, c := range []struct {
		language string
		paths    []string
		want     string // in the sh -c script
	}{
		{"go", nil, "go test -json ./..."},
		{"go", []string{"calc/calc_test.go", "calc/more_test.go", "root_test.go"}, "go test -json . ./calc"},
		{"go", []string{"internal"}, "go test -json ./internal/..."},
		{"rust", nil, "cargo test --offline --no-fail-fast -- -Z unstable-options --format json 2>&1"},
		{"rust", []string{"tests/api.rs", "tests/suite/main.rs", "tests/api.rs"}, "cargo test --offline --no-fail-fast --test api --test suite --"},
		{"rust", []string{"tests"}, "--test '*' --"},
		{"rust", []string{"src/lib.rs"}, "--lib --"},
	} {
		argv := profile(t, c.language).TestCommand(c.paths)
		if len(argv) < 3 || argv[0] != "sh" || argv[1] != "-c" || !strings.Contains(argv[2], c.want) {
			t.Errorf("%s: TestCommand(%q) = %q, want a script with %q", c.language, c.paths, argv, c.want)
		}
	}
	js := profile(t, "javascript").TestCommand([]string{"test/a b.test.js"})
	if js[0] != "sh" || js[len(js)-1] != "test/a b.test.js" || !strings.Contains(js[2], "node --test --test-reporter=tap") {
		t.Errorf("javascript: TestCommand = %q", js)
	}
}

// TestParseGoPlainAndNewer reads go test output without the JSON stream
// (plain -v) and the JSON of newer Go releases, which marks build
// failures with FailedBuild instead of a plain "[build failed]" line.
func TestParseGoPlainAndNewer(t *testing.T) {
	plain := "dsbuild-go-module: example.com/m\n" +
		"=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n=== RUN   TestB/sub_x\n    --- FAIL: TestB/sub_x (0.01s)\n--- FAIL: TestB (0.01s)\nFAIL\nFAIL\texample.com/m/pkg\t0.012s\n" +
		"=== RUN   TestC\n--- SKIP: TestC (0.00s)\nok  \texample.com/m\t(cached)\n" +
		"FAIL\texample.com/m/bad [build failed]\n"
	got := parseWith(t, "go", plain)
	want := lang.Report{Status: map[string]string{
		"pkg::TestA": passed, "pkg::TestB": failed, "pkg::TestB/sub_x": failed, ".::TestC": skipped,
	}, CollectionErrors: []string{"bad"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plain: got %+v, want %+v", got, want)
	}

	newer := `dsbuild-go-module: example.com/m
{"ImportPath":"example.com/m/bad","Action":"build-output","Output":"bad/x.go:3:1: syntax error\n"}
{"Action":"start","Package":"example.com/m/bad"}
{"Action":"output","Package":"example.com/m/bad","Output":"FAIL\texample.com/m/bad [build failed]\n"}
{"Action":"fail","Package":"example.com/m/bad","Elapsed":0,"FailedBuild":"example.com/m/bad"}
{"Action":"run","Package":"example.com/m/hang","Test":"TestDone"}
{"Action":"pass","Package":"example.com/m/hang","Test":"TestDone"}
{"Action":"run","Package":"example.com/m/hang","Test":"TestHangs"}
{"Action":"output","Package":"example.com/m/hang","Test":"TestHangs","Output":"panic: test timed out after 1s\n"}
{"Action":"fail","Package":"example.com/m/hang","Elapsed":1}
{"Action":"output","Package":"example.com/m/initpanic","Output":"panic: boom in init\n"}
{"Action":"fail","Package":"example.com/m/initpanic","Elapsed":0}
`
	got = parseWith(t, "go", newer)
	want = lang.Report{Status: map[string]string{"hang::TestDone": passed, "hang::TestHangs": failed},
		CollectionErrors: []string{"bad", "initpanic"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("newer: got %+v, want %+v", got, want)
	}
}

// TestParseTAPWrappedFiles reads TAP in which each file's tests are nested
// in a top-level subtest named after the file (node 18 before 18.19 and
// some later releases) and no file markers.
func TestParseTAPWrappedFiles(t *testing.T) {
	tap := `TAP version 13
# Subtest: /testbed/test/a.test.js
    # Subtest: adds
    ok 1 - adds
      ---
      duration_ms: 0.5
      ...
    # Subtest: group
        # Subtest: inner \# one
        not ok 1 - inner \# one
          ---
          failureType: 'testCodeFailure'
          error: |-
            not ok 7 - this line is part of the error text
          ...
        # Subtest: cancelled
        not ok 2 - cancelled
          ---
          failureType: 'cancelledByParent'
          ...
        1..2
    not ok 2 - group
      ---
      failureType: 'subtestsFailed'
      ...
    1..2
not ok 1 - /testbed/test/a.test.js
  ---
  failureType: 'subtestsFailed'
  ...
# Subtest: /testbed/test/b.test.js
not ok 2 - /testbed/test/b.test.js
  ---
  failureType: 'testCodeFailure'
  exitCode: 1
  ...
1..2
`
	got := parseWith(t, "javascript", tap)
	want := lang.Report{Status: map[string]string{
		"test/a.test.js::adds":                passed,
		"test/a.test.js::group":               failed,
		"test/a.test.js::group > inner # one": failed,
	}, CollectionErrors: []string{"test/b.test.js"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestParseLibtestPlain reads cargo test output without libtest's JSON
// (a project whose test command was not the profile's).
func TestParseLibtestPlain(t *testing.T) {
	out := `     Running unittests src/lib.rs (target/debug/deps/calc-0123456789abcdef)

running 2 tests
test tests::adds ... ok
test tests::subs ... FAILED

     Running tests/api-v2.rs (target/debug/deps/api_v2-fedcba9876543210)
test slow ... ignored
   Doc-tests calc
test src/lib.rs - add (line 3) ... ok
`
	got := parseWith(t, "rust", out)
	want := lang.Report{Status: map[string]string{
		"calc::tests::adds": passed, "calc::tests::subs": failed, "api-v2::slow": skipped, "calc::src/lib.rs - add": passed,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func parseWith(t *testing.T, language, output string) lang.Report {
	t.Helper()
	return profile(t, language).ParseReport(output)
}
