package stages

import (
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/schema"
)

// Item formats that stages hand to each other, stored as canonical JSON
// blobs. A stage that rejects an input leaves it out of its output
// collection and counts the reason as "rejected:<reason>"; whatever it
// keeps it counts as "kept".

// Validated is an item of the validate kind: a repository whose test
// suite ran in its environment, with the per-test status that held on
// every run.
type Validated struct {
	Repo string `json:"repo"`
	// Language names the repository's language profile (lang.Get), as the
	// recipe set it or lang.Detect found it.
	Language    string            `json:"language"`
	Tree        cache.Digest      `json:"tree"`
	Environment string            `json:"environment,omitempty"`
	Base        schema.Image      `json:"base"`
	Image       schema.Image      `json:"image"`
	TestCmd     []string          `json:"test_cmd"`
	TestPaths   []string          `json:"test_paths"`
	Status      map[string]string `json:"status"`
	Flaky       []string          `json:"flaky,omitempty"`
	// Ignored are the test modules that could not be collected in
	// validation; TestCmd leaves them out (--ignore).
	Ignored []string `json:"ignored,omitempty"`
	// TestTimeout is the repository's own test_timeout ("" for the
	// stage's).
	TestTimeout string `json:"test_timeout,omitempty"`
	// SuiteSeconds is the longest time pytest reported for the suite in
	// validation ("N passed in 12.34s"; 0 for other languages): the task
	// kinds never give a test run less CPU time than suiteBudgetFactor
	// times it (see newTaskMaker).
	SuiteSeconds float64 `json:"suite_seconds,omitempty"`
}

// TaskBundle is an item of a task-producing kind: a task instance with what
// it takes to run, grade and package it.
type TaskBundle struct {
	Instance schema.TaskInstance `json:"instance"`
	// Image is the task's environment image: its base plus the start tree
	// at /testbed.
	Image schema.Image `json:"image"`
	// Start is the tree the agent starts from (buggy, stubbed, ...).
	Start cache.Digest `json:"start"`
	// Solution is the reference tree (the gold patch applied to Start).
	Solution cache.Digest `json:"solution"`
	TestCmd  []string     `json:"test_cmd"`
	// Protected are path prefixes restored from Start before grading.
	Protected []string `json:"protected"`
	// Fixed is, for reproduce tasks, the code with the bug fixed: the
	// agent's test must fail on Start and pass on Fixed.
	Fixed cache.Digest `json:"fixed,omitzero"`
	// Mutants are, for testgen tasks, trees of the implementation with one
	// procedural bug each that the reference tests catch: the agent's tests
	// must pass on Start and catch most of them.
	Mutants []cache.Digest `json:"mutants,omitempty"`
}

// DefaultTestCmd is the Python profile's test command: pytest with one
// result line per test and without writing a cache into the workspace. It
// is the test command of a Python repository whose recipe names none, and
// of the SWE-Playground kinds, which make Python projects.
var DefaultTestCmd = pythonProfile.TestCommand(nil)

// pythonProfile is the Python language profile.
var pythonProfile = mustProfile(lang.Python)

// mustProfile returns the registered profile called name; a missing one is
// a programming error (lang registers Python itself).
func mustProfile(name string) lang.Profile {
	p, err := lang.Get(name)
	if err != nil {
		panic(err)
	}
	return p
}

// withLang is the version of a kind that uses language profiles: its own
// version and lang.Revision, so a change to the profiles' behaviour
// re-runs the kind's nodes.
func withLang(version string) string { return version + "+lang" + lang.Revision }
