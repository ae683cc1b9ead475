// Package schema owns the data types that cross package lines — chat
// messages and tool calls, images, projects, task instances, trajectories —
// and their encodings (JSON, SWE-bench JSONL, Parquet rows and shards).
// It imports nothing of the project and performs no effects beyond writing
// the files it is asked to write.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Message is one chat message in the OpenAI chat-completions wire shape,
// as agents and model servers exchange it. Exported datasets carry it in
// the chat-template shape instead (ChatMessages).
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	Name       string     `json:"name,omitempty"`
}

// ToolCall is a model's request to call a tool.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"` // always "function"
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function and carries its arguments as the JSON text
// the model wrote (which may not parse; callers validate).
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Tool declares a function the model may call, with a JSON-schema for its
// parameters.
type Tool struct {
	Type     string       `json:"type"` // always "function"
	Function ToolFunction `json:"function"`
}

// ToolFunction is the function part of a Tool.
type ToolFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// chatMessage is a Message in the shape Hugging Face chat templates take:
// keys that do not apply are absent (not null), tool-call arguments are a
// JSON object.
type chatMessage struct {
	Role       string         `json:"role"`
	Content    string         `json:"content"`
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
	Name       string         `json:"name,omitempty"`
}

type chatToolCall struct {
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// ChatMessages encodes msgs as Hugging Face chat-template messages, one
// JSON object each, the form `tokenizer.apply_chat_template` and TRL take:
//
//   - "role" and "content" always (content a string, "" when empty);
//   - "tool_calls" only on assistant messages that call tools, so templates
//     testing `'tool_calls' in message` (Llama 3.1) or `message.tool_calls
//     is defined` (Hermes, Mistral) see no key on other messages;
//   - each call's "arguments" is the JSON object the model wrote, with its
//     key order, so `arguments | tojson` (Qwen2.5, Llama 3.1, Hermes) and
//     `arguments | items` (Qwen3-Coder) render it once. Empty arguments
//     become {}. Arguments that are not a JSON object (the model wrote bad
//     JSON) stay the string the model wrote: that is what it produced;
//   - "tool_call_id" and "name" only on tool results (Hermes-style
//     templates require "name").
func ChatMessages(msgs []Message) ([]JSONText, error) {
	out := make([]JSONText, 0, len(msgs))
	for i, m := range msgs {
		cm := chatMessage{Role: m.Role, Content: m.Content, ToolCallID: m.ToolCallID, Name: m.Name}
		for _, c := range m.ToolCalls {
			typ := c.Type
			if typ == "" {
				typ = "function"
			}
			cm.ToolCalls = append(cm.ToolCalls, chatToolCall{ID: c.ID, Type: typ,
				Function: chatFunction{Name: c.Function.Name, Arguments: chatArguments(c.Function.Arguments)}})
		}
		b, err := marshalNoEscape(cm)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		out = append(out, JSONText(b))
	}
	return out, nil
}

// chatArguments is the arguments text as a JSON object when it is one.
func chatArguments(s string) json.RawMessage {
	b := bytes.TrimSpace([]byte(s))
	if len(b) == 0 {
		return json.RawMessage(`{}`)
	}
	if b[0] == '{' && json.Valid(b) {
		return json.RawMessage(b)
	}
	q, _ := marshalNoEscape(s) // a string always encodes
	return json.RawMessage(q)
}

// emptyParameters is the JSON schema of a function without parameters,
// given to tools that declare none (templates read parameters.properties).
var emptyParameters = json.RawMessage(`{"type":"object","properties":{}}`)

// ChatTools encodes tools as the JSON list of JSON-schema function objects
// that `apply_chat_template(tools=...)` takes: [{"type": "function",
// "function": {"name", "description", "parameters"}}, ...] ("[]" when
// none). A tool without parameters gets an empty object schema.
func ChatTools(tools []Tool) (JSONText, error) {
	out := make([]Tool, len(tools))
	for i, t := range tools {
		if t.Type == "" {
			t.Type = "function"
		}
		if len(bytes.TrimSpace(t.Function.Parameters)) == 0 {
			t.Function.Parameters = emptyParameters
		}
		out[i] = t
	}
	b, err := marshalNoEscape(out)
	if err != nil {
		return "", fmt.Errorf("tools: %w", err)
	}
	return JSONText(b), nil
}
