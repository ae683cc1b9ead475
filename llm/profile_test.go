package llm_test

import (
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/dsbuild/dsbuild/llm"
)

func TestProfileValidate(t *testing.T) {
	good := llm.Profile{BaseURL: "http://127.0.0.1:8000/v1", Model: "qwen"}
	if err := good.Validate(); err != nil {
		t.Fatalf("minimal profile: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*llm.Profile)
		want   string
	}{
		{"no model", func(p *llm.Profile) { p.Model = "" }, "model:"},
		{"no base_url", func(p *llm.Profile) { p.BaseURL = "" }, "base_url:"},
		{"relative base_url", func(p *llm.Profile) { p.BaseURL = "localhost:8000" }, "base_url:"},
		{"ftp base_url", func(p *llm.Profile) { p.BaseURL = "ftp://host/v1" }, "base_url:"},
		{"credentials in base_url", func(p *llm.Profile) { p.BaseURL = "https://u:pw@host/v1" }, "must not carry credentials"},
		{"user in base_url", func(p *llm.Profile) { p.BaseURL = "https://sk-proj-abc123@host/v1" }, "must not carry credentials or a query string"},
		{"query in base_url", func(p *llm.Profile) { p.BaseURL = "https://host/v1?api-key=sk-proj-abc123" }, "must not carry credentials or a query string"},
		{"empty query in base_url", func(p *llm.Profile) { p.BaseURL = "https://host/v1?" }, "must not carry credentials or a query string"},
		{"key in bad base_url", func(p *llm.Profile) { p.BaseURL = "ftp://u:sk-proj-abc123@host/v1" }, "must not carry credentials or a query string"},
		{"key in unparsable base_url", func(p *llm.Profile) { p.BaseURL = "http://u:sk-proj-abc123@[host/v1" }, "base_url:"},
		{"key in api_key_env", func(p *llm.Profile) { p.APIKeyEnv = "sk-proj-abc123" }, "api_key_env:"},
		{"temperature", func(p *llm.Profile) { v := 3.0; p.Temperature = &v }, "temperature:"},
		{"top_p", func(p *llm.Profile) { v := 0.0; p.TopP = &v }, "top_p:"},
		{"max_tokens", func(p *llm.Profile) { p.MaxTokens = -1 }, "max_tokens:"},
		{"extra_body model", func(p *llm.Profile) { p.ExtraBody = map[string]any{"model": "x"} }, `extra_body: field "model"`},
		{"extra_body temperature", func(p *llm.Profile) { p.ExtraBody = map[string]any{"temperature": 1} }, "set temperature instead"},
		{"extra_body n", func(p *llm.Profile) { p.ExtraBody = map[string]any{"n": 4} }, "sample indexes"},
		{"extra_body path", func(p *llm.Profile) { p.ExtraBody = map[string]any{"a.b": 4} }, "plain JSON key"},
		{"max_in_flight", func(p *llm.Profile) { p.MaxInFlight = -2 }, "max_in_flight:"},
		{"rpm", func(p *llm.Profile) { p.RequestsPerMinute = -1 }, "requests_per_minute:"},
		{"tpm", func(p *llm.Profile) { p.TokensPerMinute = -1 }, "tokens_per_minute:"},
		{"price in", func(p *llm.Profile) { p.PriceInputPerMTok = -1 }, "price_input_per_mtok:"},
		{"price out", func(p *llm.Profile) { p.PriceOutputPerMTok = -1 }, "price_output_per_mtok:"},
		{"timeout", func(p *llm.Profile) { p.Timeout = "soon" }, "timeout:"},
		{"timeout zero", func(p *llm.Profile) { p.Timeout = "0s" }, "must be positive"},
	}
	for _, tc := range cases {
		p := good
		tc.mutate(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "sk-proj-abc123") {
			t.Errorf("%s: error echoes what looks like a key: %v", tc.name, err)
		}
	}
	// Several problems are all reported.
	err := llm.Profile{}.Validate()
	if err == nil || !strings.Contains(err.Error(), "model:") || !strings.Contains(err.Error(), "base_url:") {
		t.Fatalf("got %v", err)
	}
	if err := (llm.Profile{BaseURL: "https://api.openai.com/v1", Model: "m", ExtraBody: map[string]any{"max_completion_tokens": 5, "parallel_tool_calls": false}}).Validate(); err != nil {
		t.Fatalf("allowed extra_body fields rejected: %v", err)
	}
}

func TestProfileDecodesStrictYAML(t *testing.T) {
	src := `
teacher:
  base_url: http://127.0.0.1:8000/v1
  model: qwen2.5-coder-32b
  api_key_env: VLLM_KEY
  temperature: 0.2
  top_p: 0.95
  max_tokens: 4096
  seed: 7
  extra_body: {top_k: 20, chat_template_kwargs: {enable_thinking: false}}
  max_in_flight: 64
  requests_per_minute: 500
  tokens_per_minute: 200000
  price_input_per_mtok: 0.5
  price_output_per_mtok: 1.5
  timeout: 120s
  max_retries: 3
`
	var got map[string]llm.Profile
	if err := yaml.UnmarshalWithOptions([]byte(src), &got, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	p := got["teacher"]
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Model != "qwen2.5-coder-32b" || *p.Temperature != 0.2 || *p.TopP != 0.95 || p.MaxTokens != 4096 || *p.Seed != 7 ||
		p.MaxInFlight != 64 || p.RequestsPerMinute != 500 || p.TokensPerMinute != 200000 || p.PriceInputPerMTok != 0.5 ||
		p.PriceOutputPerMTok != 1.5 || p.Timeout != "120s" || p.MaxRetries != 3 || p.APIKeyEnv != "VLLM_KEY" || len(p.ExtraBody) != 2 {
		t.Fatalf("decoded %+v", p)
	}
	bad := "teacher:\n  base_url: http://x/v1\n  model: m\n  api_key: sk-123\n"
	if err := yaml.UnmarshalWithOptions([]byte(bad), &got, yaml.Strict()); err == nil {
		t.Fatal("strict decoding accepted an unknown field")
	}
}
