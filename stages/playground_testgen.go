package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

func init() {
	build.Register(&build.Kind{
		Name: "derive_testgen", Version: withLang("7"),
		Doc:      "unit-test generation tasks from a developed project (foreach PlaygroundProject): per completed task, its test file removed; kept when the reference tests kill at least min_killed procedural mutants of the code the task wrote (within the limits; the killed mutants are exported as mutant_patches): TaskBundle items",
		Params:   func() any { return &DeriveTestgenParams{Mutants: 6, MinKilled: 1, MutantTimeout: "20s"} },
		Sections: []string{SectionEnvironments, SectionSandbox},
		Assets:   []*build.Asset{mutateAsset},
		Run:      runDeriveTestgen,
	})
}

// DeriveTestgenParams are the params of the derive_testgen kind.
type DeriveTestgenParams struct {
	// Mutants is the most procedural mutants of the task's source files the
	// reference tests are run against: stages/py/mutate.py's bugs for
	// Python, the language profile's tree-sitter bug candidates otherwise.
	Mutants int `yaml:"mutants" json:"mutants"`
	// MinKilled is the least mutants the reference tests must kill.
	MinKilled int `yaml:"min_killed" json:"min_killed"`
	// MutantTimeout is the CPU time each mutant's test run may use (a
	// mutant may loop), as test_timeout is for inject_bugs: a CPU limit
	// gives the same verdict on a busy machine, so it is memoised as final;
	// the wall clock is only a backstop for a mutant that hangs.
	MutantTimeout string `yaml:"mutant_timeout" json:"mutant_timeout"`
	timeout       time.Duration
}

// Validate checks the params.
func (p *DeriveTestgenParams) Validate() error {
	if p.Mutants < 1 || p.MinKilled < 1 || p.MinKilled > p.Mutants {
		return errors.New("need 1 <= min_killed <= mutants")
	}
	d, err := time.ParseDuration(p.MutantTimeout)
	if err != nil || d <= 0 {
		return fmt.Errorf("mutant_timeout: %q is not a positive duration", p.MutantTimeout)
	}
	p.timeout = d
	return nil
}

type pgMutant struct {
	ID        string `json:"id"`
	File      string `json:"file"`
	NewSource string `json:"new_source"`
}

func runDeriveTestgen(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*DeriveTestgenParams)
	proj, l, err := loadProject(c, "derive_testgen")
	if err != nil {
		return build.Output{}, err
	}
	store := c.Store()
	runner, err := Sandbox(c)
	if err != nil {
		return build.Output{}, err
	}
	specs := map[string]schema.TaskSpec{}
	for _, t := range proj.Plan.Tasks {
		specs[t.ID] = t
	}
	prev := proj.Scaffold
	var items []build.Item
	for _, o := range proj.Outcomes {
		if o.Status != OutcomeDone {
			continue
		}
		before := prev
		prev = o.Tree
		c.Count(ctx, "in", 1)
		// The source files this task wrote.
		diff, err := patch.Diff(store, before, o.Tree)
		if err != nil {
			return build.Output{}, err
		}
		paths, err := patch.Paths(diff)
		if err != nil {
			return build.Output{}, err
		}
		var sources []string
		for _, pth := range paths {
			if l.isSource(pth) {
				sources = append(sources, pth)
			}
		}
		if len(sources) == 0 {
			c.Count(ctx, "rejected:task wrote no source", 1)
			continue
		}
		var mut struct {
			Candidates []pgMutant `json:"candidates"`
		}
		if l.python() {
			args := []string{"bugs", agent.Workdir, "--seed", fmt.Sprint(c.Seed % 1000003), "--max", fmt.Sprint(p.Mutants)}
			for _, pth := range sources {
				args = append(args, "--include", pth)
			}
			script, err := mutateScript(ctx)
			if err != nil {
				return build.Output{}, err
			}
			res, err := runner.Run(ctx, sandbox.Spec{Image: proj.Base, Workspace: proj.Final, Dir: agent.Workdir,
				Argv: append([]string{"python3", "-"}, args...), Env: agent.BashEnv, Stdin: script, Limits: SandboxLimits(c)})
			if err != nil {
				return build.Output{}, err
			}
			if res.ExitCode != 0 || json.Unmarshal(res.Stdout, &mut) != nil {
				return build.Output{}, fmt.Errorf("project %s task %s: mutate.py exited %d: %s", proj.Plan.Project.ID, o.Task, res.ExitCode, trimOutput(string(res.Stderr), 1000))
			}
		} else if mut.Candidates, err = pgMutants(ctx, store, l, proj.Final, sources, c.Seed%1000003, p.Mutants); err != nil {
			return build.Output{}, fmt.Errorf("project %s task %s: %w", proj.Plan.Project.ID, o.Task, err)
		}
		limits := testLimits(SandboxLimits(c), p.timeout)
		env, err := AgentEnv(c)
		if err != nil {
			return build.Output{}, err
		}
		env.SandboxLimits = limits
		// The start state: the finished project without the task's tests.
		start, err := pgEditTree(store, proj.Final, map[string][]byte{o.TestFile: nil})
		if err != nil {
			return build.Output{}, err
		}
		killed := 0
		var killers []cache.Digest
		for _, m := range mut.Candidates {
			mt, err := pgEditTree(store, proj.Final, map[string][]byte{m.File: []byte(m.NewSource)})
			if err != nil {
				return build.Output{}, err
			}
			rep, err := agent.RunTestFiles(ctx, env, l.prof, proj.Base, mt, l.testCmd(), []string{o.TestFile})
			if err != nil {
				return build.Output{}, err
			}
			if rep.ExitCode != 0 || rep.LimitHit != "" {
				killed++
				if rep.LimitHit == "" { // a looping mutant makes a poor grading case
					// Kept on the start state, so that the mutant's patch
					// (mutant_patches) touches the code only.
					km, err := pgEditTree(store, start, map[string][]byte{m.File: []byte(m.NewSource)})
					if err != nil {
						return build.Output{}, err
					}
					killers = append(killers, km)
				}
			}
		}
		c.Count(ctx, "mutants", float64(len(mut.Candidates)))
		c.Count(ctx, "mutants_killed", float64(killed))
		if len(killers) < p.MinKilled {
			// Only mutants killed within the limits count: they are what
			// grading the task (and a harness, from mutant_patches) runs.
			c.Count(ctx, "rejected:reference tests kill too few mutants", 1)
			continue
		}
		testPatch, err := patch.Diff(store, start, proj.Final)
		if err != nil {
			return build.Output{}, err
		}
		t := specs[o.Task]
		statement := testgenStatement(l, o.TestFile, proj.Plan.Project.Name, proj.Plan.Package, t)
		content, err := store.ReadFile(proj.Final, o.TestFile)
		if err != nil {
			return build.Output{}, err
		}
		own := map[string]bool{}
		for _, id := range l.fileTests(o.TestFile, content, proj.Status) {
			own[id] = true
		}
		var p2p []string
		for id, st := range proj.Status {
			if st == lang.StatusPassed && !own[id] {
				p2p = append(p2p, id)
			}
		}
		id := fmt.Sprintf("%s.testgen.%s", proj.Plan.Project.ID, t.ID)
		d, err := pgBundle(ctx, c, proj, l, schema.TaskTestgen, id, start, proj.Final, append([]string(nil), o.Tests...), p2p, statement, testPatch, t.Difficulty,
			func(tb *TaskBundle) { tb.Mutants = killers })
		if err != nil {
			return build.Output{}, err
		}
		items = append(items, build.Item{Name: "testgen-" + itemSafe(t.ID), Value: d})
		c.Count(ctx, "kept", 1)
	}
	return build.Collection(items), nil
}

