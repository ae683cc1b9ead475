// Package agent owns the tool-calling loop that drives a model (or a scripted
// policy) through a software-engineering task: native OpenAI function calling
// with execute_bash, str_replace_editor, think and finish (and dispute_test on
// tasks that allow disputing a test); per-rollout limits;
// grading of the final workspace against the task's tests; the trajectory row;
// and the default prompt templates.
//
// The loop is a pure function of its inputs. Its state is the workspace tree
// digest plus the editor's undo history; each step is one memoised model call
// (keyed by the conversation so far, in package llm) and one tool execution
// that is either a memoised sandbox run (keyed by image, tree and command, in
// package sandbox) or a deterministic edit of the tree in Go. So an
// interrupted rollout run again replays its finished steps from the store
// without calling the model, and a re-run gives the same messages byte for
// byte.
//
// The package builds on llm, sandbox, patch, cache and schema. It knows
// nothing of recipes, stages or the build engine, and must not: the rollout
// stage that calls Run, memoises its result and writes trajectories lives
// elsewhere.
package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// Workdir is where the task's workspace is mounted; editor paths must be
// absolute paths under it.
const Workdir = "/testbed"

// Exit statuses of a rollout.
const (
	ExitFinished   = "finished"
	ExitMaxSteps   = "max_steps"
	ExitMaxTokens  = "max_tokens"
	ExitMaxDollars = "max_dollars"
	ExitContext    = "context"
	// ExitDisputed: the agent disputed a test (dispute_test).
	ExitDisputed = "disputed"
)

// Task is what an agent works on.
type Task struct {
	// InstanceID names the task instance.
	InstanceID string
	// Repo is the repository name, copied into the trajectory.
	Repo string
	// TaskType is "fix", "reproduce", "implement" or "testgen".
	TaskType string
	// Image is the environment the commands and tests run in.
	Image schema.Image
	// Workspace is the start tree, mounted at /testbed.
	Workspace cache.Digest
	// Prompt is the user message.
	Prompt string
	// System is the system prompt ("" sends none).
	System string
	// Protected are path prefixes relative to /testbed (e.g. "tests/")
	// restored from Workspace before grading, so that editing the tests
	// cannot make them pass.
	Protected []string
	// TestCmd is the test command, e.g.
	// ["python3","-m","pytest","-rA","-p","no:cacheprovider"]; test ids are
	// appended.
	TestCmd []string
	// FailToPass and PassToPass are the pytest node ids that decide the
	// grade.
	FailToPass, PassToPass []string
	// Disputable offers the dispute_test tool (DisputeTool): a valid call
	// ends the run with ExitDisputed and Rollout.Dispute set.
	Disputable bool
}

// Limits bound one rollout. Zero fields of MaxSteps, CommandTimeout,
// ObservationChars and ContextChars take DefaultLimits; zero MaxTokens and
// MaxDollars mean no limit. In YAML command_timeout is a duration ("45s");
// in JSON it is an integer of nanoseconds (time.Duration's encoding).
type Limits struct {
	// MaxSteps is the most assistant turns.
	MaxSteps int `yaml:"max_steps,omitempty" json:"max_steps,omitempty"`
	// MaxTokens bounds prompt plus completion tokens over the rollout.
	MaxTokens int64 `yaml:"max_tokens,omitempty" json:"max_tokens,omitempty"`
	// MaxDollars bounds the (list-price) cost of the rollout's model calls.
	MaxDollars float64 `yaml:"max_dollars,omitempty" json:"max_dollars,omitempty"`
	// CommandTimeout bounds each execute_bash call; a shorter timeout the
	// model asks for is honoured.
	CommandTimeout time.Duration `yaml:"command_timeout,omitempty" json:"command_timeout,omitempty"`
	// ObservationChars is the longest tool observation; longer ones keep
	// their head and tail around a truncation marker.
	ObservationChars int `yaml:"observation_chars,omitempty" json:"observation_chars,omitempty"`
	// ContextChars is the most characters of message content and tool-call
	// arguments sent to the model; older observations are elided to fit.
	ContextChars int `yaml:"context_chars,omitempty" json:"context_chars,omitempty"`
}

// DefaultLimits returns 50 steps, 30 s per command, 10,000 characters per
// observation and a 200,000-character context, with no token or dollar cap.
func DefaultLimits() Limits {
	return Limits{MaxSteps: 50, CommandTimeout: 30 * time.Second, ObservationChars: 10_000, ContextChars: 200_000}
}

