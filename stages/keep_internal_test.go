package stages

import (
	"testing"

	"github.com/dsbuild/dsbuild/schema"
)

// One keep policy decides for rollouts and develop trajectories alike: each
// filter drops what it names and only that, in a fixed order of reasons.
func TestKeepPolicyReject(t *testing.T) {
	call := func(args string) schema.Message {
		return schema.Message{Role: "assistant", ToolCalls: []schema.ToolCall{{ID: "c", Type: "function", Function: schema.FunctionCall{Name: "execute_bash", Arguments: args}}}}
	}
	tool := schema.Message{Role: "tool", ToolCallID: "c", Content: "ok"}
	distinct := []schema.Message{call(`{"command":"ls"}`), tool, call(`{"command":"pwd"}`), tool}
	repeated := []schema.Message{call(`{"command":"ls"}`), tool, call(`{"command":"ls"}`), tool}
	all := DefaultKeepPolicy()
	for _, c := range []struct {
		keep     KeepPolicy
		resolved bool
		msgs     []schema.Message
		invalid  int
		want     string
	}{
		{all, true, distinct, 0, ""},
		{all, false, distinct, 0, RejectUnresolved},
		{all, true, distinct, 1, RejectParseFailures},
		{all, true, repeated, 0, RejectRepeatedActions},
		{all, false, repeated, 2, RejectUnresolved},
		{KeepPolicy{ResolvedOnly: true}, true, repeated, 2, ""},
		{KeepPolicy{DropParseFailures: true}, false, distinct, 1, RejectParseFailures},
		{KeepPolicy{}, false, repeated, 3, ""},
	} {
		tr := &schema.Trajectory{Resolved: c.resolved, Messages: c.msgs}
		if got := c.keep.Reject(tr, c.invalid); got != c.want {
			t.Errorf("%+v resolved=%v invalid=%d repeated=%v: %q, want %q", c.keep, c.resolved, c.invalid, &c.msgs[0] == &repeated[0], got, c.want)
		}
	}
}

// Scratch files an agent creates are told from project files: build and
// tool debris anywhere, binary files, and (with a layout) files outside it.
func TestScratchReason(t *testing.T) {
	layout := []string{"calc/", "tests/"}
	for p, want := range map[string]string{
		"calc/rpn.py":                      "",
		"tests/test_x.py":                  "",
		"calc/__pycache__/rpn.cpython.pyc": ScratchIgnored,
		"tests/__pycache__/x.py":           ScratchIgnored,
		".pytest_cache/v/cache/nodeids":    ScratchIgnored,
		"calc/rpn.py.orig":                 ScratchIgnored,
		"calc.egg-info/PKG-INFO":           ScratchIgnored,
		"calc/blob.bin":                    ScratchBinary,
		"notes.txt":                        ScratchOutside,
		"scripts/try.py":                   ScratchOutside,
	} {
		data := []byte("text\n")
		if want == ScratchBinary {
			data = []byte("a\x00b")
		}
		if got := scratchReason(p, data, layout); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	if got := scratchReason("notes.txt", []byte("x"), nil); got != "" {
		t.Errorf("without a layout, notes.txt is %q", got)
	}
	if got := scratchReason("setup.py", []byte("\x00"), nil); got != ScratchBinary {
		t.Errorf("without a layout, a binary is %q", got)
	}
}
