package lang

import (
	"context"
	"path"
	"strings"
)

func init() { Register(rustProfile{}) }

// rustProfile is Rust with Debian's rustc and cargo (1.63 and 0.66 in
// bookworm), offline: crates must be vendored or absent.
//
// Rust projects should keep graded tests in tests/ (integration tests):
// unit tests in #[cfg(test)] modules live in the same file as the code
// they test, so they cannot be restored before grading without restoring
// the code too. They run and are graded all the same, but a task's
// solution could change them.
type rustProfile struct{}

func (rustProfile) Name() string       { return "rust" }
func (rustProfile) Packages() []string { return []string{"rustc", "cargo"} }

// Detect accepts a repository with a Cargo.toml at its root.
func (rustProfile) Detect(files []string) bool { return hasFile(files, "Cargo.toml") }

// TestCommand runs `cargo test --offline --no-fail-fast` (every test
// binary, even after one failed) with libtest's JSON report, which stable
// toolchains print with RUSTC_BOOTSTRAP=1 (TestEnv), and cargo's stderr
// merged into stdout so that its "Running <target>" lines stay between the
// reports of the binaries they name. Paths narrow it to the integration
// tests they name (tests/x.rs or tests/x/: --test x; tests: --test '*');
// other paths select the library's unit tests (--lib).
func (rustProfile) TestCommand(paths []string) []string {
	var sel []string
	for _, p := range paths {
		p = path.Clean(p)
		switch rest, ok := strings.CutPrefix(p, "tests/"); {
		case p == "tests":
			sel = append(sel, "--test", "*")
		case ok:
			name, _, _ := strings.Cut(rest, "/")
			sel = append(sel, "--test", strings.TrimSuffix(name, ".rs"))
		case p == ".":
			return rustProfile{}.TestCommand(nil)
		default:
			sel = append(sel, "--lib")
		}
	}
	args := append([]string{"cargo", "test", "--offline", "--no-fail-fast"}, dedupeSelectors(sel)...)
	args = append(args, "--", "-Z", "unstable-options", "--format", "json")
	return []string{"sh", "-c", joinSh(args) + " 2>&1"}
}

// dedupeSelectors drops repeated cargo target selectors ("--lib", "--test
// x") keeping their order.
func dedupeSelectors(sel []string) []string {
	var out []string
	seen := map[string]bool{}
	for i := 0; i < len(sel); i++ {
		key := sel[i]
		if sel[i] == "--test" && i+1 < len(sel) {
			key += " " + sel[i+1]
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, sel[i])
			if sel[i] == "--test" && i+1 < len(sel) {
				out = append(out, sel[i+1])
			}
		}
		if sel[i] == "--test" {
			i++
		}
	}
	return out
}

// TestEnv keeps cargo's home and the build in /tmp (a test run leaves no
// target/ in the repository), works offline, lets libtest print JSON on a
// stable toolchain and keeps panics' backtraces and colours out.
func (rustProfile) TestEnv() []string {
	return []string{
		"HOME=/tmp",
		"CARGO_HOME=/tmp/cargo-home",
		"CARGO_TARGET_DIR=/tmp/cargo-target",
		"CARGO_NET_OFFLINE=true",
		"CARGO_TERM_COLOR=never",
		"CARGO_INCREMENTAL=0",
		"RUSTC_BOOTSTRAP=1",
		"RUST_BACKTRACE=0",
	}
}

// ParseReport reads cargo test output; see parseLibtest for the ids.
func (rustProfile) ParseReport(output string) Report { return parseLibtest(output) }

// IsTestFile accepts files below a tests/ or benches/ directory (of the
// root or of a workspace member).
func (rustProfile) IsTestFile(p string) bool {
	for _, dir := range []string{"tests", "benches"} {
		if strings.HasPrefix(p, dir+"/") || strings.Contains(p, "/"+dir+"/") {
			return true
		}
	}
	return false
}

// TestFiles returns, for ids of integration-test targets, tests/<target>.rs
// or the files below tests/<target>/, of the root or of a workspace member
// (ids do not say which member: targets of one name in two members share
// their ids). Unit and doc tests live in the code's own files and have
// none.
func (rustProfile) TestFiles(ids []string, files []string) []string {
	targets := map[string]bool{}
	for _, id := range ids {
		if t, _, ok := splitID(id); ok {
			targets[t] = true
		}
	}
	var out []string
	for _, f := range files {
		rest, ok := strings.CutPrefix(f, "tests/")
		if i := strings.Index(f, "/tests/"); !ok && i >= 0 { // a workspace member's
			rest, ok = f[i+len("/tests/"):], true
		}
		if !ok {
			continue
		}
		name, _, nested := strings.Cut(rest, "/")
		if !nested {
			name = strings.TrimSuffix(name, ".rs")
			if !strings.HasSuffix(rest, ".rs") {
				continue
			}
		}
		if targets[name] {
			out = append(out, f)
		}
	}
	return sortedUnique(out)
}

// Candidates parses the Rust sources with tree-sitter.
func (rustProfile) Candidates(ctx context.Context, src Source, mode Mode, opts CandidateOptions) ([]Candidate, error) {
	return treeSitterCandidates(ctx, "rust", src, mode, opts)
}
