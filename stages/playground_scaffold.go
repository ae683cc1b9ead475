package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

func init() {
	build.Register(&build.Kind{
		Name: "scaffold", Version: withLang("4"), Pool: "llm",
		Doc:      "an agent builds a project's stub repository (foreach PlaygroundPlan) in the project's language, verified in the sandbox to import (Python) or build and load (Go, JavaScript, Rust) with every function body the language's \"not implemented\" and no tests: a PlaygroundScaffold",
		Params:   func() any { return &ScaffoldParams{MaxTries: 2} },
		Sections: []string{SectionModels, SectionEnvironments, SectionSandbox, SectionSalt},
		Assets:   []*build.Asset{playgroundPrompts},
		Run:      runScaffold,
	})
}

// ScaffoldParams are the params of the scaffold kind.
type ScaffoldParams struct {
	// Model is the profile name in the recipe's models: section.
	Model string `yaml:"model" json:"model"`
	// Environment names the recipe environment the project runs in. A
	// Debian environment gets the packages of the project's language added
	// (nodejs for JavaScript, golang-go for Go, rustc and cargo for Rust),
	// so one environment serves a recipe whose projects mix languages.
	Environment string `yaml:"environment" json:"environment,omitempty"`
	// MaxTries bounds the agent attempts; each retry is told why the last
	// one was rejected.
	MaxTries int `yaml:"max_tries" json:"max_tries"`
	// Limits bound each agent run.
	Limits agent.Limits `yaml:"limits" json:"limits"`
}

// Validate checks the params.
func (p *ScaffoldParams) Validate() error {
	if p.Model == "" {
		return errors.New("model: name a profile of the models: section")
	}
	if p.MaxTries < 1 {
		return errors.New("max_tries must be at least 1")
	}
	return nil
}

// scaffoldCheck is run with python3 -c in the sandbox: it lists what is
// wrong with a stub repository as JSON on stdout.
const scaffoldCheck = `
import ast, importlib, json, os, sys
pkg = sys.argv[1]
root = '/testbed'
problems = []
nfunc = 0
def skipdir(d):
    return d.startswith('.') or d == '__pycache__'
for dirpath, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs if not skipdir(d))
    for f in sorted(files):
        rel = os.path.relpath(os.path.join(dirpath, f), root)
        if f.endswith('.py') and (f.startswith('test_') or f.endswith('_test.py')):
            problems.append(rel + ': the scaffold must contain no tests')
def is_stub(fn):
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    e = body[0].exc
    if isinstance(e, ast.Call):
        e = e.func
    return isinstance(e, ast.Name) and e.id == 'NotImplementedError'
pkgdir = os.path.join(root, pkg)
modules = []
if not os.path.isfile(os.path.join(pkgdir, '__init__.py')):
    problems.append(pkg + '/__init__.py is missing: the package must be at the repository root')
else:
    for dirpath, dirs, files in os.walk(pkgdir):
        dirs[:] = sorted(d for d in dirs if not skipdir(d))
        for f in sorted(files):
            if not f.endswith('.py'):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            try:
                tree = ast.parse(open(path, encoding='utf-8').read(), rel)
            except SyntaxError as e:
                problems.append(rel + ': syntax error: ' + str(e))
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    nfunc += 1
                    if not is_stub(node):
                        problems.append('%s:%d: %s has a body other than raise NotImplementedError' % (rel, node.lineno, node.name))
            mod = rel[:-3].replace(os.sep, '.')
            if mod.endswith('.__init__'):
                mod = mod[:-9]
            if not mod.endswith('__main__'):
                modules.append(mod)
    if not os.path.isfile(os.path.join(pkgdir, '__main__.py')):
        problems.append(pkg + '/__main__.py is missing: python3 -m ' + pkg + ' must be the command-line entry point')
sys.path.insert(0, root)
for mod in modules:
    try:
        importlib.import_module(mod)
    except BaseException as e:
        problems.append('import %s failed: %s: %s' % (mod, type(e).__name__, e))
if nfunc == 0 and not problems:
    problems.append('the package defines no functions')
print(json.dumps({'problems': problems, 'functions': nfunc}))
`

type scaffoldReport struct {
	Problems  []string `json:"problems"`
	Functions int      `json:"functions"`
}

