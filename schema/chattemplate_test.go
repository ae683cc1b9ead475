package schema

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// chatTrajectory is a rollout with every shape a chat template meets: a
// call with text, parallel calls (arguments in non-alphabetical key order,
// and empty arguments), tool results, a nudge from the user, a final answer,
// and a tool declared without parameters.
func chatTrajectory() Trajectory {
	tools := append(synthTools(), Tool{Type: "function", Function: ToolFunction{Name: "think", Description: "Think aloud."}})
	return Trajectory{
		TrajectoryID: "chat/agent/0", InstanceID: "chat-1", Repo: "chat", TaskType: TaskFix, Model: "m", Policy: "agent",
		Tools: tools,
		Messages: []Message{
			{Role: "system", Content: "You fix bugs."},
			{Role: "user", Content: "Fix the <b>parser</b> & its tests."},
			{Role: "assistant", Content: "I'll look around.", ToolCalls: []ToolCall{{ID: "call00001", Type: "function",
				Function: FunctionCall{Name: "bash", Arguments: `{"command": "ls -la"}`}}}},
			{Role: "tool", ToolCallID: "call00001", Name: "bash", Content: "total 0\nsrc\ntests"},
			{Role: "assistant", ToolCalls: []ToolCall{
				{ID: "call00002", Type: "function", Function: FunctionCall{Name: "str_replace_editor", Arguments: `{"path":"/testbed/src/p.py","command":"view"}`}},
				{ID: "call00003", Type: "function", Function: FunctionCall{Name: "think", Arguments: ""}},
			}},
			{Role: "tool", ToolCallID: "call00002", Name: "str_replace_editor", Content: "def parse(s):\n    return s\n"},
			{Role: "tool", ToolCallID: "call00003", Name: "think", Content: "ok"},
			{Role: "assistant", Content: "The bug is in parse."},
			{Role: "user", Content: "Use a tool call to continue, or submit."},
			{Role: "assistant", ToolCalls: []ToolCall{{ID: "call00004", Type: "function", Function: FunctionCall{Name: "submit", Arguments: "{}"}}}},
			{Role: "tool", ToolCallID: "call00004", Name: "submit", Content: "Submitted."},
			{Role: "assistant", Content: "Done."},
		},
	}
}

// exportedConversation exports tr, reads its shard back with arrow-go (an
// independent reader) and decodes the messages and tools the way the card's
// `datasets` Json feature does: each element's JSON text to its value.
func exportedConversation(t *testing.T, tr Trajectory) map[string]any {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ds")
	m := writeDataset(t, dir, DatasetOptions{}, nil, []Trajectory{tr})
	_, _, rows := arrowShard(t, filepath.Join(dir, m.Files[1].Path))
	if m.Files[1].Path != "data/train-00000-of-00001.parquet" || len(rows) != 1 {
		t.Fatalf("files %+v, %d rows", m.Files, len(rows))
	}
	var row struct {
		Messages []string `json:"messages"`
		Tools    string   `json:"tools"`
	}
	if err := json.Unmarshal(rows[0], &row); err != nil {
		t.Fatal(err)
	}
	var msgs []json.RawMessage
	for _, s := range row.Messages {
		msgs = append(msgs, json.RawMessage(s))
	}
	return map[string]any{"messages": msgs, "tools": json.RawMessage(row.Tools)}
}

// wireConversation is tr in the old export's form: OpenAI wire form with
// every key on every message (as a fixed Parquet struct gives it back) and
// tools as one JSON string.
func wireConversation(tr Trajectory) map[string]any {
	var msgs []map[string]any
	for _, m := range tr.Messages {
		var calls []map[string]any
		for _, c := range m.ToolCalls {
			calls = append(calls, map[string]any{"id": c.ID, "type": c.Type, "function": map[string]any{"name": c.Function.Name, "arguments": c.Function.Arguments}})
		}
		msgs = append(msgs, map[string]any{"role": m.Role, "content": m.Content, "tool_calls": calls, "tool_call_id": nil, "name": nil})
	}
	tools, _ := json.Marshal(tr.Tools)
	return map[string]any{"messages": msgs, "tools": string(tools)}
}

