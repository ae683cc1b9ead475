package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
)

func init() {
	sections := []string{SectionModels, SectionEnvironments, SectionSandbox, SectionSalt}
	build.Register(&build.Kind{
		Name: "derive_fix", Version: withLang("5"), Pool: "llm",
		Doc:      "issue-resolution tasks from a developed project (foreach PlaygroundProject): a model proposes bugs as exact edits with GitHub-style issues; kept with at least one FAIL_TO_PASS and one PASS_TO_PASS test: TaskBundle items",
		Params:   func() any { return &DeriveFixParams{Count: 5, MaxReasks: 2} },
		Sections: sections,
		Assets:   []*build.Asset{playgroundPrompts},
		Run:      runDeriveFix,
	})
	build.Register(&build.Kind{
		Name: "derive_implement", Version: withLang("3"),
		Doc:      "library-from-stubs tasks (Commit0 style) from a developed project (foreach PlaygroundProject): the scaffold with the finished tests, solved by the finished repository: a TaskBundle item",
		Params:   func() any { return &DeriveImplementParams{} },
		Sections: []string{SectionEnvironments, SectionSandbox},
		Run:      runDeriveImplement,
	})
	build.Register(&build.Kind{
		Name: "derive_reproduce", Version: withLang("6"), Pool: "llm",
		Doc: "issue-reproduction tasks (SWT-Bench style) from a developed project (foreach PlaygroundProject): a proposed bug injected and its catching tests hidden; an agent's test is kept only if it fails on the buggy code and passes on the fixed code: TaskBundle items",
		Params: func() any {
			return &DeriveReproduceParams{DeriveFixParams: DeriveFixParams{Count: 5, MaxReasks: 2}, MaxTries: 2}
		},
		Sections: sections,
		Assets:   []*build.Asset{playgroundPrompts, agent.PromptAsset},
		Run:      runDeriveReproduce,
	})
}

// DeriveFixParams are the params of the derive_fix kind.
type DeriveFixParams struct {
	// Model proposes the bugs and writes the issues.
	Model string `yaml:"model" json:"model"`
	// Count is the number of bugs asked for per project.
	Count int `yaml:"count" json:"count"`
	// MaxReasks bounds re-asks after a malformed reply.
	MaxReasks int `yaml:"max_reasks" json:"max_reasks"`
}

// Validate checks the params.
func (p *DeriveFixParams) Validate() error {
	if p.Model == "" {
		return errors.New("model: name a profile of the models: section")
	}
	if p.Count < 1 || p.MaxReasks < 0 {
		return errors.New("count must be positive and max_reasks not negative")
	}
	return nil
}

// DeriveImplementParams are the params of the derive_implement kind.
type DeriveImplementParams struct {
	// Difficulty is recorded on the task instances (0: unknown).
	Difficulty int `yaml:"difficulty" json:"difficulty,omitempty"`
}

// DeriveReproduceParams are the params of the derive_reproduce kind: the
// bug proposal of derive_fix (the same model request, so a recipe with
// both pays for it once) plus the reproducing agent.
type DeriveReproduceParams struct {
	DeriveFixParams `yaml:",inline"`
	// AgentModel writes the reproduction tests (default: Model).
	AgentModel string `yaml:"agent_model" json:"agent_model,omitempty"`
	// MaxTries bounds the agent attempts per bug.
	MaxTries int `yaml:"max_tries" json:"max_tries"`
	// Limits bound each agent run.
	Limits agent.Limits `yaml:"limits" json:"limits"`
}

// Validate checks the params.
func (p *DeriveReproduceParams) Validate() error {
	if err := p.DeriveFixParams.Validate(); err != nil {
		return err
	}
	if p.MaxTries < 1 {
		return errors.New("max_tries must be at least 1")
	}
	return nil
}

