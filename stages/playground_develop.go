package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/schema"
)

func init() {
	build.Register(&build.Kind{
		Name: "develop", Version: withLang("5"), Pool: "llm",
		Doc: "builds a scaffolded project (foreach PlaygroundScaffold) task by task in dependency order: a test agent writes the task's tests (kept when they are collected and fail), an implementation agent makes them and every earlier task's tests pass, and may dispute a test it holds wrong (the test agent reviews it, a bounded number of times); the agents' scratch files are dropped, failed tasks are recorded and their dependents skipped, and the trajectories pass the keep policy: a PlaygroundProject",
		Params: func() any {
			return &DevelopParams{MaxTestTries: 2, MaxImplTries: 3, MaxDisputes: 1, Keep: DefaultKeepPolicy()}
		},
		Sections: []string{SectionModels, SectionEnvironments, SectionSandbox, SectionSalt},
		Assets:   []*build.Asset{playgroundPrompts},
		Run:      runDevelop,
	})
	build.Register(&build.Kind{
		Name: "develop_trajectories", Version: "1",
		Doc: "the accepted test-writing (testgen) and implementation (implement) trajectories of a developed project (foreach PlaygroundProject): a collection of schema.Trajectory",
		Run: runDevelopTrajectories,
	})
}

// DevelopParams are the params of the develop kind.
type DevelopParams struct {
	// Model is the profile both agents use; TestModel overrides it for the
	// test-writing agent.
	Model     string `yaml:"model" json:"model"`
	TestModel string `yaml:"test_model" json:"test_model,omitempty"`
	// MaxTestTries and MaxImplTries bound the attempts per task of each
	// agent; a task out of tries is recorded as failed.
	MaxTestTries int `yaml:"max_test_tries" json:"max_test_tries"`
	MaxImplTries int `yaml:"max_impl_tries" json:"max_impl_tries"`
	// MaxDisputes bounds, per task, the tests the implementation agent may
	// send back with dispute_test; each dispute has the test agent revise
	// the tests with the dispute in view, then the implementation goes on.
	// A disputed run does not use up an implementation try. 0 offers no
	// dispute tool.
	MaxDisputes int `yaml:"max_disputes" json:"max_disputes"`
	// Limits bound each agent run.
	Limits agent.Limits `yaml:"limits" json:"limits"`
	// Keep filters the test-writing and implementation trajectories the
	// project carries to develop_trajectories, as rollouts are filtered.
	Keep KeepPolicy `yaml:"keep" json:"keep"`
}

// Validate checks the params.
func (p *DevelopParams) Validate() error {
	if p.Model == "" {
		return errors.New("model: name a profile of the models: section")
	}
	if p.MaxTestTries < 1 || p.MaxImplTries < 1 {
		return errors.New("max_test_tries and max_impl_tries must be at least 1")
	}
	if p.MaxDisputes < 0 || p.MaxDisputes > 10 {
		return errors.New("max_disputes must be between 0 and 10")
	}
	return nil
}

// taskTestFile is where the tests of task id of a Python project go.
func taskTestFile(id string) string { return pgLang{prof: pythonProfile}.testFile("", id) }

type developer struct {
	c          *build.Call
	p          *DevelopParams
	env        agent.Env
	lang       pgLang
	base       schema.Image
	plan       PlaygroundPlan
	testPolicy func(try int) agent.Policy
	implPolicy func(try int) agent.Policy
	trajs      []cache.Digest
}

