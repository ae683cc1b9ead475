package llm

import (
	"fmt"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
)

// OfflineMissError is returned in offline mode when a request has no cached
// response. The engine adds the stage and item it came from.
type OfflineMissError struct {
	Profile string
	Model   string
	Key     cache.Key
}

// Error describes the failure.
func (e *OfflineMissError) Error() string {
	return fmt.Sprintf("llm: offline and no cached response for model %q (profile %q), key %s", e.Model, e.Profile, e.Key)
}

// APIError is an HTTP error status from the endpoint: either one that is not
// worth retrying (400, 401, 403, 404, 422, ...) or a retryable one (408, 409,
// 429, 5xx) that persisted through every retry. Its message carries the
// status and the server's own error text, never the API key or any header.
type APIError struct {
	Profile    string
	StatusCode int
	// Message is the server's error message, if it sent one (trimmed to a
	// few hundred bytes).
	Message string
	// Retryable reports whether the status is one that is normally retried.
	Retryable bool
}

// Error describes the failure.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "llm: profile %q: endpoint answered HTTP %d", e.Profile, e.StatusCode)
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	switch e.StatusCode {
	case 401, 403:
		b.WriteString(" (check the API key in the variable named by api_key_env)")
	case 404:
		b.WriteString(" (check base_url and model)")
	}
	return b.String()
}

// RetriesExhaustedError reports a call that failed on every attempt; Last is
// the final attempt's error (often an *APIError).
type RetriesExhaustedError struct {
	Profile  string
	Attempts int
	Last     error
}

// Error describes the failure.
func (e *RetriesExhaustedError) Error() string {
	return fmt.Sprintf("llm: profile %q: giving up after %d attempts: %v", e.Profile, e.Attempts, e.Last)
}

// Unwrap returns the last attempt's error.
func (e *RetriesExhaustedError) Unwrap() error { return e.Last }

// TruncatedError is returned together with a response whose generation
// stopped at the token limit (finish_reason "length"). The response is kept
// and cached; a stage may re-ask with a larger MaxTokens or a shorter task.
type TruncatedError struct {
	MaxTokens        int
	CompletionTokens int64
}

// Error describes the failure.
func (e *TruncatedError) Error() string {
	if e.MaxTokens > 0 {
		return fmt.Sprintf("llm: reply truncated at the token limit (max_tokens %d, %d completion tokens)", e.MaxTokens, e.CompletionTokens)
	}
	return fmt.Sprintf("llm: reply truncated at the server's token limit (%d completion tokens)", e.CompletionTokens)
}

// BadToolCall is one tool call whose arguments are not a JSON object.
type BadToolCall struct {
	ID, Name, Arguments string
	Reason              string
}

// ToolArgumentsError is returned together with a response whose tool calls
// include arguments that are not a JSON object. The response is kept (and
// cached) so an agent can answer each bad call with a tool message saying
// what was wrong.
type ToolArgumentsError struct {
	Calls []BadToolCall
}

// Error describes the failure.
func (e *ToolArgumentsError) Error() string {
	var b strings.Builder
	b.WriteString("llm: model wrote tool calls with invalid arguments: ")
	for i, c := range e.Calls {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "call %q to %q: %s (arguments begin %q)", c.ID, c.Name, c.Reason, prefix(c.Arguments, 60))
	}
	return b.String()
}

// InvalidOutputError is returned by CompleteJSON when the model's reply
// still did not validate after the allowed number of re-asks.
type InvalidOutputError struct {
	Attempts int
	// Content is the last reply's text.
	Content string
	// Err is the last validation error.
	Err error
}

// Error describes the failure.
func (e *InvalidOutputError) Error() string {
	return fmt.Sprintf("llm: no valid structured output after %d attempts: %v (last reply begins %q)", e.Attempts, e.Err, prefix(e.Content, 120))
}

// Unwrap returns the last validation error.
func (e *InvalidOutputError) Unwrap() error { return e.Err }

func prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}
