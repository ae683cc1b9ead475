package stages

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/schema"
	"golang.org/x/sync/errgroup"
)

// Rollout policies.
const (
	// PolicyOracle replays the task's known solution through the agent
	// loop: a clearly labelled scripted policy, not a model.
	PolicyOracle = "oracle"
	// PolicyModel asks a model profile of the recipe for every step.
	PolicyModel = "model"
)

func init() {
	build.Register(&build.Kind{
		Name: "rollout", Version: withLang("7"),
		Doc:      "runs an agent (a model, or the scripted oracle) on each task bundle, grades it and keeps the trajectories that pass the keep filter",
		Params:   func() any { return NewRolloutParams() },
		Sections: []string{SectionModels, SectionEnvironments, SectionSandbox, SectionSalt},
		// A rollout node spends most of its life waiting for model replies;
		// its sandbox runs are bounded by the shared sandbox runner's own
		// slots. Holding a "sandbox" (CPU-sized) slot for the whole rollout
		// would cap the build at a couple of concurrent rollouts, so rollout
		// nodes, oracle ones included, take slots of the "llm" pool.
		Pool: "llm",
		Run:  runRollout,
	})
}

// RolloutParams are the params of the rollout kind.
type RolloutParams struct {
	// Policy is "oracle" (replay the bundle's solution) or "model".
	Policy string `yaml:"policy" json:"policy"`
	// Model names a profile of the recipe's models: section (policy model).
	Model string `yaml:"model" json:"model,omitempty"`
	// Samples is how many rollouts per task (model policy): sample i asks
	// the model for llm sample RolloutSampleBase+i, its own set of cached
	// replies (see RolloutSampleBase).
	Samples int `yaml:"samples" json:"samples"`
	// Limits bound each rollout; zero fields take agent.DefaultLimits.
	Limits agent.Limits `yaml:"limits" json:"limits"`
	// Prompts is an optional directory, relative to the recipe, of
	// <task type>.system.md / <task type>.user.md templates overriding the
	// defaults. Only the template texts (PromptTexts) enter the key.
	Prompts string `yaml:"prompts" json:"-"`
	// PromptTexts holds every template the rollouts may use, by file name
	// without ".md" (defaults included), filled in by Resolve so that
	// editing a template re-keys the stage. Not settable from a recipe.
	PromptTexts map[string]string `yaml:"-" json:"prompt_texts"`
	// Keep filters the trajectories the stage outputs.
	Keep KeepPolicy `yaml:"keep" json:"keep"`

	prompts *agent.Prompts
}

// RolloutSampleBase is the llm sample index of a rollout's first sample:
// rollout sample i asks for sample RolloutSampleBase+i. The stages that make
// a task with an agent (scaffold, develop, derive_reproduce) number their
// tries 0, 1, ...; a rollout on the same prompt must be a fresh attempt, not
// a replay of the run that made its task, so its samples come from a stream
// of their own: another memo key and, as the sample offsets the seed sent to
// the endpoint, another seed.
const RolloutSampleBase = 1 << 20

// NewRolloutParams returns the defaults: the oracle policy, one sample,
// default limits and every keep filter on.
func NewRolloutParams() *RolloutParams {
	return &RolloutParams{
		Policy:  PolicyOracle,
		Samples: 1,
		Keep:    DefaultKeepPolicy(),
	}
}

// Resolve loads the prompt templates (the defaults, overridden by the
// prompts directory if given) and records their text for the key.
func (p *RolloutParams) Resolve(recipeDir string) error {
	p.prompts = agent.DefaultPrompts()
	if p.Prompts != "" {
		dir := p.Prompts
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(recipeDir, dir)
		}
		pr, err := agent.PromptsFrom(dir)
		if err != nil {
			return fmt.Errorf("prompts: %v", err)
		}
		p.prompts = pr
	}
	p.PromptTexts = map[string]string{}
	for _, typ := range p.prompts.TaskTypes() {
		system, user, err := p.prompts.Text(typ)
		if err != nil {
			return fmt.Errorf("prompts: %v", err)
		}
		p.PromptTexts[typ+".system"] = system
		p.PromptTexts[typ+".user"] = user
	}
	return nil
}

