package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Trajectory is one agent rollout on one task instance: the conversation,
// the tools offered, the result and its cost. Row gives its Parquet/JSONL
// row, the layout public SFT sets use (TRL's SFTTrainer and LLaMA-Factory
// read `messages` with `tools`).
type Trajectory struct {
	// TrajectoryID identifies the rollout; unique within a dataset.
	TrajectoryID string `json:"trajectory_id"`
	// InstanceID is the TaskInstance the agent worked on.
	InstanceID string `json:"instance_id"`
	// Repo is the task's repository name.
	Repo string `json:"repo"`
	// TaskType is the task's type.
	TaskType TaskType `json:"task_type"`
	// Model is the model that produced the assistant messages.
	Model string `json:"model"`
	// Policy names how the rollout was driven, e.g. "agent" or "oracle".
	Policy string `json:"policy"`
	// Messages is the whole conversation, system prompt first.
	Messages []Message `json:"messages"`
	// Tools are the tools offered to the model.
	Tools []Tool `json:"tools"`
	// Patch is the diff the agent left in the workspace.
	Patch string `json:"patch"`
	// Resolved reports whether the grading tests passed.
	Resolved bool `json:"resolved"`
	// Reward is the grader's score, 0 to 1 (e.g. fraction of tests passed).
	Reward float64 `json:"reward"`
	// ExitStatus says how the loop ended, e.g. "submitted", "max_turns".
	ExitStatus string `json:"exit_status"`
	// NumTurns is the number of assistant turns; Row counts them when 0.
	NumTurns int `json:"num_turns"`
	// PromptTokens and CompletionTokens sum the usage of every model call.
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// TrajectoryRow is a Trajectory as stored in a Parquet shard, in the
// layout Hugging Face chat templates and TRL's SFTTrainer take as they are
// (see ChatMessages and ChatTools): `messages` is a list whose elements are
// JSON objects, one message each, stored as JSON text; `tools` is the JSON
// text of the list of tools (one dictionary-encoded string: every rollout
// of an agent offers the same tools). The dataset card declares them
// `list: json` and `dtype: json` (the `datasets` Json feature), so
// `datasets` decodes every message to exactly the keys it was written
// with: tool_calls only on assistant messages that call tools, arguments
// as a mapping. A fixed Parquet struct cannot do that: `datasets` unifies
// struct fields across rows and fills missing keys with None.
type TrajectoryRow struct {
	TrajectoryID string `json:"trajectory_id" parquet:"trajectory_id"`
	InstanceID   string `json:"instance_id" parquet:"instance_id"`
	Repo         string `json:"repo" parquet:"repo,dict"`
	// SourceProject is the project the split was decided by (see
	// AssignSplits); set by DatasetWriter.
	SourceProject    string     `json:"source_project" parquet:"source_project,dict"`
	TaskType         string     `json:"task_type" parquet:"task_type,dict"`
	Model            string     `json:"model" parquet:"model,dict"`
	Policy           string     `json:"policy" parquet:"policy,dict"`
	Messages         []JSONText `json:"messages" parquet:"messages,list"`
	Tools            JSONText   `json:"tools" parquet:"tools,dict"`
	Patch            string     `json:"patch" parquet:"patch"`
	Resolved         bool       `json:"resolved" parquet:"resolved"`
	Reward           float64    `json:"reward" parquet:"reward"`
	ExitStatus       string     `json:"exit_status" parquet:"exit_status,dict"`
	NumTurns         int64      `json:"num_turns" parquet:"num_turns"`
	PromptTokens     int64      `json:"prompt_tokens" parquet:"prompt_tokens"`
	CompletionTokens int64      `json:"completion_tokens" parquet:"completion_tokens"`
}

// JSONText is one JSON value stored as text: a string column in Parquet,
// the value itself (not a quoted string) in JSON.
type JSONText string

// MarshalJSON returns the text as it is.
func (j JSONText) MarshalJSON() ([]byte, error) {
	if j == "" {
		return []byte("null"), nil
	}
	return []byte(j), nil
}

// UnmarshalJSON keeps the value's text; a JSON string holding JSON (as
// Arrow renders a string column) is unquoted first.
func (j *JSONText) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' && json.Unmarshal(b, &s) == nil && json.Valid([]byte(s)) {
		b = []byte(s)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return err
	}
	*j = JSONText(buf.String())
	return nil
}