func loadProject(c *build.Call, kind string) (*PlaygroundProject, pgLang, error) {
	if c.Input == nil {
		return nil, pgLang{}, build.BadInput("stage %s: %s needs foreach: <develop stage>", c.Stage, kind)
	}
	var proj PlaygroundProject
	if err := c.GetJSON(c.Input.Value, &proj); err != nil || proj.Final.IsZero() {
		return nil, pgLang{}, build.BadInput("stage %s: item %s is not a developed project (%v)", c.Stage, c.Input.Name, err)
	}
	l, err := pgProjectLanguage(c, proj.Plan)
	if err != nil {
		return nil, pgLang{}, err
	}
	return &proj, l, nil
}

// pgBundle makes the TaskBundle of a derived task, with its image (the
// project's base plus start at /testbed as a git repository; its commit is
// base_commit and environment_setup_commit).
func pgBundle(ctx context.Context, c *build.Call, proj *PlaygroundProject, l pgLang, typ schema.TaskType, id string, start, solution cache.Digest,
	f2p, p2p []string, statement, testPatch string, difficulty int, extra ...func(*TaskBundle)) (cache.Digest, error) {
	b, err := Images(c)
	if err != nil {
		return cache.Digest{}, err
	}
	img, commit, err := taskImage(ctx, c.Store(), b, proj.Base, start, oci.ConfigOptions{Labels: map[string]string{"dsbuild.instance": id}})
	if err != nil {
		return cache.Digest{}, err
	}
	img.Ref = imageRef(proj.Plan.Project.ID, strings.TrimPrefix(id, proj.Plan.Project.ID+"."))
	gold, err := patch.Diff(c.Store(), start, solution)
	if err != nil {
		return cache.Digest{}, err
	}
	sort.Strings(f2p)
	sort.Strings(p2p)
	if f2p == nil {
		f2p = []string{}
	}
	if p2p == nil {
		p2p = []string{}
	}
	inst := schema.TaskInstance{
		InstanceID: id, Repo: proj.Plan.Project.ID, BaseCommit: commit, EnvironmentSetupCommit: commit, Patch: gold, TestPatch: testPatch,
		ProblemStatement: statement, Version: "1", FailToPass: f2p, PassToPass: p2p, TaskType: typ,
		Image: pinnedRef(img), TestCmd: strings.Join(l.testCmd(), " "), SourceProject: proj.Plan.Project.ID, Difficulty: difficulty, Language: l.name(),
	}
	if err := inst.Validate(); err != nil {
		return cache.Digest{}, fmt.Errorf("derived task %s: %v", id, err)
	}
	protected, err := l.protected(c.Store(), start)
	if err != nil {
		return cache.Digest{}, err
	}
	tb := TaskBundle{Instance: inst, Image: img, Start: start, Solution: solution, TestCmd: l.testCmd(), Protected: protected}
	for _, f := range extra {
		f(&tb)
	}
	return c.PutJSON(tb)
}

// pgBug is a proposed bug as the model states it.
type pgBug struct {
	File        string `json:"file"`
	Original    string `json:"original"`
	Replacement string `json:"replacement"`
	Issue       string `json:"issue"`
}

// pgCheckedBug is a bug that passed the FAIL_TO_PASS / PASS_TO_PASS gate.
type pgCheckedBug struct {
	Index    int
	Bug      pgBug
	Buggy    cache.Digest
	F2P, P2P []string
}