// Validate checks the params and fills in the effective limits (so that
// the key records them).
func (p *RolloutParams) Validate() error {
	switch p.Policy {
	case PolicyOracle:
		if p.Model != "" {
			return fmt.Errorf("model: the oracle policy uses no model (remove model: %q or set policy: model)", p.Model)
		}
		if p.Samples != 1 {
			return fmt.Errorf("samples: the oracle policy is deterministic; its samples would be identical (use samples: 1)")
		}
	case PolicyModel:
		if p.Model == "" {
			return fmt.Errorf("model: policy model needs the name of a profile in the recipe's models: section")
		}
	default:
		return fmt.Errorf("policy: %q is not a policy (want %q or %q)", p.Policy, PolicyOracle, PolicyModel)
	}
	if p.Samples < 1 || p.Samples > 1000 {
		return fmt.Errorf("samples: %d is out of range (1 to 1000)", p.Samples)
	}
	l := p.Limits
	if l.MaxSteps < 0 || l.MaxTokens < 0 || l.MaxDollars < 0 || math.IsNaN(l.MaxDollars) || l.CommandTimeout < 0 || l.ObservationChars < 0 || l.ContextTokens < 0 {
		return fmt.Errorf("limits: values must not be negative")
	}
	p.Limits = l.WithDefaults()
	if p.prompts == nil { // Resolve not called (params built in Go)
		if err := p.Resolve("."); err != nil {
			return err
		}
	}
	return nil
}

// rolloutLabel is the policy's name in trajectory ids: "oracle" or the
// model profile's name.
func (p *RolloutParams) rolloutLabel() string {
	if p.Policy == PolicyOracle {
		return PolicyOracle
	}
	return p.Model
}

