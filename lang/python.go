package lang

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Python is the name of the Python profile, the language of a repository
// or task that names none.
const Python = "python"

// workdir is where a Source's repository is mounted in its environment
// (Source.Run runs there).
const workdir = "/testbed"

//go:embed py/mutate.py
var scripts embed.FS

// Scripts are the programs profiles run inside the sandbox, by path
// ("py/mutate.py"). Their content shapes what Candidates returns, so a stage
// kind that calls Candidates declares them as a build asset: their digest
// is part of its node keys, and editing one re-runs exactly those nodes.
var Scripts fs.FS = scripts

// ErrBadOptions is wrapped by the error of Candidates when its options are
// ones the profile refuses (an unknown transform name): the recipe's
// mistake, not the repository's.
var ErrBadOptions = errors.New("bad candidate options")

func init() { Register(python{}) }

// python is pytest on Debian's python3: test ids are pytest node ids
// ("tests/test_a.py::TestX::test_y[param]"), bugs and stubs come from
// py/mutate.py's AST transforms.
type python struct{}

func (python) Name() string { return Python }

func (python) Packages() []string { return []string{"python3", "python3-pytest"} }

// Detect accepts a repository with a setup.py, pyproject.toml or setup.cfg
// at its root, or any .py file.
func (python) Detect(files []string) bool {
	for _, f := range files {
		switch {
		case f == "setup.py" || f == "pyproject.toml" || f == "setup.cfg":
			return true
		case strings.HasSuffix(f, ".py"):
			return true
		}
	}
	return false
}

// pytestCmd runs pytest with one result line per test (-rA) and without
// writing a cache into the workspace.
var pytestCmd = []string{"python3", "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-q"}

// TestCommand is pytest with paths (files, directories or node ids) as its
// arguments: a command the test ids of a run can be appended to.
func (python) TestCommand(paths []string) []string {
	return append(append([]string(nil), pytestCmd...), paths...)
}

// TestEnv keeps byte code out of the workspace (it would show up in
// patches).
func (python) TestEnv() []string { return []string{"PYTHONDONTWRITEBYTECODE=1"} }

func (python) ParseReport(output string) Report {
	status, collect := parsePytest(output)
	return Report{Status: status, CollectionErrors: collect}
}

// IsTestFile accepts what pytest runs or reads as tests: files under a
// tests/ or test/ directory, test_*.py and *_test.py, every conftest.py,
// and the top-level pytest.ini (through the last two a patch could change
// how pytest reports results without touching a test).
func (python) IsTestFile(p string) bool {
	base := path.Base(p)
	switch {
	case base == "conftest.py" || p == "pytest.ini":
		return true
	case strings.HasSuffix(base, ".py") && (strings.HasPrefix(base, "test_") || strings.HasSuffix(base, "_test.py")):
		return true
	}
	parts := strings.Split(p, "/")
	for _, d := range parts[:len(parts)-1] {
		if d == "tests" || d == "test" {
			return true
		}
	}
	return false
}

// TestFiles are the files of pytest node ids, the part before the first
// "::" ("tests/test_a.py::test_x[1]" -> "tests/test_a.py"): SWE-bench's
// test directives.
func (python) TestFiles(ids []string, _ []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		file, _, _ := strings.Cut(id, "::")
		if file != "" && !seen[file] {
			seen[file] = true
			out = append(out, file)
		}
	}
	sort.Strings(out)
	return out
}

