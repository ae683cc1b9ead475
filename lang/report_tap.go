package lang

import (
	"regexp"
	"strings"
)

// tapFileMarker starts the line the JavaScript test command prints before
// running each test file, naming it relative to the root: node 18's TAP
// says which file a test is in only when it fails.
const tapFileMarker = "dsbuild-test-file: "

// tapResult matches a TAP test line without its indentation:
// "ok 3 - name # SKIP reason", "not ok 2 - name".
var tapResult = regexp.MustCompile(`^(not ok|ok)\b(?: \d+)?(?: -)? ?(.*)$`)

// parseNodeTAP reads the TAP that node's test runner (`node --test
// --test-reporter=tap`, node 18 and later) prints, one file after another,
// each after a tapFileMarker line. Test ids are "<file>::<test>", with
// the names of enclosing tests and describe blocks before the test's own,
// joined by " > ": "test/calc.test.js::suite > case". The file is the
// marker's, or the top-level subtest named after the file that some node
// versions wrap each file's tests in; without either, the id is the names
// alone.
//
// Nesting is read from the indentation (four spaces a level) and the
// "# Subtest:" lines; names are unescaped (\#, \\). "ok" is PASSED, "# SKIP"
// SKIPPED, "not ok" FAILED (an assertion or a thrown error alike). "# TODO"
// tests count as PASSED, as node's exit status does (they cannot fail the
// run), like pytest's xfail. Tests cancelled because their parent failed
// ("cancelledByParent") never ran and are absent. A file that failed as a
// whole, not through a failing test (it threw while loading, a missing
// module, a syntax error, a non-zero exit), is a collection error.
func parseNodeTAP(output string) Report {
	b := newReportBuilder()
	var (
		file    string
		wrapped bool     // inside a top-level subtest named after the file
		stack   []string // names of the open subtests by level
		pending *tapPending
		inYAML  bool
	)
	isFileName := func(name string) bool {
		return strings.HasPrefix(name, sandboxWorkdir+"/") || (file != "" && name == file)
	}
	finish := func() {
		p := pending
		pending = nil
		if p == nil {
			return
		}
		if p.wrapper {
			if p.notOK && p.failureType != "subtestsFailed" {
				b.collectionError(p.file)
			}
			return
		}
		switch {
		case p.directive == "SKIP":
			b.set(p.id, StatusSkipped)
		case p.directive == "TODO":
			b.set(p.id, StatusPassed)
		case !p.notOK:
			b.set(p.id, StatusPassed)
		case p.failureType == "cancelledByParent":
		default:
			b.set(p.id, StatusFailed)
		}
	}
	for _, raw := range strings.Split(output, "\n") {
		raw = strings.TrimRight(raw, "\r")
		t := strings.TrimLeft(raw, " ")
		indent := len(raw) - len(t)
		if inYAML {
			if pending != nil && indent == pending.indent+2 {
				if t == "..." {
					inYAML = false
				} else if v, ok := strings.CutPrefix(t, "failureType:"); ok {
					pending.failureType = strings.Trim(strings.TrimSpace(v), `'"`)
				}
			}
			continue
		}
		if pending != nil && t == "---" && indent == pending.indent+2 {
			inYAML = true
			continue
		}
		finish()
		if f, ok := strings.CutPrefix(raw, tapFileMarker); ok {
			file, wrapped, stack = relToWorkdir(strings.TrimSpace(f)), false, nil
			continue
		}
		level := indent / 4
		if name, ok := strings.CutPrefix(t, "# Subtest: "); ok {
			name, _ = tapUnescape(name)
			if level == 0 && isFileName(name) {
				file, wrapped, stack = relToWorkdir(name), true, nil
				continue
			}
			if wrapped {
				level--
			}
			if level < 0 {
				continue
			}
			if level > len(stack) {
				level = len(stack)
			}
			stack = append(stack[:level], name)
			continue
		}
		m := tapResult.FindStringSubmatch(t)
		if m == nil {
			continue
		}
		name, directive := tapUnescape(m[2])
		p := &tapPending{indent: indent, notOK: m[1] == "not ok", directive: directive}
		if level == 0 && isFileName(name) {
			p.wrapper, p.file = true, relToWorkdir(name)
			wrapped, stack = false, nil
			pending = p
			continue
		}
		if wrapped {
			level--
		}
		if level < 0 {
			continue
		}
		path := append(append([]string(nil), stack[:min(level, len(stack))]...), name)
		p.id = strings.Join(path, " > ")
		if file != "" {
			p.id = file + "::" + p.id
		}
		pending = p
	}
	finish()
	return b.report()
}

// tapPending is a test line whose YAML block has not been read yet.
type tapPending struct {
	indent      int
	id          string
	notOK       bool
	directive   string // "SKIP", "TODO" or ""
	failureType string
	wrapper     bool   // the line of a file's own top-level subtest
	file        string // its file, for wrapper lines
}

// tapUnescape undoes node's TAP escaping of a test name (\\, \#, \n, \t)
// and splits off an unescaped "# SKIP ..." or "# TODO ..." directive.
func tapUnescape(s string) (name, directive string) {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				out.WriteByte('\n')
			case 't':
				out.WriteByte('\t')
			case 'r':
				out.WriteByte('\r')
			default:
				out.WriteByte(s[i])
			}
			continue
		}
		if c == '#' {
			d := strings.ToUpper(strings.TrimSpace(s[i+1:]))
			switch {
			case strings.HasPrefix(d, "SKIP"):
				directive = "SKIP"
			case strings.HasPrefix(d, "TODO"):
				directive = "TODO"
			}
			if directive != "" {
				break
			}
		}
		out.WriteByte(c)
	}
	return strings.TrimSpace(out.String()), directive
}
