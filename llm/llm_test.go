package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/schema"
)

const testKey = "sk-test-SECRET-d41d8cd98f00b204"

func ptr[T any](v T) *T { return &v }

func openStore(t testing.TB, dir string) *cache.Store {
	t.Helper()
	s, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func profile(srv *llmtest.Server) llm.Profile {
	return llm.Profile{BaseURL: srv.URL(), Model: "test-model", APIKeyEnv: "DSBUILD_TEST_LLM_KEY", Timeout: "5s"}
}

func fastOpts() llm.Options {
	return llm.Options{APIKey: testKey, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 20 * time.Millisecond}
}

func newClient(t testing.TB, store *cache.Store, p llm.Profile, o llm.Options) *llm.Client {
	t.Helper()
	c, err := llm.New(store, "teacher", p, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ask(s string) llm.Request {
	return llm.Request{Messages: []schema.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: s}}}
}

func echo(r *llmtest.Request) llmtest.Reply {
	return llmtest.Text(fmt.Sprintf("echo %s #%d", r.LastUserMessage(), r.Index))
}

func TestIdenticalRequestsHitAcrossStoreHandles(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	dir := t.TempDir()
	ctx := context.Background()

	c1 := newClient(t, openStore(t, dir), profile(srv), fastOpts())
	r1, err := c1.Complete(ctx, ask("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Cached || r1.Message.Content != "echo hello #0" || r1.Message.Role != "assistant" {
		t.Fatalf("first call: %+v", r1)
	}
	// A second handle on the same directory, as another process would have.
	c2 := newClient(t, openStore(t, dir), profile(srv), fastOpts())
	r2, err := c2.Complete(ctx, ask("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Cached || r2.Message.Content != r1.Message.Content || r2.Key != r1.Key || r2.Usage != r1.Usage {
		t.Fatalf("second handle: got %+v, want cached copy of %+v", r2, r1)
	}
	if n := srv.Requests(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
}

// TestHitInSubprocess replays a cached call in a separate process that is
// offline and has no server at all.
func TestHitInSubprocess(t *testing.T) {
	if dir := os.Getenv("LLMTEST_SUBPROCESS_STORE"); dir != "" {
		store, err := cache.Open(dir)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(3)
		}
		c, err := llm.New(store, "teacher", llm.Profile{BaseURL: "http://127.0.0.1:1/v1", Model: "test-model", Timeout: "5s"}, llm.Options{Offline: true})
		if err == nil {
			var r *llm.Response
			r, err = c.Complete(context.Background(), ask("across processes"))
			if err == nil {
				fmt.Printf("REPLY cached=%v %s\n", r.Cached, r.Message.Content)
				os.Exit(0)
			}
		}
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	dir := t.TempDir()
	c := newClient(t, openStore(t, dir), profile(srv), fastOpts())
	if _, err := c.Complete(context.Background(), ask("across processes")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHitInSubprocess$")
	cmd.Env = append(os.Environ(), "LLMTEST_SUBPROCESS_STORE="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("subprocess: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "REPLY cached=true echo across processes #0") {
		t.Fatalf("subprocess output:\n%s", out)
	}
}

func TestKeyChangesWithEveryRequestField(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	store := openStore(t, t.TempDir())
	base := profile(srv)
	tool := schema.Tool{Type: "function", Function: schema.ToolFunction{Name: "bash", Description: "run", Parameters: json.RawMessage(`{"type":"object"}`)}}
	baseReq := llm.Request{
		Messages: []schema.Message{
			{Role: "user", Content: "fix it"},
			{Role: "assistant", ToolCalls: []schema.ToolCall{{ID: "c1", Type: "function", Function: schema.FunctionCall{Name: "bash", Arguments: `{"cmd":"ls"}`}}}},
			{Role: "tool", ToolCallID: "c1", Content: "a.py"},
		},
		Tools: []schema.Tool{tool},
	}
	type variant struct {
		name string
		p    func(*llm.Profile)
		r    func(*llm.Request)
		o    func(*llm.Options)
	}
	variants := []variant{
		{name: "model", p: func(p *llm.Profile) { p.Model = "other-model" }},
		{name: "temperature", p: func(p *llm.Profile) { p.Temperature = ptr(0.7) }},
		{name: "temperature zero", p: func(p *llm.Profile) { p.Temperature = ptr(0.0) }},
		{name: "top_p", p: func(p *llm.Profile) { p.TopP = ptr(0.9) }},
		{name: "profile max_tokens", p: func(p *llm.Profile) { p.MaxTokens = 100 }},
		{name: "seed", p: func(p *llm.Profile) { p.Seed = ptr(int64(1)) }},
		{name: "extra_body", p: func(p *llm.Profile) { p.ExtraBody = map[string]any{"top_k": 20} }},
		{name: "message content", r: func(r *llm.Request) { r.Messages[0].Content = "fix it!" }},
		{name: "message role", r: func(r *llm.Request) { r.Messages[0].Role = "system" }},
		{name: "tool call arguments", r: func(r *llm.Request) { r.Messages[1].ToolCalls[0].Function.Arguments = `{"cmd":"pwd"}` }},
		{name: "tool result", r: func(r *llm.Request) { r.Messages[2].Content = "b.py" }},
		{name: "extra message", r: func(r *llm.Request) { r.Messages = append(r.Messages, schema.Message{Role: "user", Content: "go on"}) }},
		{name: "tool description", r: func(r *llm.Request) { r.Tools[0].Function.Description = "run a command" }},
		{name: "tool parameters", r: func(r *llm.Request) {
			r.Tools[0].Function.Parameters = json.RawMessage(`{"type":"object","properties":{}}`)
		}},
		{name: "no tools", r: func(r *llm.Request) { r.Tools = nil }},
		{name: "tool_choice", r: func(r *llm.Request) { r.ToolChoice = "required" }},
		{name: "response_format", r: func(r *llm.Request) { r.ResponseFormat = llm.JSONObjectFormat }},
		{name: "request max_tokens", r: func(r *llm.Request) { r.MaxTokens = 50 }},
		{name: "sample", r: func(r *llm.Request) { r.Sample = 1 }},
		{name: "salt", o: func(o *llm.Options) { o.Salt = "rerun-2" }},
	}
	keyOf := func(v variant) cache.Key {
		p := base
		o := fastOpts()
		var r llm.Request
		b, _ := json.Marshal(baseReq)
		json.Unmarshal(b, &r) // deep copy
		if v.p != nil {
			v.p(&p)
		}
		if v.r != nil {
			v.r(&r)
		}
		if v.o != nil {
			v.o(&o)
		}
		k, err := newClient(t, store, p, o).Key(r)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		return k
	}
	seen := map[cache.Key]string{keyOf(variant{name: "base"}): "base"}
	for _, v := range variants {
		k := keyOf(v)
		if prev, dup := seen[k]; dup {
			t.Errorf("changing %s gave the same key as %s", v.name, prev)
		}
		seen[k] = v.name
	}

	// Things that must NOT change the key.
	same := []variant{
		{name: "base_url", p: func(p *llm.Profile) { p.BaseURL = "https://elsewhere.example/v1" }},
		{name: "api_key_env", p: func(p *llm.Profile) { p.APIKeyEnv = "OTHER_VAR" }},
		{name: "api key", o: func(o *llm.Options) { o.APIKey = "sk-another-key" }},
		{name: "limits and prices", p: func(p *llm.Profile) {
			p.MaxInFlight, p.RequestsPerMinute, p.TokensPerMinute, p.PriceInputPerMTok, p.Timeout, p.MaxRetries = 99, 10, 1000, 2.5, "9s", 3
		}},
		{name: "offline", o: func(o *llm.Options) { o.Offline = true }},
		{name: "tool parameter whitespace", r: func(r *llm.Request) { r.Tools[0].Function.Parameters = json.RawMessage("{ \"type\" :\n \"object\" }") }},
		{name: "profile max_tokens overridden by equal request max_tokens", p: func(p *llm.Profile) { p.MaxTokens = 0 }},
	}
	baseKey := keyOf(variant{name: "base"})
	for _, v := range same {
		if k := keyOf(v); k != baseKey {
			t.Errorf("changing %s changed the key", v.name)
		}
	}
}

func TestMissesOnChangedRequestReachServer(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	ctx := context.Background()
	for _, q := range []string{"a", "b", "a", "b", "c"} {
		if _, err := c.Complete(ctx, ask(q)); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Requests(); n != 3 {
		t.Fatalf("server saw %d requests, want 3 (a, b, c)", n)
	}
}

func TestSampleIndexesGiveDistinctCachedSamples(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	p := profile(srv)
	p.Seed = ptr(int64(40))
	c := newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	ctx := context.Background()
	var first []string
	for round := 0; round < 2; round++ {
		for i := 0; i < 3; i++ {
			r := ask("q")
			r.Sample = i
			resp, err := c.Complete(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if round == 0 {
				first = append(first, resp.Message.Content)
			} else if !resp.Cached || resp.Message.Content != first[i] {
				t.Fatalf("sample %d replay: %+v, want cached %q", i, resp, first[i])
			}
		}
	}
	if first[0] == first[1] || first[1] == first[2] || first[0] == first[2] {
		t.Fatalf("samples not distinct: %q", first)
	}
	if n := srv.Requests(); n != 3 {
		t.Fatalf("server saw %d requests, want 3", n)
	}
	for i, r := range srv.Log() {
		if r.Seed == nil || *r.Seed != int64(40+i) {
			t.Fatalf("request %d: seed %v, want %d (profile seed + sample index)", i, r.Seed, 40+i)
		}
	}
}

func TestSaltResamplesDeliberately(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	store := openStore(t, t.TempDir())
	ctx := context.Background()
	plain := newClient(t, store, profile(srv), fastOpts())
	o := fastOpts()
	o.Salt = "second-opinion"
	salted := newClient(t, store, profile(srv), o)
	a, _ := plain.Complete(ctx, ask("x"))
	b, err := salted.Complete(ctx, ask("x"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Cached || a.Message.Content == b.Message.Content || srv.Requests() != 2 {
		t.Fatalf("salted call should be a fresh sample: %+v vs %+v", a, b)
	}
	b2, _ := salted.Complete(ctx, ask("x"))
	if !b2.Cached || b2.Message.Content != b.Message.Content {
		t.Fatalf("salted call not replayed: %+v", b2)
	}
}

func TestOfflineMissFailsClearly(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	store := openStore(t, t.TempDir())
	ctx := context.Background()
	online := newClient(t, store, profile(srv), fastOpts())
	if _, err := online.Complete(ctx, ask("known")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DSBUILD_TEST_LLM_KEY", "") // offline needs no key
	offline := newClient(t, store, profile(srv), llm.Options{Offline: true})
	if r, err := offline.Complete(ctx, ask("known")); err != nil || !r.Cached {
		t.Fatalf("offline hit: %+v, %v", r, err)
	}
	r := ask("unknown")
	_, err := offline.Complete(ctx, r)
	var miss *llm.OfflineMissError
	if !errors.As(err, &miss) {
		t.Fatalf("got %v, want *OfflineMissError", err)
	}
	want, _ := offline.Key(r)
	if miss.Key != want || !strings.Contains(err.Error(), want.String()) || !strings.Contains(err.Error(), "offline") {
		t.Fatalf("error %q should name key %s", err, want)
	}
	if n := srv.Requests(); n != 1 {
		t.Fatalf("offline mode reached the server: %d requests", n)
	}
}

func TestFaultsAreRetriedAndTheCallCompletes(t *testing.T) {
	cases := []struct {
		name  string
		fault llmtest.Reply
	}{
		{"429 with Retry-After", llmtest.RateLimited(10 * time.Millisecond)},
		{"429 without Retry-After", llmtest.Status(429)},
		{"500", llmtest.Status(500)},
		{"502", llmtest.Status(502)},
		{"503 with Retry-After", llmtest.Reply{Status: 503, RetryAfter: 5 * time.Millisecond}},
		{"408", llmtest.Status(408)},
		{"malformed body", llmtest.Reply{Malformed: true}},
		{"body cut off", llmtest.Reply{Content: strings.Repeat("long answer ", 100), CutBody: true}},
		{"slow reply past timeout", llmtest.Reply{Content: "too late", Delay: 3 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := llmtest.New()
			defer srv.Close()
			srv.Script(tc.fault, llmtest.Text("finally"))
			p := profile(srv)
			p.Timeout = "500ms"
			var infos []llm.CallInfo
			o := fastOpts()
			o.Observer = func(_ context.Context, c llm.CallInfo) { infos = append(infos, c) }
			c := newClient(t, openStore(t, t.TempDir()), p, o)
			resp, err := c.Complete(context.Background(), ask("q"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Message.Content != "finally" {
				t.Fatalf("content %q", resp.Message.Content)
			}
			if srv.Requests() != 2 || len(infos) != 1 || infos[0].Retries != 1 || infos[0].Cached {
				t.Fatalf("requests %d, infos %+v", srv.Requests(), infos)
			}
			// The success was cached, the failure was not.
			if r2, err := c.Complete(context.Background(), ask("q")); err != nil || !r2.Cached || r2.Message.Content != "finally" {
				t.Fatalf("replay: %+v %v", r2, err)
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(llmtest.RateLimited(300*time.Millisecond), llmtest.Text("ok"))
	o := fastOpts()
	o.RetryMaxDelay = 5 * time.Second
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), o)
	start := time.Now()
	if _, err := c.Complete(context.Background(), ask("q")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("retried after %v, before the server's Retry-After of 300ms", d)
	}
}

func TestAllFaultsInOneCall(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(llmtest.RateLimited(time.Millisecond), llmtest.Status(500), llmtest.Reply{Malformed: true},
		llmtest.Reply{Content: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", CutBody: true},
		llmtest.Reply{Delay: 3 * time.Second}, llmtest.Status(503), llmtest.Text("survived"))
	p := profile(srv)
	p.Timeout = "400ms"
	var info llm.CallInfo
	o := fastOpts()
	o.Observer = func(_ context.Context, c llm.CallInfo) { info = c }
	c := newClient(t, openStore(t, t.TempDir()), p, o)
	resp, err := c.Complete(context.Background(), ask("q"))
	if err != nil || resp.Message.Content != "survived" {
		t.Fatalf("%+v %v", resp, err)
	}
	if info.Retries != 6 || srv.Requests() != 7 {
		t.Fatalf("retries %d requests %d, want 6 and 7", info.Retries, srv.Requests())
	}
	if got := strings.Join(info.RetryCauses, ","); got != "http 429,http 500,request failed,request failed,timeout,http 503" {
		t.Errorf("retry causes %q", got)
	}
}

func TestRetriesExhaustedAndNothingCached(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(*llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Status: 500, ErrorMessage: "the model is overloaded"}
	})
	p := profile(srv)
	p.MaxRetries = 2
	var info llm.CallInfo
	o := fastOpts()
	o.Observer = func(_ context.Context, c llm.CallInfo) { info = c }
	c := newClient(t, openStore(t, t.TempDir()), p, o)
	_, err := c.Complete(context.Background(), ask("q"))
	// The retries of a call that fails in the end are reported too.
	if info.Retries != 2 || strings.Join(info.RetryCauses, ",") != "http 500,http 500" || info.Err == nil {
		t.Errorf("a failed call reports retries %d, causes %q, error %v", info.Retries, info.RetryCauses, info.Err)
	}
	var ex *llm.RetriesExhaustedError
	var ae *llm.APIError
	if !errors.As(err, &ex) || ex.Attempts != 3 || !errors.As(err, &ae) || ae.StatusCode != 500 {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "the model is overloaded") || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("error should say what failed: %q", err)
	}
	if srv.Requests() != 3 {
		t.Fatalf("requests %d, want 3", srv.Requests())
	}
	srv.Handle(echo)
	if r, err := c.Complete(context.Background(), ask("q")); err != nil || r.Cached {
		t.Fatalf("after failures: %+v %v (a failure must not be cached)", r, err)
	}
}

func TestNoRetriesWhenNegative(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(*llmtest.Request) llmtest.Reply { return llmtest.Status(503) })
	p := profile(srv)
	p.MaxRetries = -1
	c := newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	if _, err := c.Complete(context.Background(), ask("q")); err == nil || srv.Requests() != 1 {
		t.Fatalf("err %v, requests %d", err, srv.Requests())
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	for _, code := range []int{400, 401, 404, 422} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			srv := llmtest.New()
			defer srv.Close()
			srv.Script(llmtest.Reply{Status: code, ErrorMessage: "bad thing; key was " + testKey})
			srv.Handle(echo)
			c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
			_, err := c.Complete(context.Background(), ask("q"))
			var ae *llm.APIError
			if !errors.As(err, &ae) || ae.StatusCode != code || ae.Retryable {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), testKey) || !strings.Contains(err.Error(), "bad thing") {
				t.Fatalf("error %q must carry the server message without the key", err)
			}
			if srv.Requests() != 1 {
				t.Fatalf("requests %d", srv.Requests())
			}
			if r, err := c.Complete(context.Background(), ask("q")); err != nil || r.Cached {
				t.Fatalf("the failed call was cached: %+v %v", r, err)
			}
		})
	}
}

func TestTimeoutOnEveryAttempt(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(*llmtest.Request) llmtest.Reply { return llmtest.Reply{Delay: 10 * time.Second} })
	p := profile(srv)
	p.Timeout = "50ms"
	p.MaxRetries = 2
	c := newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	start := time.Now()
	_, err := c.Complete(context.Background(), ask("q"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v; the per-attempt timeout was not applied", d)
	}
}

func TestCancelStopsRetrying(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(*llmtest.Request) llmtest.Reply { return llmtest.RateLimited(time.Hour) })
	o := fastOpts()
	o.RetryMaxDelay = time.Hour
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), o)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Complete(ctx, ask("q"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

func TestTruncatedReplyIsTyped(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(llmtest.Reply{Content: `{"half": `, FinishReason: "length", CompletionTokens: 16})
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	r := ask("q")
	r.MaxTokens = 16
	resp, err := c.Complete(context.Background(), r)
	var te *llm.TruncatedError
	if !errors.As(err, &te) || resp == nil || resp.Message.Content != `{"half": ` || te.MaxTokens != 16 {
		t.Fatalf("%+v %v", resp, err)
	}
	if got := srv.Log()[0].MaxTokens; got == nil || *got != 16 {
		t.Fatalf("max_tokens sent: %v", got)
	}
	// Replayed with the same typed error.
	resp, err = c.Complete(context.Background(), r)
	if !errors.As(err, &te) || !resp.Cached {
		t.Fatalf("replay %+v %v", resp, err)
	}
}

func TestToolCallsRoundTrip(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(
		llmtest.Call("bash", `{"cmd":"ls -la"}`),
		llmtest.Reply{ToolCalls: []schema.ToolCall{
			{Function: schema.FunctionCall{Name: "bash", Arguments: `{"cmd": "unterminated`}},
			{Function: schema.FunctionCall{Name: "finish", Arguments: `["not","an","object"]`}},
			{Function: schema.FunctionCall{Name: "think", Arguments: `{"thought":"fine"}`}},
		}},
	)
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	tools := []schema.Tool{
		{Type: "function", Function: schema.ToolFunction{Name: "bash", Description: "Run a shell command", Parameters: json.RawMessage(`{"type":"object","properties":{"cmd":{"type":"string"}},"required":["cmd"]}`)}},
		{Type: "function", Function: schema.ToolFunction{Name: "finish"}},
	}
	conv := []schema.Message{
		{Role: "system", Content: "You are an agent."},
		{Role: "user", Content: "List files.", Name: "alice"},
		{Role: "assistant", Content: "Looking.", ToolCalls: []schema.ToolCall{{ID: "call_a", Type: "function", Function: schema.FunctionCall{Name: "bash", Arguments: `{"cmd":"pwd"}`}}}},
		{Role: "tool", ToolCallID: "call_a", Content: "/work"},
	}
	resp, err := c.Complete(context.Background(), llm.Request{Messages: conv, Tools: tools, ToolChoice: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Message.ToolCalls) != 1 || resp.FinishReason != "tool_calls" {
		t.Fatalf("%+v", resp)
	}
	tc := resp.Message.ToolCalls[0]
	if tc.ID == "" || tc.Type != "function" || tc.Function.Name != "bash" || tc.Function.Arguments != `{"cmd":"ls -la"}` {
		t.Fatalf("tool call %+v", tc)
	}
	got := srv.Log()[0]
	gotMsgs, _ := json.Marshal(got.Messages)
	wantMsgs, _ := json.Marshal(conv)
	if string(gotMsgs) != string(wantMsgs) {
		t.Fatalf("server got messages\n%s\nwant\n%s", gotMsgs, wantMsgs)
	}
	if len(got.Tools) != 2 || got.Tools[0].Function.Name != "bash" || !strings.Contains(string(got.Tools[0].Function.Parameters), `"required":["cmd"]`) {
		t.Fatalf("server got tools %+v", got.Tools)
	}
	if string(got.ToolChoice) != `"auto"` {
		t.Fatalf("tool_choice %s", got.ToolChoice)
	}

	conv = append(conv, resp.Message, schema.Message{Role: "tool", ToolCallID: tc.ID, Content: "a.py"})
	resp, err = c.Complete(context.Background(), llm.Request{Messages: conv, Tools: tools, ToolChoice: "finish"})
	var tae *llm.ToolArgumentsError
	if !errors.As(err, &tae) || resp == nil || len(resp.Message.ToolCalls) != 3 {
		t.Fatalf("%+v %v", resp, err)
	}
	if len(tae.Calls) != 2 || tae.Calls[0].Name != "bash" || tae.Calls[1].Name != "finish" || tae.Calls[0].ID != resp.Message.ToolCalls[0].ID {
		t.Fatalf("bad calls %+v", tae.Calls)
	}
	if !strings.Contains(err.Error(), "not valid JSON") || !strings.Contains(err.Error(), "not an object") {
		t.Fatalf("message %q", err)
	}
	if tcj := string(srv.Log()[1].ToolChoice); !strings.Contains(tcj, `"name":"finish"`) {
		t.Fatalf("named tool_choice sent as %s", tcj)
	}
}

func TestSamplingAndExtraBodySent(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	p := profile(srv)
	p.Temperature, p.TopP, p.MaxTokens, p.Seed = ptr(0.25), ptr(0.5), 777, ptr(int64(3))
	p.ExtraBody = map[string]any{"top_k": 20, "chat_template_kwargs": map[string]any{"enable_thinking": false}}
	c := newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	r := ask("q")
	r.ResponseFormat = llm.JSONSchemaFormat("answer", json.RawMessage(`{"type":"object"}`), true)
	if _, err := c.Complete(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	got := srv.Log()[0]
	if got.Model != "test-model" || *got.Temperature != 0.25 || *got.TopP != 0.5 || *got.MaxTokens != 777 || *got.Seed != 3 {
		t.Fatalf("sampling params %+v", got)
	}
	if string(got.Fields["top_k"]) != "20" || string(got.Fields["chat_template_kwargs"]) != `{"enable_thinking":false}` {
		t.Fatalf("extra body fields %s %s", got.Fields["top_k"], got.Fields["chat_template_kwargs"])
	}
	var rf struct {
		Type       string `json:"type"`
		JSONSchema struct {
			Name   string `json:"name"`
			Strict bool   `json:"strict"`
		} `json:"json_schema"`
	}
	if err := json.Unmarshal(got.ResponseFormat, &rf); err != nil || rf.Type != "json_schema" || rf.JSONSchema.Name != "answer" || !rf.JSONSchema.Strict {
		t.Fatalf("response_format %s", got.ResponseFormat)
	}
	if got.Path != "/v1/chat/completions" || got.Header.Get("Authorization") != "Bearer "+testKey {
		t.Fatalf("path %s auth %q", got.Path, got.Header.Get("Authorization"))
	}
	// max_completion_tokens in extra_body replaces max_tokens.
	p.ExtraBody = map[string]any{"max_completion_tokens": 999}
	c = newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	if _, err := c.Complete(context.Background(), ask("q")); err != nil {
		t.Fatal(err)
	}
	got = srv.Log()[1]
	if got.MaxTokens != nil || string(got.Fields["max_completion_tokens"]) != "999" {
		t.Fatalf("max_tokens %v, max_completion_tokens %s", got.MaxTokens, got.Fields["max_completion_tokens"])
	}
}

func TestInFlightLimitHolds(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Content: r.LastUserMessage(), Delay: 20 * time.Millisecond}
	})
	p := profile(srv)
	p.MaxInFlight = 3
	c := newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 24 {
		wg.Go(func() {
			if _, err := c.Complete(context.Background(), ask(fmt.Sprint("q", i))); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 || srv.Requests() != 24 {
		t.Fatalf("%d failed, %d requests", failed.Load(), srv.Requests())
	}
	if m := srv.MaxInFlight(); m > 3 || m < 2 {
		t.Fatalf("server measured %d requests in flight, want at most 3 (and some concurrency)", m)
	}
}

func TestIdenticalConcurrentCallsShareOneRequest(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Content: "shared", Delay: 100 * time.Millisecond}
	})
	var calls, cached atomic.Int32
	var dollars atomic.Int64
	o := fastOpts()
	o.Observer = func(_ context.Context, c llm.CallInfo) {
		calls.Add(1)
		if c.Cached {
			cached.Add(1)
		}
		dollars.Add(int64(c.Dollars * 1e9))
	}
	p := profile(srv)
	p.PriceInputPerMTok, p.PriceOutputPerMTok = 1e6, 1e6 // $1 per token
	c := newClient(t, openStore(t, t.TempDir()), p, o)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if r, err := c.Complete(context.Background(), ask("same")); err != nil || r.Message.Content != "shared" {
				t.Errorf("%+v %v", r, err)
			}
		})
	}
	wg.Wait()
	if srv.Requests() != 1 || calls.Load() != 10 || cached.Load() != 9 {
		t.Fatalf("requests %d, observed %d calls of which %d cached", srv.Requests(), calls.Load(), cached.Load())
	}
	u := srv.Log()[0]
	_ = u
	if dollars.Load() == 0 {
		t.Fatalf("the one real call should cost something")
	}
}

func TestObserverAccounting(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(llmtest.Status(500), llmtest.Reply{Content: "x", PromptTokens: 1000, CompletionTokens: 200})
	var infos []llm.CallInfo
	o := fastOpts()
	o.Observer = func(_ context.Context, c llm.CallInfo) { infos = append(infos, c) }
	p := profile(srv)
	p.PriceInputPerMTok, p.PriceOutputPerMTok = 2, 8
	c := newClient(t, openStore(t, t.TempDir()), p, o)
	resp, err := c.Complete(context.Background(), ask("q"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Complete(context.Background(), ask("q")); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("%d observations", len(infos))
	}
	a, b := infos[0], infos[1]
	want := (1000*2.0 + 200*8.0) / 1e6
	if a.Profile != "teacher" || a.Cached || a.PromptTokens != 1000 || a.CompletionTokens != 200 || math.Abs(a.Dollars-want) > 1e-12 || a.Retries != 1 || a.Key != resp.Key || a.Duration <= 0 || a.Err != nil {
		t.Fatalf("miss info %+v", a)
	}
	if !b.Cached || b.PromptTokens != 0 || b.Dollars != 0 || b.Key != resp.Key {
		t.Fatalf("hit info %+v", b)
	}
	if resp.Usage != (llm.Usage{PromptTokens: 1000, CompletionTokens: 200}) {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestRequestsPerMinuteLimit(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	p := profile(srv)
	p.RequestsPerMinute = 1200 // 20/s, burst 20
	c := newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	start := time.Now()
	for i := range 30 {
		if _, err := c.Complete(context.Background(), ask(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Fatalf("30 requests at 20/s with a burst of 20 took only %v", d)
	}
}

func TestTokensPerMinuteLimit(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(*llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Content: "x", PromptTokens: 60, CompletionTokens: 40}
	})
	p := profile(srv)
	p.TokensPerMinute = 6000 // 100/s
	c := newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	start := time.Now()
	for i := range 3 {
		if _, err := c.Complete(context.Background(), ask(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Call 1 spends the 100-token burst, call 2 waits for a refill and
	// spends 100 more, call 3 waits for that debt: about 1s in all.
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("300 tokens at 100 tokens/s took only %v", d)
	}
}

func TestAPIKeyNeverWrittenToStore(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(llmtest.Status(500), llmtest.Text("one"), llmtest.Reply{Status: 401, ErrorMessage: "invalid key " + testKey},
		llmtest.Call("bash", `{"cmd":"echo hi"}`), llmtest.Reply{Content: `{"a":`, FinishReason: "length"})
	t.Setenv("DSBUILD_TEST_LLM_KEY", testKey)
	dir := t.TempDir()
	store := openStore(t, dir)
	var logged []string
	o := llm.Options{RetryBaseDelay: time.Millisecond, Observer: func(_ context.Context, c llm.CallInfo) {
		logged = append(logged, fmt.Sprintf("%+v %v", c, c.Err))
	}}
	c := newClient(t, store, profile(srv), o) // key from the environment
	var errs []string
	for _, q := range []string{"a", "b", "c", "d"} {
		if _, err := c.Complete(context.Background(), ask(q)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) != 2 {
		t.Fatalf("expected the 401 and the truncation to fail, got %q", errs)
	}
	if got := srv.Log()[0].Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Fatalf("key did not reach the server: %q", got)
	}
	for _, s := range append(errs, logged...) {
		if strings.Contains(s, testKey) {
			t.Fatalf("key leaked into %q", s)
		}
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(raw), testKey) || strings.Contains(string(raw), "DSBUILD_TEST_LLM_KEY") {
			t.Errorf("%s contains the key or its variable name", path)
		}
		if filepath.Base(filepath.Dir(filepath.Dir(path))) == "blobs" {
			dg, err := cache.ParseDigest("sha256:" + d.Name())
			if err != nil {
				return err
			}
			data, err := store.Get(dg)
			if err != nil {
				return err
			}
			if strings.Contains(string(data), testKey) {
				t.Errorf("blob %s contains the key", dg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 6 { // 3 replies: blob + memo each
		t.Fatalf("only %d files under the store; the walk checked nothing", files)
	}
}

func TestIgnoresOpenAIEnvironment(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	decoy := llmtest.New()
	defer decoy.Close()
	decoy.Handle(echo)
	t.Setenv("OPENAI_BASE_URL", decoy.URL())
	t.Setenv("OPENAI_API_KEY", "sk-from-environment")
	t.Setenv("OPENAI_ORG_ID", "org-leak")
	t.Setenv("OPENAI_PROJECT_ID", "proj-leak")
	t.Setenv("OPENAI_CUSTOM_HEADERS", "X-Leak: yes")
	t.Setenv("DSBUILD_TEST_LLM_KEY", "sk-profile-key")
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), llm.Options{})
	if _, err := c.Complete(context.Background(), ask("q")); err != nil {
		t.Fatal(err)
	}
	if decoy.Requests() != 0 || srv.Requests() != 1 {
		t.Fatalf("decoy %d, server %d", decoy.Requests(), srv.Requests())
	}
	h := srv.Log()[0].Header
	if h.Get("Authorization") != "Bearer sk-profile-key" || h.Get("OpenAI-Organization") != "" || h.Get("OpenAI-Project") != "" || h.Get("X-Leak") != "" {
		t.Fatalf("headers picked up the environment: %v", h)
	}
}

func TestNewRejectsMissingKeyVariable(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	t.Setenv("DSBUILD_TEST_LLM_KEY", "")
	_, err := llm.New(openStore(t, t.TempDir()), "teacher", profile(srv), llm.Options{})
	if err == nil || !strings.Contains(err.Error(), "DSBUILD_TEST_LLM_KEY") || !strings.Contains(err.Error(), "teacher") {
		t.Fatalf("got %v", err)
	}
	_, err = llm.New(openStore(t, t.TempDir()), "teacher", llm.Profile{Model: "m"}, llm.Options{})
	if err == nil || !strings.Contains(err.Error(), `profile "teacher"`) || !strings.Contains(err.Error(), "base_url:") {
		t.Fatalf("invalid profile: got %v", err)
	}
	// A profile with no api_key_env (a local server) needs none.
	p := profile(srv)
	p.APIKeyEnv = ""
	srv.Handle(echo)
	c := newClient(t, openStore(t, t.TempDir()), p, llm.Options{})
	if _, err := c.Complete(context.Background(), ask("q")); err != nil {
		t.Fatal(err)
	}
}

func TestBadRequestsAreRejectedBeforeTheNetwork(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	cases := map[string]llm.Request{
		"no messages":      {},
		"negative sample":  {Messages: ask("q").Messages, Sample: -1},
		"bad role":         {Messages: []schema.Message{{Role: "robot", Content: "x"}}},
		"tool without id":  {Messages: []schema.Message{{Role: "tool", Content: "x"}}},
		"bad tool params":  {Messages: ask("q").Messages, Tools: []schema.Tool{{Type: "function", Function: schema.ToolFunction{Name: "f", Parameters: json.RawMessage(`{`)}}}},
		"bad resp format":  {Messages: ask("q").Messages, ResponseFormat: json.RawMessage(`nope`)},
		"nameless tool":    {Messages: ask("q").Messages, Tools: []schema.Tool{{Type: "function"}}},
		"custom tool type": {Messages: ask("q").Messages, Tools: []schema.Tool{{Type: "custom", Function: schema.ToolFunction{Name: "f"}}}},
	}
	for name, r := range cases {
		if _, err := c.Complete(context.Background(), r); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if srv.Requests() != 0 {
		t.Fatalf("%d requests reached the server", srv.Requests())
	}
}

func TestMemoKeysAreRecordedForTheBuild(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Content: "x", Delay: 50 * time.Millisecond}
	})
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	want, _ := c.Key(ask("q"))
	check := func(what string, rec *cache.Recorder) {
		t.Helper()
		if keys := rec.Keys(); len(keys) != 1 || keys[0] != want {
			t.Errorf("%s: recorded %v, want [%s]", what, keys, want)
		}
	}
	// Two identical calls at once share one request; both builds record the key.
	recs := []*cache.Recorder{{}, {}}
	var wg sync.WaitGroup
	for _, rec := range recs {
		wg.Go(func() {
			if _, err := c.Complete(cache.WithRecorder(context.Background(), rec), ask("q")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	check("first caller", recs[0])
	check("second caller", recs[1])
	hit := &cache.Recorder{}
	if r, err := c.Complete(cache.WithRecorder(context.Background(), hit), ask("q")); err != nil || !r.Cached {
		t.Fatal(r, err)
	}
	check("cache hit", hit)
	if srv.Requests() != 1 {
		t.Fatalf("%d requests", srv.Requests())
	}
}
