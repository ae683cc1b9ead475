package stages

import (
	"context"
	"fmt"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
)

// gradeRollout grades a rollout's final tree by what its task type asks:
//
//   - fix, implement: the task's FAIL_TO_PASS and PASS_TO_PASS tests pass
//     with the protected (test) paths restored (agent.Grade);
//   - reproduce: the tests the agent wrote fail on the buggy code (Start)
//     and all pass on the fixed code (Fixed);
//   - testgen: the tests the agent wrote all pass on the implementation
//     (Start) and fail on at least half of the mutants the reference tests
//     catch; the reward is the fraction of mutants caught.
func gradeRollout(ctx context.Context, env agent.Env, b TaskBundle, task agent.Task, final cache.Digest) (*agent.Grading, error) {
	switch b.Instance.TaskType {
	case schema.TaskReproduce, schema.TaskTestgen:
		prof, err := lang.Get(task.Language)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", task.InstanceID, err)
		}
		if b.Instance.TaskType == schema.TaskReproduce {
			return gradeReproduce(ctx, env, prof, b, task, final)
		}
		return gradeTestgen(ctx, env, prof, b, task, final)
	}
	return agent.Grade(ctx, env, task, final)
}

// agentTests returns the test files the agent added or changed (a test
// file of the task's language or of a SWE-Playground project, or a path
// under a protected prefix; for Python only .py files) as tree entries,
// and the sorted paths of those the test runner runs (agent.TestTargets).
func agentTests(store *cache.Store, prof lang.Profile, b TaskBundle, final cache.Digest) (map[string]*cache.TreeEntry, []string, error) {
	before, err := store.Files(b.Start)
	if err != nil {
		return nil, nil, err
	}
	after, err := store.Files(final)
	if err != nil {
		return nil, nil, err
	}
	changes := map[string]*cache.TreeEntry{}
	var paths []string
	for p, e := range after {
		if !isTestFile(prof, p, b.Protected) || e.Type != cache.TypeFile || (prof.Name() == lang.Python && !strings.HasSuffix(p, ".py")) {
			continue
		}
		if old, ok := before[p]; ok && old.Digest == e.Digest {
			continue
		}
		e := e
		changes[p] = &e
		paths = append(paths, p)
	}
	return changes, agent.TestTargets(prof, paths), nil
}

// isTestFile reports whether p is test code of a task: a test file of its
// language or (Python) of a SWE-Playground project (isTestPath), or a path
// under the task's protected prefixes.
func isTestFile(prof lang.Profile, p string, protected []string) bool {
	return (prof.Name() == lang.Python && isTestPath(p)) || prof.IsTestFile(p) || (len(protected) > 0 && patch.Selected(p, protected))
}

// runAgentTests overlays the agent's test files on tree and runs those
// of files (agent.RunTestFiles: the task's test command narrowed to them).
func runAgentTests(ctx context.Context, env agent.Env, prof lang.Profile, task agent.Task, tree cache.Digest, changes map[string]*cache.TreeEntry, files []string) (*agent.TestReport, error) {
	t, err := patch.Edit(env.Store, tree, changes)
	if err != nil {
		return nil, err
	}
	return agent.RunTestFiles(ctx, env, prof, task.Image, t, task.TestCmd, files)
}

func allPassed(r *agent.TestReport) bool {
	if len(r.Status) == 0 || len(r.CollectionErrors) > 0 || r.LimitHit != "" {
		return false
	}
	for _, st := range r.Status {
		if st != lang.StatusPassed {
			return false
		}
	}
	return true
}

func anyFailed(r *agent.TestReport) bool {
	if r.LimitHit != "" || len(r.CollectionErrors) > 0 {
		return false // a test that cannot run reproduces nothing
	}
	for _, st := range r.Status {
		if st == lang.StatusFailed || st == lang.StatusError {
			return true
		}
	}
	return false
}

func gradeReproduce(ctx context.Context, env agent.Env, prof lang.Profile, b TaskBundle, task agent.Task, final cache.Digest) (*agent.Grading, error) {
	if b.Fixed.IsZero() {
		return nil, fmt.Errorf("reproduce task %s has no fixed tree to grade against", b.Instance.InstanceID)
	}
	g, err := baseGrading(env.Store, b, final)
	if err != nil {
		return nil, err
	}
	changes, files, err := agentTests(env.Store, prof, b, final)
	if err != nil || len(files) == 0 {
		return g, err // no test written: unresolved
	}
	onBuggy, err := runAgentTests(ctx, env, prof, task, b.Start, changes, files)
	if err != nil {
		return nil, err
	}
	onFixed, err := runAgentTests(ctx, env, prof, task, b.Fixed, changes, files)
	if err != nil {
		return nil, err
	}
	g.Status, g.Report = onFixed.Status, onFixed
	fails, passes := anyFailed(onBuggy), allPassed(onFixed)
	g.Resolved = fails && passes
	g.Reward = (boolReward(fails) + boolReward(passes)) / 2
	return g, nil
}

func gradeTestgen(ctx context.Context, env agent.Env, prof lang.Profile, b TaskBundle, task agent.Task, final cache.Digest) (*agent.Grading, error) {
	g, err := baseGrading(env.Store, b, final)
	if err != nil {
		return nil, err
	}
	changes, files, err := agentTests(env.Store, prof, b, final)
	if err != nil || len(files) == 0 {
		return g, err
	}
	onImpl, err := runAgentTests(ctx, env, prof, task, b.Start, changes, files)
	if err != nil {
		return nil, err
	}
	g.Status, g.Report = onImpl.Status, onImpl
	if !allPassed(onImpl) {
		return g, nil // tests that fail on a correct implementation are wrong
	}
	caught := 0
	for _, m := range b.Mutants {
		r, err := runAgentTests(ctx, env, prof, task, m, changes, files)
		if err != nil {
			return nil, err
		}
		if r.ExitCode != 0 || r.LimitHit != "" {
			caught++
		}
	}
	// The rule dsbuild eval grades exported testgen instances by: a task
	// without mutants cannot be graded and is never resolved.
	g.Resolved = schema.TestgenKillsEnough(caught, len(b.Mutants))
	if len(b.Mutants) > 0 {
		g.Reward = float64(caught) / float64(len(b.Mutants))
	}
	return g, nil
}

// baseGrading is an unresolved grading carrying the rollout's patch.
func baseGrading(store *cache.Store, b TaskBundle, final cache.Digest) (*agent.Grading, error) {
	p, err := patch.Diff(store, b.Start, final)
	if err != nil {
		return nil, err
	}
	return &agent.Grading{Patch: p, Tree: final, Status: map[string]string{}}, nil
}

func boolReward(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
