// Package llmtest is a scripted OpenAI-compatible chat-completions server
// for tests. It listens on 127.0.0.1, answers POST /v1/chat/completions
// from a script of replies and/or a rule function, can inject faults (error
// statuses with Retry-After, slow replies, malformed or cut-off bodies,
// truncated generations), and counts requests and concurrency so tests can
// check what a client really sent. It never touches the internet and needs
// no *testing.T, so any package's tests can use it.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsbuild/dsbuild/schema"
)

// Request is one chat-completion request as the server received it.
type Request struct {
	// Index is the 0-based arrival number.
	Index          int
	Path           string
	Header         http.Header
	Model          string
	Messages       []schema.Message
	Tools          []schema.Tool
	ToolChoice     json.RawMessage
	ResponseFormat json.RawMessage
	Temperature    *float64
	TopP           *float64
	MaxTokens      *int64
	Seed           *int64
	// Fields holds every top-level body field, raw (to check extra_body).
	Fields map[string]json.RawMessage
	// Body is the raw request body.
	Body []byte
}

// LastUserMessage returns the content of the last message with role user.
func (r *Request) LastUserMessage() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// Reply is what the server answers to one request: a completion, or a
// fault.
type Reply struct {
	// Content is the assistant message text.
	Content string
	// ToolCalls are the assistant's tool calls; missing IDs and types are
	// filled in.
	ToolCalls []schema.ToolCall
	// FinishReason defaults to "tool_calls" when there are tool calls, else
	// "stop". Set "length" to simulate a generation cut off at max_tokens.
	FinishReason string
	// PromptTokens and CompletionTokens are reported as usage; zero means a
	// rough estimate (bytes/4 + 1).
	PromptTokens, CompletionTokens int64

	// Status, if not 0 or 200, makes the reply an HTTP error with an
	// OpenAI-style error body carrying ErrorMessage.
	Status       int
	ErrorMessage string
	// RetryAfter, if positive, is sent as Retry-After (whole seconds,
	// rounded up) and retry-after-ms.
	RetryAfter time.Duration
	// Delay holds the reply back (the request's cancellation cuts it short).
	Delay time.Duration
	// Malformed sends a 200 whose body is not valid JSON.
	Malformed bool
	// CutBody sends a 200 that announces the full body length and then
	// closes the connection halfway through it.
	CutBody bool
}

// Text is a reply with content s.
func Text(s string) Reply { return Reply{Content: s} }

// Call is a reply with one tool call to name with the given JSON
// arguments.
func Call(name, arguments string) Reply {
	return Reply{ToolCalls: []schema.ToolCall{{Function: schema.FunctionCall{Name: name, Arguments: arguments}}}}
}

// Status is an HTTP error reply.
func Status(code int) Reply { return Reply{Status: code} }

// RateLimited is a 429 reply asking the client to wait d.
func RateLimited(d time.Duration) Reply { return Reply{Status: 429, RetryAfter: d} }

// Server is a running test server. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu      sync.Mutex
	script  []Reply
	handler func(*Request) Reply
	log     []Request

	requests    atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
}

// New starts a server on 127.0.0.1. With no script and no handler it
// answers every request with a 400 saying nothing was scripted.
func New() *Server {
	s := &Server{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.serve)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("llmtest: no route for %s %s", r.Method, r.URL.Path))
	})
	s.srv = httptest.NewServer(mux)
	return s
}

// URL returns the base URL clients use, ending in /v1.
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// Close shuts the server down, cutting any slow replies short.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Handle sets the rule that answers every request the script does not.
func (s *Server) Handle(fn func(r *Request) Reply) {
	s.mu.Lock()
	s.handler = fn
	s.mu.Unlock()
}

// Script queues replies to be given, in order, to the next requests; once
// the queue is empty the Handle rule answers.
func (s *Server) Script(replies ...Reply) {
	s.mu.Lock()
	s.script = append(s.script, replies...)
	s.mu.Unlock()
}

// Requests returns how many chat-completion requests have arrived.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// MaxInFlight returns the largest number of requests handled at once.
func (s *Server) MaxInFlight() int { return int(s.maxInFlight.Load()) }

// Log returns a copy of every request received, in arrival order.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// ResetCounters zeroes the request count and the in-flight maximum and
// clears the log.
func (s *Server) ResetCounters() {
	s.mu.Lock()
	s.log = nil
	s.mu.Unlock()
	s.requests.Store(0)
	s.maxInFlight.Store(0)
}

