package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/schema"
)

func init() {
	build.Register(&build.Kind{
		Name: "propose_projects", Version: "1", Pool: "llm",
		Doc: "asks a model for project proposals (one call per theme), validates them and drops near-duplicates: a collection of schema.Project",
		Params: func() any {
			return &ProposeParams{PerCall: 5, MinTasks: 10, Language: "python", MaxReasks: 2, Similarity: 0.6}
		},
		Sections: []string{SectionModels, SectionSalt},
		Assets:   []*build.Asset{playgroundPrompts},
		Run:      runPropose,
	})
}

// ProposeParams are the params of the propose_projects kind.
type ProposeParams struct {
	// Model is the profile name in the recipe's models: section.
	Model string `yaml:"model" json:"model"`
	// Themes steer diversity: one call per theme. Without themes, Calls
	// calls are made with no theme. A theme is a string, or a mapping
	// {theme: ..., language: ...} whose projects are in another language
	// than Language.
	Themes []ProposeTheme `yaml:"themes" json:"themes,omitempty"`
	Calls  int            `yaml:"calls" json:"calls,omitempty"`
	// PerCall is the number of projects asked for per call.
	PerCall int `yaml:"per_call" json:"per_call"`
	// MinTasks is the least number of tasks a project must split into
	// (stated in the prompt).
	MinTasks int `yaml:"min_tasks" json:"min_tasks"`
	// Language is the projects' implementation language: python (the
	// default), go, javascript or rust. It decides the proposal rules, the
	// scaffold's layout and stubs, the test files, test command and
	// grading of every project and task made from the proposals.
	Language string `yaml:"language" json:"language"`
	// MaxReasks bounds re-asks after an invalid reply.
	MaxReasks int `yaml:"max_reasks" json:"max_reasks"`
	// Similarity is the word-set Jaccard similarity (of name, description
	// and specification) at or above which a proposal is a near-duplicate
	// of an earlier one and dropped.
	Similarity float64 `yaml:"similarity" json:"similarity"`
	// Max caps the number of projects kept (0: no cap).
	Max int `yaml:"max" json:"max,omitempty"`
}

// Validate checks the params.
func (p *ProposeParams) Validate() error {
	if p.Model == "" {
		return errors.New("model: name a profile of the models: section")
	}
	if p.PerCall < 1 || p.MinTasks < 1 || p.MaxReasks < 0 || p.Max < 0 || p.Calls < 0 {
		return errors.New("per_call and min_tasks must be positive; calls, max and max_reasks not negative")
	}
	if len(p.Themes) == 0 && p.Calls == 0 {
		p.Calls = 1
	}
	if len(p.Themes) > 0 && p.Calls > 0 {
		return errors.New("give themes or calls, not both")
	}
	if p.Similarity <= 0 || p.Similarity > 1 {
		return errors.New("similarity must be in (0, 1]")
	}
	p.Language = strings.ToLower(p.Language)
	if _, err := pgLanguage(p.Language); err != nil {
		return fmt.Errorf("language: %v", err)
	}
	for i, t := range p.Themes {
		if strings.TrimSpace(t.Theme) == "" {
			return fmt.Errorf("themes[%d]: the theme is empty", i)
		}
		p.Themes[i].Language = strings.ToLower(t.Language)
		if t.Language == "" {
			continue
		}
		if _, err := pgLanguage(t.Language); err != nil {
			return fmt.Errorf("themes[%d] (%s): language: %v", i, t.Theme, err)
		}
	}
	return nil
}

// ProposeTheme is one theme of propose_projects: in YAML and JSON a string,
// or a mapping with the theme and the language of its projects when that
// is not the stage's.
type ProposeTheme struct {
	Theme    string
	Language string
}

// UnmarshalYAML reads a string or a {theme, language} mapping.
func (t *ProposeTheme) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		*t = ProposeTheme{Theme: s}
		return nil
	}
	var m struct {
		Theme    string `yaml:"theme"`
		Language string `yaml:"language"`
	}
	if err := unmarshal(&m); err != nil {
		return errors.New("a theme is a string or a mapping {theme: ..., language: ...}")
	}
	*t = ProposeTheme{Theme: m.Theme, Language: m.Language}
	return nil
}

// MarshalJSON writes a theme without a language of its own as its string,
// so a recipe that names no language per theme has the params it had
// before themes could.
func (t ProposeTheme) MarshalJSON() ([]byte, error) {
	if t.Language == "" {
		return json.Marshal(t.Theme)
	}
	return json.Marshal(map[string]string{"theme": t.Theme, "language": t.Language})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *ProposeTheme) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = ProposeTheme{Theme: s}
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*t = ProposeTheme{Theme: m["theme"], Language: m["language"]}
	return nil
}

