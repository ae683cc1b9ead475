package stages

// The language of a SWE-Playground project: where its code and tests go,
// what its stubs are, what the prompts tell the agents about it, and how a
// scaffold is checked. Everything else (test commands, their environment
// and report, which files are tests) is the project's lang.Profile.

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// pgLanguages are the languages SWE-Playground builds projects in.
var pgLanguages = []string{lang.Python, "go", "javascript", "rust"}

// pgLang is a project's language.
type pgLang struct {
	prof lang.Profile
	// stub is the language's "not implemented" statement.
	stub string
}

// pgLanguage returns the language called name ("" is Python); a language
// SWE-Playground does not build projects in is an error naming those it
// does.
func pgLanguage(name string) (pgLang, error) {
	name = strings.ToLower(name)
	if name == "" {
		name = lang.Python
	}
	known := false
	for _, n := range pgLanguages {
		known = known || n == name
	}
	if !known {
		return pgLang{}, fmt.Errorf("SWE-Playground builds projects in %s, not %q", strings.Join(pgLanguages, ", "), name)
	}
	prof, err := lang.Get(name)
	if err != nil {
		return pgLang{}, err
	}
	stub, err := lang.StubStatement(name)
	if err != nil {
		return pgLang{}, err
	}
	return pgLang{prof: prof, stub: stub}, nil
}

// pgProjectLanguage is pgLanguage of a plan's project, as bad input of the
// stage when unknown.
func pgProjectLanguage(c *build.Call, plan PlaygroundPlan) (pgLang, error) {
	l, err := pgLanguage(plan.Project.Language)
	if err != nil {
		return pgLang{}, build.BadInput("stage %s: project %s: %v", c.Stage, plan.Project.ID, err)
	}
	return l, nil
}

func (l pgLang) name() string { return l.prof.Name() }
func (l pgLang) python() bool { return l.name() == lang.Python }
func (l pgLang) testCmd() []string {
	if l.python() {
		return DefaultTestCmd
	}
	return l.prof.TestCommand(nil)
}

// shownTestCmd is the test command the prompts show, narrowed to a test
// file when one is given: for Python the command itself (DefaultTestCmd
// and the file), for other languages the command a developer types (the
// profile's command is a script that prints a report for the parser).
func (l pgLang) shownTestCmd(file ...string) string {
	f := strings.Join(file, " ")
	switch l.name() {
	case "go":
		if f != "" {
			return "go test ./" + path.Dir(f) + "/"
		}
		return "go test ./..."
	case "javascript":
		if f != "" {
			return "node --test " + f
		}
		return "node --test test/"
	case "rust":
		if f != "" {
			return "cargo test --offline --test " + strings.TrimSuffix(path.Base(f), ".rs")
		}
		return "cargo test --offline"
	}
	return strings.TrimSpace(strings.Join(DefaultTestCmd, " ") + " " + f)
}

