package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/schema"
)

func init() {
	build.Register(&build.Kind{
		Name: "decompose", Version: "1", Pool: "llm",
		Doc:      "splits a project (foreach schema.Project) into phases, modules and pull-request-sized tasks with dependencies, difficulty and test checklists: a PlaygroundPlan",
		Params:   func() any { return &DecomposeParams{MaxPhases: 5, MinTasks: 10, MaxTasks: 40, MaxReasks: 2} },
		Sections: []string{SectionModels, SectionSalt},
		Assets:   []*build.Asset{playgroundPrompts},
		Run:      runDecompose,
	})
}

// DecomposeParams are the params of the decompose kind.
type DecomposeParams struct {
	// Model is the profile name in the recipe's models: section.
	Model string `yaml:"model" json:"model"`
	// MaxPhases bounds the number of phases (at most five in the paper).
	MaxPhases int `yaml:"max_phases" json:"max_phases"`
	// MinTasks and MaxTasks bound the number of tasks.
	MinTasks int `yaml:"min_tasks" json:"min_tasks"`
	MaxTasks int `yaml:"max_tasks" json:"max_tasks"`
	// MaxReasks bounds re-asks after an invalid plan (bad JSON, a cycle, an
	// unknown dependency, too many phases); after them the project is
	// rejected.
	MaxReasks int `yaml:"max_reasks" json:"max_reasks"`
}

// Validate checks the params.
func (p *DecomposeParams) Validate() error {
	if p.Model == "" {
		return errors.New("model: name a profile of the models: section")
	}
	if p.MaxPhases < 1 || p.MinTasks < 1 || p.MaxTasks < p.MinTasks || p.MaxReasks < 0 {
		return errors.New("need max_phases >= 1, 1 <= min_tasks <= max_tasks, max_reasks >= 0")
	}
	return nil
}

type decomposeReply struct {
	Tasks []schema.TaskSpec `json:"tasks"`
}

// checkPlan validates a decomposition and returns its tasks in dependency
// order.
func checkPlan(tasks []schema.TaskSpec, p *DecomposeParams) ([]schema.TaskSpec, error) {
	if len(tasks) < p.MinTasks || len(tasks) > p.MaxTasks {
		return nil, fmt.Errorf("the plan has %d tasks; give between %d and %d", len(tasks), p.MinTasks, p.MaxTasks)
	}
	phases := map[string]bool{}
	for i, t := range tasks {
		if strings.TrimSpace(t.Phase) == "" || strings.TrimSpace(t.Module) == "" {
			return nil, fmt.Errorf("tasks[%d] (%s): phase and module must be set", i, t.ID)
		}
		if len(t.Tests) == 0 {
			return nil, fmt.Errorf("tasks[%d] (%s): tests checklist is empty", i, t.ID)
		}
		phases[t.Phase] = true
	}
	if len(phases) > p.MaxPhases {
		return nil, fmt.Errorf("the plan has %d phases; at most %d are allowed", len(phases), p.MaxPhases)
	}
	return schema.OrderTaskSpecs(tasks)
}

func runDecompose(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*DecomposeParams)
	if c.Input == nil {
		return build.Output{}, build.BadInput("stage %s: decompose needs foreach: <stage of projects>", c.Stage)
	}
	var proj schema.Project
	if err := c.GetJSON(c.Input.Value, &proj); err != nil {
		return build.Output{}, build.BadInput("stage %s: item %s is not a project: %v", c.Stage, c.Input.Name, err)
	}
	if err := proj.Validate(); err != nil {
		return build.Output{}, build.BadInput("stage %s: item %s: %v", c.Stage, c.Input.Name, err)
	}
	c.Count(ctx, "in", 1)
	client, err := Model(c, p.Model)
	if err != nil {
		return build.Output{}, err
	}
	l, err := pgLanguage(proj.Language)
	if err != nil {
		return build.Output{}, build.BadInput("stage %s: item %s: %v", c.Stage, c.Input.Name, err)
	}
	pkg := packageName(proj.ID)
	system, err := renderPlayground(ctx, "decompose.system", map[string]string{
		"max_phases": fmt.Sprint(p.MaxPhases), "min_tasks": fmt.Sprint(p.MinTasks), "max_tasks": fmt.Sprint(p.MaxTasks), "package": pkg,
		"layout": l.text().layout(pkg)})
	if err != nil {
		return build.Output{}, err
	}
	user, err := renderPlayground(ctx, "decompose.user", map[string]string{
		"name": proj.Name, "id": proj.ID, "description": proj.Description, "specification": proj.Specification,
		"constraints": strings.Join(proj.Constraints, "; "), "banned": strings.Join(proj.BannedLibraries, ", ")})
	if err != nil {
		return build.Output{}, err
	}
	req := llm.Request{Messages: []schema.Message{{Role: "system", Content: system}, {Role: "user", Content: user}},
		ResponseFormat: llm.JSONObjectFormat}
	var ordered []schema.TaskSpec
	validate := func(b []byte) error {
		var r decomposeReply
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		o, err := checkPlan(r.Tasks, p)
		if err != nil {
			return err
		}
		ordered = o
		return nil
	}
	var reply decomposeReply
	_, err = llm.CompleteJSON(ctx, client, req, validate, &reply, p.MaxReasks)
	var invalid *llm.InvalidOutputError
	if errors.As(err, &invalid) {
		c.Count(ctx, "rejected:invalid plan", 1)
		c.Session.Logf(c.Stage, "%s: plan rejected after %d attempts: %v", proj.ID, invalid.Attempts, invalid.Err)
		return build.Collection(nil), nil
	}
	if err != nil {
		return build.Output{}, err
	}
	d, err := c.PutJSON(PlaygroundPlan{Project: proj, Package: pkg, Tasks: ordered})
	if err != nil {
		return build.Output{}, err
	}
	c.Count(ctx, "kept", 1)
	return build.Value(d), nil
}