type proposalReply struct {
	Projects []schema.Project `json:"projects"`
}

func validateProposals(lang string) func([]byte) error {
	return func(b []byte) error {
		var r proposalReply
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		if len(r.Projects) == 0 {
			return errors.New(`"projects" is empty`)
		}
		for i, p := range r.Projects {
			if err := p.Validate(); err != nil {
				return fmt.Errorf("projects[%d]: %v", i, err)
			}
			if strings.TrimSpace(p.Specification) == "" {
				return fmt.Errorf("projects[%d] (%s): specification is empty", i, p.ID)
			}
			if !strings.EqualFold(p.Language, lang) {
				return fmt.Errorf("projects[%d] (%s): language is %q, not %q", i, p.ID, p.Language, lang)
			}
			if !pyIdent.MatchString(p.ID) {
				if strings.EqualFold(lang, "python") {
					return fmt.Errorf("projects[%d]: id %q must be a lowercase Python package name", i, p.ID)
				}
				return fmt.Errorf("projects[%d]: id %q must be a short lowercase identifier (letters, digits, underscores, starting with a letter)", i, p.ID)
			}
		}
		return nil
	}
}

func runPropose(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*ProposeParams)
	client, err := Model(c, p.Model)
	if err != nil {
		return build.Output{}, err
	}
	themes := p.Themes
	if len(themes) == 0 {
		themes = make([]ProposeTheme, p.Calls)
	}
	var kept []schema.Project
	var keptWords []map[string]bool
	seenIDs := map[string]bool{}
	for i, theme := range themes {
		language := theme.Language
		if language == "" {
			language = p.Language
		}
		system, err := proposeSystem(ctx, p, language)
		if err != nil {
			return build.Output{}, err
		}
		user, err := renderPlayground(ctx, "propose.user", map[string]string{"count": fmt.Sprint(p.PerCall), "theme": theme.Theme, "avoid": ""})
		if err != nil {
			return build.Output{}, err
		}
		req := llm.Request{Messages: []schema.Message{{Role: "system", Content: system}, {Role: "user", Content: user}},
			ResponseFormat: llm.JSONObjectFormat, Sample: i}
		var reply proposalReply
		_, err = llm.CompleteJSON(ctx, client, req, validateProposals(language), &reply, p.MaxReasks)
		var invalid *llm.InvalidOutputError
		if errors.As(err, &invalid) {
			c.Count(ctx, "rejected:invalid proposal reply", 1)
			continue
		}
		if err != nil {
			return build.Output{}, err
		}
		for _, proj := range reply.Projects {
			c.Count(ctx, "in", 1)
			proj.Language = strings.ToLower(proj.Language)
			if seenIDs[proj.ID] {
				c.Count(ctx, "rejected:duplicate id", 1)
				continue
			}
			w := wordSet(proj.Name + " " + proj.Description + " " + proj.Specification)
			dup := false
			for _, o := range keptWords {
				if jaccard(w, o) >= p.Similarity {
					dup = true
					break
				}
			}
			if dup {
				c.Count(ctx, "rejected:near-duplicate", 1)
				continue
			}
			if p.Max > 0 && len(kept) >= p.Max {
				c.Count(ctx, "rejected:over max", 1)
				continue
			}
			seenIDs[proj.ID] = true
			kept = append(kept, proj)
			keptWords = append(keptWords, w)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].ID < kept[j].ID })
	items := make([]build.Item, 0, len(kept))
	for _, proj := range kept {
		d, err := c.PutJSON(proj)
		if err != nil {
			return build.Output{}, err
		}
		items = append(items, build.Item{Name: proj.ID, Value: d})
		c.Count(ctx, "kept", 1)
	}
	return build.Collection(items), nil
}

// proposeSystem renders the proposer's system prompt for projects in
// language.
func proposeSystem(ctx context.Context, p *ProposeParams, language string) (string, error) {
	l, err := pgLanguage(language)
	if err != nil {
		return "", err
	}
	t := l.text()
	return renderPlayground(ctx, "propose.system", map[string]string{"min_tasks": fmt.Sprint(p.MinTasks), "language": language,
		"toolchain": t.toolchain, "banned_examples": t.bannedExamples, "id_rule": t.idRule})
}

// wordSet returns the lowercase words (3+ letters) of s.
func wordSet(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		if len(w) >= 3 {
			out[w] = true
		}
	}
	return out
}

func jaccard(a, b map[string]bool) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	inter := 0
	for w := range a {
		if b[w] {
			inter++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}