// validRoles are the chat roles a trajectory may contain.
var validRoles = map[string]bool{"system": true, "user": true, "assistant": true, "tool": true}

// Validate checks that tr can be exported: IDs present, known roles, tool
// calls of type "function" with a name, tool results answering a call.
func (tr Trajectory) Validate() error {
	if strings.TrimSpace(tr.TrajectoryID) == "" {
		return fmt.Errorf("trajectory (instance %q): empty trajectory_id", tr.InstanceID)
	}
	if strings.ContainsAny(tr.TrajectoryID, "\x00") {
		return fmt.Errorf("trajectory %q: trajectory_id contains NUL", tr.TrajectoryID)
	}
	if strings.TrimSpace(tr.InstanceID) == "" {
		return fmt.Errorf("trajectory %s: empty instance_id", tr.TrajectoryID)
	}
	if strings.ContainsAny(tr.InstanceID, "\n\x00") {
		return fmt.Errorf("trajectory %s: instance_id contains a newline or NUL", tr.TrajectoryID)
	}
	if tr.TaskType != "" && !tr.TaskType.Valid() {
		return fmt.Errorf("trajectory %s: unknown task_type %q", tr.TrajectoryID, tr.TaskType)
	}
	calls := map[string]bool{}
	for i, m := range tr.Messages {
		if !validRoles[m.Role] {
			return fmt.Errorf("trajectory %s: message %d: unknown role %q", tr.TrajectoryID, i, m.Role)
		}
		for j, c := range m.ToolCalls {
			if m.Role != "assistant" {
				return fmt.Errorf("trajectory %s: message %d: tool calls in a %q message", tr.TrajectoryID, i, m.Role)
			}
			if c.Type != "function" {
				return fmt.Errorf("trajectory %s: message %d: tool call %d has type %q, want \"function\"", tr.TrajectoryID, i, j, c.Type)
			}
			if c.Function.Name == "" {
				return fmt.Errorf("trajectory %s: message %d: tool call %d has no function name", tr.TrajectoryID, i, j)
			}
			calls[c.ID] = true
		}
		if m.Role == "tool" && !calls[m.ToolCallID] {
			return fmt.Errorf("trajectory %s: message %d: tool result for unknown tool_call_id %q", tr.TrajectoryID, i, m.ToolCallID)
		}
	}
	for i, t := range tr.Tools {
		if t.Function.Name == "" {
			return fmt.Errorf("trajectory %s: tool %d has no function name", tr.TrajectoryID, i)
		}
	}
	return nil
}

// Row returns tr as a Parquet row: messages and tools in the chat-template
// form (ChatMessages, ChatTools); NumTurns, when 0, is the number of
// assistant messages. SourceProject is left for DatasetWriter to fill.
func (tr Trajectory) Row() (TrajectoryRow, error) {
	messages, err := ChatMessages(tr.Messages)
	if err != nil {
		return TrajectoryRow{}, fmt.Errorf("trajectory %s: %w", tr.TrajectoryID, err)
	}
	tools, err := ChatTools(tr.Tools)
	if err != nil {
		return TrajectoryRow{}, fmt.Errorf("trajectory %s: %w", tr.TrajectoryID, err)
	}
	turns := int64(tr.NumTurns)
	if turns == 0 {
		for _, m := range tr.Messages {
			if m.Role == "assistant" {
				turns++
			}
		}
	}
	return TrajectoryRow{
		TrajectoryID:     tr.TrajectoryID,
		InstanceID:       tr.InstanceID,
		Repo:             tr.Repo,
		TaskType:         string(tr.TaskType),
		Model:            tr.Model,
		Policy:           tr.Policy,
		Messages:         messages,
		Tools:            tools,
		Patch:            tr.Patch,
		Resolved:         tr.Resolved,
		Reward:           tr.Reward,
		ExitStatus:       tr.ExitStatus,
		NumTurns:         turns,
		PromptTokens:     tr.PromptTokens,
		CompletionTokens: tr.CompletionTokens,
	}, nil
}
