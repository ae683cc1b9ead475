package schema

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// TaskType says what an agent is asked to do in a task instance.
type TaskType string

// The task types dsbuild derives from a finished project.
const (
	// TaskFix is issue resolution (SWE-bench style): fix an injected bug
	// from its report.
	TaskFix TaskType = "fix"
	// TaskReproduce is issue reproduction (SWT-Bench style): write a test
	// that fails on the buggy code and passes on the fixed code.
	TaskReproduce TaskType = "reproduce"
	// TaskImplement is implementation from stubs (Commit0 style, or one
	// decomposed task).
	TaskImplement TaskType = "implement"
	// TaskTestgen is unit-test generation from a checklist.
	TaskTestgen TaskType = "testgen"
)

// Valid reports whether t is one of the known task types.
func (t TaskType) Valid() bool {
	switch t {
	case TaskFix, TaskReproduce, TaskImplement, TaskTestgen:
		return true
	}
	return false
}

// TaskInstance is one task an agent can be run on: the SWE-bench fields
// plus what dsbuild adds (task type, environment image, test command,
// source project, difficulty). Go-side fields are typed; SWEBenchJSON and
// TaskRow give the Hub encoding where every SWE-bench field is a string and
// the test lists are JSON-encoded lists.
type TaskInstance struct {
	InstanceID             string   `json:"instance_id"`
	Repo                   string   `json:"repo"`
	BaseCommit             string   `json:"base_commit"`
	Patch                  string   `json:"patch"`
	TestPatch              string   `json:"test_patch"`
	ProblemStatement       string   `json:"problem_statement"`
	HintsText              string   `json:"hints_text"`
	CreatedAt              string   `json:"created_at"` // RFC 3339
	Version                string   `json:"version"`
	FailToPass             []string `json:"FAIL_TO_PASS"`
	PassToPass             []string `json:"PASS_TO_PASS"`
	EnvironmentSetupCommit string   `json:"environment_setup_commit"`

	// TaskType is what the agent is asked to do.
	TaskType TaskType `json:"task_type"`
	// Image is the environment image as "ref@sha256:<hex>".
	Image string `json:"image"`
	// TestCmd is the complete shell command, run with `sh -c` in /testbed
	// of the image, that runs the instance's tests (the test command with
	// the test files of FAIL_TO_PASS and PASS_TO_PASS as its arguments, as
	// SWE-bench derives test directives). Its output is read with the
	// report parser of Language: for Python the standard pytest log
	// parsing (-rA summary lines).
	TestCmd string `json:"test_cmd"`
	// TestFiles are the files (relative to /testbed) a grader restores to
	// their state in the image before it runs TestCmd, as the SWE-bench
	// harness checks the test patch's files out at base_commit: a patch
	// that edits them cannot change the verdict. Empty for reproduce and
	// testgen tasks, whose answer is tests. (Omitted from this typed
	// encoding when empty, so task bundles made before the field existed
	// keep their bytes; the Hub encoding always has it.)
	TestFiles []string `json:"test_files,omitempty"`
	// SourceProject is the ID of the Project the task was derived from.
	SourceProject string `json:"source_project"`
	// Difficulty runs from 1 to 5; 0 means unknown.
	Difficulty int `json:"difficulty"`

	// GoldenCodePatch is, for reproduce tasks, the fix of the reported bug:
	// a diff against the start state (/testbed at base_commit) that touches
	// no test file. The model's tests must fail without it and pass with it
	// (SWT-bench's golden_code_patch; empty for other task types).
	GoldenCodePatch string `json:"golden_code_patch,omitempty"`
	// GoldenTestPatch is, for reproduce tasks, the reference reproduction
	// test (SWT-bench's golden_test_patch, the gold prediction): the same
	// diff as Patch, which for every task type is the reference answer.
	GoldenTestPatch string `json:"golden_test_patch,omitempty"`
	// MutantPatches are, for testgen tasks, diffs against the start state
	// that each plant one bug in the implementation, touching no test file.
	// The model's tests must pass on the start state and fail with at least
	// half of them applied one at a time (TestgenKillsEnough).
	MutantPatches []string `json:"mutant_patches,omitempty"`
	// Language names the language of the repository and its tests
	// ("python", "go", ...: a dsbuild language profile), which says how
	// TestCmd's output is read. Empty means Python, as for SWE-bench
	// instances.
	Language string `json:"language,omitempty"`
}