func runDevelop(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*DevelopParams)
	if c.Input == nil {
		return build.Output{}, build.BadInput("stage %s: develop needs foreach: <scaffold stage>", c.Stage)
	}
	var sc PlaygroundScaffold
	if err := c.GetJSON(c.Input.Value, &sc); err != nil || sc.Tree.IsZero() {
		return build.Output{}, build.BadInput("stage %s: item %s is not a scaffold (%v)", c.Stage, c.Input.Name, err)
	}
	c.Count(ctx, "in", 1)
	implClient, err := Model(c, p.Model)
	if err != nil {
		return build.Output{}, err
	}
	testClient := implClient
	if p.TestModel != "" {
		if testClient, err = Model(c, p.TestModel); err != nil {
			return build.Output{}, err
		}
	}
	env, err := AgentEnv(c)
	if err != nil {
		return build.Output{}, err
	}
	l, err := pgProjectLanguage(c, sc.Plan)
	if err != nil {
		return build.Output{}, err
	}
	d := &developer{c: c, p: p, env: env, lang: l, base: sc.Base, plan: sc.Plan,
		testPolicy: func(try int) agent.Policy { return agent.ModelPolicy{Client: testClient, Sample: try} },
		implPolicy: func(try int) agent.Policy { return agent.ModelPolicy{Client: implClient, Sample: try} },
	}
	tree := sc.Tree
	status := map[string]string{} // task id -> outcome
	var outcomes []PlaygroundTaskOutcome
	var earlier []string // node ids of the tests of done tasks
	for _, t := range sc.Plan.Tasks {
		out := PlaygroundTaskOutcome{Task: t.ID}
		for _, dep := range t.Dependencies {
			if status[dep] != OutcomeDone {
				out.Status, out.Reason = OutcomeSkipped, fmt.Sprintf("depends on task %s, which %s", dep, map[string]string{OutcomeFailed: "failed", OutcomeSkipped: "was skipped"}[status[dep]])
				break
			}
		}
		if out.Status == "" {
			next, err := d.doTask(ctx, t, tree, earlier, &out)
			if err != nil {
				return build.Output{}, err
			}
			if out.Status == OutcomeDone {
				tree = next
				earlier = append(earlier, out.Tests...)
			}
		}
		status[t.ID] = out.Status
		c.Count(ctx, "tasks:"+out.Status, 1)
		if out.Status != OutcomeDone {
			c.Session.Logf(c.Stage, "%s: task %s %s: %s", sc.Plan.Project.ID, t.ID, out.Status, out.Reason)
		}
		outcomes = append(outcomes, out)
	}
	rep, err := pgRunTests(ctx, c, l, sc.Base, tree)
	if err != nil {
		return build.Output{}, err
	}
	res := PlaygroundProject{Plan: sc.Plan, Environment: sc.Environment, Base: sc.Base, Scaffold: sc.Tree, Final: tree,
		Outcomes: outcomes, Status: rep.Status, Trajectories: d.trajs}
	if len(earlier) == 0 {
		c.Count(ctx, "rejected:no task completed", 1)
		return build.Collection(nil), nil
	}
	od, err := c.PutJSON(res)
	if err != nil {
		return build.Output{}, err
	}
	c.Count(ctx, "kept", 1)
	return build.Value(od), nil
}

// vars are the develop templates' variables: feedback is why the last
// attempt was rejected, dispute a dispute for the test agent to review,
// canDispute whether the implementation agent has the dispute tool.
func (d *developer) vars(t schema.TaskSpec, testFile, feedback, dispute string, canDispute bool) map[string]string {
	var checklist strings.Builder
	for _, s := range t.Tests {
		fmt.Fprintf(&checklist, "- %s\n", s)
	}
	l, text := d.lang, d.lang.text()
	return map[string]string{"name": d.plan.Project.Name, "specification": d.plan.Project.Specification,
		"task_id": t.ID, "title": t.Title, "phase": t.Phase, "module": t.Module, "description": t.Description,
		"checklist": checklist.String(), "test_file": testFile, "test_cmd": l.shownTestCmd(), "test_file_cmd": l.shownTestCmd(testFile),
		"feedback": feedback, "dispute": dispute, "can_dispute": map[bool]string{true: "yes"}[canDispute],
		"language_title": l.title(), "test_framework": text.testFramework, "tests_where": text.testsWhere, "test_id": text.testID}
}

