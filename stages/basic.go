// Package stages holds dsbuild's stage kinds. Each kind is a plain function
// of (params, inputs, effects) registered with the build engine; effects
// (model calls, sandbox runs, images) are reached through services on the
// build session, never through globals.
package stages

import (
	"bytes"
	"context"
	"fmt"
	"text/template"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
)

func init() {
	build.Register(&build.Kind{
		Name: "list", Version: "1", Doc: "a literal collection: one item per entry of items, or count generated items",
		Params: func() any { return &ListParams{Prefix: "item"} },
		Run:    runList,
	})
	build.Register(&build.Kind{
		Name: "template", Version: "2", Doc: "renders a Go text/template for its input item (or once) into a text blob",
		Params: func() any { return &TemplateParams{} },
		Run:    runTemplate,
	})
}

// ListParams are the params of the list kind.
type ListParams struct {
	// Items become one item each, named by their text.
	Items []string `yaml:"items" json:"items,omitempty"`
	// Count generates that many items named <prefix>-00000, ...
	Count  int    `yaml:"count" json:"count,omitempty"`
	Prefix string `yaml:"prefix" json:"prefix"`
}

// Validate checks the params.
func (p *ListParams) Validate() error {
	if len(p.Items) > 0 && p.Count > 0 {
		return fmt.Errorf("give items or count, not both")
	}
	if p.Count < 0 {
		return fmt.Errorf("count must not be negative")
	}
	return nil
}

func runList(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*ListParams)
	values := p.Items
	names := p.Items
	if p.Count > 0 {
		values = make([]string, p.Count)
		for i := range values {
			values[i] = fmt.Sprintf("%s-%05d", p.Prefix, i)
		}
		names = values
	}
	items := make([]build.Item, 0, len(values))
	for i, v := range values {
		d, err := c.Store().Put([]byte(v))
		if err != nil {
			return build.Output{}, err
		}
		items = append(items, build.Item{Name: names[i], Value: d})
	}
	return build.Collection(items), nil
}

// TemplateParams are the params of the template kind.
type TemplateParams struct {
	// Text is a Go text/template. It sees .Item (the input item's name) and
	// .Input (the input blob as text); nothing outside the node's key.
	Text string `yaml:"text" json:"text"`
	tmpl *template.Template
}

// Validate parses the template.
func (p *TemplateParams) Validate() error {
	t, err := template.New("text").Option("missingkey=error").Parse(p.Text)
	if err != nil {
		return fmt.Errorf("text: %v", err)
	}
	p.tmpl = t
	return nil
}

func runTemplate(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*TemplateParams)
	data := map[string]any{"Item": c.Item, "Input": ""}
	if c.Input != nil {
		b, err := c.Store().Get(c.Input.Value)
		if err != nil {
			return build.Output{}, err
		}
		data["Input"] = string(b)
	}
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, data); err != nil {
		return build.Output{}, err
	}
	d, err := c.Store().Put(buf.Bytes())
	return build.Value(d), err
}

func init() {
	build.Register(&build.Kind{
		Name: "bundle", Version: "1", Publish: true,
		Doc: "publishes the items of its from: stages as files <stage>/<item> in the output folder",
		Run: runBundle,
	})
}

func runBundle(ctx context.Context, c *build.Call) (build.Output, error) {
	files := map[string]cache.File{}
	for stage, items := range c.Inputs {
		for _, it := range items {
			b, err := c.Store().Get(it.Value)
			if err != nil {
				return build.Output{}, err
			}
			files[stage+"/"+it.Name] = cache.File{Data: b}
		}
	}
	d, err := c.Store().PutFiles(files)
	return build.Value(d), err
}