// TestgenKillsEnough is the grading rule of testgen tasks: tests that kill
// killed of mutants mutant patches kill enough when they kill at least half
// (a task without mutants cannot be graded and kills nothing).
func TestgenKillsEnough(killed, mutants int) bool {
	return mutants > 0 && 2*killed >= mutants
}

// Validate checks that t can be exported: an instance ID, a known task type
// (or none), a difficulty in range, test files that are clean relative
// paths and a pinned image reference.
func (t TaskInstance) Validate() error {
	if strings.TrimSpace(t.InstanceID) == "" {
		return fmt.Errorf("task instance (repo %q): empty instance_id", t.Repo)
	}
	if strings.ContainsAny(t.InstanceID, "\n\x00") {
		return fmt.Errorf("task instance %q: instance_id contains a newline or NUL", t.InstanceID)
	}
	if t.TaskType != "" && !t.TaskType.Valid() {
		return fmt.Errorf("task instance %s: unknown task_type %q (want fix, reproduce, implement or testgen)", t.InstanceID, t.TaskType)
	}
	if t.Difficulty < 0 || t.Difficulty > 5 {
		return fmt.Errorf("task instance %s: difficulty %d outside 0-5", t.InstanceID, t.Difficulty)
	}
	for _, f := range t.TestFiles {
		if f == "" || strings.HasPrefix(f, "/") || path.Clean(f) != f || f == ".." || strings.HasPrefix(f, "../") {
			return fmt.Errorf("task instance %s: test_files: %q is not a clean path relative to /testbed", t.InstanceID, f)
		}
	}
	if t.Image != "" {
		if err := checkPinnedRef(t.Image); err != nil {
			return fmt.Errorf("task instance %s: image: %w", t.InstanceID, err)
		}
	}
	return nil
}

// checkPinnedRef accepts "name@sha256:<64 hex>".
func checkPinnedRef(ref string) error {
	name, digest, ok := strings.Cut(ref, "@")
	if !ok || name == "" {
		return fmt.Errorf("%q is not of the form ref@sha256:<hex>", ref)
	}
	hex, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return fmt.Errorf("%q does not end in @sha256:<64 lowercase hex>", ref)
	}
	return nil
}

// TaskRow is a task instance in the Hub encoding: the layout of each line of
// tasks/instances.jsonl and of each row of the tasks Parquet shards. Every
// SWE-bench field is a string and FAIL_TO_PASS/PASS_TO_PASS are JSON-encoded
// lists, as in SWE-bench on the Hugging Face Hub, so existing harnesses read
// it unchanged; test_files is a JSON-encoded list too. image_name repeats
// Image under SWE-smith's name.
type TaskRow struct {
	InstanceID             string `json:"instance_id" parquet:"instance_id"`
	Repo                   string `json:"repo" parquet:"repo,dict"`
	BaseCommit             string `json:"base_commit" parquet:"base_commit"`
	Patch                  string `json:"patch" parquet:"patch"`
	TestPatch              string `json:"test_patch" parquet:"test_patch"`
	ProblemStatement       string `json:"problem_statement" parquet:"problem_statement"`
	HintsText              string `json:"hints_text" parquet:"hints_text"`
	CreatedAt              string `json:"created_at" parquet:"created_at"`
	Version                string `json:"version" parquet:"version,dict"`
	FailToPass             string `json:"FAIL_TO_PASS" parquet:"FAIL_TO_PASS"`
	PassToPass             string `json:"PASS_TO_PASS" parquet:"PASS_TO_PASS"`
	EnvironmentSetupCommit string `json:"environment_setup_commit" parquet:"environment_setup_commit"`
	TaskType               string `json:"task_type" parquet:"task_type,dict"`
	Image                  string `json:"image" parquet:"image"`
	ImageName              string `json:"image_name" parquet:"image_name"`
	TestCmd                string `json:"test_cmd" parquet:"test_cmd,dict"`
	TestFiles              string `json:"test_files" parquet:"test_files"`
	SourceProject          string `json:"source_project" parquet:"source_project,dict"`
	Difficulty             int64  `json:"difficulty" parquet:"difficulty"`
	// Split is the dataset split the instance's trajectories are in; set by
	// DatasetWriter, empty (and omitted from JSON) otherwise.
	Split string `json:"split,omitempty" parquet:"split,dict"`
	// GoldenCodePatch, GoldenTestPatch and MutantPatches (a JSON-encoded
	// list of diffs) are what grading reproduce and testgen tasks needs;
	// empty for the other task types. They come after every older column
	// so that the column order of older files is kept.
	GoldenCodePatch string `json:"golden_code_patch" parquet:"golden_code_patch"`
	GoldenTestPatch string `json:"golden_test_patch" parquet:"golden_test_patch"`
	MutantPatches   string `json:"mutant_patches" parquet:"mutant_patches"`
	// Language is the instance's language ("python", "go", ...), which
	// says how test_cmd's output is read; "python" for an instance that
	// names none. Last, so the column order of older files is kept.
	Language string `json:"language" parquet:"language,dict"`
}

