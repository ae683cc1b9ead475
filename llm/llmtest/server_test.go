package llmtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/llm/llmtest"
)

func post(t *testing.T, url, body string) (*http.Response, []byte, error) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}],"top_k":5}`

func TestScriptThenHandlerThenUnscripted(t *testing.T) {
	s := llmtest.New()
	defer s.Close()
	if !strings.HasSuffix(s.URL(), "/v1") || !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL %s", s.URL())
	}
	res, body, err := post(t, s.URL()+"/chat/completions", chat)
	if err != nil || res.StatusCode != 400 || !strings.Contains(string(body), "no scripted reply") {
		t.Fatalf("unscripted: %v %s", err, body)
	}
	s.Script(llmtest.Call("bash", `{"cmd":"ls"}`))
	s.Handle(func(r *llmtest.Request) llmtest.Reply { return llmtest.Text("rule saw " + r.LastUserMessage()) })
	_, body, _ = post(t, s.URL()+"/chat/completions", chat)
	var c struct {
		Choices []struct {
			Message struct {
				Content   *string `json:"content"`
				ToolCalls []struct {
					ID, Type string
					Function struct{ Name, Arguments string }
				} `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct{ PromptTokens, CompletionTokens int64 } `json:"usage"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	m := c.Choices[0].Message
	if m.Content != nil || len(m.ToolCalls) != 1 || m.ToolCalls[0].ID == "" || m.ToolCalls[0].Function.Name != "bash" || c.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("scripted tool call: %s", body)
	}
	_, body, _ = post(t, s.URL()+"/chat/completions", chat)
	if !strings.Contains(string(body), `"content":"rule saw hi"`) || !strings.Contains(string(body), `"finish_reason":"stop"`) {
		t.Fatalf("handler reply: %s", body)
	}
	if s.Requests() != 3 {
		t.Fatalf("requests %d", s.Requests())
	}
	log := s.Log()
	if len(log) != 3 || log[2].Index != 2 || log[2].Model != "m" || string(log[2].Fields["top_k"]) != "5" || log[2].Header.Get("Content-Type") != "application/json" {
		t.Fatalf("log %+v", log[2])
	}
	s.ResetCounters()
	if s.Requests() != 0 || len(s.Log()) != 0 || s.MaxInFlight() != 0 {
		t.Fatal("reset did not reset")
	}
}

func TestFaults(t *testing.T) {
	s := llmtest.New()
	defer s.Close()
	s.Script(
		llmtest.RateLimited(1500*time.Millisecond),
		llmtest.Reply{Malformed: true},
		llmtest.Reply{Content: strings.Repeat("x", 1000), CutBody: true},
		llmtest.Reply{Content: "slow", Delay: 100 * time.Millisecond},
	)
	res, body, _ := post(t, s.URL()+"/chat/completions", chat)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "2" || res.Header.Get("Retry-After-Ms") != "1500" || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("429: %v %s", res.Header, body)
	}
	_, body, _ = post(t, s.URL()+"/chat/completions", chat)
	if json.Valid(body) {
		t.Fatalf("malformed body parsed: %s", body)
	}
	if _, _, err := post(t, s.URL()+"/chat/completions", chat); err == nil {
		t.Fatal("cut body read without error")
	}
	start := time.Now()
	if _, body, _ := post(t, s.URL()+"/chat/completions", chat); !strings.Contains(string(body), "slow") || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("delay not applied: %s", body)
	}
	if res, _, _ := post(t, s.URL()+"/embeddings", chat); res.StatusCode != 404 {
		t.Fatalf("unknown route: %d", res.StatusCode)
	}
	if res, body, _ := post(t, s.URL()+"/chat/completions", "not json"); res.StatusCode != 400 || !strings.Contains(string(body), "not a chat-completion request") {
		t.Fatalf("bad body: %d %s", res.StatusCode, body)
	}
}
