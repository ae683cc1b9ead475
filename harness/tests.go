package harness

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
)

// IsTestFile reports whether a path relative to /testbed is a Python test
// file in the sense reproduce and testgen grading uses for Python: a .py
// file under tests/, or named test_*.py, *_test.py or conftest.py
// anywhere. (Python SWE-Playground projects keep every test under tests/;
// other languages use their profile's test-file rule, see modelTests.)
func IsTestFile(p string) bool {
	if !strings.HasSuffix(p, ".py") {
		return false
	}
	base := path.Base(p)
	return strings.HasPrefix(p, "tests/") || strings.HasPrefix(base, "test_") || strings.HasSuffix(base, "_test.py") || base == "conftest.py"
}

// isModelTestFile reports whether p is a test file of the instance's
// language in the sense of modelTests: IsTestFile for Python, the
// profile's IsTestFile otherwise.
func isModelTestFile(prof lang.Profile, p string) bool {
	if prof.Name() == lang.Python {
		return IsTestFile(p)
	}
	return prof.IsTestFile(p)
}

// modelTests returns the test files (isModelTestFile) patched adds or
// changes against start, as tree entries, and the sorted paths of those
// the language's test runner runs (agent.TestTargets). The rest of the
// patch is not graded: a model answering with tests cannot pass by
// changing the code under test.
func modelTests(store *cache.Store, prof lang.Profile, start, patched cache.Digest) (map[string]*cache.TreeEntry, []string, error) {
	before, err := store.Files(start)
	if err != nil {
		return nil, nil, err
	}
	after, err := store.Files(patched)
	if err != nil {
		return nil, nil, err
	}
	changes := map[string]*cache.TreeEntry{}
	var changed []string
	for p, e := range after {
		if e.Type != cache.TypeFile || !isModelTestFile(prof, p) {
			continue
		}
		if old, ok := before[p]; ok && old == e {
			continue
		}
		e := e
		changes[p] = &e
		changed = append(changed, p)
	}
	return changes, agent.TestTargets(prof, changed), nil
}

// runModelTests overlays the model's test files on tree and runs only the
// given test files: for Python test_cmd with them appended (as `sh -c
// 'TEST_CMD "$@"' sh FILE...`), for other languages, whose test_cmd takes
// no arguments, the profile's test command narrowed to them
// (agent.RunTestFiles).
func (g *Grader) runModelTests(ctx context.Context, prof lang.Profile, inst schema.TaskInstance, img schema.Image, tree cache.Digest, changes map[string]*cache.TreeEntry, files []string) (*agent.TestReport, error) {
	t, err := patch.Edit(g.env.Store, tree, changes)
	if err != nil {
		return nil, err
	}
	return agent.RunTestFiles(ctx, g.env, prof, img, t, []string{"sh", "-c", inst.TestCmd + ` "$@"`, "sh"}, files)
}

// clean reports whether a run says something about its tests: it hit no
// limit and every test file was collected.
func clean(r *agent.TestReport) bool {
	return r.LimitHit == "" && len(r.CollectionErrors) == 0
}

// gradeReproduce grades a reproduce (SWT-bench style) prediction: the
// test files the patch adds or changes run on the start state (the buggy
// code) and on the start state with golden_code_patch (the fix) applied.
// Resolved when, with neither run hitting a limit or failing to collect,
// at least one of the tests fails before the fix and all of them pass
// after it. tests_status sorts the tests as SWT-bench does: FAIL_TO_PASS,
// PASS_TO_PASS, FAIL_TO_FAIL, PASS_TO_FAIL (each in success when it
// counts for the prediction, in failure when it counts against it).
func (g *Grader) gradeReproduce(ctx context.Context, prof lang.Profile, inst schema.TaskInstance, img schema.Image, start, patched cache.Digest, r *InstanceReport) error {
	if strings.TrimSpace(inst.GoldenCodePatch) == "" {
		return fmt.Errorf("reproduce instance has no golden_code_patch (the fix its tests are graded against)")
	}
	fixed, err := patch.Apply(g.env.Store, start, inst.GoldenCodePatch)
	if err != nil {
		return fmt.Errorf("golden_code_patch does not apply to the image's %s: %w", agent.Workdir, err)
	}
	changes, files, err := modelTests(g.env.Store, prof, start, patched)
	if err != nil {
		return err
	}
	r.ModelTestFiles = files
	r.Status = Unresolved
	r.TestsStatus = swtStatus(nil, nil)
	if len(files) == 0 {
		return nil // no test written
	}
	before, err := g.runModelTests(ctx, prof, inst, img, start, changes, files)
	if err != nil {
		return err
	}
	after, err := g.runModelTests(ctx, prof, inst, img, fixed, changes, files)
	if err != nil {
		return err
	}
	r.TestExitCode, r.LimitHit = after.ExitCode, firstNonEmpty(before.LimitHit, after.LimitHit)
	r.TestsStatus = swtStatus(before.Status, after.Status)
	f2p := r.TestsStatus["FAIL_TO_PASS"].Success
	bad := len(r.TestsStatus["FAIL_TO_FAIL"].Failure) + len(r.TestsStatus["PASS_TO_FAIL"].Failure)
	r.Resolved = clean(before) && clean(after) && len(f2p) > 0 && bad == 0
	if r.Resolved {
		r.Status = Resolved
	}
	return nil
}