// Row returns t in the Hub encoding. Nil test lists encode as "[]", an
// empty Language as "python".
func (t TaskInstance) Row() (TaskRow, error) {
	f2p, err := encodeTestList(t.FailToPass)
	if err != nil {
		return TaskRow{}, fmt.Errorf("task instance %s: FAIL_TO_PASS: %w", t.InstanceID, err)
	}
	p2p, err := encodeTestList(t.PassToPass)
	if err != nil {
		return TaskRow{}, fmt.Errorf("task instance %s: PASS_TO_PASS: %w", t.InstanceID, err)
	}
	files, err := encodeTestList(t.TestFiles)
	if err != nil {
		return TaskRow{}, fmt.Errorf("task instance %s: test_files: %w", t.InstanceID, err)
	}
	mutants, err := encodeTestList(t.MutantPatches)
	if err != nil {
		return TaskRow{}, fmt.Errorf("task instance %s: mutant_patches: %w", t.InstanceID, err)
	}
	return TaskRow{
		InstanceID:             t.InstanceID,
		Repo:                   t.Repo,
		BaseCommit:             t.BaseCommit,
		Patch:                  t.Patch,
		TestPatch:              t.TestPatch,
		ProblemStatement:       t.ProblemStatement,
		HintsText:              t.HintsText,
		CreatedAt:              t.CreatedAt,
		Version:                t.Version,
		FailToPass:             f2p,
		PassToPass:             p2p,
		EnvironmentSetupCommit: t.EnvironmentSetupCommit,
		TaskType:               string(t.TaskType),
		Image:                  t.Image,
		ImageName:              t.Image,
		TestCmd:                t.TestCmd,
		TestFiles:              files,
		SourceProject:          t.SourceProject,
		Difficulty:             int64(t.Difficulty),
		GoldenCodePatch:        t.GoldenCodePatch,
		GoldenTestPatch:        t.GoldenTestPatch,
		MutantPatches:          mutants,
		Language:               cmp.Or(t.Language, "python"),
	}, nil
}

// Instance decodes a Hub-encoded row back into a typed TaskInstance.
func (r TaskRow) Instance() (TaskInstance, error) {
	f2p, err := decodeTestList(r.FailToPass)
	if err != nil {
		return TaskInstance{}, fmt.Errorf("task row %s: FAIL_TO_PASS: %w", r.InstanceID, err)
	}
	p2p, err := decodeTestList(r.PassToPass)
	if err != nil {
		return TaskInstance{}, fmt.Errorf("task row %s: PASS_TO_PASS: %w", r.InstanceID, err)
	}
	files, err := decodeTestList(r.TestFiles)
	if err != nil {
		return TaskInstance{}, fmt.Errorf("task row %s: test_files: %w", r.InstanceID, err)
	}
	if len(files) == 0 {
		files = nil // as TaskInstance leaves it when there are none
	}
	mutants, err := decodeTestList(r.MutantPatches)
	if err != nil {
		return TaskInstance{}, fmt.Errorf("task row %s: mutant_patches: %w", r.InstanceID, err)
	}
	if len(mutants) == 0 {
		mutants = nil
	}
	image := r.Image
	if image == "" {
		image = r.ImageName
	}
	return TaskInstance{
		InstanceID:             r.InstanceID,
		Repo:                   r.Repo,
		BaseCommit:             r.BaseCommit,
		Patch:                  r.Patch,
		TestPatch:              r.TestPatch,
		ProblemStatement:       r.ProblemStatement,
		HintsText:              r.HintsText,
		CreatedAt:              r.CreatedAt,
		Version:                r.Version,
		FailToPass:             f2p,
		PassToPass:             p2p,
		EnvironmentSetupCommit: r.EnvironmentSetupCommit,
		TaskType:               TaskType(r.TaskType),
		Image:                  image,
		TestCmd:                r.TestCmd,
		TestFiles:              files,
		SourceProject:          r.SourceProject,
		Difficulty:             int(r.Difficulty),
		GoldenCodePatch:        r.GoldenCodePatch,
		GoldenTestPatch:        r.GoldenTestPatch,
		MutantPatches:          mutants,
		Language:               r.Language,
	}, nil
}

