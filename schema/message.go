// Package schema owns the data types that cross package lines — chat
// messages and tool calls, images, projects, task instances, trajectories —
// and their encodings (JSON, SWE-bench JSONL, Parquet rows and shards).
// It imports nothing of the project and performs no effects beyond writing
// the files it is asked to write.
package schema

import "encoding/json"

// Message is one chat message in the OpenAI chat-completions shape, the
// layout public SFT trajectory sets use.
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