// swtStatus sorts the tests of two runs by their status before and after
// the fix; a test missing from a run did not pass in it.
func swtStatus(before, after map[string]string) map[string]TestsOutcome {
	out := map[string]TestsOutcome{}
	for _, k := range []string{"FAIL_TO_PASS", "PASS_TO_PASS", "FAIL_TO_FAIL", "PASS_TO_FAIL"} {
		out[k] = TestsOutcome{Success: []string{}, Failure: []string{}}
	}
	ids := map[string]bool{}
	for id := range before {
		ids[id] = true
	}
	for id := range after {
		ids[id] = true
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	for _, id := range sorted {
		passedBefore, passedAfter := before[id] == lang.StatusPassed, after[id] == lang.StatusPassed
		switch {
		case !passedBefore && passedAfter:
			o := out["FAIL_TO_PASS"]
			o.Success = append(o.Success, id)
			out["FAIL_TO_PASS"] = o
		case passedBefore && passedAfter:
			o := out["PASS_TO_PASS"]
			o.Success = append(o.Success, id)
			out["PASS_TO_PASS"] = o
		case !passedBefore:
			o := out["FAIL_TO_FAIL"]
			o.Failure = append(o.Failure, id)
			out["FAIL_TO_FAIL"] = o
		default:
			o := out["PASS_TO_FAIL"]
			o.Failure = append(o.Failure, id)
			out["PASS_TO_FAIL"] = o
		}
	}
	return out
}

// gradeTestgen grades a testgen prediction: the test files the patch adds
// or changes run on the start state (the reference implementation), where
// every one of their tests must pass, then on the start state with each of
// mutant_patches applied, where a run that fails (or hits a limit) kills
// the mutant. Resolved when the tests pass on the implementation and kill
// enough mutants (schema.TestgenKillsEnough: at least half).
// tests_status.PASS_TO_PASS holds the tests' outcome on the implementation.
func (g *Grader) gradeTestgen(ctx context.Context, prof lang.Profile, inst schema.TaskInstance, img schema.Image, start, patched cache.Digest, r *InstanceReport) error {
	if len(inst.MutantPatches) == 0 {
		return fmt.Errorf("testgen instance has no mutant_patches (the bugs its tests are graded against)")
	}
	mutants := make([]cache.Digest, len(inst.MutantPatches))
	for i, m := range inst.MutantPatches {
		t, err := patch.Apply(g.env.Store, start, m)
		if err != nil {
			return fmt.Errorf("mutant_patches[%d] does not apply to the image's %s: %w", i, agent.Workdir, err)
		}
		mutants[i] = t
	}
	r.Mutants = len(mutants)
	changes, files, err := modelTests(g.env.Store, prof, start, patched)
	if err != nil {
		return err
	}
	r.ModelTestFiles = files
	r.Status = Unresolved
	if len(files) == 0 {
		return nil
	}
	onImpl, err := g.runModelTests(ctx, prof, inst, img, start, changes, files)
	if err != nil {
		return err
	}
	r.TestExitCode, r.LimitHit = onImpl.ExitCode, onImpl.LimitHit
	var ids []string
	for id := range onImpl.Status {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	r.TestsStatus = map[string]TestsOutcome{"PASS_TO_PASS": outcome(ids, onImpl.Status)}
	if !clean(onImpl) || len(ids) == 0 || onImpl.ExitCode != 0 || len(r.TestsStatus["PASS_TO_PASS"].Failure) > 0 {
		return nil // tests that fail on the correct implementation are wrong
	}
	for _, m := range mutants {
		rep, err := g.runModelTests(ctx, prof, inst, img, m, changes, files)
		if err != nil {
			return err
		}
		if rep.ExitCode != 0 || rep.LimitHit != "" {
			r.MutantsKilled++
		}
	}
	r.Resolved = schema.TestgenKillsEnough(r.MutantsKilled, r.Mutants)
	if r.Resolved {
		r.Status = Resolved
	}
	return nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