// testDraft is a test-writing run whose tests passed the gate.
type testDraft struct {
	tests     []string     // node ids in the task's test file
	withTests cache.Digest // the repository with the test file
	content   []byte
	traj      cache.Digest // the run's schema.Trajectory
	invalid   int          // the run's invalid tool calls
}

// writeTests runs the test agent up to tries times on tree (the repository
// before the task) until its tests are collected and all fail there.
// start is the agent's workspace (tree, or tree with the tests to revise);
// dispute, if set, is put before the agent for review. It returns nil and
// the last rejection when no attempt passed.
func (d *developer) writeTests(ctx context.Context, t schema.TaskSpec, tree, start cache.Digest, tries int, dispute string, out *PlaygroundTaskOutcome) (*testDraft, string, error) {
	c, store := d.c, d.c.Store()
	proj := d.plan.Project.ID
	testFile := d.lang.testFile(d.plan.Package, t.ID)
	feedback := ""
	for try := 0; try < tries; try++ {
		sample := out.TestTries
		out.TestTries++
		vars := d.vars(t, testFile, feedback, dispute, false)
		system, err := renderPlayground(ctx, "develop_tests.system", vars)
		if err != nil {
			return nil, "", err
		}
		user, err := renderPlayground(ctx, "develop_tests.user", vars)
		if err != nil {
			return nil, "", err
		}
		task := agent.Task{InstanceID: proj + "." + t.ID + ".tests", Repo: proj, TaskType: string(schema.TaskTestgen),
			Image: d.base, Workspace: start, Prompt: user, System: system, Language: d.lang.name(), TestCmd: d.lang.testCmd()}
		policy := d.testPolicy(sample)
		ro, err := agent.Run(ctx, d.env, task, policy, d.p.Limits)
		if err != nil {
			return nil, "", err
		}
		content, err := store.ReadFile(ro.Final, testFile)
		if err != nil {
			feedback = fmt.Sprintf("the test file %s was not written", testFile)
			c.Count(ctx, "retry:tests missing", 1)
			continue
		}
		// Only the test file is taken from the agent's workspace.
		cand, err := pgEditTree(store, tree, map[string][]byte{testFile: content})
		if err != nil {
			return nil, "", err
		}
		rep, err := pgRunTests(ctx, c, d.lang, d.base, cand, testFile)
		if err != nil {
			return nil, "", err
		}
		var collected, passing []string
		reported := false
		for _, id := range d.lang.fileTests(testFile, content, rep.Status) {
			collected = append(collected, id)
			st, ok := rep.Status[id]
			reported = reported || ok
			if st == lang.StatusPassed {
				passing = append(passing, id)
			}
		}
		sort.Strings(passing)
		switch {
		case len(rep.CollectionErrors) > 0 || len(collected) == 0 || !reported:
			feedback = "no tests were collected from " + testFile + ": " + trimOutput(rep.Output, 1500)
			c.Count(ctx, "retry:tests not collected", 1)
		case len(passing) > 0:
			feedback = "these tests already pass on the unimplemented code, so they check nothing of the task: " + strings.Join(passing, ", ")
			c.Count(ctx, "retry:tests pass before implementation", 1)
		default:
			traj := agent.Trajectory(task, policy, ro, &agent.Grading{Resolved: true, Reward: 1}, task.InstanceID)
			td, err := c.PutJSON(traj)
			if err != nil {
				return nil, "", err
			}
			return &testDraft{tests: collected, withTests: cand, content: content, traj: td, invalid: ro.InvalidCalls}, "", nil
		}
	}
	return nil, feedback, nil
}

// keep applies the keep policy to a trajectory the project would carry,
// counting the decision as "trajectory kept" or "trajectory
// rejected:<reason>".
func (d *developer) keep(ctx context.Context, td cache.Digest, invalidCalls int) (bool, error) {
	var tr schema.Trajectory
	if err := d.c.GetJSON(td, &tr); err != nil {
		return false, err
	}
	if why := d.p.Keep.Reject(&tr, invalidCalls); why != "" {
		d.c.Count(ctx, "trajectory rejected:"+why, 1)
		return false, nil
	}
	d.c.Count(ctx, "trajectory kept", 1)
	return true, nil
}