// SWEBenchJSON encodes t as one SWE-bench-style JSON object (Hub encoding:
// all SWE-bench fields strings, test lists JSON-encoded), without a
// trailing newline, with keys in the fixed TaskRow field order.
func (t TaskInstance) SWEBenchJSON() ([]byte, error) {
	row, err := t.Row()
	if err != nil {
		return nil, err
	}
	return marshalNoEscape(row)
}

// ParseSWEBenchJSON decodes one SWE-bench-style JSON object. It accepts the
// Hub encoding (test lists as JSON-encoded strings) and plain JSON lists,
// and a "difficulty" given as a number or a numeric string (other strings,
// such as SWE-bench Verified's time labels, give difficulty 0).
func ParseSWEBenchJSON(data []byte) (TaskInstance, error) {
	var raw struct {
		TaskRow
		FailToPass json.RawMessage `json:"FAIL_TO_PASS"`
		PassToPass json.RawMessage `json:"PASS_TO_PASS"`
		TestFiles  json.RawMessage `json:"test_files"`
		Mutants    json.RawMessage `json:"mutant_patches"`
		Difficulty json.RawMessage `json:"difficulty"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return TaskInstance{}, fmt.Errorf("SWE-bench JSON: %w", err)
	}
	row := raw.TaskRow
	for _, f := range []struct {
		name string
		in   json.RawMessage
		out  *string
	}{{"FAIL_TO_PASS", raw.FailToPass, &row.FailToPass}, {"PASS_TO_PASS", raw.PassToPass, &row.PassToPass}, {"test_files", raw.TestFiles, &row.TestFiles}, {"mutant_patches", raw.Mutants, &row.MutantPatches}} {
		in := bytes.TrimSpace(f.in)
		switch {
		case len(in) == 0 || string(in) == "null":
			*f.out = "[]"
		case in[0] == '"':
			if err := json.Unmarshal(in, f.out); err != nil {
				return TaskInstance{}, fmt.Errorf("SWE-bench JSON %s: %s: %w", row.InstanceID, f.name, err)
			}
		default:
			*f.out = string(in)
		}
	}
	if d := bytes.TrimSpace(raw.Difficulty); len(d) > 0 && string(d) != "null" {
		if d[0] == '"' {
			// SWE-bench Verified uses labels such as "15 min - 1 hour";
			// only a numeric string maps onto dsbuild's 1-5 scale.
			var s string
			if err := json.Unmarshal(d, &s); err != nil {
				return TaskInstance{}, fmt.Errorf("SWE-bench JSON %s: difficulty: %w", row.InstanceID, err)
			}
			row.Difficulty, _ = strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		} else if n, err := strconv.ParseInt(string(d), 10, 64); err == nil {
			row.Difficulty = n
		} else {
			return TaskInstance{}, fmt.Errorf("SWE-bench JSON %s: difficulty %s is not an integer", row.InstanceID, d)
		}
	}
	return row.Instance()
}

func encodeTestList(tests []string) (string, error) {
	if tests == nil {
		tests = []string{}
	}
	b, err := marshalNoEscape(tests)
	return string(b), err
}

func decodeTestList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return []string{}, nil
	}
	var tests []string
	if err := json.Unmarshal([]byte(s), &tests); err != nil {
		return nil, fmt.Errorf("%q is not a JSON list of strings: %w", truncate(s, 80), err)
	}
	if tests == nil {
		tests = []string{}
	}
	return tests, nil
}

// marshalNoEscape is json.Marshal without HTML escaping (so "<" stays "<",
// as Python's json.dumps writes it) and without a trailing newline.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