// Candidates runs py/mutate.py MODE /testbed --edits in src's environment
// with the script on stdin (see lang/py/README.md). Options map onto its
// flags: --seed, --max (when Max > 0), --transforms, --include; Keep is not
// needed (mutate.py finds the functions that run at import time itself).
// Candidates travel as edits, not whole files: on real libraries whole
// files came to tens of megabytes, past the sandbox's output cap.
func (python) Candidates(ctx context.Context, src Source, mode Mode, opts CandidateOptions) ([]Candidate, error) {
	if mode != ModeBugs && mode != ModeStub {
		return nil, fmt.Errorf("%w: mode %q (want %s or %s)", ErrBadOptions, mode, ModeBugs, ModeStub)
	}
	script, err := fs.ReadFile(Scripts, "py/mutate.py")
	if err != nil {
		return nil, err
	}
	argv := []string{"python3", "-", string(mode), workdir, "--edits", "--seed", strconv.FormatInt(opts.Seed, 10)}
	if opts.Max > 0 {
		argv = append(argv, "--max", strconv.Itoa(opts.Max))
	}
	if len(opts.Transforms) > 0 {
		argv = append(argv, "--transforms", strings.Join(opts.Transforms, ","))
	}
	for _, g := range opts.Include {
		argv = append(argv, "--include", g)
	}
	stdout, stderr, exit, err := src.Run(ctx, argv, script)
	if err != nil {
		return nil, fmt.Errorf("mutate.py %s: %w", mode, err)
	}
	switch {
	case exit == 2:
		return nil, fmt.Errorf("%w: mutate.py %s rejected its arguments: %s", ErrBadOptions, mode, strings.TrimSpace(string(stderr)))
	case exit != 0:
		return nil, fmt.Errorf("mutate.py %s exited %d: %s", mode, exit, tail(string(stderr), 2000))
	}
	var out struct {
		Candidates []Candidate `json:"candidates"`
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		return nil, fmt.Errorf("mutate.py %s printed no valid JSON: %v", mode, err)
	}
	return out.Candidates, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

var (
	// "PASSED tests/t.py::test_a", "FAILED tests/t.py::test_b - assert 1 == 2"
	summaryLine = regexp.MustCompile(`^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED) (.+)$`)
	// "tests/t.py::test_a PASSED [ 50%]" (verbose mode)
	verboseLine = regexp.MustCompile(`^(\S+::\S.*?) (PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED)(?: .*)?$`)
	// "SKIPPED [1] tests/t.py:12: reason"
	skipLocation = regexp.MustCompile(`^\[\d+\] `)
)

// severity orders statuses so that the worst report of a test wins (a test
// that passed and then errored in teardown is an error).
var severity = map[string]int{StatusPassed: 1, StatusSkipped: 2, StatusFailed: 3, StatusError: 4}

// pytestOutcome maps pytest outcomes to the four statuses: an expected
// failure (XFAIL) and a non-strict unexpected pass (XPASS) count as PASSED,
// as pytest's own exit code does.
func pytestOutcome(s string) string {
	switch s {
	case "XFAIL", "XPASS":
		return StatusPassed
	}
	return s
}

// parsePytest reads pytest output run with -rA (the short test summary
// info lines) and, when present, verbose "node PASSED" lines. It returns
// each node id's status and the collectors that failed to collect (ERROR
// lines naming a file rather than a test). Skips reported only by location
// ("SKIPPED [1] file:line: reason") have no node id and are left out.
func parsePytest(output string) (map[string]string, []string) {
	status := map[string]string{}
	set := func(id, st string) {
		st = pytestOutcome(st)
		if old, ok := status[id]; !ok || severity[st] > severity[old] {
			status[id] = st
		}
	}
	var collect []string
	seenCollect := map[string]bool{}
	verbose := map[string]string{}
	for _, line := range strings.Split(output, "\n") {
		line = strings.TrimRight(line, "\r")
		if m := summaryLine.FindStringSubmatch(line); m != nil {
			if m[1] == "SKIPPED" && skipLocation.MatchString(m[2]) {
				continue
			}
			id := nodeID(m[2])
			if id == "" {
				continue
			}
			if !strings.Contains(id, "::") {
				if m[1] == "ERROR" && !seenCollect[id] {
					seenCollect[id] = true
					collect = append(collect, id)
				}
				continue
			}
			set(id, m[1])
			continue
		}
		if m := verboseLine.FindStringSubmatch(line); m != nil {
			if _, ok := verbose[m[1]]; !ok || severity[pytestOutcome(m[2])] > severity[verbose[m[1]]] {
				verbose[m[1]] = pytestOutcome(m[2])
			}
		}
	}
	for id, st := range verbose {
		if _, ok := status[id]; !ok {
			status[id] = st
		}
	}
	sort.Strings(collect)
	return status, collect
}

// nodeID cuts the node id from the rest of a summary line ("id - message",
// "id reason" for XPASS): it ends at the first space outside the brackets
// of a parametrised id, whose parameters may hold spaces.
func nodeID(rest string) string {
	depth := 0
	for i, c := range rest {
		switch c {
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case ' ':
			if depth == 0 {
				return rest[:i]
			}
		}
	}
	return rest
}
