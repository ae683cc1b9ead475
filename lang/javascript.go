package lang

import (
	"context"
	"path"
	"strings"
)

func init() { Register(javascriptProfile{}) }

// javascriptProfile is JavaScript on Debian's nodejs (node 18 in bookworm)
// with node's built-in test runner (node:test); no npm packages.
type javascriptProfile struct{}

func (javascriptProfile) Name() string       { return "javascript" }
func (javascriptProfile) Packages() []string { return []string{"nodejs"} }

// Detect accepts a repository with a package.json at its root and no
// go.mod or Cargo.toml (a Go or Rust project with JavaScript on the side).
func (javascriptProfile) Detect(files []string) bool {
	return hasFile(files, "package.json") && !hasFile(files, "go.mod") && !hasFile(files, "Cargo.toml")
}

// jsTestScript runs `node --test --test-reporter=tap` on each test file in
// turn, after a tapFileMarker line naming it: node 18's TAP does not name
// the file of a passing test. Its arguments are files (run as given) and
// directories (searched, node_modules left out, for the files IsTestFile
// accepts among .js, .cjs and .mjs files); none means ".". The exit status
// is 1 when any file failed.
const jsTestScript = `[ $# -gt 0 ] || set -- .
for a do
  if [ -d "$a" ]; then
    find "$a" -name node_modules -prune -o -type f \( -name '*.js' -o -name '*.cjs' -o -name '*.mjs' \) -print | LC_ALL=C sort | while IFS= read -r f; do
      case "/$f" in */test/*|*/tests/*|*/__tests__/*) echo "$f"; continue;; esac
      b=${f##*/}; b=${b%.*}
      case "$b" in test|test-?*|?*.test|?*-test|?*_test|?*.spec) echo "$f";; esac
    done
  else
    echo "$a"
  fi
done | {
  st=0
  while IFS= read -r f; do
    f=${f#./}
    echo "` + tapFileMarker + `$f"
    node --test --test-reporter=tap "$f" </dev/null 2>&1 || st=1
  done
  exit $st
}`

// TestCommand runs node's test runner on the test files under paths (all
// of the repository's without), one file at a time; see jsTestScript.
func (javascriptProfile) TestCommand(paths []string) []string {
	return append([]string{"sh", "-c", jsTestScript, "sh"}, paths...)
}

// TestEnv keeps node's and npm's homes in /tmp and colours off.
func (javascriptProfile) TestEnv() []string {
	return []string{"HOME=/tmp", "NO_COLOR=1", "NODE_DISABLE_COLORS=1", "npm_config_cache=/tmp/npm-cache", "npm_config_offline=true"}
}

// ParseReport reads node's TAP; see parseNodeTAP for the ids.
func (javascriptProfile) ParseReport(output string) Report { return parseNodeTAP(output) }

// IsTestFile accepts what node 18's test runner runs (files below a test
// directory; test.js, test-*.js, *.test.js, *-test.js, *_test.js, with the
// .cjs and .mjs forms) and the usual conventions of other runners: files
// below tests/ and __tests__/, *.spec.js.
func (javascriptProfile) IsTestFile(p string) bool {
	for _, dir := range []string{"test", "tests", "__tests__"} {
		if strings.HasPrefix(p, dir+"/") || strings.Contains(p, "/"+dir+"/") {
			return true
		}
	}
	ext := path.Ext(p)
	if ext != ".js" && ext != ".cjs" && ext != ".mjs" {
		return false
	}
	stem := strings.TrimSuffix(path.Base(p), ext)
	switch {
	case stem == "test", strings.HasPrefix(stem, "test-") && len(stem) > len("test-"):
		return true
	}
	for _, suffix := range []string{".test", "-test", "_test", ".spec"} {
		if strings.HasSuffix(stem, suffix) && len(stem) > len(suffix) {
			return true
		}
	}
	return false
}

// TestFiles returns the files named by the ids' file parts that exist.
func (javascriptProfile) TestFiles(ids []string, files []string) []string {
	var out []string
	for _, id := range ids {
		if f, _, ok := splitID(id); ok && hasFile(files, f) {
			out = append(out, f)
		}
	}
	return sortedUnique(out)
}

// Candidates parses the JavaScript sources with tree-sitter.
func (javascriptProfile) Candidates(ctx context.Context, src Source, mode Mode, opts CandidateOptions) ([]Candidate, error) {
	return treeSitterCandidates(ctx, "javascript", src, mode, opts)
}
