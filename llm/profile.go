package llm

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Defaults applied to a Profile's zero-valued fields.
const (
	DefaultMaxInFlight = 8
	DefaultTimeout     = 300 * time.Second
	DefaultMaxRetries  = 6
)

// Profile describes one model endpoint as a recipe declares it under
// `models:`. It carries the name of the environment variable that holds the
// API key, never the key itself.
type Profile struct {
	// BaseURL is the OpenAI-compatible endpoint, e.g.
	// "https://api.openai.com/v1" or "http://127.0.0.1:8000/v1". It is not
	// part of any cache key. It must not carry credentials (user:password@)
	// or a query string (where some gateways take a key): keys belong in
	// the variable APIKeyEnv names. Gateways that take a token in the path
	// work, and the path is never printed: errors show scheme://host only.
	BaseURL string `yaml:"base_url" json:"base_url"`
	// Model is the model name sent with every request.
	Model string `yaml:"model" json:"model"`
	// APIKeyEnv names the environment variable holding the API key. Empty
	// means the endpoint needs no key (a local vLLM or Ollama server).
	APIKeyEnv string `yaml:"api_key_env,omitempty" json:"api_key_env,omitempty"`

	// Temperature is the sampling temperature (0 to 2); nil leaves it to the
	// server.
	Temperature *float64 `yaml:"temperature,omitempty" json:"temperature,omitempty"`
	// TopP is the nucleus-sampling mass (0 to 1]; nil leaves it to the server.
	TopP *float64 `yaml:"top_p,omitempty" json:"top_p,omitempty"`
	// MaxTokens bounds the completion length; 0 leaves it to the server.
	// A Request may override it.
	MaxTokens int `yaml:"max_tokens,omitempty" json:"max_tokens,omitempty"`
	// Seed is sent as the request seed, offset by the request's sample index
	// so that samples differ; nil sends no seed.
	Seed *int64 `yaml:"seed,omitempty" json:"seed,omitempty"`
	// ExtraBody holds further request-body fields the server understands
	// (e.g. top_k, reasoning_effort, chat_template_kwargs). They are part of
	// the cache key.
	ExtraBody map[string]any `yaml:"extra_body,omitempty" json:"extra_body,omitempty"`

	// MaxInFlight bounds concurrent HTTP requests (default 8).
	MaxInFlight int `yaml:"max_in_flight,omitempty" json:"max_in_flight,omitempty"`
	// RequestsPerMinute limits the request rate; 0 means unlimited.
	RequestsPerMinute int `yaml:"requests_per_minute,omitempty" json:"requests_per_minute,omitempty"`
	// TokensPerMinute limits prompt+completion tokens per minute, counted
	// after each call; 0 means unlimited.
	TokensPerMinute int `yaml:"tokens_per_minute,omitempty" json:"tokens_per_minute,omitempty"`
	// PriceInputPerMTok is the price in dollars per million prompt tokens.
	PriceInputPerMTok float64 `yaml:"price_input_per_mtok,omitempty" json:"price_input_per_mtok,omitempty"`
	// PriceOutputPerMTok is the price in dollars per million completion
	// tokens.
	PriceOutputPerMTok float64 `yaml:"price_output_per_mtok,omitempty" json:"price_output_per_mtok,omitempty"`
	// Timeout bounds each HTTP attempt, as a Go duration ("120s"); empty
	// means 300s.
	Timeout string `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// MaxRetries is how many times a failed attempt (429, 5xx, timeout,
	// connection error, unreadable reply) is retried: 0 means the default of
	// 6, a negative value means no retries.
	MaxRetries int `yaml:"max_retries,omitempty" json:"max_retries,omitempty"`
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedBody lists request fields extra_body must not set, with the
// reason shown to the user.
var reservedBody = map[string]string{
	"model":                 "set model instead",
	"messages":              "messages come from the stage",
	"tools":                 "tools come from the stage",
	"tool_choice":           "tool choice comes from the stage",
	"response_format":       "the response format comes from the stage",
	"stream":                "streaming is not supported",
	"n":                     "ask for several samples with distinct sample indexes instead",
	"temperature":           "set temperature instead",
	"top_p":                 "set top_p instead",
	"seed":                  "set seed instead",
	"max_tokens":            "set max_tokens instead",
	"stream_options":        "streaming is not supported",
	"parallel_tool_calls":   "", // allowed; listed so the check below stays one map
	"max_completion_tokens": "",
}

// Validate checks the profile and returns an error naming every bad field
// by its YAML name. It never echoes api_key_env's value when that value does
// not look like a variable name, in case a key was pasted there by mistake.
func (p Profile) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if strings.TrimSpace(p.Model) == "" {
		bad("model: must be set (the model name sent to the endpoint)")
	}
	if p.BaseURL == "" {
		bad("base_url: must be set (an OpenAI-compatible endpoint such as http://127.0.0.1:8000/v1)")
	} else if u, err := url.Parse(p.BaseURL); err == nil && (u.User != nil || u.RawQuery != "" || u.ForceQuery) {
		// Checked first and never echoed: the URL may hold a key.
		bad("base_url: must not carry credentials or a query string; put the key in the variable api_key_env names")
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Never echoed past the host: the path may hold a token.
		if err == nil && u.Host != "" && !strings.ContainsAny(u.Host, "@?") {
			bad("base_url: %q... is not an http(s) URL with a host", u.Scheme+"://"+u.Host)
		} else {
			bad("base_url: is not an http(s) URL with a host (not shown: it may hold credentials)")
		}
	}
	if p.APIKeyEnv != "" && !envNameRE.MatchString(p.APIKeyEnv) {
		bad("api_key_env: must be the name of an environment variable (letters, digits, underscore), not the key itself")
	}
	if t := p.Temperature; t != nil && (math.IsNaN(*t) || *t < 0 || *t > 2) {
		bad("temperature: %v is outside 0..2", *t)
	}
	if t := p.TopP; t != nil && (math.IsNaN(*t) || *t <= 0 || *t > 1) {
		bad("top_p: %v is outside (0, 1]", *t)
	}
	if p.MaxTokens < 0 {
		bad("max_tokens: %d is negative", p.MaxTokens)
	}
	keys := make([]string, 0, len(p.ExtraBody))
	for k := range p.ExtraBody {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why := reservedBody[k]; why != "" {
			bad("extra_body: field %q is not allowed here: %s", k, why)
		} else if k == "" || strings.ContainsAny(k, ".*?|#@\\") {
			bad("extra_body: field name %q must be a plain JSON key", k)
		}
	}
	if p.MaxInFlight < 0 {
		bad("max_in_flight: %d is negative", p.MaxInFlight)
	}
	if p.RequestsPerMinute < 0 {
		bad("requests_per_minute: %d is negative", p.RequestsPerMinute)
	}
	if p.TokensPerMinute < 0 {
		bad("tokens_per_minute: %d is negative", p.TokensPerMinute)
	}
	if p.PriceInputPerMTok < 0 || math.IsNaN(p.PriceInputPerMTok) {
		bad("price_input_per_mtok: %v is negative", p.PriceInputPerMTok)
	}
	if p.PriceOutputPerMTok < 0 || math.IsNaN(p.PriceOutputPerMTok) {
		bad("price_output_per_mtok: %v is negative", p.PriceOutputPerMTok)
	}
	if p.Timeout != "" {
		if d, err := time.ParseDuration(p.Timeout); err != nil {
			bad("timeout: %q is not a Go duration like \"120s\"", p.Timeout)
		} else if d <= 0 {
			bad("timeout: %q must be positive", p.Timeout)
		}
	}
	return errors.Join(errs...)
}

// settings is a validated profile with defaults applied.
type settings struct {
	maxInFlight int
	timeout     time.Duration
	maxRetries  int
}

func (p Profile) settings() settings {
	s := settings{maxInFlight: p.MaxInFlight, timeout: DefaultTimeout, maxRetries: p.MaxRetries}
	if s.maxInFlight == 0 {
		s.maxInFlight = DefaultMaxInFlight
	}
	if p.Timeout != "" {
		s.timeout, _ = time.ParseDuration(p.Timeout)
	}
	switch {
	case s.maxRetries == 0:
		s.maxRetries = DefaultMaxRetries
	case s.maxRetries < 0:
		s.maxRetries = 0
	}
	return s
}

// Dollars returns the estimated price of a call with the given token counts.
func (p Profile) Dollars(promptTokens, completionTokens int64) float64 {
	return (float64(promptTokens)*p.PriceInputPerMTok + float64(completionTokens)*p.PriceOutputPerMTok) / 1e6
}