// checkScaffold returns the problems found with the scaffold tree:
// scaffoldCheck's for Python, checkScaffoldLang's for other languages.
func checkScaffold(ctx context.Context, c *build.Call, l pgLang, base schema.Image, tree cache.Digest, pkg string) ([]string, error) {
	if !l.python() {
		return checkScaffoldLang(ctx, c, l, base, tree, pkg)
	}
	r, err := Sandbox(c)
	if err != nil {
		return nil, err
	}
	res, err := r.Run(ctx, sandbox.Spec{Image: base, Workspace: tree, Argv: []string{"python3", "-c", scaffoldCheck, pkg},
		Env: agent.BashEnv, Dir: agent.Workdir, Limits: SandboxLimits(c)})
	if err != nil {
		return nil, err
	}
	var rep scaffoldReport
	if err := json.Unmarshal(res.Stdout, &rep); err != nil {
		return []string{fmt.Sprintf("the scaffold check did not run (exit %d, limit %q): %s", res.ExitCode, res.LimitHit, trimOutput(string(res.Stderr), 400))}, nil
	}
	return rep.Problems, nil
}

func runScaffold(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*ScaffoldParams)
	if c.Input == nil {
		return build.Output{}, build.BadInput("stage %s: scaffold needs foreach: <decompose stage>", c.Stage)
	}
	var plan PlaygroundPlan
	if err := c.GetJSON(c.Input.Value, &plan); err != nil || len(plan.Tasks) == 0 {
		return build.Output{}, build.BadInput("stage %s: item %s is not a decompose plan (%v)", c.Stage, c.Input.Name, err)
	}
	c.Count(ctx, "in", 1)
	client, err := Model(c, p.Model)
	if err != nil {
		return build.Output{}, err
	}
	l, err := pgProjectLanguage(c, plan)
	if err != nil {
		return build.Output{}, err
	}
	base, err := languageEnvironment(ctx, c, p.Environment, l.prof)
	if err != nil {
		return build.Output{}, err
	}
	env, err := AgentEnv(c)
	if err != nil {
		return build.Output{}, err
	}
	empty, err := c.Store().EmptyTree()
	if err != nil {
		return build.Output{}, err
	}
	t := l.text()
	system, err := renderPlayground(ctx, "scaffold.system", map[string]string{"package": plan.Package, "language_title": l.title(),
		"layout": t.scaffold(plan.Package, l.stub), "done": t.scaffoldDone})
	if err != nil {
		return build.Output{}, err
	}
	var planText strings.Builder
	for _, t := range plan.Tasks {
		fmt.Fprintf(&planText, "- %s [%s / %s] %s: %s\n", t.ID, t.Phase, t.Module, t.Title, t.Description)
	}
	proj := plan.Project
	feedback := ""
	for try := 0; try < p.MaxTries; try++ {
		user, err := renderPlayground(ctx, "scaffold.user", map[string]string{"name": proj.Name, "description": proj.Description,
			"specification": proj.Specification, "plan": planText.String(), "feedback": feedback})
		if err != nil {
			return build.Output{}, err
		}
		task := agent.Task{InstanceID: proj.ID + ".scaffold", Repo: proj.ID, TaskType: "scaffold", Image: base,
			Workspace: empty, Prompt: user, System: system, Language: l.name(), TestCmd: l.testCmd()}
		policy := agent.ModelPolicy{Client: client, Sample: try}
		ro, err := agent.Run(ctx, env, task, policy, p.Limits)
		if err != nil {
			return build.Output{}, err
		}
		// The agent's scratch files (caches, binaries) are not the scaffold.
		tree, err := pgDropScratch(ctx, c, empty, ro.Final, nil)
		if err != nil {
			return build.Output{}, err
		}
		problems, err := checkScaffold(ctx, c, l, base, tree, plan.Package)
		if err != nil {
			return build.Output{}, err
		}
		if len(problems) > 0 {
			if len(problems) > 10 {
				problems = append(problems[:10], fmt.Sprintf("... and %d more", len(problems)-10))
			}
			feedback = strings.Join(problems, "; ")
			c.Count(ctx, "retry:scaffold check failed", 1)
			c.Session.Logf(c.Stage, "%s: scaffold attempt %d rejected: %s", proj.ID, try+1, feedback)
			continue
		}
		traj := agent.Trajectory(task, policy, ro, nil, proj.ID+".scaffold")
		td, err := c.PutJSON(traj)
		if err != nil {
			return build.Output{}, err
		}
		d, err := c.PutJSON(PlaygroundScaffold{Plan: plan, Environment: p.Environment, Base: base, Tree: tree, Trajectory: td})
		if err != nil {
			return build.Output{}, err
		}
		c.Count(ctx, "kept", 1)
		return build.Value(d), nil
	}
	c.Count(ctx, "rejected:scaffold check failed", 1)
	return build.Collection(nil), nil
}
