package stages

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// Recipe sections the effect-using kinds read. A kind lists the ones it
// reads in build.Kind.Sections so that editing them re-keys its nodes.
const (
	SectionModels       = "models"
	SectionEnvironments = "environments"
	SectionSandbox      = "sandbox"
	SectionSalt         = "salt"
)

func init() {
	build.RegisterSection(SectionModels, func() any { return &Models{} })
	build.RegisterSection(SectionEnvironments, func() any { return &Environments{} })
	build.RegisterSection(SectionSandbox, func() any { l := sandbox.Limits{}; return &l })
	build.RegisterSection(SectionSalt, func() any { var s string; return &s })
}

// Models maps profile names to model profiles (recipe section "models").
type Models map[string]llm.Profile

// Validate checks every profile.
func (m Models) Validate() error {
	for _, name := range sortedKeys(m) {
		if err := m[name].Validate(); err != nil {
			return fmt.Errorf("model %s: %v", name, err)
		}
	}
	return nil
}

// KeyView is what of the profiles can change a model's replies, the part
// that enters node keys: the endpoint, the key's variable, concurrency and
// rate limits, timeouts, retries and prices are left out, as they are of
// each call's own key.
func (m Models) KeyView() any {
	type view struct {
		Model       string         `json:"model"`
		Temperature *float64       `json:"temperature,omitempty"`
		TopP        *float64       `json:"top_p,omitempty"`
		MaxTokens   int            `json:"max_tokens,omitempty"`
		Seed        *int64         `json:"seed,omitempty"`
		ExtraBody   map[string]any `json:"extra_body,omitempty"`
	}
	out := make(map[string]view, len(m))
	for name, p := range m {
		out[name] = view{p.Model, p.Temperature, p.TopP, p.MaxTokens, p.Seed, p.ExtraBody}
	}
	return out
}

// Environments maps environment names to base images (recipe section
// "environments"), e.g. python: {debian: {packages: [python3, python3-pytest]}}.
type Environments map[string]oci.BaseSpec

// Resolve takes every layout or archive path relative to recipeDir and
// pins it to the digest of its content (see oci.BaseSpec.Resolve); content
// that cannot be read is bad input, named by its environment.
func (e Environments) Resolve(recipeDir string) error {
	for _, name := range sortedKeys(e) {
		spec := e[name]
		if err := spec.Resolve(recipeDir); err != nil {
			return fmt.Errorf("environment %s: %v", name, err)
		}
		e[name] = spec
	}
	return nil
}

// Validate checks every environment, and pins each layout or archive that
// Resolve has not (paths relative to the working directory), so that
// content that cannot be read is reported when the recipe is loaded.
func (e Environments) Validate() error {
	for _, name := range sortedKeys(e) {
		spec := e[name]
		if err := spec.Validate(); err != nil {
			return fmt.Errorf("environment %s: %v", name, err)
		}
		if spec.Pinned() == "" {
			if err := spec.Pin(); err != nil {
				return fmt.Errorf("environment %s: %v", name, err)
			}
			e[name] = spec
		}
	}
	return nil
}

// KeyView is what of the environments enters node keys: a Debian or
// registry environment as written (so keys are what they were before
// file-based environments were keyed by content), a layout or archive
// by the digest of the image it holds, not by its path, so replacing the
// file re-runs what used it and moving it re-runs nothing.
func (e Environments) KeyView() any {
	out := make(map[string]any, len(e))
	for _, name := range sortedKeys(e) {
		v, err := e[name].KeyView()
		if err != nil {
			// Only for environments Validate has not pinned (Validate
			// reports unreadable content first): the loader reports the
			// failed encoding as a recipe error.
			return unencodable{fmt.Errorf("environment %s: %v", name, err)}
		}
		out[name] = v
	}
	return out
}

// unencodable is a key view that fails to encode with err.
type unencodable struct{ err error }

func (u unencodable) MarshalJSON() ([]byte, error) { return nil, u.err }