// doTask runs the test agent and then the implementation agent on one task,
// filling out; it returns the repository after the task when it is done.
func (d *developer) doTask(ctx context.Context, t schema.TaskSpec, tree cache.Digest, earlier []string, out *PlaygroundTaskOutcome) (cache.Digest, error) {
	c, store := d.c, d.c.Store()
	proj := d.plan.Project.ID
	testFile := d.lang.testFile(d.plan.Package, t.ID)
	out.TestFile = testFile

	// 1. Tests, kept when collected and all failing on the current code.
	draft, feedback, err := d.writeTests(ctx, t, tree, tree, d.p.MaxTestTries, "", out)
	if err != nil {
		return cache.Digest{}, err
	}
	if draft == nil {
		out.Status, out.Reason = OutcomeFailed, "no acceptable tests: "+firstLineOf(feedback)
		return cache.Digest{}, nil
	}
	out.Tests = draft.tests

	// 2. Implementation, graded in a fresh sandbox with the tests restored;
	// a disputed test goes back to the test agent (at most MaxDisputes
	// times) and does not use up a try.
	layout := d.lang.layout(d.plan.Package)
	protected, err := d.lang.protected(store, draft.withTests)
	if err != nil {
		return cache.Digest{}, err
	}
	feedback = ""
	for try, run := 0, 0; try < d.p.MaxImplTries; run++ {
		out.ImplTries++
		canDispute := len(out.Disputes) < d.p.MaxDisputes
		vars := d.vars(t, testFile, feedback, "", canDispute)
		system, err := renderPlayground(ctx, "develop_impl.system", vars)
		if err != nil {
			return cache.Digest{}, err
		}
		user, err := renderPlayground(ctx, "develop_impl.user", vars)
		if err != nil {
			return cache.Digest{}, err
		}
		task := agent.Task{InstanceID: proj + "." + t.ID + ".impl", Repo: proj, TaskType: string(schema.TaskImplement),
			Image: d.base, Workspace: draft.withTests, Prompt: user, System: system, Language: d.lang.name(), TestCmd: d.lang.testCmd(),
			Protected: protected, FailToPass: draft.tests, PassToPass: earlier, Disputable: canDispute}
		policy := d.implPolicy(run)
		ro, err := agent.Run(ctx, d.env, task, policy, d.p.Limits)
		if err != nil {
			return cache.Digest{}, err
		}
		if ro.Dispute != nil {
			dt, err := c.PutJSON(agent.Trajectory(task, policy, ro, nil, task.InstanceID+".dispute"))
			if err != nil {
				return cache.Digest{}, err
			}
			next, fb, err := d.review(ctx, t, tree, draft, *ro.Dispute, dt, out)
			if err != nil {
				return cache.Digest{}, err
			}
			draft, feedback = next, fb
			out.Tests = draft.tests
			continue
		}
		try++
		final, err := pgDropScratch(ctx, c, draft.withTests, ro.Final, layout)
		if err != nil {
			return cache.Digest{}, err
		}
		paths, err := d.lang.changedTests(store, draft.withTests, final)
		if err != nil {
			return cache.Digest{}, err
		}
		if len(paths) > 0 {
			feedback = "the attempt changed the tests (" + strings.Join(paths, ", ") + "); tests must not be touched"
			c.Count(ctx, "retry:implementation edited tests", 1)
			continue
		}
		g, err := agent.Grade(ctx, d.env, task, final)
		if err != nil {
			return cache.Digest{}, err
		}
		if !g.Resolved {
			var failing []string
			for _, id := range append(append([]string(nil), draft.tests...), earlier...) {
				if g.Status[id] != lang.StatusPassed {
					failing = append(failing, id)
				}
			}
			feedback = "these tests do not pass: " + strings.Join(failing, ", ") + "\n" + trimOutput(g.Report.Output, 1500)
			c.Count(ctx, "retry:tests fail after implementation", 1)
			continue
		}
		traj := agent.Trajectory(task, policy, ro, g, task.InstanceID)
		td, err := c.PutJSON(traj)
		if err != nil {
			return cache.Digest{}, err
		}
		for _, tr := range []struct {
			d       cache.Digest
			invalid int
		}{{draft.traj, draft.invalid}, {td, ro.InvalidCalls}} {
			ok, err := d.keep(ctx, tr.d, tr.invalid)
			if err != nil {
				return cache.Digest{}, err
			}
			if ok {
				d.trajs = append(d.trajs, tr.d)
			}
		}
		out.Status, out.Tree = OutcomeDone, g.Tree
		return g.Tree, nil
	}
	out.Status, out.Reason = OutcomeFailed, "implementation: "+firstLineOf(feedback)
	return cache.Digest{}, nil
}

