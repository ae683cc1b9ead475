package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// Tool names.
const (
	ToolBash   = "execute_bash"
	ToolEditor = "str_replace_editor"
	ToolThink  = "think"
	ToolFinish = "finish"
	// ToolDispute is offered only on tasks that allow it (Task.Disputable):
	// the agent names a test it holds wrong, with a reason, and its run
	// ends so that the test's author can review the dispute.
	ToolDispute = "dispute_test"
)

// Editor commands of str_replace_editor.
const (
	EditorView       = "view"
	EditorCreate     = "create"
	EditorStrReplace = "str_replace"
	EditorInsert     = "insert"
	EditorUndo       = "undo_edit"
)

// Tools returns the tools offered to the model, with their JSON schemas, in
// a fixed order.
func Tools() []schema.Tool {
	fn := func(name, desc, params string) schema.Tool {
		return schema.Tool{Type: "function", Function: schema.ToolFunction{Name: name, Description: desc, Parameters: json.RawMessage(params)}}
	}
	return []schema.Tool{
		fn(ToolBash,
			"Run a bash command in the task's environment, with the repository at /testbed as the working directory. "+
				"Output (stdout and stderr together) and the exit code are returned; long output is truncated. "+
				"There is no network. Each command starts a fresh shell: files persist between commands, shell state does not.",
			`{"type":"object","properties":{"command":{"type":"string","description":"The bash command to run."},"timeout":{"type":"number","description":"Optional timeout in seconds (capped by the rollout's limit)."}},"required":["command"]}`),
		fn(ToolEditor,
			"View, create and edit files under /testbed. Paths must be absolute (e.g. /testbed/src/app.py).\n"+
				"* view: show a file with line numbers (cat -n), optionally only view_range [start, end] (end -1 = to the end), or list a directory 2 levels deep.\n"+
				"* create: write a new file with file_text; fails if the path exists.\n"+
				"* str_replace: replace old_str, which must occur exactly once in the file, with new_str (empty to delete).\n"+
				"* insert: insert new_str after line insert_line (0 = at the top).\n"+
				"* undo_edit: revert the last edit made to the file with this tool.",
			`{"type":"object","properties":{"command":{"type":"string","enum":["view","create","str_replace","insert","undo_edit"],"description":"The editor command."},"path":{"type":"string","description":"Absolute path of a file or directory under /testbed."},"file_text":{"type":"string","description":"Content of the file to create."},"old_str":{"type":"string","description":"Exact text to replace; must occur exactly once."},"new_str":{"type":"string","description":"Replacement text (str_replace) or text to insert (insert)."},"insert_line":{"type":"integer","description":"Line after which new_str is inserted (0 = top of the file)."},"view_range":{"type":"array","items":{"type":"integer"},"description":"[start, end] lines to view, 1-based and inclusive; end -1 means the last line."}},"required":["command","path"]}`),
		fn(ToolThink,
			"Think about the task without acting: the thought is recorded and nothing changes.",
			`{"type":"object","properties":{"thought":{"type":"string","description":"Your reasoning."}},"required":["thought"]}`),
		fn(ToolFinish,
			"Finish the task when the work is done; the current state of /testbed is the result.",
			`{"type":"object","properties":{"message":{"type":"string","description":"Optional summary of what was done."}}}`),
	}
}

// DisputeTool is the dispute_test tool, offered after Tools() on a
// disputable task.
func DisputeTool() schema.Tool {
	return schema.Tool{Type: "function", Function: schema.ToolFunction{Name: ToolDispute,
		Description: "Dispute a test that contradicts the task's specification, so that no correct implementation can pass it. " +
			"Name the test (its pytest node id) and say why it is wrong. Your run ends here: the test's author reviews the dispute " +
			"and may revise the tests, then the implementation continues. Do not use it for a test you merely find hard to pass.",
		Parameters: json.RawMessage(`{"type":"object","properties":{"test":{"type":"string","description":"The disputed test's pytest node id, e.g. tests/test_x.py::test_y."},"reason":{"type":"string","description":"What the test expects, what the specification says instead, and why no correct implementation can pass it."}},"required":["test","reason"]}`)}}
}

// toolsFor returns the tools offered on task.
func toolsFor(task Task) []schema.Tool {
	if task.Disputable {
		return append(Tools(), DisputeTool())
	}
	return Tools()
}

// Dispute is a test the agent disputed with dispute_test.
type Dispute struct {
	// Test is the disputed test's node id as the agent gave it.
	Test string `json:"test"`
	// Reason is the agent's argument.
	Reason string `json:"reason"`
}

// result is the outcome of one tool call.
type result struct {
	text    string
	invalid bool // the call could not be interpreted
	finish  bool
	dispute *Dispute // set by a valid dispute_test call (finish is set too)
}

func invalid(format string, args ...any) result {
	return result{text: "ERROR: " + fmt.Sprintf(format, args...), invalid: true}
}