// mustSection returns the recipe section name for a kind that must declare
// it; a kind that does not is a programming error, which the engine reports
// as the node's failure.
func mustSection(c *build.Call, name string) any {
	sec, err := c.Section(name)
	if err != nil {
		panic(err)
	}
	return sec
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DefaultEnvironment is used by kinds when a recipe names no environment:
// Debian bookworm with python3 and pytest, built offline-reproducibly.
var DefaultEnvironment = oci.BaseSpec{Debian: &oci.DebianSpec{Suite: "bookworm", Packages: []string{"python3", "python3-pytest"}}}

// Model returns the build's client for the model profile called name. All
// nodes share one client per profile, so its in-flight and rate limits hold
// build-wide; its calls are counted on the calling node (llm.calls,
// llm.cache_hits, llm.prompt_tokens, llm.completion_tokens, llm.dollars,
// llm.retries and one llm.retries:<cause> per cause, e.g. "llm.retries:http
// 429"), and each retried call is logged.
func Model(c *build.Call, name string) (*llm.Client, error) {
	sec, err := c.Section(SectionModels)
	if err != nil {
		return nil, err
	}
	models, _ := sec.(*Models)
	if models == nil {
		return nil, build.BadInput("stage %s uses model %q but the recipe has no models: section", c.Stage, name)
	}
	profile, ok := (*models)[name]
	if !ok {
		return nil, build.BadInput("stage %s uses model %q, which the recipe's models: section does not define (it has %v)", c.Stage, name, sortedKeys(*models))
	}
	salt := ""
	if s, ok := mustSection(c, SectionSalt).(*string); ok && s != nil {
		salt = *s
	}
	sess := c.Session
	return build.Service(c.Session, "llm:"+name, func() (*llm.Client, error) {
		client, err := llm.New(c.Store(), name, profile, llm.Options{
			Offline: c.Session.Offline,
			Salt:    salt,
			Observer: func(ctx context.Context, ci llm.CallInfo) {
				countLLM(ctx, ci)
				if ci.Retries > 0 {
					// The client serves every stage: the line names the profile.
					outcome := "then answered"
					if ci.Err != nil {
						outcome = "then failed"
					}
					sess.Logf("model "+name, "a call was retried %d times (%s), %s", ci.Retries, strings.Join(ci.RetryCauses, ", "), outcome)
				}
			},
		})
		if err != nil {
			// llm.New fails only on configuration (a missing API key, say).
			return nil, &build.BadInputError{Err: err}
		}
		return client, nil
	})
}

func countLLM(ctx context.Context, ci llm.CallInfo) {
	build.Count(ctx, "llm.calls", 1)
	if ci.Cached {
		build.Count(ctx, "llm.cache_hits", 1)
	}
	build.Count(ctx, "llm.prompt_tokens", float64(ci.PromptTokens))
	build.Count(ctx, "llm.completion_tokens", float64(ci.CompletionTokens))
	build.Count(ctx, "llm.dollars", ci.Dollars)
	if ci.Retries > 0 {
		build.Count(ctx, "llm.retries", float64(ci.Retries))
		for _, cause := range ci.RetryCauses {
			build.Count(ctx, "llm.retries:"+cause, 1)
		}
	}
	// The same per model profile, for the build report's cost per model.
	for name, v := range map[string]float64{"calls": 1, "prompt_tokens": float64(ci.PromptTokens),
		"completion_tokens": float64(ci.CompletionTokens), "dollars": ci.Dollars} {
		build.Count(ctx, LLMModelCounter(ci.Profile, name), v)
	}
	if ci.Cached {
		build.Count(ctx, LLMModelCounter(ci.Profile, "cache_hits"), 1)
	}
}

// LLMModelCounter names the counter of one model profile's calls,
// prompt_tokens, completion_tokens, dollars or cache_hits:
// "llm.model:<profile>:<name>".
func LLMModelCounter(profile, name string) string { return "llm.model:" + profile + ":" + name }

// Sandbox returns the build's sandbox runner. Its slots follow the build's
// -j (Session.Jobs), so a kind that fans out runs inside one node still
// has at most that many sandboxes going, together with every other node.
func Sandbox(c *build.Call) (*sandbox.Runner, error) {
	return build.Service(c.Session, "sandbox", func() (*sandbox.Runner, error) {
		jobs := min(c.Session.Jobs, sandbox.MaxJobs)
		r, err := sandbox.New(c.Store(), sandbox.Options{Recheck: c.Session.Recheck, Jobs: jobs})
		if err == nil {
			c.Session.Logf(c.Stage, "sandbox bounds: %s", r.Bounds())
		}
		return r, err
	})
}

// SandboxLimits returns the recipe's sandbox limits (section "sandbox")
// with defaults filled in.
func SandboxLimits(c *build.Call) sandbox.Limits {
	if l, ok := mustSection(c, SectionSandbox).(*sandbox.Limits); ok && l != nil {
		return l.WithDefaults()
	}
	return sandbox.DefaultLimits()
}

// Images returns the build's image builder.
func Images(c *build.Call) (*oci.Builder, error) {
	return build.Service(c.Session, "oci", func() (*oci.Builder, error) {
		return oci.NewBuilder(c.Store(), oci.Options{Offline: c.Session.Offline}), nil
	})
}

// Environment returns the base image of the recipe's environment called
// name ("" means the recipe's only environment, or DefaultEnvironment when
// it has none), building it on first use.
func Environment(ctx context.Context, c *build.Call, name string) (schema.Image, error) {
	spec, err := environmentSpec(c, name)
	if err != nil {
		return schema.Image{}, err
	}
	b, err := Images(c)
	if err != nil {
		return schema.Image{}, err
	}
	img, err := b.Base(ctx, spec)
	if err != nil {
		return schema.Image{}, fmt.Errorf("environment %q: %w", name, err)
	}
	return img, nil
}

func environmentSpec(c *build.Call, name string) (oci.BaseSpec, error) {
	sec, err := c.Section(SectionEnvironments)
	if err != nil {
		return oci.BaseSpec{}, err
	}
	envs, _ := sec.(*Environments)
	if envs == nil || len(*envs) == 0 {
		if name != "" {
			return oci.BaseSpec{}, build.BadInput("stage %s uses environment %q but the recipe has no environments: section", c.Stage, name)
		}
		return DefaultEnvironment, nil
	}
	if name == "" {
		if len(*envs) != 1 {
			return oci.BaseSpec{}, build.BadInput("stage %s must name an environment: the recipe has %v", c.Stage, sortedKeys(*envs))
		}
		name = sortedKeys(*envs)[0]
	}
	spec, ok := (*envs)[name]
	if !ok {
		return oci.BaseSpec{}, build.BadInput("stage %s uses environment %q, which the recipe does not define (it has %v)", c.Stage, name, sortedKeys(*envs))
	}
	return spec, nil
}

// AgentEnv returns what the agent loop and test runs need: the store, the
// sandbox runner and the recipe's sandbox limits.
func AgentEnv(c *build.Call) (agent.Env, error) {
	r, err := Sandbox(c)
	if err != nil {
		return agent.Env{}, err
	}
	return agent.Env{Store: c.Store(), Sandbox: r, SandboxLimits: SandboxLimits(c)}, nil
}
