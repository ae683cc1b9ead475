// Package lang owns what differs between programming languages. A Profile
// says, for one language, which Debian packages its environments need, how
// a repository in it is recognised, how its tests are run and their report
// read, which files are test code, and how procedural bugs and stubs are
// made from its sources. Stages, the agent and the grading harness reach
// every language-specific rule through a Profile, looked up by name with
// Get; Python is one profile among others.
package lang

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Revision names the behaviour of every profile together: test commands
// and environments, report parsers, test-file rules and transforms. It is
// part of the version of every stage kind that uses a profile (see
// stages.withLang), so its node keys change with it: bump it with any
// change to this package that changes what those stages output, as a
// kind's Version is bumped for a change to its own code.
const Revision = "1"

// Test statuses in Report.Status.
const (
	StatusPassed  = "PASSED"
	StatusFailed  = "FAILED"
	StatusError   = "ERROR"
	StatusSkipped = "SKIPPED"
)

// Report is what a test run's output says about its tests.
type Report struct {
	// Status maps test ids to StatusPassed, StatusFailed, StatusError or
	// StatusSkipped. Ids are the language's own ("tests/t.py::test_a" for
	// pytest, "calc::TestAdd/negative" for Go: package directory, "::",
	// test name), stable between runs and free of run-specific text
	// (durations, addresses).
	Status map[string]string
	// CollectionErrors name the files or packages whose tests could not be
	// loaded at all (an import error, a compile error).
	CollectionErrors []string
}

// Mode selects what Candidates enumerates.
type Mode string

// Candidate modes.
const (
	// ModeBugs enumerates single-site procedural bugs.
	ModeBugs Mode = "bugs"
	// ModeStub enumerates function bodies replaced by the language's
	// "not implemented".
	ModeStub Mode = "stub"
)

// Edit replaces bytes Start..End of a file by Replacement.
type Edit struct {
	Start       int    `json:"start"`
	End         int    `json:"end"`
	Replacement string `json:"replacement"`
}

// Candidate is one proposed change to one source file.
type Candidate struct {
	// ID is unique among the candidates of one call and stable across
	// calls: "<transform>-<file>-<function>-<line>-<n>" for bugs,
	// "stub-<file>-<function>" for stubs.
	ID string `json:"id"`
	// Transform names the rule that made it ("stub" for stubs).
	Transform string `json:"transform"`
	// File is the path relative to the repository root.
	File string `json:"file"`
	// Function is the qualified name of the function changed.
	Function string `json:"function"`
	// Line is the 1-based line of the changed site (of the function's
	// declaration for stubs).
	Line int `json:"line"`
	// Description says what changed, for people and problem statements.
	Description string `json:"description"`
	// Edit is the change to File.
	Edit Edit `json:"edit"`
}

// CandidateOptions narrow Candidates.
type CandidateOptions struct {
	// Seed orders the candidates (a deterministic shuffle); the same seed
	// and sources give the same list.
	Seed int64
	// Max keeps the first Max after the shuffle (0: all).
	Max int
	// Include are globs relative to the root ("**" spans directories);
	// empty means every source file of the language.
	Include []string
	// Transforms restricts bug transforms to these names (empty: all).
	Transforms []string
	// Keep lists functions stub mode must leave alone, for languages whose
	// profile cannot tell by itself ("file::function").
	Keep []string
}

// Source is the repository a profile reads: its files relative to the
// root, and a way to run a program in the repository's environment (the
// sandbox, with the repository at /testbed) for profiles whose transforms
// are written in the language itself.
type Source struct {
	// Files are the paths of the regular files, sorted.
	Files []string
	// ReadFile returns a file's contents.
	ReadFile func(path string) ([]byte, error)
	// Run runs argv in the environment with stdin, in /testbed, and returns
	// its stdout, stderr and exit status. The error is for infrastructure
	// failures only.
	Run func(ctx context.Context, argv []string, stdin []byte) (stdout, stderr []byte, exit int, err error)
}

// Profile is one language.
type Profile interface {
	// Name is what recipes write after `language:` ("python", "go",
	// "javascript", "rust").
	Name() string
	// Packages are the Debian packages an environment needs to build and
	// test code in the language, beyond the base system.
	Packages() []string
	// Detect reports whether a repository with these files (paths relative
	// to its root) is written in the language.
	Detect(files []string) bool
	// TestCommand is the argv that runs a repository's tests and prints the
	// report ParseReport reads, run with `sh -c` semantics in /testbed.
	// paths, when given, narrows it to those test files or directories.
	TestCommand(paths []string) []string
	// TestEnv are the environment variables the test command needs
	// (caches in /tmp, the network switched off), "NAME=value".
	TestEnv() []string
	// ParseReport reads the test command's stdout followed by stderr.
	ParseReport(output string) Report
	// IsTestFile reports whether path (relative to the root) is test code:
	// never mutated, restored before grading.
	IsTestFile(path string) bool
	// TestFiles returns the test files that hold the given test ids, sorted,
	// each once; files lists the repository's files.
	TestFiles(ids []string, files []string) []string
	// Candidates enumerates bug or stub candidates of src.
	Candidates(ctx context.Context, src Source, mode Mode, opts CandidateOptions) ([]Candidate, error)
}

var (
	mu       sync.RWMutex
	profiles = map[string]Profile{}
)

// Register adds a profile; it panics on a duplicate name (a programming
// error, found at start-up).
func Register(p Profile) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := profiles[p.Name()]; dup {
		panic("lang: profile " + p.Name() + " registered twice")
	}
	profiles[p.Name()] = p
}

// Get returns the profile called name ("" is "python", the default).
func Get(name string) (Profile, error) {
	if name == "" {
		name = "python"
	}
	mu.RLock()
	defer mu.RUnlock()
	if p, ok := profiles[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("unknown language %q (known: %s)", name, strings.Join(namesLocked(), ", "))
}

// Names lists the registered languages, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	out := make([]string, 0, len(profiles))
	for n := range profiles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Detect returns the profile whose Detect accepts files, trying them in
// name order with Python last (many repositories carry a stray setup.py);
// nil when none does.
func Detect(files []string) Profile {
	names := Names()
	var python Profile
	for _, n := range names {
		p, _ := Get(n)
		if n == "python" {
			python = p
			continue
		}
		if p.Detect(files) {
			return p
		}
	}
	if python != nil && python.Detect(files) {
		return python
	}
	return nil
}