// WithDefaults returns l with zero fields set from DefaultLimits (MaxTokens
// and MaxDollars stay as they are: zero means unlimited).
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxSteps <= 0 {
		l.MaxSteps = d.MaxSteps
	}
	if l.CommandTimeout <= 0 {
		l.CommandTimeout = d.CommandTimeout
	}
	if l.ObservationChars <= 0 {
		l.ObservationChars = d.ObservationChars
	}
	if l.ContextChars <= 0 {
		l.ContextChars = d.ContextChars
	}
	return l
}

// Env holds the effects a rollout uses.
type Env struct {
	// Store holds workspaces, files and memo entries.
	Store *cache.Store
	// Sandbox runs execute_bash commands and tests.
	Sandbox *sandbox.Runner
	// SandboxLimits bound every sandbox run; for execute_bash the timeout
	// is replaced by the rollout's command timeout.
	SandboxLimits sandbox.Limits
}

// Rollout is the outcome of Run.
type Rollout struct {
	// Messages is the full conversation, system prompt first (observations
	// are never elided here, only in what is sent to the model).
	Messages []schema.Message
	// Tools are the tools offered.
	Tools []schema.Tool
	// Final is the workspace tree at the end.
	Final cache.Digest
	// Patch is the diff from the task's workspace to Final.
	Patch string
	// ExitStatus says why the loop ended (see the Exit constants).
	ExitStatus string
	// Steps is the number of assistant turns; InvalidCalls counts calls of
	// unknown tools, with unparsable or invalid arguments, and turns with
	// no tool call.
	Steps, InvalidCalls int
	// PromptTokens, CompletionTokens and Dollars sum every model reply's
	// usage, whether served from the cache or not, so they are the same on
	// every re-run.
	PromptTokens, CompletionTokens int64
	Dollars                        float64
	// ModelCalls counts replies that cost a real model request; CachedCalls
	// those served from the store (and scripted replies). They differ
	// between a first run and a replay; nothing else does.
	ModelCalls, CachedCalls int
	// Dispute is the test the agent disputed, when ExitStatus is
	// ExitDisputed.
	Dispute *Dispute
}

// BashEnv is added to the environment of every execute_bash command and
// test run: no .pyc files in the workspace (they would show up in the patch)
// and no pagers.
var BashEnv = []string{"PYTHONDONTWRITEBYTECODE=1", "PAGER=cat", "GIT_PAGER=cat", "TERM=dumb"}

// loop is the state of one rollout.
type loop struct {
	env    Env
	task   Task
	limits Limits
	tree   cache.Digest
	// undo holds, per path relative to /testbed, the entries the path had
	// before each editor change (nil: it did not exist).
	undo map[string][]*cache.TreeEntry
}