// proposeBugs asks for bugs, injects each into the finished repository and
// keeps those with a real FAIL_TO_PASS and a PASS_TO_PASS test, counting the
// rejections.
func proposeBugs(ctx context.Context, c *build.Call, proj *PlaygroundProject, l pgLang, p *DeriveFixParams) ([]pgCheckedBug, error) {
	store := c.Store()
	client, err := Model(c, p.Model)
	if err != nil {
		return nil, err
	}
	sources, err := pgCodeDump(store, l, proj.Final, false, 60000)
	if err != nil {
		return nil, err
	}
	// The tests decide whether a bug is kept (one must fail, one must
	// still pass): the proposer sees them.
	tests, err := pgCodeDump(store, l, proj.Final, true, 30000)
	if err != nil {
		return nil, err
	}
	system, err := renderPlayground(ctx, "bugs.system", map[string]string{"language_title": l.title(), "example_file": l.text().exampleFile(proj.Plan.Package)})
	if err != nil {
		return nil, err
	}
	user, err := renderPlayground(ctx, "bugs.user", map[string]string{"name": proj.Plan.Project.Name,
		"description": proj.Plan.Project.Description, "count": fmt.Sprint(p.Count), "sources": sources, "tests": tests})
	if err != nil {
		return nil, err
	}
	var reply struct {
		Bugs []pgBug `json:"bugs"`
	}
	validate := func(b []byte) error {
		var r struct {
			Bugs []pgBug `json:"bugs"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		if len(r.Bugs) == 0 {
			return errors.New(`"bugs" is empty`)
		}
		for i, bug := range r.Bugs {
			if bug.File == "" || bug.Original == "" || strings.TrimSpace(bug.Issue) == "" {
				return fmt.Errorf("bugs[%d]: file, original and issue must be set", i)
			}
		}
		return nil
	}
	req := llm.Request{Messages: []schema.Message{{Role: "system", Content: system}, {Role: "user", Content: user}}, ResponseFormat: llm.JSONObjectFormat}
	_, err = llm.CompleteJSON(ctx, client, req, validate, &reply, p.MaxReasks)
	var invalid *llm.InvalidOutputError
	if errors.As(err, &invalid) {
		c.Count(ctx, "rejected:invalid bug reply", 1)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	finalPassed, _ := passedIDs(proj.Status)
	var out []pgCheckedBug
	for i, bug := range reply.Bugs {
		c.Count(ctx, "in", 1)
		if isTestPath(bug.File) || l.prof.IsTestFile(bug.File) {
			c.Count(ctx, "rejected:bug edits tests", 1)
			continue
		}
		src, err := store.ReadFile(proj.Final, bug.File)
		if err != nil {
			c.Count(ctx, "rejected:bug file not found", 1)
			continue
		}
		if strings.Count(string(src), bug.Original) != 1 || bug.Original == bug.Replacement {
			c.Count(ctx, "rejected:bug edit does not apply", 1)
			continue
		}
		buggy, err := pgEditTree(store, proj.Final, map[string][]byte{bug.File: []byte(strings.Replace(string(src), bug.Original, bug.Replacement, 1))})
		if err != nil {
			return nil, err
		}
		rep, err := pgRunTests(ctx, c, l, proj.Base, buggy)
		if err != nil {
			return nil, err
		}
		var f2p, p2p []string
		for _, id := range finalPassed {
			if rep.Status[id] == lang.StatusPassed {
				p2p = append(p2p, id)
			} else {
				f2p = append(f2p, id)
			}
		}
		switch {
		case len(f2p) == 0:
			c.Count(ctx, "rejected:no failing test", 1)
		case len(p2p) == 0:
			c.Count(ctx, "rejected:no passing test", 1)
		default:
			out = append(out, pgCheckedBug{Index: i, Bug: bug, Buggy: buggy, F2P: f2p, P2P: p2p})
		}
	}
	return out, nil
}

func runDeriveFix(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*DeriveFixParams)
	proj, l, err := loadProject(c, "derive_fix")
	if err != nil {
		return build.Output{}, err
	}
	bugs, err := proposeBugs(ctx, c, proj, l, p)
	if err != nil {
		return build.Output{}, err
	}
	var items []build.Item
	for _, b := range bugs {
		id := fmt.Sprintf("%s.fix.%d", proj.Plan.Project.ID, b.Index)
		d, err := pgBundle(ctx, c, proj, l, schema.TaskFix, id, b.Buggy, proj.Final, b.F2P, b.P2P, b.Bug.Issue, "", 2)
		if err != nil {
			return build.Output{}, err
		}
		items = append(items, build.Item{Name: fmt.Sprintf("fix-%d", b.Index), Value: d})
		c.Count(ctx, "kept", 1)
	}
	return build.Collection(items), nil
}

func runDeriveImplement(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*DeriveImplementParams)
	proj, l, err := loadProject(c, "derive_implement")
	if err != nil {
		return build.Output{}, err
	}
	c.Count(ctx, "in", 1)
	tests, err := l.protected(c.Store(), proj.Final)
	if err != nil {
		return build.Output{}, err
	}
	start, err := pgCopyPaths(c.Store(), l, proj.Final, proj.Scaffold, tests)
	if err != nil {
		return build.Output{}, err
	}
	rep, err := pgRunTests(ctx, c, l, proj.Base, start)
	if err != nil {
		return build.Output{}, err
	}
	finalPassed, _ := passedIDs(proj.Status)
	var f2p, p2p []string
	for _, id := range finalPassed {
		if rep.Status[id] == lang.StatusPassed {
			p2p = append(p2p, id)
		} else {
			f2p = append(f2p, id)
		}
	}
	if len(f2p) == 0 {
		c.Count(ctx, "rejected:no failing test", 1)
		return build.Collection(nil), nil
	}
	pr := proj.Plan.Project
	var b strings.Builder
	stubs := "stubs that raise NotImplementedError"
	if !l.python() {
		stubs = fmt.Sprintf("stubs whose body is `%s`", l.stub)
	}
	fmt.Fprintf(&b, "%s: %s\n\n%s\n\nThe functions of the package %s are %s. Implement them:\n", pr.Name, pr.Description, pr.Specification, proj.Plan.Package, stubs)
	done := map[string]bool{}
	for _, o := range proj.Outcomes {
		done[o.Task] = o.Status == OutcomeDone
	}
	for _, t := range proj.Plan.Tasks {
		if done[t.ID] {
			fmt.Fprintf(&b, "- %s: %s\n", t.Title, t.Description)
		}
	}
	id := proj.Plan.Project.ID + ".implement"
	d, err := pgBundle(ctx, c, proj, l, schema.TaskImplement, id, start, proj.Final, f2p, p2p, b.String(), "", p.Difficulty)
	if err != nil {
		return build.Output{}, err
	}
	c.Count(ctx, "kept", 1)
	return build.Collection([]build.Item{{Name: "implement", Value: d}}), nil
}

func runDeriveReproduce(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*DeriveReproduceParams)
	proj, l, err := loadProject(c, "derive_reproduce")
	if err != nil {
		return build.Output{}, err
	}
	store := c.Store()
	bugs, err := proposeBugs(ctx, c, proj, l, &p.DeriveFixParams)
	if err != nil {
		return build.Output{}, err
	}
	modelName := p.AgentModel
	if modelName == "" {
		modelName = p.Model
	}
	client, err := Model(c, modelName)
	if err != nil {
		return build.Output{}, err
	}
	env, err := AgentEnv(c)
	if err != nil {
		return build.Output{}, err
	}
	var items []build.Item
	for _, b := range bugs {
		// Hide the test files that catch the bug, in the buggy and the fixed tree.
		hide := map[string][]byte{}
		if l.python() {
			for _, id := range b.F2P {
				hide[strings.SplitN(id, "::", 2)[0]] = nil
			}
		} else {
			// Go's ids name packages: every test file of the package goes.
			paths, _, err := pgFiles(store, b.Buggy)
			if err != nil {
				return build.Output{}, err
			}
			for _, f := range l.prof.TestFiles(b.F2P, paths) {
				hide[f] = nil
			}
		}
		start, err := pgEditTree(store, b.Buggy, hide)
		if err != nil {
			return build.Output{}, err
		}
		fixed, err := pgEditTree(store, proj.Final, hide)
		if err != nil {
			return build.Output{}, err
		}
		system, user, err := agent.Prompt(ctx, string(schema.TaskReproduce), map[string]string{"problem_statement": b.Bug.Issue,
			"test_cmd": l.shownTestCmd()})
		if err != nil {
			return build.Output{}, err
		}
		id := fmt.Sprintf("%s.reproduce.%d", proj.Plan.Project.ID, b.Index)
		reason := ""
		accepted := false
		for try := 0; try < p.MaxTries && !accepted; try++ {
			prompt := user
			if reason != "" {
				prompt += "\n\nA previous attempt was rejected: " + reason
			}
			task := agent.Task{InstanceID: id, Repo: proj.Plan.Project.ID, TaskType: string(schema.TaskReproduce), Image: proj.Base,
				Workspace: start, Prompt: prompt, System: system, Language: l.name(), TestCmd: l.testCmd()}
			ro, err := agent.Run(ctx, env, task, agent.ModelPolicy{Client: client, Sample: try}, p.Limits)
			if err != nil {
				return build.Output{}, err
			}
			// Only new or changed test files are taken from the agent.
			paths, files, err := pgFiles(store, ro.Final)
			if err != nil {
				return build.Output{}, err
			}
			_, startFiles, err := pgFiles(store, start)
			if err != nil {
				return build.Output{}, err
			}
			added := map[string][]byte{}
			var testFiles []string
			for _, pth := range paths {
				e := files[pth]
				if l.python() && (!isTestPath(pth) || !strings.HasSuffix(pth, ".py") || strings.HasSuffix(pth, "conftest.py")) ||
					!l.python() && !l.prof.IsTestFile(pth) {
					continue
				}
				if se, ok := startFiles[pth]; ok && se.Digest == e.Digest {
					continue
				}
				data, err := store.Get(e.Digest)
				if err != nil {
					return build.Output{}, err
				}
				added[pth] = data
				testFiles = append(testFiles, pth)
			}
			if !l.python() {
				// Helpers beside the tests are overlaid, not run.
				testFiles = agent.TestTargets(l.prof, testFiles)
			}
			if len(added) == 0 || len(testFiles) == 0 {
				reason = "no test file was added or changed"
				c.Count(ctx, "retry:no reproduction test", 1)
				continue
			}
			onBuggy, err := pgEditTree(store, start, added)
			if err != nil {
				return build.Output{}, err
			}
			onFixed, err := pgEditTree(store, fixed, added)
			if err != nil {
				return build.Output{}, err
			}
			rb, err := pgRunTests(ctx, c, l, proj.Base, onBuggy, testFiles...)
			if err != nil {
				return build.Output{}, err
			}
			rf, err := pgRunTests(ctx, c, l, proj.Base, onFixed, testFiles...)
			if err != nil {
				return build.Output{}, err
			}
			var failingOnBuggy []string
			for tid, st := range rb.Status {
				if st != lang.StatusPassed {
					failingOnBuggy = append(failingOnBuggy, tid)
				}
			}
			fixedOK := len(rf.Status) > 0 && len(rf.CollectionErrors) == 0
			var failingOnFixed []string
			for tid, st := range rf.Status {
				if st != lang.StatusPassed {
					fixedOK = false
					failingOnFixed = append(failingOnFixed, tid)
				}
			}
			sort.Strings(failingOnFixed)
			switch {
			case len(failingOnBuggy) == 0:
				reason = "the test does not fail on the buggy code"
				c.Count(ctx, "retry:reproduction passes on buggy code", 1)
			case !fixedOK:
				reason = "the test also fails once the bug is fixed: " + strings.Join(failingOnFixed, ", ")
				c.Count(ctx, "retry:reproduction fails on fixed code", 1)
			default:
				accepted = true
				sort.Strings(failingOnBuggy)
				testPatch, err := patch.Diff(store, start, onBuggy)
				if err != nil {
					return build.Output{}, err
				}
				// The reference solution is the reproduction test on the buggy code.
				d, err := pgBundle(ctx, c, proj, l, schema.TaskReproduce, id, start, onBuggy, failingOnBuggy, nil, b.Bug.Issue, testPatch, 2,
					func(tb *TaskBundle) { tb.Fixed = fixed })
				if err != nil {
					return build.Output{}, err
				}
				items = append(items, build.Item{Name: fmt.Sprintf("reproduce-%d", b.Index), Value: d})
				c.Count(ctx, "kept", 1)
			}
		}
		if !accepted {
			c.Count(ctx, "rejected:"+map[bool]string{true: "reproduction fails on fixed code", false: "no valid reproduction test"}[strings.HasPrefix(reason, "the test also fails")], 1)
		}
	}
	return build.Collection(items), nil
}