// changedTests lists the test files (isTest) that differ between before
// and after: added, changed or deleted.
func (l pgLang) changedTests(store *cache.Store, before, after cache.Digest) ([]string, error) {
	a, err := store.Files(before)
	if err != nil {
		return nil, err
	}
	b, err := store.Files(after)
	if err != nil {
		return nil, err
	}
	var out []string
	for p, e := range b {
		if old, ok := a[p]; (!ok || old != e) && e.Type != cache.TypeDir && l.isTest(p) {
			out = append(out, p)
		}
	}
	for p, e := range a {
		if _, ok := b[p]; !ok && e.Type != cache.TypeDir && l.isTest(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// title is the language's name in prose.
func (l pgLang) title() string {
	return map[string]string{lang.Python: "Python", "go": "Go", "javascript": "JavaScript", "rust": "Rust"}[l.name()]
}

// slug is a task id made safe for file names ("1.2" -> "1_2").
func pgSlug(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// testFile is where the tests of task id go: tests/test_task_<id>.py,
// <pkg>/task_<id>_test.go, test/task_<id>.test.js or tests/task_<id>.rs.
func (l pgLang) testFile(pkg, id string) string {
	s := pgSlug(id)
	switch l.name() {
	case "go":
		return pkg + "/task_" + s + "_test.go"
	case "javascript":
		return "test/task_" + s + ".test.js"
	case "rust":
		return "tests/task_" + s + ".rs"
	}
	return "tests/test_task_" + s + ".py"
}

// testDir is the directory of the project's tests ("" for Go, whose tests
// sit next to the code).
func (l pgLang) testDir() string {
	switch l.name() {
	case "go":
		return ""
	case "javascript":
		return "test/"
	}
	return "tests/"
}

// isTest reports whether p is the project's test code: under tests/ for
// Python (as the develop kind has always judged edits), the profile's test
// files otherwise.
func (l pgLang) isTest(p string) bool {
	if l.python() {
		return strings.HasPrefix(p, "tests/")
	}
	return l.prof.IsTestFile(p)
}

// protected are the paths grading restores in a tree of the project: its
// test directory, or (Go) each of its test files.
func (l pgLang) protected(store *cache.Store, tree cache.Digest) ([]string, error) {
	if d := l.testDir(); d != "" {
		return []string{d}, nil
	}
	paths, _, err := pgFiles(store, tree)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range paths {
		if l.prof.IsTestFile(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// layout are the project's directories and root files; the develop kind
// drops what agents create elsewhere.
func (l pgLang) layout(pkg string) []string {
	switch l.name() {
	case "go":
		return []string{"go.mod", pkg + "/", "cmd/"}
	case "javascript":
		return []string{"package.json", "src/", "bin/", "test/"}
	case "rust":
		return []string{"Cargo.toml", "Cargo.lock", "src/", "tests/"}
	}
	return []string{pkg + "/", "tests/"}
}

// isCode reports whether p is a file of the language (code or test).
func (l pgLang) isCode(p string) bool {
	switch l.name() {
	case "go":
		return strings.HasSuffix(p, ".go")
	case "javascript":
		return strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".cjs") || strings.HasSuffix(p, ".mjs")
	case "rust":
		return strings.HasSuffix(p, ".rs")
	}
	return strings.HasSuffix(p, ".py")
}

// isSource reports whether p is source the bug proposer may edit and the
// dumps show as code; tests are shown apart.
func (l pgLang) isSource(p string) bool {
	if l.python() {
		return strings.HasSuffix(p, ".py") && !isTestPath(p)
	}
	return l.isCode(p) && !l.prof.IsTestFile(p)
}

// isTestCode reports whether p is test code the dumps show as tests.
func (l pgLang) isTestCode(p string) bool {
	if l.python() {
		return strings.HasSuffix(p, ".py") && isTestPath(p)
	}
	return l.isCode(p) && l.prof.IsTestFile(p)
}

// goTestFunc finds the top-level test functions of a Go test file.
var goTestFunc = regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]*)\(`)

// fileTests returns the ids of status that belong to the test file f
// (content is its text): pytest's and node's ids start with the file,
// libtest's with the integration-test target, and Go's name the package
// directory and the test functions the file declares (a test that panics
// stops the rest of its package, so Go's are taken from the file, not only
// from the report).
func (l pgLang) fileTests(f string, content []byte, status map[string]string) []string {
	var out []string
	switch l.name() {
	case "go":
		seen := map[string]bool{}
		for _, m := range goTestFunc.FindAllSubmatch(content, -1) {
			id := path.Dir(f) + "::" + string(m[1])
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
		for id := range status {
			for n := range seen {
				if strings.HasPrefix(id, n+"/") {
					out = append(out, id)
				}
			}
		}
	default:
		prefix := f + "::"
		if l.name() == "rust" {
			prefix = strings.TrimSuffix(path.Base(f), ".rs") + "::"
		}
		for id := range status {
			if strings.HasPrefix(id, prefix) {
				out = append(out, id)
			}
		}
	}
	sort.Strings(out)
	return out
}

// pgLanguageText are the prompts' language-specific phrases; Python's
// reproduce the prompts as they were before projects had other languages,
// byte for byte.
type pgLanguageText struct {
	// toolchain follows the language's name in the proposal rules.
	toolchain string
	// bannedExamples are libraries a proposal might ban.
	bannedExamples string
	// idRule says what a project id is.
	idRule string
	// layout says where code and tests go (decompose).
	layout func(pkg string) string
	// scaffold lists what the scaffold agent creates, one "- " line each.
	scaffold func(pkg, stub string) string
	// scaffoldDone ends the scaffold prompt.
	scaffoldDone string
	// testFramework names how tests are written.
	testFramework string
	// testsWhere names the tests an implementation must leave alone.
	testsWhere string
	// testID names a test's id.
	testID string
	// exampleFile is a source file in the bug proposal's example.
	exampleFile func(pkg string) string
}

var pgTexts = map[string]pgLanguageText{
	lang.Python: {
		toolchain:      "",
		bannedExamples: "numpy, scipy, sympy, networkx",
		idRule:         "a short lowercase Python package name",
		layout: func(pkg string) string {
			return fmt.Sprintf("The project is a Python package named %s; its code lives in the directory %s/ at the repository root and its tests in tests/.", pkg, pkg)
		},
		scaffold: func(pkg, stub string) string {
			return fmt.Sprintf("- the package directory %[1]s/ at the repository root with an __init__.py and one module per module of the plan;\n"+
				"- a command-line entry point %[1]s/__main__.py (so that `python3 -m %[1]s` runs) calling a main(argv) function;\n"+
				"- every function and method with its final signature and a docstring saying what it must do, and a body that is only `%[2]s`;\n"+
				"- an empty tests/ directory holding only tests/__init__.py.", pkg, stub)
		},
		scaffoldDone:  "Use only the standard library. Call finish when the package imports.",
		testFramework: "with pytest",
		testsWhere:    "anything under tests/",
		testID:        "node id",
		exampleFile:   func(string) string { return "pkg/module.py" },
	},
	"go": {
		toolchain:      " (Go 1.19 from Debian bookworm, one module, no third-party modules)",
		bannedExamples: "gonum, any module outside the standard library",
		idRule:         "a short lowercase identifier, also the project's Go module and package name",
		layout: func(pkg string) string {
			return fmt.Sprintf("The project is a Go module named %[1]s (go.mod at the repository root, go 1.19, no dependencies); its code is the package %[1]s in the directory %[1]s/, its command line cmd/%[1]s/main.go, and each task's tests a file %[1]s/task_<id>_test.go of package %[1]s, run with go test.", pkg)
		},
		scaffold: func(pkg, stub string) string {
			return fmt.Sprintf("- go.mod at the repository root declaring `module %[1]s` and `go 1.19`, with no requirements;\n"+
				"- the package %[1]s in the directory %[1]s/ with one file per module of the plan;\n"+
				"- a command-line entry point cmd/%[1]s/main.go (package main, so that `go run ./cmd/%[1]s` runs) calling the package;\n"+
				"- every exported type with its fields, and every function and method with its final signature, a doc comment saying what it must do, and a body that is only `%[2]s`;\n"+
				"- no _test.go file.", pkg, stub)
		},
		scaffoldDone:  "Use only the standard library (Go 1.19). Call finish when `go build ./...` succeeds.",
		testFramework: "with the standard testing package (package-internal tests, run by go test; no third-party assertion library)",
		testsWhere:    "any _test.go file",
		testID:        "id",
		exampleFile:   func(pkg string) string { return pkg + "/module.go" },
	},
	"javascript": {
		toolchain:      " (Node.js 18 from Debian bookworm, CommonJS modules, no npm packages)",
		bannedExamples: "lodash, mathjs, any npm package",
		idRule:         "a short lowercase identifier, also the name in package.json",
		layout: func(pkg string) string {
			return fmt.Sprintf("The project is a Node.js package named %[1]s (package.json at the repository root, CommonJS, no dependencies); its code lives in src/ with src/index.js exporting the API, its command line in bin/%[1]s.js, and each task's tests in test/task_<id>.test.js, written with node:test and node:assert.", pkg)
		},
		scaffold: func(pkg, stub string) string {
			return fmt.Sprintf("- package.json at the repository root naming %[1]s, with no dependencies and \"bin\" pointing at bin/%[1]s.js;\n"+
				"- the directory src/ with one CommonJS module per module of the plan (module.exports) and src/index.js re-exporting them;\n"+
				"- a command-line entry point bin/%[1]s.js (so that `node bin/%[1]s.js` runs) calling a main(argv) function;\n"+
				"- every function, class and method with its final signature, a JSDoc comment saying what it must do, and a body that is only `%[2]s`;\n"+
				"- no test files and no test/ directory.", pkg, stub)
		},
		scaffoldDone:  "Use only Node.js 18's built-in modules. Call finish when every module of src/ loads with require().",
		testFramework: "with node's built-in test runner (const test = require('node:test'); const assert = require('node:assert/strict'); run by node --test)",
		testsWhere:    "anything under test/",
		testID:        "id",
		exampleFile:   func(string) string { return "src/module.js" },
	},
	"rust": {
		toolchain:      " (Rust 1.63 and cargo from Debian bookworm, edition 2021, no crates from crates.io)",
		bannedExamples: "any crate from crates.io",
		idRule:         "a short lowercase identifier, also the project's crate name",
		layout: func(pkg string) string {
			return fmt.Sprintf("The project is a Rust crate named %[1]s (Cargo.toml at the repository root, edition 2021, no dependencies); its code is the library src/lib.rs with one module per file in src/, its command line src/main.rs, and each task's tests an integration test tests/task_<id>.rs using the library, run with cargo test.", pkg)
		},
		scaffold: func(pkg, stub string) string {
			return fmt.Sprintf("- Cargo.toml at the repository root for the crate %[1]s (edition 2021, no dependencies);\n"+
				"- the library src/lib.rs declaring one public module per module of the plan, each in its own file in src/;\n"+
				"- a command-line entry point src/main.rs (so that `cargo run` runs) calling the library;\n"+
				"- every public type with its fields, and every function and method with its final signature, a doc comment saying what it must do, and a body that is only `%[2]s`;\n"+
				"- no tests: no tests/ directory and no #[cfg(test)] module.", pkg, stub)
		},
		scaffoldDone:  "Use only the standard library (Rust 1.63). Call finish when `cargo build --offline` succeeds.",
		testFramework: "as #[test] functions of an integration test using the crate (run by cargo test; no dev-dependencies)",
		testsWhere:    "anything under tests/",
		testID:        "id",
		exampleFile:   func(string) string { return "src/module.rs" },
	},
}

// text returns the language's phrases.
func (l pgLang) text() pgLanguageText { return pgTexts[l.name()] }

// pgScaffoldBuild is, per language other than Python, the shell script that
// checks a scaffold builds or loads (exit 0), printing what went wrong:
// Go's packages compile, every JavaScript module of src/ loads with
// require() (the entry point is only parsed: running it would call
// stubs), Rust's library and binary compile.
var pgScaffoldBuild = map[string]string{
	"go": `go build ./... 2>&1`,
	"javascript": `st=0
for f in $(find src -name '*.js' | LC_ALL=C sort); do
  node -e 'require(require("path").resolve(process.argv[1]))' "$f" 2>&1 || { echo "loading $f failed"; st=1; }
done
for f in $(find bin -name '*.js' 2>/dev/null | LC_ALL=C sort); do
  node --check "$f" 2>&1 || st=1
done
exit $st`,
	"rust": `cargo build --offline 2>&1`,
}

// pgScaffoldRequired are, per language other than Python, the files a
// scaffold must have.
func pgScaffoldRequired(l pgLang, pkg string) []string {
	switch l.name() {
	case "go":
		return []string{"go.mod", "cmd/" + pkg + "/main.go"}
	case "javascript":
		return []string{"package.json", "src/index.js", "bin/" + pkg + ".js"}
	case "rust":
		return []string{"Cargo.toml", "src/lib.rs", "src/main.rs"}
	}
	return nil
}

// checkScaffoldLang lists what is wrong with a scaffold of a language other
// than Python: missing files, test files, a build or load failure (in the
// sandbox, with the language's test environment), function bodies other
// than the stub (the profile's stub candidates: every function the
// profile could stub has a real body), or no stub at all.
func checkScaffoldLang(ctx context.Context, c *build.Call, l pgLang, base schema.Image, tree cache.Digest, pkg string) ([]string, error) {
	store := c.Store()
	paths, _, err := pgFiles(store, tree)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	var problems []string
	stubs := 0
	for _, p := range paths {
		have[p] = true
		if l.prof.IsTestFile(p) {
			problems = append(problems, p+": the scaffold must contain no tests")
			continue
		}
		if l.isCode(p) {
			data, err := store.ReadFile(tree, p)
			if err != nil {
				return nil, err
			}
			stubs += strings.Count(string(data), l.stub)
		}
	}
	for _, p := range pgScaffoldRequired(l, pkg) {
		if !have[p] {
			problems = append(problems, p+" is missing")
		}
	}
	if l.name() == "go" {
		found := false
		for _, p := range paths {
			found = found || (path.Dir(p) == pkg && strings.HasSuffix(p, ".go"))
		}
		if !found {
			problems = append(problems, fmt.Sprintf("the package directory %s/ has no .go file", pkg))
		}
	}
	r, err := Sandbox(c)
	if err != nil {
		return nil, err
	}
	res, err := r.Run(ctx, sandbox.Spec{Image: base, Workspace: tree, Argv: []string{"sh", "-c", pgScaffoldBuild[l.name()]},
		Env: agent.TestEnv(l.prof), Dir: agent.Workdir, Limits: SandboxLimits(c)})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 || res.LimitHit != "" {
		problems = append(problems, fmt.Sprintf("the project does not build (exit %d%s): %s", res.ExitCode,
			map[bool]string{true: ", limit " + res.LimitHit}[res.LimitHit != ""], trimOutput(string(res.Stdout)+string(res.Stderr), 800)))
	}
	src := lang.Source{Files: paths, ReadFile: func(p string) ([]byte, error) { return store.ReadFile(tree, p) }}
	cands, err := l.prof.Candidates(ctx, src, lang.ModeStub, lang.CandidateOptions{})
	if err != nil {
		return nil, err
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].File != cands[j].File {
			return cands[i].File < cands[j].File
		}
		return cands[i].Line < cands[j].Line
	})
	for _, cd := range cands {
		problems = append(problems, fmt.Sprintf("%s:%d: %s has a body other than %s", cd.File, cd.Line, cd.Function, l.stub))
	}
	if stubs == 0 && len(problems) == 0 {
		problems = append(problems, "the project defines no stubbed functions")
	}
	return problems, nil
}
