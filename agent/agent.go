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
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/goccy/go-yaml"
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
	// Language names the task's language profile ("" is Python): how its
	// tests run and their report is read, which files are tests.
	Language string
	// TestCmd is the test command, e.g.
	// ["python3","-m","pytest","-rA","-p","no:cacheprovider"]; test ids are
	// appended where the language takes them (TestArgs).
	TestCmd []string
	// FailToPass and PassToPass are the test ids (pytest node ids for
	// Python) that decide the grade.
	FailToPass, PassToPass []string
	// Disputable offers the dispute_test tool (DisputeTool): a valid call
	// ends the run with ExitDisputed and Rollout.Dispute set.
	Disputable bool
}

// Limits bound one rollout. Zero fields of MaxSteps, CommandTimeout,
// ObservationChars and ContextTokens take DefaultLimits; zero MaxTokens and
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
	// ContextTokens is the most prompt tokens one model call may send (the
	// messages and the tool schemas); older observations are elided to
	// fit. Tokens are estimated from characters at the rate the endpoint
	// reported for this rollout's latest call (see TokenEstimate).
	ContextTokens int `yaml:"context_tokens,omitempty" json:"context_tokens,omitempty"`
}

// DefaultLimits returns 50 steps, 30 s per command, 10,000 characters per
// observation and a 64,000-token context, with no token or dollar cap.
func DefaultLimits() Limits {
	return Limits{MaxSteps: 50, CommandTimeout: 30 * time.Second, ObservationChars: 10_000, ContextTokens: 64_000}
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
	if l.ContextTokens <= 0 {
		l.ContextTokens = d.ContextTokens
	}
	return l
}

// limitsIntegers are the YAML keys of Limits' integer fields.
var limitsIntegers = []string{"max_steps", "max_tokens", "observation_chars", "context_tokens"}

