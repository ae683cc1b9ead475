package lang

import (
	"encoding/json"
	"regexp"
	"strings"
)

// goModuleMarker starts the line the Go test command prints before running
// the tests, naming the module, so that the report can turn import paths
// into package directories.
const goModuleMarker = "dsbuild-go-module: "

// goTestEvent is one line of `go test -json` (cmd/test2json).
type goTestEvent struct {
	Action      string
	Package     string
	Test        string
	Output      string
	FailedBuild string // Go 1.24 and later, on a package's "fail"
}

var (
	// "FAIL\texample.com/m/pkg [build failed]": what go test (before 1.24)
	// prints, outside the JSON stream, for a package that did not build.
	goBuildFailed = regexp.MustCompile(`^FAIL\s+(\S+) \[(?:build|setup) failed\]`)
	// "--- PASS: TestX (0.00s)", indented for subtests (plain -v output).
	goPlainResult = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (.+?) \(\d+(?:\.\d+)?s\)$`)
	// "ok  \tpkg\t0.01s", "FAIL\tpkg\t0.01s", "ok  \tpkg\t(cached)".
	goPlainPackage = regexp.MustCompile(`^(ok|FAIL)\s+(\S+)\s+(?:\d|\(cached\))`)
)

// goPackageState is what a Go report says about one package.
type goPackageState struct {
	buildFailed bool // did not build or set up
	failed      bool // its binary failed
	testFailed  bool // some test of it failed
}

// parseGoTest reads the output of the Go test command: the module marker,
// then `go test -json` events, with the build errors go test prints as
// plain text. Test ids are "<package directory>::<test name>", the
// directory relative to the module root ("." for the root package) and the
// name as go test prints it (subtests "TestX/sub_name", spaces already
// turned into underscores by the testing package); packages outside the
// module (or when the marker is missing) keep their import path.
//
// A test's last pass, fail or skip event gives its status. A package that
// failed to build or set up is a collection error (by directory); so is a
// package that failed with no test to blame (a panic in init or TestMain).
// A test that panicked is FAILED (the testing package reports it so);
// tests that started and never finished (their binary died: os.Exit, a
// timeout) are FAILED; tests that never started are absent. Without JSON
// events the plain `go test -v` lines are read instead.
func parseGoTest(output string) Report {
	b := newReportBuilder()
	module := ""
	dir := func(pkg string) string {
		switch {
		case module == "":
			return pkg
		case pkg == module:
			return "."
		case strings.HasPrefix(pkg, module+"/"):
			return pkg[len(module)+1:]
		}
		return pkg
	}
	pkgs := map[string]*goPackageState{}
	pkgOf := func(p string) *goPackageState {
		if pkgs[p] == nil {
			pkgs[p] = &goPackageState{}
		}
		return pkgs[p]
	}
	var plain []string
	sawJSON := false
	for _, line := range strings.Split(output, "\n") {
		line = strings.TrimRight(line, "\r")
		if m, ok := strings.CutPrefix(line, goModuleMarker); ok {
			module = strings.TrimSpace(m)
			continue
		}
		if strings.HasPrefix(line, "{") {
			var ev goTestEvent
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Action != "" && ev.Package != "" {
				sawJSON = true
				st := pkgOf(ev.Package)
				if ev.Test == "" {
					switch ev.Action {
					case "output":
						if goBuildFailed.MatchString(strings.TrimSpace(ev.Output)) {
							st.buildFailed = true
						}
					case "fail":
						st.failed = true
						if ev.FailedBuild != "" {
							st.buildFailed = true
						}
					}
					continue
				}
				id := ev.Package + "::" + ev.Test
				switch ev.Action {
				case "run":
					b.start(id)
				case "pass":
					b.status[id] = StatusPassed
				case "fail":
					b.status[id] = StatusFailed
					st.testFailed = true
				case "skip":
					b.status[id] = StatusSkipped
				}
				continue
			}
		}
		if m := goBuildFailed.FindStringSubmatch(line); m != nil {
			pkgOf(m[1]).buildFailed = true
			continue
		}
		plain = append(plain, line)
	}
	if !sawJSON {
		parseGoTestPlain(plain, b, pkgOf)
	}
	// A package whose binary died with tests running: those tests failed.
	for id := range b.started {
		if _, ok := b.status[id]; !ok {
			pkg, _, _ := splitID(id)
			if pkgs[pkg] != nil && pkgs[pkg].failed {
				b.status[id] = StatusFailed
				pkgs[pkg].testFailed = true
			}
		}
	}
	for p, st := range pkgs {
		if st.buildFailed || (st.failed && !st.testFailed) {
			b.collectionError(dir(p))
		}
	}
	// Rewrite import paths to directories now that the marker is known.
	status := make(map[string]string, len(b.status))
	for id, s := range b.status {
		pkg, name, _ := splitID(id)
		status[dir(pkg)+"::"+name] = s
	}
	b.status = status
	return b.report()
}

// parseGoTestPlain reads `go test -v` text: results are buffered until the
// package's "ok"/"FAIL" summary line names their package.
func parseGoTestPlain(lines []string, b *reportBuilder, pkgOf func(string) *goPackageState) {
	type result struct{ name, status string }
	var pending []result
	for _, line := range lines {
		if m := goPlainResult.FindStringSubmatch(line); m != nil {
			st := map[string]string{"PASS": StatusPassed, "FAIL": StatusFailed, "SKIP": StatusSkipped}[m[1]]
			pending = append(pending, result{m[2], st})
			continue
		}
		if m := goPlainPackage.FindStringSubmatch(line); m != nil {
			st := pkgOf(m[2])
			st.failed = m[1] == "FAIL"
			for _, r := range pending {
				b.status[m[2]+"::"+r.name] = r.status
				if r.status == StatusFailed {
					st.testFailed = true
				}
			}
			pending = nil
		}
	}
}
