package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/dsbuild/dsbuild/schema"
)

// CompleteJSON asks for a JSON reply and decodes it into out (a pointer, or
// nil to skip decoding). The reply's JSON object or array is extracted
// (```json fences and surrounding prose are tolerated), unmarshalled into
// out, and passed to validate (if non-nil). When any step fails, the
// assistant's reply and a user message stating the error are appended to
// the conversation and the model is asked again, up to maxReasks times;
// every re-ask is its own cached call because the conversation differs.
// After the last failure it returns the last Response with an
// *InvalidOutputError. Errors from the call itself (network, offline miss)
// are returned as they are.
func CompleteJSON(ctx context.Context, c *Client, r Request, validate func([]byte) error, out any, maxReasks int) (*Response, error) {
	if out != nil {
		if v := reflect.ValueOf(out); v.Kind() != reflect.Pointer || v.IsNil() {
			return nil, fmt.Errorf("llm: CompleteJSON: out must be a non-nil pointer, got %T", out)
		}
	}
	maxReasks = max(maxReasks, 0)
	msgs := append([]schema.Message(nil), r.Messages...)
	var lastErr error
	var resp *Response
	for attempt := 0; attempt <= maxReasks; attempt++ {
		r.Messages = msgs
		var err error
		resp, err = c.Complete(ctx, r)
		var problem error
		var te *TruncatedError
		switch {
		case errors.As(err, &te):
			problem = fmt.Errorf("the reply was cut off at the token limit before the JSON was complete; answer more briefly")
		case err != nil:
			var tae *ToolArgumentsError
			if !errors.As(err, &tae) {
				return resp, err
			}
			problem = fmt.Errorf("reply with JSON text, not a tool call")
		default:
			problem = decodeAndValidate(resp.Message.Content, validate, out)
		}
		if problem == nil {
			return resp, nil
		}
		lastErr = problem
		msgs = append(msgs[:len(msgs):len(msgs)],
			schema.Message{Role: "assistant", Content: resp.Message.Content},
			schema.Message{Role: "user", Content: "Your reply could not be used: " + problem.Error() + "\nReply again with only the corrected JSON."},
		)
	}
	content := ""
	if resp != nil {
		content = resp.Message.Content
	}
	return resp, &InvalidOutputError{Attempts: maxReasks + 1, Content: c.scrub(content), Err: c.scrubErr(lastErr)}
}

func decodeAndValidate(content string, validate func([]byte) error, out any) error {
	raw, err := ExtractJSON(content)
	if err != nil {
		return err
	}
	if out != nil {
		v := reflect.ValueOf(out).Elem()
		v.SetZero()
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("the JSON does not have the expected shape: %v", err)
		}
	}
	if validate != nil {
		if err := validate(raw); err != nil {
			return err
		}
	}
	return nil
}

// ExtractJSON returns the first complete JSON object or array in a model's
// reply, skipping ```json fences and any prose around it.
func ExtractJSON(content string) ([]byte, error) {
	s := content
	if i := strings.Index(s, "```"); i >= 0 {
		rest := s[i+3:]
		if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
			if j := strings.Index(rest[nl+1:], "```"); j >= 0 {
				if raw, err := firstJSON(rest[nl+1 : nl+1+j]); err == nil {
					return raw, nil
				}
			}
		}
	}
	return firstJSON(s)
}

func firstJSON(s string) ([]byte, error) {
	start := strings.IndexAny(s, "{[")
	if start < 0 {
		if strings.TrimSpace(s) == "" {
			return nil, errors.New("the reply is empty; a JSON value was expected")
		}
		return nil, errors.New("the reply contains no JSON object or array")
	}
	var firstErr error
	for start >= 0 {
		dec := json.NewDecoder(strings.NewReader(s[start:]))
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == nil {
			return bytes.Clone(raw), nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// The value runs to the end of the reply unfinished; any later
			// candidate would be nested inside it.
			break
		}
		next := strings.IndexAny(s[start+1:], "{[")
		if next < 0 {
			break
		}
		start += 1 + next
	}
	return nil, fmt.Errorf("the reply's JSON does not parse: %v", firstErr)
}

// JSONSchemaFormat returns a response_format asking for output that matches
// the JSON schema (OpenAI's "json_schema" format, also understood by vLLM
// and SGLang).
func JSONSchemaFormat(name string, jsonSchema json.RawMessage, strict bool) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"type": "json_schema",
		"json_schema": map[string]any{
			"name":   name,
			"schema": jsonSchema,
			"strict": strict,
		},
	})
	return b
}

// JSONObjectFormat is the response_format asking for any JSON object.
var JSONObjectFormat = json.RawMessage(`{"type":"json_object"}`)