// Run drives policy on task until it calls finish or a limit stops it.
// Model misbehaviour (unknown tools, bad arguments, failing commands) is
// answered in the conversation and recorded; the error is for broken
// infrastructure: the store, the sandbox, model calls that failed after
// their retries or missed in offline mode, a cancelled context.
func Run(ctx context.Context, env Env, task Task, policy Policy, limits Limits) (*Rollout, error) {
	if env.Store == nil {
		return nil, errors.New("agent: Env.Store is nil")
	}
	if task.Workspace.IsZero() {
		return nil, fmt.Errorf("agent: task %s has no workspace", task.InstanceID)
	}
	if task.Prompt == "" {
		return nil, fmt.Errorf("agent: task %s has an empty prompt", task.InstanceID)
	}
	limits = limits.WithDefaults()
	l := &loop{env: env, task: task, limits: limits, tree: task.Workspace, undo: map[string][]*cache.TreeEntry{}}
	r := &Rollout{Tools: toolsFor(task)}
	if task.System != "" {
		r.Messages = append(r.Messages, schema.Message{Role: "system", Content: task.System})
	}
	r.Messages = append(r.Messages, schema.Message{Role: "user", Content: task.Prompt})
	for step := 0; ; step++ {
		if status := limitReached(r, limits, step); status != "" {
			r.ExitStatus = status
			break
		}
		view, ok := fitContext(r.Messages, limits.ContextChars)
		if !ok {
			r.ExitStatus = ExitContext
			break
		}
		reply, err := policy.Next(ctx, view, r.Tools, step)
		if err != nil {
			return nil, fmt.Errorf("agent: %s: step %d: %s policy: %w", task.InstanceID, step+1, policy.Name(), err)
		}
		r.Steps++
		r.PromptTokens += reply.PromptTokens
		r.CompletionTokens += reply.CompletionTokens
		r.Dollars += reply.Dollars
		if reply.Cached {
			r.CachedCalls++
		} else {
			r.ModelCalls++
		}
		msg := reply.Message
		msg.Role = "assistant"
		msg.ToolCallID, msg.Name = "", ""
		if len(msg.ToolCalls) > 0 {
			// Every call needs an id for its answer to refer to.
			msg.ToolCalls = append([]schema.ToolCall(nil), msg.ToolCalls...)
			for i := range msg.ToolCalls {
				if msg.ToolCalls[i].ID == "" {
					msg.ToolCalls[i].ID = fmt.Sprintf("call_%d_%d", step, i)
				}
				if msg.ToolCalls[i].Type == "" {
					msg.ToolCalls[i].Type = "function"
				}
			}
		}
		r.Messages = append(r.Messages, msg)
		if len(msg.ToolCalls) == 0 {
			r.InvalidCalls++
			r.Messages = append(r.Messages, schema.Message{Role: "user", Content: noToolCallText})
			continue
		}
		finished := false
		for _, call := range msg.ToolCalls {
			var obs string
			if finished {
				obs = "Not executed: finish was called earlier in this turn."
			} else {
				res, err := l.execute(ctx, call)
				if err != nil {
					return nil, fmt.Errorf("agent: %s: step %d: %s: %w", task.InstanceID, step+1, call.Function.Name, err)
				}
				if res.invalid {
					r.InvalidCalls++
				}
				if res.dispute != nil {
					r.Dispute = res.dispute
				}
				finished = res.finish
				obs = truncate(res.text, limits.ObservationChars)
			}
			r.Messages = append(r.Messages, schema.Message{Role: "tool", Content: obs, ToolCallID: call.ID, Name: call.Function.Name})
		}
		if finished {
			r.ExitStatus = ExitFinished
			if r.Dispute != nil {
				r.ExitStatus = ExitDisputed
			}
			break
		}
	}
	r.Final = l.tree
	p, err := patch.Diff(env.Store, task.Workspace, l.tree)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: computing the patch: %w", task.InstanceID, err)
	}
	r.Patch = p
	return r, nil
}

const noToolCallText = "Your reply called no tool. Continue the task by calling a tool; call finish when you are done."

func limitReached(r *Rollout, l Limits, step int) string {
	switch {
	case l.MaxTokens > 0 && r.PromptTokens+r.CompletionTokens >= l.MaxTokens:
		return ExitMaxTokens
	case l.MaxDollars > 0 && r.Dollars >= l.MaxDollars:
		return ExitMaxDollars
	case step >= l.MaxSteps:
		return ExitMaxSteps
	}
	return ""
}

// messageChars is a message's size as counted against the context budget.
func messageChars(m schema.Message) int {
	n := utf8.RuneCountInString(m.Content)
	for _, c := range m.ToolCalls {
		n += utf8.RuneCountInString(c.Function.Name) + utf8.RuneCountInString(c.Function.Arguments)
	}
	return n
}

// fitContext returns the messages to send: msgs itself when they fit in
// budget characters, else a copy with the oldest tool observations replaced
// by a short marker, one at a time, until they fit. Observations of the
// latest turn are never elided; if the rest cannot be made to fit, ok is
// false.
func fitContext(msgs []schema.Message, budget int) (view []schema.Message, ok bool) {
	total := 0
	for _, m := range msgs {
		total += messageChars(m)
	}
	if total <= budget {
		return msgs, true
	}
	lastAssistant := len(msgs)
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "assistant" {
			lastAssistant = i
			break
		}
	}
	view = append([]schema.Message(nil), msgs...)
	for i := 0; i < lastAssistant && total > budget; i++ {
		if view[i].Role != "tool" {
			continue
		}
		n := messageChars(view[i])
		marker := fmt.Sprintf("[observation elided to fit the context budget: %d characters]", n)
		if len(marker) >= n {
			continue
		}
		view[i].Content = marker
		total += len(marker) - n
	}
	return view, total <= budget
}

// truncate shortens s to at most max characters (runes) plus a marker,
// keeping its head and tail. Invalid UTF-8 is replaced first so that the
// text encodes the same way everywhere.
func truncate(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	n := utf8.RuneCountInString(s)
	if n <= max {
		return s
	}
	r := []rune(s)
	head := max / 2
	tail := max - head
	return string(r[:head]) + fmt.Sprintf("\n[... observation truncated: %d of %d characters omitted ...]\n", n-max, n) + string(r[n-tail:])
}
