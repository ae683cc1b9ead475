package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/schema"
)

// Policy chooses the assistant's next message from the conversation so far.
type Policy interface {
	// Name says how the rollout is driven, e.g. "agent" or "oracle"; it is
	// the trajectory's policy column.
	Name() string
	// Model names the model behind the replies.
	Model() string
	// Next returns the assistant's reply at step (0-based) given the
	// messages to send (possibly with old observations elided) and tools.
	Next(ctx context.Context, msgs []schema.Message, tools []schema.Tool, step int) (*Reply, error)
}

// Reply is one assistant turn with its cost.
type Reply struct {
	Message schema.Message
	// PromptTokens and CompletionTokens are the call's usage as the
	// endpoint reported it (also when the reply came from the cache).
	PromptTokens, CompletionTokens int64
	// Dollars is the call's list price under the model's profile (also when
	// cached, so that limits and totals are the same on every re-run).
	Dollars float64
	// Cached reports that no model request was made for this reply.
	Cached bool
}

// ModelPolicy asks a model through an llm.Client: one memoised chat
// completion per step, keyed by the whole conversation, so a resumed or
// repeated rollout gets its earlier replies from the store.
type ModelPolicy struct {
	Client *llm.Client
	// Sample selects one of several distinct rollouts of the same task
	// (each index is its own set of cached replies).
	Sample int
}

// Name returns "agent".
func (p ModelPolicy) Name() string { return "agent" }

// Model returns the profile's model name.
func (p ModelPolicy) Model() string { return p.Client.Profile().Model }

// Next makes the step's chat-completion call. A reply cut off at the token
// limit or carrying tool calls with unparsable arguments is returned as is
// (the loop answers it); other errors are returned.
func (p ModelPolicy) Next(ctx context.Context, msgs []schema.Message, tools []schema.Tool, step int) (*Reply, error) {
	if p.Client == nil {
		return nil, errors.New("ModelPolicy has no Client")
	}
	resp, err := p.Client.Complete(ctx, llm.Request{Messages: msgs, Tools: tools, Sample: p.Sample})
	if err != nil {
		var te *llm.TruncatedError
		var ae *llm.ToolArgumentsError
		if resp == nil || !(errors.As(err, &te) || errors.As(err, &ae)) {
			return nil, err
		}
	}
	u := resp.Usage
	return &Reply{
		Message:          resp.Message,
		PromptTokens:     u.PromptTokens,
		CompletionTokens: u.CompletionTokens,
		Dollars:          p.Client.Profile().Dollars(u.PromptTokens, u.CompletionTokens),
		Cached:           resp.Cached,
	}, nil
}

// ScriptedPolicy is a clearly labelled non-model policy: at step i it calls
// Calls[i], and once the script is exhausted it calls finish. The oracle
// (replaying a known solution) is one. Its replies cost nothing and are
// counted as cached.
type ScriptedPolicy struct {
	// Label names the policy, e.g. "oracle"; it is used as both the policy
	// and the model name of the trajectory.
	Label string
	// Calls are the tool calls to make, one per step. Empty IDs become
	// "call_<step>" and empty types "function".
	Calls []schema.ToolCall
}

// Name returns the label ("scripted" if empty).
func (p ScriptedPolicy) Name() string {
	if p.Label == "" {
		return "scripted"
	}
	return p.Label
}

// Model returns "scripted:<label>", so a scripted trajectory is never
// mistaken for a model's.
func (p ScriptedPolicy) Model() string { return "scripted:" + p.Name() }

// Next returns the scripted call for step, or finish.
func (p ScriptedPolicy) Next(ctx context.Context, msgs []schema.Message, tools []schema.Tool, step int) (*Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	call := schema.ToolCall{Function: schema.FunctionCall{Name: ToolFinish, Arguments: "{}"}}
	if step < len(p.Calls) {
		call = p.Calls[step]
	}
	if call.ID == "" {
		call.ID = fmt.Sprintf("call_%d", step)
	}
	if call.Type == "" {
		call.Type = "function"
	}
	return &Reply{Message: schema.Message{Role: "assistant", ToolCalls: []schema.ToolCall{call}}, Cached: true}, nil
}

// Call is a convenience for scripts: a tool call of name with args encoded
// as its JSON arguments.
func Call(name string, args map[string]any) schema.ToolCall {
	b, err := jsonMarshal(args)
	if err != nil {
		panic(fmt.Sprintf("agent.Call(%s): %v", name, err))
	}
	return schema.ToolCall{Type: "function", Function: schema.FunctionCall{Name: name, Arguments: string(b)}}
}
