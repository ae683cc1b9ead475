package lang

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// libtestEvent is one line of libtest's JSON (`-Z unstable-options
// --format json`).
type libtestEvent struct {
	Type  string `json:"type"`
	Event string `json:"event"`
	Name  string `json:"name"`
}

var (
	// "     Running unittests src/lib.rs (target/debug/deps/calc-0123abcd)",
	// "     Running tests/api.rs (target/debug/deps/api-0123abcd)",
	// "     Running target/debug/deps/calc-0123abcd" (older cargo).
	cargoRunning = regexp.MustCompile(`^Running (?:unittests )?(.*?)(?: \((\S+)\))?$`)
	// "   Doc-tests calc"
	cargoDocTests = regexp.MustCompile(`^Doc-tests (\S+)$`)
	// "calc-0123456789abcdef": a test binary's file name.
	cargoBinaryHash = regexp.MustCompile(`-[0-9a-f]{16}$`)
	// "src/lib.rs - add (line 5)": a doc test, its line dropped from the id.
	docTestLine = regexp.MustCompile(`^(.*) \(line (\d+)\)$`)
	// "test tests::adds ... ok" (libtest's plain output).
	libtestPlain = regexp.MustCompile(`^test (.+?) \.\.\. (ok|FAILED|ignored)`)
	// "error[E0308]: mismatched types", "error: expected expression".
	rustcError = regexp.MustCompile(`^error(\[E\d+\])?: `)
	// "error: could not compile `calc` due to previous error"
	cargoCouldNotCompile = regexp.MustCompile("^error: could not compile `([^`]+)`")
)

// parseLibtest reads `cargo test` output with libtest's JSON events and
// cargo's status lines interleaved (stderr merged into stdout, as the Rust
// test command does). Test ids are "<target>::<test path>": the target is
// the test binary's ("integration" for tests/integration.rs, the crate's
// library name for its unit tests, a binary's name for its own) and the
// test path libtest's ("tests::adds", "nested::in_a_module"). Doc tests
// are "<crate>::<file> - <item>" with the line number dropped (it moves
// whenever code above moves); several doc tests of one item are told apart
// by " (1)", " (2)"... in line order.
//
// "ok" is PASSED, "failed" FAILED (a failed assertion or any panic, which
// libtest catches), "ignored" SKIPPED. A test that started and never
// finished (its binary aborted or crashed) is FAILED; tests of a binary
// that never started are absent. A compile error stops cargo before any
// test runs: the files named by the errors' "-->" lines (or the package,
// when none is) are collection errors. Without JSON events the plain
// "test name ... ok" lines are read instead.
func parseLibtest(output string) Report {
	b := newReportBuilder()
	type docResult struct {
		target, name, status string
		line                 int
	}
	var (
		target    string
		docs      []docResult
		docTarget bool
		inError   bool
		sawJSON   bool
		packages  []string
		errFiles  = map[string]bool{}
	)
	for _, raw := range strings.Split(output, "\n") {
		line := strings.TrimSpace(strings.TrimRight(raw, "\r"))
		if m := cargoRunning.FindStringSubmatch(line); m != nil {
			target, docTarget = cargoTargetName(m[1], m[2]), false
			continue
		}
		if m := cargoDocTests.FindStringSubmatch(line); m != nil {
			target, docTarget = m[1], true
			continue
		}
		if strings.HasPrefix(line, "{") {
			var ev libtestEvent
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "test" && ev.Name != "" {
				sawJSON = true
				st := map[string]string{"ok": StatusPassed, "failed": StatusFailed, "ignored": StatusSkipped}[ev.Event]
				if docTarget {
					if st != "" {
						name, n := ev.Name, 0
						if m := docTestLine.FindStringSubmatch(ev.Name); m != nil {
							name = m[1]
							n, _ = strconv.Atoi(m[2])
						}
						docs = append(docs, docResult{target, name, st, n})
					}
					continue
				}
				id := target + "::" + ev.Name
				switch {
				case ev.Event == "started":
					b.start(id)
				case st != "":
					b.set(id, st)
				}
				continue
			}
		}
		switch {
		case rustcError.MatchString(line):
			inError = true
		case strings.HasPrefix(line, "warning"):
			inError = false
		case inError && strings.HasPrefix(line, "--> "):
			f := strings.TrimPrefix(line, "--> ")
			if i := strings.Index(f, ":"); i > 0 {
				f = f[:i]
			}
			errFiles[relToWorkdir(f)] = true
			inError = false
		}
		if m := cargoCouldNotCompile.FindStringSubmatch(line); m != nil {
			packages = append(packages, m[1])
		}
	}
	if !sawJSON {
		parseLibtestPlain(output, b)
	}
	b.unfinishedFailed()
	// Doc tests: the line number leaves the id; repeats are numbered.
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].line < docs[j].line })
	count := map[string]int{}
	for _, d := range docs {
		count[d.target+"::"+d.name]++
	}
	seen := map[string]int{}
	for _, d := range docs {
		id := d.target + "::" + d.name
		if count[id] > 1 {
			seen[id]++
			id = fmt.Sprintf("%s (%d)", id, seen[id])
		}
		b.set(id, d.status)
	}
	if len(packages) > 0 {
		for f := range errFiles {
			b.collectionError(f)
		}
		if len(errFiles) == 0 {
			for _, p := range packages {
				b.collectionError(p)
			}
		}
	}
	return b.report()
}

// cargoTargetName names the test target of a "Running" line from its
// source ("tests/api.rs", "tests/api/main.rs") or, for unit tests, from
// its binary ("target/debug/deps/calc-0123456789abcdef").
func cargoTargetName(source, binary string) string {
	if binary == "" { // older cargo: "Running target/debug/deps/calc-…"
		binary, source = source, ""
	}
	if rest, ok := strings.CutPrefix(source, "tests/"); ok {
		if dir, file, ok := strings.Cut(rest, "/"); ok && file == "main.rs" {
			return dir
		}
		if !strings.Contains(rest, "/") {
			return strings.TrimSuffix(rest, ".rs")
		}
	}
	return cargoBinaryHash.ReplaceAllString(path.Base(binary), "")
}

// parseLibtestPlain reads libtest's human output: "test name ... ok" under
// cargo's "Running" lines.
func parseLibtestPlain(output string, b *reportBuilder) {
	target := ""
	for _, line := range strings.Split(output, "\n") {
		line = strings.TrimSpace(line)
		if m := cargoRunning.FindStringSubmatch(line); m != nil {
			target = cargoTargetName(m[1], m[2])
			continue
		}
		if m := cargoDocTests.FindStringSubmatch(line); m != nil {
			target = m[1]
			continue
		}
		if m := libtestPlain.FindStringSubmatch(line); m != nil {
			name := m[1]
			if dm := docTestLine.FindStringSubmatch(name); dm != nil {
				name = dm[1]
			}
			b.set(target+"::"+name, map[string]string{"ok": StatusPassed, "FAILED": StatusFailed, "ignored": StatusSkipped}[m[2]])
		}
	}
}