// renderChatTemplates renders the cases through the templates in
// testdata/chat_templates with python3-jinja2, as transformers'
// apply_chat_template does; it returns template → case → text.
func renderChatTemplates(t *testing.T, cases map[string]any) map[string]map[string]string {
	t.Helper()
	payload, err := json.Marshal(map[string]any{"cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(in, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	templates, _ := filepath.Glob("testdata/chat_templates/*.jinja")
	cmd := exec.Command("python3", append([]string{"testdata/chat_templates/render.py", in}, templates...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render.py (needs python3-jinja2): %v", err)
	}
	var got map[string]map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("render.py output: %v\n%s", err, out)
	}
	if len(got) != 4 {
		t.Fatalf("rendered %d templates", len(got))
	}
	return got
}

// Exported trajectories render through templates written in the constructs
// of the Llama 3.1, Hermes/Qwen2.5, Qwen3-Coder and Mistral families:
// arguments once (not a JSON string inside JSON), in the model's key order,
// calls only where there are calls, tools as schemas. The old wire form
// (control) fails every family's template or double-encodes.
func TestExportedTrajectoriesRenderThroughChatTemplates(t *testing.T) {
	tr := chatTrajectory()
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	got := renderChatTemplates(t, map[string]any{"exported": exportedConversation(t, tr), "wire": wireConversation(tr)})
	want := map[string][]string{
		"llama31_json_style.jinja": {
			`{"name": "bash", "parameters": {"command": "ls -la"}}`,
			`{"name": "str_replace_editor", "parameters": {"path": "/testbed/src/p.py", "command": "view"}}`,
			`{"name": "think", "parameters": {}}`,
			"<|start_header_id|>assistant<|end_header_id|>\n\nThe bug is in parse.<|eot_id|>",
			"<|start_header_id|>user<|end_header_id|>\n\nUse a tool call to continue, or submit.<|eot_id|>",
			`"name": "think",`, `"properties": {}`,
			"Fix the <b>parser</b> & its tests.",
		},
		"hermes_qwen25_style.jinja": {
			"<|im_start|>assistant\nI'll look around.\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls -la\"}}\n</tool_call><|im_end|>",
			`{"name": "think", "arguments": {}}`,
			"<|im_start|>assistant\nDone.<|im_end|>",
			"\n  arg command: string",
			`<tool_response>` + "\n" + `{"name": "think", "content": "ok"}`,
		},
		"qwen3coder_style.jinja": {
			"<function=bash>\n<parameter=command>\nls -la\n</parameter>\n</function>",
			"<function=str_replace_editor>\n<parameter=path>\n/testbed/src/p.py\n</parameter>\n<parameter=command>\nview\n</parameter>",
			"<function=think>\n</function>",
			"<function>\n<name>think</name>\n<parameters></parameters>",
		},
		"mistral_style.jinja": {
			`[TOOL_CALLS][{"name": "bash", "arguments": {"command": "ls -la"}, "id": "call00001"}]</s>`,
			`{"name": "think", "arguments": {}, "id": "call00003"}]</s>`,
			"The bug is in parse.</s>",
			`"name": "think", "description": "Think aloud.", "parameters": {"type": "object", "properties": {}}`,
		},
	}
	if os.Getenv("SHOW_RENDER") != "" {
		b, _ := json.MarshalIndent(got, "", " ")
		t.Logf("%s", b)
	}
	for tmpl, wants := range want {
		text := got[tmpl]["exported"]
		if strings.HasPrefix(text, "ERROR") {
			t.Errorf("%s: exported row: %s", tmpl, text)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(text, w) {
				t.Errorf("%s: exported row lacks %q in:\n%s", tmpl, w, text)
			}
		}
		if strings.Contains(text, `\"command\"`) {
			t.Errorf("%s: arguments double-encoded:\n%s", tmpl, text)
		}
		// Control: the wire form errors or double-encodes in every family.
		wire := got[tmpl]["wire"]
		if !strings.HasPrefix(wire, "ERROR") && !strings.Contains(wire, `\"command\"`) {
			t.Errorf("%s: the wire form renders cleanly, so the test shows nothing:\n%s", tmpl, wire)
		}
	}
}

// Arguments that are not a JSON object stay the string the model wrote;
// empty arguments become {}.
func TestChatMessagesArguments(t *testing.T) {
	msgs, err := ChatMessages([]Message{{Role: "assistant", ToolCalls: []ToolCall{
		{ID: "a", Type: "function", Function: FunctionCall{Name: "f", Arguments: `{"x": [1, 2], "a": "<&>"}`}},
		{ID: "b", Type: "function", Function: FunctionCall{Name: "f", Arguments: `{"x": 1`}},
		{ID: "c", Type: "function", Function: FunctionCall{Name: "f", Arguments: " "}},
		{ID: "d", Type: "function", Function: FunctionCall{Name: "f", Arguments: `[1]`}},
	}}, {Role: "user", Content: "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"role":"assistant","content":"","tool_calls":[` +
		`{"id":"a","type":"function","function":{"name":"f","arguments":{"x":[1,2],"a":"<&>"}}},` +
		`{"id":"b","type":"function","function":{"name":"f","arguments":"{\"x\": 1"}},` +
		`{"id":"c","type":"function","function":{"name":"f","arguments":{}}},` +
		`{"id":"d","type":"function","function":{"name":"f","arguments":"[1]"}}]}`
	if string(msgs[0]) != want || string(msgs[1]) != `{"role":"user","content":"hi"}` {
		t.Errorf("chat messages:\n%s\n%s\nwant\n%s", msgs[0], msgs[1], want)
	}
}