// decodeArgs decodes a call's JSON arguments into v, rejecting unknown
// parameters and wrong types with text the model can act on.
func decodeArgs(tool, args string, v any) error {
	if strings.TrimSpace(args) == "" {
		args = "{}"
	}
	dec := json.NewDecoder(strings.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return fmt.Errorf("parameter %q of %s has the wrong type: got a JSON %s, want %s", te.Field, tool, te.Value, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Errorf("%s has no parameter %s", tool, strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return fmt.Errorf("the arguments of %s are not a valid JSON object: %v", tool, err)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("the arguments of %s have trailing data after the JSON object", tool)
	}
	return nil
}

func (l *loop) execute(ctx context.Context, call schema.ToolCall) (result, error) {
	name, args := call.Function.Name, call.Function.Arguments
	switch name {
	case ToolBash:
		var a struct {
			Command *string  `json:"command"`
			Timeout *float64 `json:"timeout"`
		}
		if err := decodeArgs(name, args, &a); err != nil {
			return invalid("%v", err), nil
		}
		if a.Command == nil || strings.TrimSpace(*a.Command) == "" {
			return invalid("execute_bash needs a non-empty \"command\""), nil
		}
		if a.Timeout != nil && *a.Timeout <= 0 {
			return invalid("\"timeout\" must be a positive number of seconds, got %v", *a.Timeout), nil
		}
		return l.bash(ctx, *a.Command, a.Timeout)
	case ToolEditor:
		var a editorArgs
		if err := decodeArgs(name, args, &a); err != nil {
			return invalid("%v", err), nil
		}
		return l.edit(a)
	case ToolThink:
		var a struct {
			Thought *string `json:"thought"`
		}
		if err := decodeArgs(name, args, &a); err != nil {
			return invalid("%v", err), nil
		}
		if a.Thought == nil {
			return invalid("think needs a \"thought\""), nil
		}
		return result{text: "Your thought has been logged."}, nil
	case ToolFinish:
		var a struct {
			Message *string `json:"message"`
		}
		if err := decodeArgs(name, args, &a); err != nil {
			return invalid("%v", err), nil
		}
		return result{text: "Finished.", finish: true}, nil
	case ToolDispute:
		if !l.task.Disputable {
			break
		}
		var a struct {
			Test   *string `json:"test"`
			Reason *string `json:"reason"`
		}
		if err := decodeArgs(name, args, &a); err != nil {
			return invalid("%v", err), nil
		}
		if a.Test == nil || strings.TrimSpace(*a.Test) == "" || a.Reason == nil || strings.TrimSpace(*a.Reason) == "" {
			return invalid("dispute_test needs a non-empty \"test\" and \"reason\""), nil
		}
		d := &Dispute{Test: strings.TrimSpace(*a.Test), Reason: strings.TrimSpace(*a.Reason)}
		return result{text: "Dispute recorded. Your run ends here; the test's author will review it.", finish: true, dispute: d}, nil
	case "":
		return invalid("the tool call names no tool; available tools: %s", l.toolList()), nil
	}
	return invalid("unknown tool %q; available tools: %s", name, l.toolList()), nil
}

func (l *loop) toolList() string {
	var names []string
	for _, t := range toolsFor(l.task) {
		names = append(names, t.Function.Name)
	}
	return strings.Join(names, ", ")
}

// bash runs command in the sandbox on the current tree. The run is memoised
// by the sandbox (image, tree, argv, env, limits), so its observation is a
// deterministic function of the tree and the command.
func (l *loop) bash(ctx context.Context, command string, timeout *float64) (result, error) {
	if l.env.Sandbox == nil {
		return result{}, errors.New("Env.Sandbox is nil: execute_bash needs a sandbox runner")
	}
	limit := l.limits.CommandTimeout
	if timeout != nil {
		if d := time.Duration(*timeout * float64(time.Second)); d < limit {
			limit = d.Round(time.Millisecond)
			if limit < time.Second {
				limit = time.Second
			}
		}
	}
	sl := l.env.SandboxLimits
	sl.Timeout = limit
	res, err := l.env.Sandbox.Run(ctx, sandbox.Spec{
		Image:     l.task.Image,
		Workspace: l.tree,
		// stderr joins stdout so the model sees them interleaved.
		Argv:   []string{"bash", "-c", "exec 2>&1\n" + command},
		Env:    TestEnv(l.prof),
		Dir:    Workdir,
		Limits: sl,
	})
	if err != nil {
		return result{}, err
	}
	var b strings.Builder
	out := res.Stdout
	if len(res.Stderr) > 0 {
		out = append(bytes.Clone(out), res.Stderr...)
	}
	out = []byte(Normalize(string(out)))
	b.Write(out)
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
		b.WriteByte('\n')
	}
	switch res.LimitHit {
	case "":
	case sandbox.LimitTimeout:
		fmt.Fprintf(&b, "[The command was killed after the %s timeout.]\n", limit)
	case sandbox.LimitWorkspace:
		b.WriteString("[The command was stopped: the workspace grew past its size limit. Its changes to /testbed were discarded.]\n")
	default:
		fmt.Fprintf(&b, "[The command was stopped: it hit the %s limit.]\n", res.LimitHit)
	}
	fmt.Fprintf(&b, "[Exit code: %d]", res.ExitCode)
	if !res.Output.IsZero() {
		l.tree = res.Output
	}
	return result{text: b.String()}, nil
}