// Outcomes of a dispute.
const (
	DisputeRevised  = "revised"  // the test agent changed the tests
	DisputeUpheld   = "upheld"   // it kept them as they were
	DisputeRejected = "rejected" // its revision failed the test gate; the old tests stay
)

// review has the test agent look at a dispute once, starting from the
// disputed tests; it returns the tests the implementation continues with
// and the feedback telling the implementation agent what became of its
// dispute. The dispute is recorded in out, with traj (the disputing run's
// trajectory), and counted.
func (d *developer) review(ctx context.Context, t schema.TaskSpec, tree cache.Digest, cur *testDraft, disp agent.Dispute, traj cache.Digest, out *PlaygroundTaskOutcome) (*testDraft, string, error) {
	c := d.c
	c.Count(ctx, "disputes", 1)
	testFile := d.lang.testFile(d.plan.Package, t.ID)
	text := fmt.Sprintf("The implementation agent disputes the test %s: %s", disp.Test, disp.Reason)
	next, why, err := d.writeTests(ctx, t, tree, cur.withTests, 1, text, out)
	if err != nil {
		return nil, "", err
	}
	rec := PlaygroundDispute{Test: disp.Test, Reason: disp.Reason, Trajectory: traj}
	var feedback string
	switch {
	case next == nil:
		rec.Outcome = DisputeRejected
		feedback = fmt.Sprintf("you disputed %s; the revised tests were unusable (%s), so the tests stand as they are", disp.Test, firstLineOf(why))
		next = cur
	case bytes.Equal(next.content, cur.content):
		rec.Outcome = DisputeUpheld
		feedback = fmt.Sprintf("you disputed %s; the test's author reviewed it and kept the tests: make them pass", disp.Test)
	default:
		rec.Outcome = DisputeRevised
		feedback = fmt.Sprintf("you disputed %s; the test's author revised the tests in %s: make them pass", disp.Test, testFile)
	}
	c.Count(ctx, "dispute:"+rec.Outcome, 1)
	c.Session.Logf(c.Stage, "%s: task %s: dispute of %s %s", d.plan.Project.ID, t.ID, disp.Test, rec.Outcome)
	out.Disputes = append(out.Disputes, rec)
	return next, feedback, nil
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func runDevelopTrajectories(ctx context.Context, c *build.Call) (build.Output, error) {
	if c.Input == nil {
		return build.Output{}, build.BadInput("stage %s: develop_trajectories needs foreach: <develop stage>", c.Stage)
	}
	var proj PlaygroundProject
	if err := c.GetJSON(c.Input.Value, &proj); err != nil {
		return build.Output{}, build.BadInput("stage %s: item %s is not a developed project: %v", c.Stage, c.Input.Name, err)
	}
	items := make([]build.Item, 0, len(proj.Trajectories))
	for _, td := range proj.Trajectories {
		var tr schema.Trajectory
		if err := c.GetJSON(td, &tr); err != nil {
			return build.Output{}, err
		}
		items = append(items, build.Item{Name: itemSafe(tr.TrajectoryID), Value: td})
		c.Count(ctx, "kept", 1)
	}
	return build.Collection(items), nil
}