func runRollout(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*RolloutParams)
	if c.Input == nil {
		return build.Output{}, build.BadInput("stage %s (rollout) needs foreach: a stage of task bundles", c.Stage)
	}
	var b TaskBundle
	if err := c.GetJSON(c.Input.Value, &b); err != nil {
		return build.Output{}, build.BadInput("stage %s: item %s is not a task bundle: %v", c.Stage, c.Input.Name, err)
	}
	if err := checkBundle(b); err != nil {
		return build.Output{}, build.BadInput("stage %s: item %s: %v", c.Stage, c.Input.Name, err)
	}
	task, err := rolloutTask(b, p.prompts)
	if err != nil {
		return build.Output{}, build.BadInput("stage %s: item %s: %v", c.Stage, c.Input.Name, err)
	}
	env, err := AgentEnv(c)
	if err != nil {
		return build.Output{}, err
	}

	policies := make([]agent.Policy, p.Samples)
	if p.Policy == PolicyOracle {
		calls, err := oracleScript(c, b, task)
		if err != nil {
			c.Session.Logf(c.Stage, "%s: oracle cannot script the solution: %v", b.Instance.InstanceID, err)
			c.Count(ctx, "rejected:oracle_unscriptable", 1)
			return build.Collection(nil), nil
		}
		policies[0] = agent.ScriptedPolicy{Label: PolicyOracle, Calls: calls}
	} else {
		client, err := Model(c, p.Model)
		if err != nil {
			return build.Output{}, err
		}
		for i := range policies {
			policies[i] = agent.ModelPolicy{Client: client, Sample: RolloutSampleBase + i}
		}
	}

	// Samples run at once. They often run the same command on the same
	// tree at the same moment; the sandbox runs such a command once and
	// every sample sees the one memoised result, so replays stay exact.
	trajs := make([]*schema.Trajectory, len(policies))
	rejects := make([]string, len(policies))
	g, gctx := errgroup.WithContext(ctx)
	for i, pol := range policies {
		g.Go(func() error {
			r, err := agent.Run(gctx, env, task, pol, p.Limits)
			if err != nil {
				return fmt.Errorf("rollout %d of %s: %w", i, b.Instance.InstanceID, err)
			}
			grade, err := gradeRollout(gctx, env, b, task, r.Final)
			if err != nil {
				return fmt.Errorf("grading rollout %d of %s: %w", i, b.Instance.InstanceID, err)
			}
			id := fmt.Sprintf("%s/%s/%d", b.Instance.InstanceID, p.rolloutLabel(), i)
			tr := agent.Trajectory(task, pol, r, grade, id)
			c.Count(ctx, "rollout.steps", float64(r.Steps))
			trajs[i], rejects[i] = &tr, p.Keep.Reject(&tr, r.InvalidCalls)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return build.Output{}, err
	}
	var items []build.Item
	for i, tr := range trajs {
		if rejects[i] != "" {
			c.Count(ctx, "rejected:"+rejects[i], 1)
			continue
		}
		d, err := c.PutJSON(tr)
		if err != nil {
			return build.Output{}, err
		}
		items = append(items, build.Item{Name: fmt.Sprintf("s%d", i), Value: d})
		c.Count(ctx, "kept", 1)
	}
	return build.Collection(items), nil
}

// checkBundle rejects bundles a rollout cannot run.
func checkBundle(b TaskBundle) error {
	switch {
	case b.Instance.InstanceID == "":
		return fmt.Errorf("task bundle has no instance_id")
	case b.Image.Digest == "" || len(b.Image.Layers) == 0:
		return fmt.Errorf("task bundle %s has no image", b.Instance.InstanceID)
	case b.Start.IsZero():
		return fmt.Errorf("task bundle %s has no start tree", b.Instance.InstanceID)
	}
	if t := b.Instance.TaskType; t != "" && !t.Valid() {
		return fmt.Errorf("task bundle %s has unknown task type %q", b.Instance.InstanceID, t)
	}
	return nil
}

// rolloutTask turns a bundle into what the agent loop runs, with the
// prompts rendered from the bundle's problem statement.
func rolloutTask(b TaskBundle, prompts *agent.Prompts) (agent.Task, error) {
	typ := string(b.Instance.TaskType)
	if typ == "" {
		typ = string(schema.TaskFix)
	}
	prof, err := lang.Get(b.Instance.Language)
	if err != nil {
		return agent.Task{}, fmt.Errorf("task %s: %w", b.Instance.InstanceID, err)
	}
	testCmd := b.TestCmd
	if len(testCmd) == 0 {
		testCmd = prof.TestCommand(nil)
	}
	shownCmd := b.Instance.TestCmd
	if shownCmd == "" {
		shownCmd = shellJoin(testCmd)
	}
	system, user, err := prompts.Render(typ, map[string]string{
		"problem_statement": b.Instance.ProblemStatement,
		"test_cmd":          shownCmd,
	})
	if err != nil {
		return agent.Task{}, err
	}
	return agent.Task{
		InstanceID: b.Instance.InstanceID,
		Repo:       b.Instance.Repo,
		TaskType:   typ,
		Image:      b.Image,
		Workspace:  b.Start,
		Prompt:     user,
		System:     system,
		Protected:  b.Protected,
		Language:   prof.Name(),
		TestCmd:    testCmd,
		FailToPass: b.Instance.FailToPass,
		PassToPass: b.Instance.PassToPass,
	}, nil
}

// oracleScript is the oracle's tool calls: run the failing tests, apply
// the solution with the editor, run the grading tests again. Past the
// script the scripted policy calls finish.
func oracleScript(c *build.Call, b TaskBundle, task agent.Task) ([]schema.ToolCall, error) {
	if b.Solution.IsZero() {
		return nil, fmt.Errorf("task bundle has no solution tree")
	}
	edits, err := agent.OracleCalls(c.Store(), b.Start, b.Solution)
	if err != nil {
		return nil, err
	}
	prof, err := lang.Get(task.Language)
	if err != nil {
		return nil, err
	}
	first := shellJoin(append(slices.Clone(task.TestCmd), agent.TestArgs(prof, task.FailToPass)...))
	all := append(slices.Clone(task.TestCmd), agent.TestArgs(prof, append(slices.Clone(task.FailToPass), task.PassToPass...))...)
	calls := []schema.ToolCall{agent.Call(agent.ToolBash, map[string]any{"command": first})}
	calls = append(calls, edits...)
	calls = append(calls, agent.Call(agent.ToolBash, map[string]any{"command": shellJoin(all)}))
	return calls, nil
}
