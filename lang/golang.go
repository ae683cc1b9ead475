package lang

import (
	"context"
	"path"
	"strings"
)

func init() { Register(goProfile{}) }

// goProfile is Go: Debian's golang-go (Go 1.19 in bookworm, so projects
// must build with it), modules without network access, `go test -json`.
type goProfile struct{}

func (goProfile) Name() string       { return "go" }
func (goProfile) Packages() []string { return []string{"golang-go"} }

// Detect accepts a repository with a go.mod at its root.
func (goProfile) Detect(files []string) bool { return hasFile(files, "go.mod") }

// TestCommand prints the module path after goModuleMarker, then runs
// `go test -json` over ./... or, given paths, over the packages of those
// test files and the package trees of those directories, slimmed by
// goSlimJSON; then goRerunScript runs again the tests a panic kept from
// running. The exit status is the first go test's.
func (goProfile) TestCommand(paths []string) []string {
	var pkgs []string
	for _, p := range paths {
		p = strings.TrimSuffix(path.Clean(p), "/")
		switch {
		case strings.HasSuffix(p, ".go") && path.Dir(p) == ".":
			pkgs = append(pkgs, ".")
		case strings.HasSuffix(p, ".go"):
			pkgs = append(pkgs, "./"+path.Dir(p))
		case p == ".":
			pkgs = append(pkgs, "./...")
		default:
			pkgs = append(pkgs, "./"+p+"/...")
		}
	}
	pkgs = sortedUnique(pkgs)
	if len(pkgs) == 0 {
		pkgs = []string{"./..."}
	}
	script := "go list -m -f " + quoteSh(goModuleMarker+"{{.Path}}") +
		"; { go test -json " + joinSh(pkgs) + "; echo $? >/tmp/.dsbuild-go-test-status; } | sed " + goSlimJSON +
		" | tee /tmp/.dsbuild-go-test.json; " + goRerunScript +
		`; exit "$(cat /tmp/.dsbuild-go-test-status)"`
	return []string{"sh", "-c", script}
}

// goRerunScript runs again, package by package, the top-level tests that
// never started because another test of their package panicked (a panic
// ends the test binary, so one crashing test would hide every later one,
// and a bug or a stub that panics would look like a package that cannot
// be loaded). For each package whose output has a "panic: " line, its
// test binary is built once
// (`go test -c`) and run under `go tool test2json` in the package's
// directory, as go test runs it, with -test.run '^(A|B)$' naming the tests
// of -test.list that have no "run" event yet, until all have started or a
// rerun starts none. A package that does not build (or panics while
// initialising) lists nothing and is not run again.
const goRerunScript = `for p in $(sed -n 's/^{"Action":"output","Package":"\([^"]*\)",\("Test":"[^"]*",\)\{0,1\}"Output":"panic: .*/\1/p' /tmp/.dsbuild-go-test.json | LC_ALL=C sort -u); do
  b=/tmp/.dsbuild-go-test.bin
  rm -f "$b"
  d=$(go list -f '{{.Dir}}' "$p" 2>/dev/null) && go test -c -o "$b" "$p" >/dev/null 2>&1 && [ -x "$b" ] || continue
  (cd "$d" && "$b" -test.list .) 2>/dev/null | grep -E '^(Test|Example|Fuzz)[^ ]*$' | LC_ALL=C sort -u >/tmp/.dsbuild-go-all
  prev=
  while :; do
    grep -F "{\"Action\":\"run\",\"Package\":\"$p\",\"Test\":\"" /tmp/.dsbuild-go-test.json | sed -n 's/.*"Test":"\([^"/]*\)".*/\1/p' | LC_ALL=C sort -u >/tmp/.dsbuild-go-ran
    left=$(LC_ALL=C comm -23 /tmp/.dsbuild-go-all /tmp/.dsbuild-go-ran | paste -sd'|' -)
    [ -n "$left" ] && [ "$left" != "$prev" ] || break
    prev=$left
    (cd "$d" && go tool test2json -t -p "$p" "$b" -test.v -test.run "^($left)\$" 2>&1) | sed ` + goSlimJSON + ` | tee -a /tmp/.dsbuild-go-test.json
  done
done`

// goSlimJSON are sed arguments that drop from the `go test -json` stream
// what ParseReport does not read and that makes most of its bytes (the
// sandbox keeps 1 MiB of a run's stdout: about 1,400 tests of full
// -json, over 5,000 slimmed): the "=== RUN", "=== PAUSE", "=== CONT" and
// "--- PASS" output lines, and the run-specific Time and Elapsed fields.
// A failing test's own output stays.
const goSlimJSON = `-e '/"Action":"output",.*"Output":"\(=== \(RUN\|PAUSE\|CONT\|NAME\)\| *--- PASS\)/d' -e 's/"Time":"[^"]*",//' -e 's/,"Elapsed":[0-9.e+-]*//'`

// TestEnv keeps Go's caches in /tmp, switches the module proxy and the
// checksum database off (dependencies must be vendored or in the module
// cache of the image), keeps the toolchain the image has, and builds
// without cgo or VCS stamping. -mod is left to go's default: vendor when
// vendor/modules.txt exists, readonly otherwise, so a test run never
// rewrites go.mod or go.sum.
func (goProfile) TestEnv() []string {
	return []string{
		"HOME=/tmp",
		"GOCACHE=/tmp/go-cache",
		"GOPATH=/tmp/go",
		"GOPROXY=off",
		"GOSUMDB=off",
		"GOTOOLCHAIN=local",
		"GOTELEMETRY=off",
		"GOFLAGS=-buildvcs=false",
		"CGO_ENABLED=0",
	}
}

// ParseReport reads `go test -json` output; see parseGoTest for the ids.
func (goProfile) ParseReport(output string) Report { return parseGoTest(output) }

// IsTestFile accepts *_test.go files and everything below a testdata
// directory (which go's tooling ignores and tests read).
func (goProfile) IsTestFile(p string) bool {
	if strings.HasSuffix(p, "_test.go") {
		return true
	}
	return p == "testdata" || strings.HasPrefix(p, "testdata/") || strings.Contains(p, "/testdata/")
}

// TestFiles returns the *_test.go files of the packages (directories) the
// ids name.
func (goProfile) TestFiles(ids []string, files []string) []string {
	dirs := map[string]bool{}
	for _, id := range ids {
		if dir, _, ok := splitID(id); ok {
			dirs[dir] = true
		}
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") && dirs[path.Dir(f)] {
			out = append(out, f)
		}
	}
	return sortedUnique(out)
}

// Candidates parses the Go sources with tree-sitter.
func (goProfile) Candidates(ctx context.Context, src Source, mode Mode, opts CandidateOptions) ([]Candidate, error) {
	return treeSitterCandidates(ctx, "go", src, mode, opts)
}