type wireRequest struct {
	Model          string           `json:"model"`
	Messages       []schema.Message `json:"messages"`
	Tools          []schema.Tool    `json:"tools"`
	ToolChoice     json.RawMessage  `json:"tool_choice"`
	ResponseFormat json.RawMessage  `json:"response_format"`
	Temperature    *float64         `json:"temperature"`
	TopP           *float64         `json:"top_p"`
	MaxTokens      *int64           `json:"max_tokens"`
	Seed           *int64           `json:"seed"`
}

func (s *Server) serve(w http.ResponseWriter, hr *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxInFlight.Load()
		if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	body, err := io.ReadAll(hr.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "llmtest: reading body: "+err.Error())
		return
	}
	var wr wireRequest
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &wr); err != nil {
		writeError(w, http.StatusBadRequest, "llmtest: request body is not a chat-completion request: "+err.Error())
		return
	}
	_ = json.Unmarshal(body, &fields)
	req := Request{
		Path: hr.URL.Path, Header: hr.Header.Clone(), Model: wr.Model, Messages: wr.Messages, Tools: wr.Tools,
		ToolChoice: wr.ToolChoice, ResponseFormat: wr.ResponseFormat, Temperature: wr.Temperature, TopP: wr.TopP,
		MaxTokens: wr.MaxTokens, Seed: wr.Seed, Fields: fields, Body: body,
	}

	s.mu.Lock()
	req.Index = int(s.requests.Add(1) - 1)
	s.log = append(s.log, req)
	var reply Reply
	var ok bool
	if len(s.script) > 0 {
		reply, s.script, ok = s.script[0], s.script[1:], true
	}
	handler := s.handler
	s.mu.Unlock()
	if !ok {
		if handler == nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("llmtest: no scripted reply and no handler for request #%d", req.Index))
			return
		}
		reply = handler(&req)
	}

	if reply.Delay > 0 {
		t := time.NewTimer(reply.Delay)
		select {
		case <-t.C:
		case <-hr.Context().Done():
			t.Stop()
			return
		}
	}
	if reply.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(reply.RetryAfter.Seconds()))))
		w.Header().Set("Retry-After-Ms", strconv.FormatInt(reply.RetryAfter.Milliseconds(), 10))
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		msg := reply.ErrorMessage
		if msg == "" {
			msg = fmt.Sprintf("llmtest: scripted %d", reply.Status)
		}
		writeError(w, reply.Status, msg)
		return
	}
	if reply.Malformed {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"id": "chatcmpl-broken", "choices": [{"message": {"content": "unterminated`)
		return
	}
	out := completion(&req, reply)
	w.Header().Set("Content-Type", "application/json")
	if reply.CutBody {
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(http.StatusOK)
		w.Write(out[:len(out)/2])
		// Returning with fewer bytes than announced makes net/http close
		// the connection, so the client sees an unexpected EOF.
		return
	}
	w.Write(out)
}

func estimate(s string) int64 { return int64(len(s))/4 + 1 }

func completion(req *Request, reply Reply) []byte {
	calls := make([]map[string]any, 0, len(reply.ToolCalls))
	for i, tc := range reply.ToolCalls {
		id, typ := tc.ID, tc.Type
		if id == "" {
			id = fmt.Sprintf("call_%d_%d", req.Index, i)
		}
		if typ == "" {
			typ = "function"
		}
		calls = append(calls, map[string]any{
			"id": id, "type": typ,
			"function": map[string]any{"name": tc.Function.Name, "arguments": tc.Function.Arguments},
		})
	}
	msg := map[string]any{"role": "assistant", "content": reply.Content}
	if len(calls) > 0 {
		msg["tool_calls"] = calls
		if reply.Content == "" {
			msg["content"] = nil
		}
	}
	finish := reply.FinishReason
	if finish == "" {
		finish = "stop"
		if len(calls) > 0 {
			finish = "tool_calls"
		}
	}
	pt, ct := reply.PromptTokens, reply.CompletionTokens
	if pt == 0 {
		var b strings.Builder
		for _, m := range req.Messages {
			b.WriteString(m.Content)
		}
		pt = estimate(b.String())
	}
	if ct == 0 {
		ct = estimate(reply.Content)
		for _, tc := range reply.ToolCalls {
			ct += estimate(tc.Function.Arguments)
		}
	}
	out, _ := json.Marshal(map[string]any{
		"id":      fmt.Sprintf("chatcmpl-llmtest-%d", req.Index),
		"object":  "chat.completion",
		"created": 0,
		"model":   req.Model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish, "logprobs": nil}},
		"usage":   map[string]any{"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
	})
	return out
}

func writeError(w http.ResponseWriter, code int, msg string) {
	typ := "invalid_request_error"
	switch {
	case code == http.StatusTooManyRequests:
		typ = "rate_limit_exceeded"
	case code >= 500:
		typ = "server_error"
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": nil, "param": nil}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}
