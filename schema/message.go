// Package schema owns the data types that cross package lines — chat
// messages and tool calls, images, projects, task instances, trajectories —
// and their encodings (JSON, SWE-bench JSONL, Parquet rows and shards).
// It imports nothing of the project and performs no effects beyond writing
// the files it is asked to write.
package schema

import "encoding/json"

// Message is one chat message in the OpenAI chat-completions shape, the
// layout public SFT trajectory sets use. The parquet tags give the column
// layout of the `messages` list in trajectory shards: tool_call_id and name
// are optional (null when empty), tool_calls is a (possibly empty) list.
type Message struct {
	Role       string     `json:"role" parquet:"role,dict"`
	Content    string     `json:"content" parquet:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty" parquet:"tool_calls,list"`
	ToolCallID string     `json:"tool_call_id,omitempty" parquet:"tool_call_id,optional"`
	Name       string     `json:"name,omitempty" parquet:"name,optional"`
}

// ToolCall is a model's request to call a tool.
type ToolCall struct {
	ID       string       `json:"id" parquet:"id"`
	Type     string       `json:"type" parquet:"type,dict"` // always "function"
	Function FunctionCall `json:"function" parquet:"function"`
}

// FunctionCall names the function and carries its arguments as the JSON text
// the model wrote (which may not parse; callers validate).
type FunctionCall struct {
	Name      string `json:"name" parquet:"name,dict"`
	Arguments string `json:"arguments" parquet:"arguments"`
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
