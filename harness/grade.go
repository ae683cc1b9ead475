package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
)

// Outcomes of one prediction (InstanceReport.Status).
const (
	Resolved   = "resolved"
	Unresolved = "unresolved"
	EmptyPatch = "empty_patch"
	Error      = "error"
)

// FuzzyApply is the command a patch that does not apply exactly is retried
// with, in a sandbox from the instance's image (SWE-bench's last resort
// after `git apply`). Rejects are discarded: a hunk that fails fails the
// command.
var FuzzyApply = []string{"patch", "--batch", "--fuzz=5", "-p1", "--no-backup-if-mismatch", "--reject-file=-"}

// Applied-with values in InstanceReport.AppliedWith.
const (
	AppliedExactly = "exact"
	AppliedFuzzily = "patch --fuzz=5"
)

// TestsOutcome lists, for one group of tests, those that passed and those
// that did not (SWE-bench's tests_status entries).
type TestsOutcome struct {
	Success []string `json:"success"`
	Failure []string `json:"failure"`
}

// InstanceReport is the verdict on one prediction: SWE-bench's per-instance
// report fields (patch_is_None, patch_exists, patch_successfully_applied,
// resolved, tests_status) and dsbuild's own.
type InstanceReport struct {
	PatchIsNone              bool                    `json:"patch_is_None"`
	PatchExists              bool                    `json:"patch_exists"`
	PatchSuccessfullyApplied bool                    `json:"patch_successfully_applied"`
	Resolved                 bool                    `json:"resolved"`
	TestsStatus              map[string]TestsOutcome `json:"tests_status,omitempty"`

	// Status is resolved, unresolved, empty_patch or error.
	Status string `json:"status"`
	// TaskType is the instance's task type.
	TaskType string `json:"task_type"`
	// Error says why the prediction could not be graded.
	Error string `json:"error,omitempty"`
	// AppliedWith is how the patch went in: exact or patch --fuzz=5.
	AppliedWith string `json:"applied_with,omitempty"`
	// TouchedTestFiles are the files the patch changed that grading
	// restores before the tests run (agent.IsProtected: the instance's
	// test_files and every test file of its language, for Python also
	// every conftest.py and pytest.ini), so a patch cannot make tests pass
	// by editing or adding them.
	TouchedTestFiles []string `json:"touched_test_files,omitempty"`
	// TestExitCode is the test command's exit status.
	TestExitCode int `json:"test_exit_code"`
	// LimitHit names the sandbox limit the test run hit, if any.
	LimitHit string `json:"limit_hit,omitempty"`
	// ModelTestFiles are, for reproduce and testgen tasks, the test files
	// the patch adds or changes: the only part of the patch that is
	// graded, and the tests that run.
	ModelTestFiles []string `json:"model_test_files,omitempty"`
	// Mutants and MutantsKilled are, for testgen tasks, how many mutant
	// patches the instance has and how many of them the model's tests
	// caught.
	Mutants       int `json:"mutants,omitempty"`
	MutantsKilled int `json:"mutants_killed,omitempty"`
}

// Options configure Grade.
type Options struct {
	// Jobs is the most predictions graded at once (at least 1).
	Jobs int
	// Limits bound each sandbox run; zero fields take the sandbox defaults.
	Limits sandbox.Limits
}

// Grader grades predictions against one dataset with one store and
// sandbox.
type Grader struct {
	data    *Dataset
	env     agent.Env
	images  *oci.Builder
	options Options
}

// NewGrader returns a Grader for d that keeps imported images, trees and
// sandbox runs in store (runs are memoised by content there, so grading a
// prediction again costs no test run).
func NewGrader(store *cache.Store, d *Dataset, opts Options) (*Grader, error) {
	if opts.Jobs < 1 {
		opts.Jobs = 1
	}
	runner, err := sandbox.New(store, sandbox.Options{Jobs: min(opts.Jobs, sandbox.MaxJobs)})
	if err != nil {
		return nil, err
	}
	return &Grader{
		data:    d,
		env:     agent.Env{Store: store, Sandbox: runner, SandboxLimits: opts.Limits},
		images:  oci.NewBuilder(store, oci.Options{Offline: true}),
		options: opts,
	}, nil
}

