package stages

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
)

// TestSpec returns b's task instance with the test specification an outside
// harness needs to grade it without dsbuild, in the conventions of SWE-bench
// and SWE-smith:
//
//   - test_cmd: the complete shell command run with `sh -c` in /testbed:
//     for Python the bundle's test command followed by the test files that
//     hold the FAIL_TO_PASS and PASS_TO_PASS tests (SWE-bench's "test
//     directives", lang.Profile.TestFiles); for other languages the
//     bundle's test command as it is (see agent.TestArgs);
//   - test_files: every file of the start tree under the bundle's protected
//     prefixes, which grading restores to its start state before running
//     test_cmd (as SWE-bench checks the test patch's files out at
//     base_commit), so a patch that edits tests cannot make them pass.
//
// Reproduce and testgen tasks are answered with tests: nothing is restored
// (test_files is empty) and test_cmd is the bare test command (the whole
// suite; for Python a grader appends the test files the model's patch adds
// or changes, for other languages it runs the language's own command
// narrowed to them, agent.RunTestFiles). What grading them needs besides
// the image is in the instance:
//
//   - reproduce: golden_code_patch, the fix (Fixed against Start), and
//     golden_test_patch, the reference test (the same diff as patch);
//   - testgen: mutant_patches, one diff against Start per mutant.
//
// Both kinds of patch touch no test file (an error otherwise: the grader
// overlays the model's tests on them).
func TestSpec(store *cache.Store, b TaskBundle) (schema.TaskInstance, error) {
	inst := b.Instance
	prof, err := lang.Get(inst.Language)
	if err != nil {
		return schema.TaskInstance{}, fmt.Errorf("task %s: %w", inst.InstanceID, err)
	}
	argv := b.TestCmd
	if len(argv) == 0 {
		argv = prof.TestCommand(nil)
	}
	switch inst.TaskType {
	case schema.TaskReproduce, schema.TaskTestgen:
		inst.TestCmd = shellJoin(argv)
		inst.TestFiles = nil
		return inst, gradingPatches(store, prof, b, &inst)
	}
	files, err := protectedFiles(store, b.Start, b.Protected)
	if err != nil {
		return schema.TaskInstance{}, fmt.Errorf("task %s: test files: %w", inst.InstanceID, err)
	}
	inst.TestFiles = files
	directives := prof.TestFiles(append(slices.Clone(inst.FailToPass), inst.PassToPass...), nil)
	inst.TestCmd = shellJoin(append(slices.Clone(argv), agent.TestArgs(prof, directives)...))
	return inst, nil
}

// protectedFiles lists the regular files and symlinks of tree under the
// protected prefixes, sorted.
func protectedFiles(store *cache.Store, tree cache.Digest, protected []string) ([]string, error) {
	if len(protected) == 0 || tree.IsZero() {
		return nil, nil
	}
	all, err := store.Files(tree)
	if err != nil {
		return nil, err
	}
	var out []string
	for p, e := range all {
		if e.Type != cache.TypeDir && patch.Selected(p, protected) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// gradingPatches fills in what grading a reproduce or testgen instance
// needs: the fix, or the mutants, as diffs against the start tree.
func gradingPatches(store *cache.Store, prof lang.Profile, b TaskBundle, inst *schema.TaskInstance) error {
	sourceDiff := func(what string, to cache.Digest) (string, error) {
		d, err := patch.Diff(store, b.Start, to)
		if err != nil {
			return "", fmt.Errorf("task %s: %s: %w", inst.InstanceID, what, err)
		}
		paths, err := patch.Paths(d)
		if err != nil {
			return "", fmt.Errorf("task %s: %s: %w", inst.InstanceID, what, err)
		}
		for _, p := range paths {
			if isTestFile(prof, p, b.Protected) {
				return "", fmt.Errorf("task %s: %s changes the test file %s; it must change code only", inst.InstanceID, what, p)
			}
		}
		if strings.TrimSpace(d) == "" {
			return "", fmt.Errorf("task %s: %s is empty", inst.InstanceID, what)
		}
		return d, nil
	}
	switch inst.TaskType {
	case schema.TaskReproduce:
		if b.Fixed.IsZero() {
			return fmt.Errorf("task %s: a reproduce task bundle without the fixed tree cannot be graded", inst.InstanceID)
		}
		fix, err := sourceDiff("the fix", b.Fixed)
		if err != nil {
			return err
		}
		inst.GoldenCodePatch, inst.GoldenTestPatch = fix, inst.Patch
	case schema.TaskTestgen:
		if len(b.Mutants) == 0 {
			return fmt.Errorf("task %s: a testgen task bundle without mutants cannot be graded", inst.InstanceID)
		}
		inst.MutantPatches = make([]string, len(b.Mutants))
		for i, m := range b.Mutants {
			d, err := sourceDiff(fmt.Sprintf("mutant %d", i), m)
			if err != nil {
				return err
			}
			inst.MutantPatches[i] = d
		}
	}
	return nil
}