// testgenStatement asks for tests of code that exists: the task's title and
// description, which were written to ask for the implementation ("Implement
// ..."), are restated as the behaviour to test.
func testgenStatement(l pgLang, testFile, project, pkg string, t schema.TaskSpec) string {
	var b strings.Builder
	where := t.Module
	if l.python() && pkg != "" && where != "" && !strings.HasPrefix(where, pkg) {
		where = pkg + "." + where
	}
	kind := "pytest unit tests"
	if !l.python() {
		kind = "unit tests, " + l.text().testFramework + ","
	}
	fmt.Fprintf(&b, "The code of %s is already implemented and correct; it has no tests for one part. ", project)
	fmt.Fprintf(&b, "Write %s in %s for that part", kind, testFile)
	if where != "" {
		fmt.Fprintf(&b, " (module %s)", where)
	}
	fmt.Fprintf(&b, ": %s.\n\nThe behaviour to test: %s\n\n", strings.TrimSuffix(t.Title, "."), behaviour(t.Description))
	b.WriteString("Do not change the implementation. Your tests must pass on it and should fail if it had a bug. ")
	b.WriteString("Cover at least:\n")
	for _, s := range t.Tests {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	return b.String()
}

// implementVerbs start a task description that asks for code.
var implementVerbs = []string{"implement ", "write ", "add ", "create ", "build ", "make "}

// behaviour restates a task description that asks for code ("Implement a
// parser that ...") as the behaviour the code has ("A parser that ...").
func behaviour(desc string) string {
	desc = strings.TrimSpace(desc)
	lower := strings.ToLower(desc)
	for _, v := range implementVerbs {
		if strings.HasPrefix(lower, v) && len(desc) > len(v) {
			rest := desc[len(v):]
			return strings.ToUpper(rest[:1]) + rest[1:]
		}
	}
	return desc
}

// pgMutants are up to max procedural bugs (the profile's bug candidates,
// shuffled by seed) of the source files of tree, each as the mutated file.
func pgMutants(ctx context.Context, store *cache.Store, l pgLang, tree cache.Digest, sources []string, seed int64, max int) ([]pgMutant, error) {
	paths, _, err := pgFiles(store, tree)
	if err != nil {
		return nil, err
	}
	src := lang.Source{Files: paths, ReadFile: func(p string) ([]byte, error) { return store.ReadFile(tree, p) }}
	cands, err := l.prof.Candidates(ctx, src, lang.ModeBugs, lang.CandidateOptions{Seed: seed, Max: max, Include: sources})
	if err != nil {
		return nil, err
	}
	out := make([]pgMutant, 0, len(cands))
	for _, cd := range cands {
		data, err := store.ReadFile(tree, cd.File)
		if err != nil {
			return nil, err
		}
		if cd.Edit.Start < 0 || cd.Edit.End > len(data) || cd.Edit.Start > cd.Edit.End {
			return nil, fmt.Errorf("mutant %s: edit out of %s", cd.ID, cd.File)
		}
		next := string(data[:cd.Edit.Start]) + cd.Edit.Replacement + string(data[cd.Edit.End:])
		out = append(out, pgMutant{ID: cd.ID, File: cd.File, NewSource: next})
	}
	return out, nil
}
