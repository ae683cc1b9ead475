package agent

import (
	"context"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/dsbuild/dsbuild/build"
)

//go:embed prompts/*.md
var promptFS embed.FS

// PromptAsset holds the default prompt templates. A stage kind that renders
// them with Prompt declares it in build.Kind.Assets, so editing a template
// re-runs its nodes.
var PromptAsset = build.NewAsset("agent/prompts", promptFS)

// Prompts is a set of prompt templates: for each task type a system and a
// user template (text/template), from files named <type>.system.md and
// <type>.user.md. Templates see the vars map given to Render, plus
// "workdir" (/testbed) unless the map sets it; a variable a template uses
// but the map lacks is an error.
type Prompts struct {
	// files maps "<type>.system" and "<type>.user" to template text.
	files map[string]string
}

// DefaultPrompts returns the embedded templates for the task types fix,
// reproduce, implement and testgen.
func DefaultPrompts() *Prompts {
	p := &Prompts{files: map[string]string{}}
	for _, path := range PromptAsset.Paths() {
		b, err := PromptAsset.ReadFile(context.Background(), path)
		if err != nil {
			panic(err) // embedded: cannot fail
		}
		p.files[strings.TrimSuffix(strings.TrimPrefix(path, "prompts/"), ".md")] = string(b)
	}
	return p
}

// PromptsFrom returns the default templates overridden (or extended with new
// task types) by the <type>.system.md and <type>.user.md files in dir.
// Other files are ignored. Every template is parsed so that a broken one is
// reported now, naming its file.
func PromptsFrom(dir string) (*Prompts, error) {
	p := DefaultPrompts()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("agent: prompts directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".system.md") || strings.HasSuffix(name, ".user.md")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("agent: prompts: %w", err)
		}
		if _, err := parseTemplate(name, string(b)); err != nil {
			return nil, fmt.Errorf("agent: prompt template %s: %w", filepath.Join(dir, name), err)
		}
		p.files[strings.TrimSuffix(name, ".md")] = string(b)
	}
	return p, nil
}

// TaskTypes lists the task types that have both templates, sorted.
func (p *Prompts) TaskTypes() []string {
	var out []string
	for k := range p.files {
		if t, ok := strings.CutSuffix(k, ".system"); ok {
			if _, ok := p.files[t+".user"]; ok {
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Text returns the unrendered system and user templates of taskType, for a
// stage to put into its cache key.
func (p *Prompts) Text(taskType string) (system, user string, err error) {
	system, ok1 := p.files[taskType+".system"]
	user, ok2 := p.files[taskType+".user"]
	if !ok1 || !ok2 {
		return "", "", fmt.Errorf("agent: no prompt templates for task type %q (have: %s)", taskType, strings.Join(p.TaskTypes(), ", "))
	}
	return system, user, nil
}

// Render fills in the templates of taskType with vars.
func (p *Prompts) Render(taskType string, vars map[string]string) (system, user string, err error) {
	st, ut, err := p.Text(taskType)
	if err != nil {
		return "", "", err
	}
	v := map[string]string{"workdir": Workdir}
	for k, x := range vars {
		v[k] = x
	}
	if system, err = render(taskType+".system.md", st, v); err != nil {
		return "", "", err
	}
	if user, err = render(taskType+".user.md", ut, v); err != nil {
		return "", "", err
	}
	return system, user, nil
}

// Prompt renders the default templates of taskType with vars; see
// Prompts.Render. Inside a node, the node's kind must declare PromptAsset.
func Prompt(ctx context.Context, taskType string, vars map[string]string) (system, user string, err error) {
	if err := PromptAsset.Check(ctx); err != nil {
		return "", "", err
	}
	return DefaultPrompts().Render(taskType, vars)
}

func parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Parse(text)
}

func render(name, text string, vars map[string]string) (string, error) {
	t, err := parseTemplate(name, text)
	if err != nil {
		return "", fmt.Errorf("agent: prompt template %s: %w", name, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, vars); err != nil {
		return "", fmt.Errorf("agent: prompt template %s: %w", name, err)
	}
	return strings.TrimRight(b.String(), "\n"), nil
}