// GradeAll grades preds, opts.Jobs at a time, and returns each verdict by
// instance id. Failures to grade one prediction are in its report; the
// error is for a cancelled ctx only.
func (g *Grader) GradeAll(ctx context.Context, preds []Prediction) (map[string]*InstanceReport, error) {
	out := make(map[string]*InstanceReport, len(preds))
	var mu sync.Mutex
	work := make(chan Prediction)
	var wg sync.WaitGroup
	for range min(g.options.Jobs, max(len(preds), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				r := g.Grade(ctx, p)
				mu.Lock()
				out[p.InstanceID] = r
				mu.Unlock()
			}
		}()
	}
	for _, p := range preds {
		select {
		case work <- p:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	return out, ctx.Err()
}

// Grade grades one prediction, whose instance must be in the dataset:
//
//  1. an empty or null patch is empty_patch, with nothing run;
//  2. the instance's image is imported from the dataset's OCI layout and
//     its /testbed read as the start tree;
//  3. the patch is applied exactly (as `git apply` does), else with
//     FuzzyApply in a sandbox from the image; if neither works it is an
//     error;
//  4. the instance's test_files are restored to their start state, and
//     those the patch changed are reported;
//  5. test_cmd runs with `sh -c` in /testbed, its log is parsed, and the
//     instance is resolved when every FAIL_TO_PASS and PASS_TO_PASS test
//     PASSED (and there is at least one).
//
// Reproduce and testgen tasks are answered with tests, and graded from
// step 3 on by what the tests do (gradeReproduce, gradeTestgen).
func (g *Grader) Grade(ctx context.Context, p Prediction) *InstanceReport {
	inst := g.data.Instances[p.InstanceID]
	r := &InstanceReport{PatchIsNone: p.Patch == nil, TaskType: string(inst.TaskType)}
	if p.Patch == nil || strings.TrimSpace(*p.Patch) == "" {
		r.Status = EmptyPatch
		return r
	}
	r.PatchExists = true
	if err := g.grade(ctx, inst, *p.Patch, r); err != nil {
		r.Status, r.Error, r.Resolved = Error, err.Error(), false
	}
	return r
}

func (g *Grader) grade(ctx context.Context, inst schema.TaskInstance, diff string, r *InstanceReport) error {
	if strings.TrimSpace(inst.TestCmd) == "" {
		return fmt.Errorf("instance has no test_cmd")
	}
	prof, err := lang.Get(inst.Language)
	if err != nil {
		return err
	}
	img, err := g.image(ctx, inst.InstanceID)
	if err != nil {
		return err
	}
	start, err := oci.TreeAt(ctx, g.env.Store, img, agent.Workdir)
	if err != nil {
		return fmt.Errorf("reading %s from the image: %w", agent.Workdir, err)
	}
	patched, how, err := g.apply(ctx, img, start, diff)
	if err != nil {
		return err
	}
	r.PatchSuccessfullyApplied, r.AppliedWith = true, how
	switch inst.TaskType {
	case schema.TaskReproduce:
		return g.gradeReproduce(ctx, prof, inst, img, start, patched, r)
	case schema.TaskTestgen:
		return g.gradeTestgen(ctx, prof, inst, img, start, patched, r)
	}
	if r.TouchedTestFiles, err = agent.ProtectedChanges(g.env.Store, prof, start, patched, inst.TestFiles); err != nil {
		return err
	}
	restored, err := agent.RestoreProtected(g.env.Store, prof, start, patched, inst.TestFiles)
	if err != nil {
		return fmt.Errorf("restoring test files: %w", err)
	}
	rep, err := agent.RunTests(ctx, g.env, prof, img, restored, []string{"sh", "-c", inst.TestCmd}, nil)
	if err != nil {
		return err
	}
	r.TestExitCode, r.LimitHit = rep.ExitCode, rep.LimitHit
	f2p, p2p := outcome(inst.FailToPass, rep.Status), outcome(inst.PassToPass, rep.Status)
	r.TestsStatus = map[string]TestsOutcome{
		"FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p,
		"FAIL_TO_FAIL": {Success: []string{}, Failure: []string{}}, "PASS_TO_FAIL": {Success: []string{}, Failure: []string{}},
	}
	r.Resolved = len(f2p.Failure) == 0 && len(p2p.Failure) == 0 && len(f2p.Success)+len(p2p.Success) > 0
	r.Status = Unresolved
	if r.Resolved {
		r.Status = Resolved
	}
	return nil
}

// image imports the instance's image from the dataset's OCI layout (once
// per image; the import is memoised in the store) and checks it is the
// image build.json names.
func (g *Grader) image(ctx context.Context, id string) (schema.Image, error) {
	ei, ok := g.data.Images[id]
	if !ok {
		return schema.Image{}, fmt.Errorf("image missing: %s lists no image for the instance", stages.ExportBuildFile)
	}
	layout := filepath.Join(g.data.Dir, stages.ExportImagesDir)
	img, err := g.images.Base(ctx, oci.BaseSpec{Layout: layout + ":" + ei.Tag})
	if err != nil {
		return schema.Image{}, fmt.Errorf("image missing: tag %s of %s: %w", ei.Tag, layout, err)
	}
	if ei.Digest != "" && img.Digest != ei.Digest {
		return schema.Image{}, fmt.Errorf("image %s in %s is %s, not the %s %s names", ei.Tag, layout, img.Digest, ei.Digest, stages.ExportBuildFile)
	}
	return img, nil
}

// apply applies diff to start exactly, else with FuzzyApply in a sandbox
// from img, and says which way it went in.
func (g *Grader) apply(ctx context.Context, img schema.Image, start cache.Digest, diff string) (cache.Digest, string, error) {
	exact, exactErr := patch.Apply(g.env.Store, start, diff)
	if exactErr == nil {
		return exact, AppliedExactly, nil
	}
	res, err := g.env.Sandbox.Run(ctx, sandbox.Spec{
		Image: img, Workspace: start, Argv: FuzzyApply, Env: agent.BashEnv,
		Dir: agent.Workdir, Limits: g.env.SandboxLimits, Stdin: []byte(diff),
	})
	if err != nil {
		return cache.Digest{}, "", err
	}
	if res.ExitCode != 0 || res.LimitHit != "" || res.Output.IsZero() {
		why := strings.TrimSpace(string(res.Stdout) + string(res.Stderr))
		if res.ExitCode == 127 {
			why = "the image has no `patch` program"
		}
		return cache.Digest{}, "", fmt.Errorf("patch does not apply: %v; %s (exit %d): %s", exactErr, strings.Join(FuzzyApply, " "), res.ExitCode, firstLines(why, 5))
	}
	return res.Output, AppliedFuzzily, nil
}

// outcome sorts tests into those whose status is PASSED and the rest
// (failed, errored, skipped or missing from the log), as SWE-bench does.
func outcome(tests []string, status map[string]string) TestsOutcome {
	o := TestsOutcome{Success: []string{}, Failure: []string{}}
	for _, t := range tests {
		if status[t] == lang.StatusPassed {
			o.Success = append(o.Success, t)
		} else {
			o.Failure = append(o.Failure, t)
		}
	}
	return o
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}