// UnmarshalYAML reads a mapping such as {max_steps: 60, context_tokens:
// 32000, command_timeout: 45s}. Unknown keys and integers written as
// fractions or strings are errors, and so is context_chars, the budget's
// name when it counted characters.
func (l *Limits) UnmarshalYAML(b []byte) error {
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	if _, old := raw["context_chars"]; old {
		return errors.New("limits: context_chars is no longer read: the context budget is counted in tokens now; " +
			"write context_tokens (about a third of the old number of characters; see docs/swe-playground.md)")
	}
	for _, k := range limitsIntegers {
		switch v := raw[k].(type) {
		case nil, int, int64, uint64:
		default:
			return fmt.Errorf("limits: %s: want an integer, got %v", k, v)
		}
	}
	type plain Limits
	var p plain
	if err := yaml.UnmarshalWithOptions(b, &p, yaml.Strict()); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	*l = Limits(p)
	return nil
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
// test run (with the language's TestEnv, see TestEnv): no .pyc files in the workspace (they would show up in the patch)
// and no pagers.
var BashEnv = []string{"PYTHONDONTWRITEBYTECODE=1", "PAGER=cat", "GIT_PAGER=cat", "TERM=dumb"}

// loop is the state of one rollout.
type loop struct {
	env    Env
	task   Task
	prof   lang.Profile // the task's language
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
	prof, err := lang.Get(task.Language)
	if err != nil {
		return nil, fmt.Errorf("agent: task %s: %w", task.InstanceID, err)
	}
	limits = limits.WithDefaults()
	l := &loop{env: env, task: task, prof: prof, limits: limits, tree: task.Workspace, undo: map[string][]*cache.TreeEntry{}}
	r := &Rollout{Tools: toolsFor(task)}
	if task.System != "" {
		r.Messages = append(r.Messages, schema.Message{Role: "system", Content: task.System})
	}
	r.Messages = append(r.Messages, schema.Message{Role: "user", Content: task.Prompt})
	toolChars, err := toolsChars(r.Tools)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", task.InstanceID, err)
	}
	rate := DefaultTokenEstimate
	for step := 0; ; step++ {
		if status := limitReached(r, limits, step); status != "" {
			r.ExitStatus = status
			break
		}
		view, sent, ok := fitContext(r.Messages, toolChars, limits.ContextTokens, rate)
		if !ok {
			r.ExitStatus = ExitContext
			break
		}
		reply, err := policy.Next(ctx, view, r.Tools, step)
		if err != nil {
			return nil, fmt.Errorf("agent: %s: step %d: %s policy: %w", task.InstanceID, step+1, policy.Name(), err)
		}
		// The endpoint's count of what was just sent calibrates the
		// estimate of the next call. Cached replies carry the usage of the
		// call that made them, so a replay sends the same views.
		rate = rate.Calibrated(sent, reply.PromptTokens)
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

// TokenEstimate converts characters sent to a model into prompt tokens, at
// Chars characters per Tokens tokens (integers, so that the estimate is the
// same on every machine).
//
// A rollout starts with DefaultTokenEstimate and, after every reply that
// reports usage, takes the rate of that call: the characters it sent
// (message contents, tool-call names and arguments, and the tool schemas'
// JSON) per prompt_tokens the endpoint reported. The estimate thus follows
// the endpoint's own tokenizer and chat template, for the text this rollout
// sends; replies without usage (scripted policies, endpoints that report
// none) leave the rate as it was.
type TokenEstimate struct {
	Chars, Tokens int64
}

// DefaultTokenEstimate is the rate before any usage is reported: 3
// characters a token. English prose and code run at about 3.5 to 4 with
// common BPE tokenizers, so it errs towards counting too many tokens.
var DefaultTokenEstimate = TokenEstimate{Chars: 3, Tokens: 1}

// Estimate returns the tokens of chars characters, rounded up.
func (e TokenEstimate) Estimate(chars int) int64 {
	if e.Chars <= 0 || e.Tokens <= 0 {
		e = DefaultTokenEstimate
	}
	return (int64(chars)*e.Tokens + e.Chars - 1) / e.Chars
}

// Calibrated returns the rate of a call that sent chars characters and
// was reported as promptTokens prompt tokens, or e if either is not
// positive.
func (e TokenEstimate) Calibrated(chars int, promptTokens int64) TokenEstimate {
	if chars <= 0 || promptTokens <= 0 {
		return e
	}
	return TokenEstimate{Chars: int64(chars), Tokens: promptTokens}
}

// messageChars is a message's size in characters (runes): its content and
// its tool calls' names and arguments.
func messageChars(m schema.Message) int {
	n := utf8.RuneCountInString(m.Content)
	for _, c := range m.ToolCalls {
		n += utf8.RuneCountInString(c.Function.Name) + utf8.RuneCountInString(c.Function.Arguments)
	}
	return n
}

// toolsChars is the size in characters of the tool schemas as JSON; they
// are sent with every call.
func toolsChars(tools []schema.Tool) (int, error) {
	if len(tools) == 0 {
		return 0, nil
	}
	b, err := json.Marshal(tools)
	if err != nil {
		return 0, fmt.Errorf("encoding the tool schemas: %w", err)
	}
	return utf8.RuneCount(b), nil
}

// fitContext returns the messages to send and their size in characters
// (with fixed, the characters sent with every call): msgs itself when they
// fit in budget tokens as rate estimates them, else a copy with the oldest
// tool observations replaced by a short marker, one at a time, until they
// fit. Observations of the latest turn are never elided; if the rest
// cannot be made to fit, ok is false.
func fitContext(msgs []schema.Message, fixed, budget int, rate TokenEstimate) (view []schema.Message, chars int, ok bool) {
	total := fixed
	for _, m := range msgs {
		total += messageChars(m)
	}
	fits := func() bool { return rate.Estimate(total) <= int64(budget) }
	if fits() {
		return msgs, total, true
	}
	lastAssistant := len(msgs)
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "assistant" {
			lastAssistant = i
			break
		}
	}
	view = append([]schema.Message(nil), msgs...)
	for i := 0; i < lastAssistant && !fits(); i++ {
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
	return view, total, fits()
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
