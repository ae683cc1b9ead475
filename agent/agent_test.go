package agent

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/goccy/go-yaml"
)

const runTests = "python3 -m pytest -q -p no:cacheprovider"

// solvingModel explores, reproduces, fixes, re-runs the tests and finishes.
var solvingModel = []llmtest.Reply{
	call("c1", ToolBash, jsonArgs(map[string]any{"command": "ls -R && " + runTests})),
	call("c2", ToolEditor, jsonArgs(map[string]any{"command": "view", "path": "/testbed/calc.py"})),
	{Content: "The loop stops one element early.", ToolCalls: []schema.ToolCall{{ID: "c3", Type: "function", Function: schema.FunctionCall{
		Name: ToolEditor, Arguments: jsonArgs(map[string]any{"command": "str_replace", "path": "/testbed/calc.py", "old_str": "range(len(xs) - 1)", "new_str": "range(len(xs))"})}}}},
	call("c4", ToolBash, jsonArgs(map[string]any{"command": runTests})),
	call("c5", ToolFinish, jsonArgs(map[string]any{"message": "Fixed the off-by-one in total()."})),
}

const wantFixPatch = `diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -5,6 +5,6 @@
 def total(xs):
     """Return the sum of xs."""
     s = 0
-    for i in range(len(xs) - 1):
+    for i in range(len(xs)):
         s += xs[i]
     return s
`

func TestSolvingModelIsResolvedAndReplaysWithoutCalls(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(byStep(solvingModel))
	pol := ModelPolicy{Client: newClient(t, env.Store, srv)}
	ctx := context.Background()

	r, err := Run(ctx, env, task, pol, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != ExitFinished || r.Steps != 5 || r.InvalidCalls != 0 {
		t.Fatalf("exit %q after %d steps, %d invalid calls", r.ExitStatus, r.Steps, r.InvalidCalls)
	}
	if srv.Requests() != 5 || r.ModelCalls != 5 || r.CachedCalls != 0 {
		t.Fatalf("server saw %d requests; rollout counted %d model and %d cached calls", srv.Requests(), r.ModelCalls, r.CachedCalls)
	}
	var roles []string
	for _, m := range r.Messages {
		roles = append(roles, m.Role)
	}
	if got := strings.Join(roles, " "); got != "system user assistant tool assistant tool assistant tool assistant tool assistant tool" {
		t.Fatalf("roles: %s", got)
	}
	obs := func(i int) string { return r.Messages[3+2*i].Content }
	for _, c := range []struct {
		step int
		want string
	}{
		{0, "tests/test_calc.py"},                         // ls -R
		{0, "1 failed, 2 passed"},                         // the bug reproduced
		{1, "     8\t    for i in range(len(xs) - 1):\n"}, // numbered view
		{2, "     8\t    for i in range(len(xs)):\n"},     // edit snippet
		{3, "3 passed"},                                   // fixed
		{4, "Finished."},
	} {
		if !strings.Contains(obs(c.step), c.want) {
			t.Errorf("observation %d lacks %q:\n%s", c.step+1, c.want, obs(c.step))
		}
	}
	if !strings.HasSuffix(obs(0), "[Exit code: 1]") || !strings.HasSuffix(obs(3), "[Exit code: 0]") {
		t.Errorf("exit codes not reported:\n%s\n---\n%s", obs(0), obs(3))
	}
	if r.Messages[6].Content != "The loop stops one element early." || r.Messages[7].ToolCallID != "c3" || r.Messages[7].Name != ToolEditor {
		t.Errorf("assistant text or tool-call linkage lost: %+v %+v", r.Messages[6], r.Messages[7])
	}
	if r.Patch != wantFixPatch {
		t.Fatalf("patch:\n%s\nwant:\n%s", r.Patch, wantFixPatch)
	}
	if r.PromptTokens == 0 || r.CompletionTokens == 0 || r.Dollars <= 0 {
		t.Errorf("no accounting: %d/%d tokens, $%v", r.PromptTokens, r.CompletionTokens, r.Dollars)
	}
	g, err := Grade(ctx, env, task, r.Final)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Resolved || g.Reward != 1 || g.Patch != wantFixPatch {
		t.Fatalf("grade: resolved=%v reward=%v status=%v\n%s", g.Resolved, g.Reward, g.Status, g.Report.Output)
	}
	tr := Trajectory(task, pol, r, g, "calc-1/agent/0")
	if err := tr.Validate(); err != nil {
		t.Fatalf("trajectory invalid: %v", err)
	}
	if !tr.Resolved || tr.Model != "test-model" || tr.Policy != "agent" || tr.NumTurns != 5 || tr.ExitStatus != ExitFinished {
		t.Fatalf("trajectory fields: %+v", tr)
	}
	first := mustJSON(t, tr)

	// The same rollout again, with a new client on the same store: no model
	// call, identical bytes.
	srv.ResetCounters()
	pol2 := ModelPolicy{Client: newClient(t, env.Store, srv)}
	r2, err := Run(ctx, env, task, pol2, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Requests() != 0 || r2.ModelCalls != 0 || r2.CachedCalls != 5 {
		t.Fatalf("replay made %d requests (%d model, %d cached calls)", srv.Requests(), r2.ModelCalls, r2.CachedCalls)
	}
	g2, err := Grade(ctx, env, task, r2.Final)
	if err != nil {
		t.Fatal(err)
	}
	if again := mustJSON(t, Trajectory(task, pol2, r2, g2, "calc-1/agent/0")); !bytes.Equal(first, again) {
		t.Fatalf("replayed trajectory differs:\n%s\n%s", first, again)
	}
}

func TestInterruptedRolloutResumesWithoutRepeatingCalls(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	srv := llmtest.New()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answer := byStep(solvingModel)
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		rep := answer(r)
		if r.Index == 3 { // the 4th call: the process "dies" while it waits
			cancel()
			rep.Delay = 5e9
		}
		return rep
	})
	// Sample 1: a rollout of its own, not served by other tests' entries.
	pol := ModelPolicy{Client: newClient(t, env.Store, srv), Sample: 1}
	_, err := Run(ctx, env, task, pol, Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
	}
	if srv.Requests() != 4 {
		t.Fatalf("first run made %d requests, want 4", srv.Requests())
	}
	srv.ResetCounters()
	srv.Handle(answer)
	r, err := Run(context.Background(), env, task, ModelPolicy{Client: newClient(t, env.Store, srv), Sample: 1}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Requests() != 2 || r.CachedCalls != 3 || r.ModelCalls != 2 {
		t.Fatalf("resumed run made %d requests (%d cached calls), want 2 (3 cached)", srv.Requests(), r.CachedCalls)
	}
	if first := srv.Log()[0]; len(first.Messages) != 2+3*2 {
		t.Fatalf("resumed run's first request has %d messages, want 8 (three finished steps)", len(first.Messages))
	}
	if r.ExitStatus != ExitFinished || r.Patch != wantFixPatch {
		t.Fatalf("resumed rollout: %s\n%s", r.ExitStatus, r.Patch)
	}
}

func TestEditingTheTestsIsGradedUnresolved(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	cheat := ScriptedPolicy{Label: "cheater", Calls: []schema.ToolCall{
		Call(ToolEditor, map[string]any{"command": "str_replace", "path": "/testbed/tests/test_calc.py", "old_str": "== 6", "new_str": "== 3"}),
		Call(ToolBash, map[string]any{"command": "echo 'def test_extra(): pass' > tests/test_extra.py && " + runTests}),
	}}
	r, err := Run(context.Background(), env, task, cheat, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Messages[5].Content, "4 passed") {
		t.Fatalf("the cheat should pass in the workspace:\n%s", r.Messages[5].Content)
	}
	if r.ExitStatus != ExitFinished || r.Steps != 3 || r.ModelCalls != 0 {
		t.Fatalf("exit %q, %d steps, %d model calls", r.ExitStatus, r.Steps, r.ModelCalls)
	}
	if !strings.Contains(r.Patch, "diff --git a/tests/test_calc.py b/tests/test_calc.py") || !strings.Contains(r.Patch, "new file mode 100644") {
		t.Fatalf("patch should show the test edits:\n%s", r.Patch)
	}
	g, err := Grade(context.Background(), env, task, r.Final)
	if err != nil {
		t.Fatal(err)
	}
	if g.Resolved || g.Reward != 2.0/3 || g.Status["tests/test_calc.py::test_total"] != lang.StatusFailed {
		t.Fatalf("cheater graded resolved=%v reward=%v status=%v", g.Resolved, g.Reward, g.Status)
	}
	if g.Patch != r.Patch {
		t.Fatal("grade patch differs from rollout patch")
	}
	tr := Trajectory(task, cheat, r, g, "calc-1/cheater/0")
	if tr.Model != "scripted:cheater" || tr.Policy != "cheater" || tr.Resolved {
		t.Fatalf("trajectory: model %q policy %q resolved %v", tr.Model, tr.Policy, tr.Resolved)
	}
}

func TestModelThatNeverFinishesStopsAtMaxSteps(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		return call("t", ToolThink, `{"thought":"hmm"}`)
	})
	r, err := Run(context.Background(), env, task, ModelPolicy{Client: newClient(t, env.Store, srv), Sample: 3}, Limits{MaxSteps: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != ExitMaxSteps || r.Steps != 4 || srv.Requests() != 4 || r.Patch != "" || r.Final != task.Workspace {
		t.Fatalf("exit %q after %d steps and %d requests; patch %q", r.ExitStatus, r.Steps, srv.Requests(), r.Patch)
	}
	if got := r.Messages[len(r.Messages)-1]; got.Role != "tool" || got.Content != "Your thought has been logged." {
		t.Fatalf("last message %+v", got)
	}
}

func TestTokenAndDollarLimits(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		rep := call("t", ToolThink, `{"thought":"costly"}`)
		rep.PromptTokens, rep.CompletionTokens = 900_000, 100_000 // $0.90 + $0.20 per call
		return rep
	})
	pol := ModelPolicy{Client: newClient(t, env.Store, srv), Sample: 2}
	// 900,000 prompt tokens for a short conversation would exhaust any
	// context budget calibrated on them; this test is about the totals.
	const roomy = 1 << 40
	r, err := Run(context.Background(), env, task, pol, Limits{MaxTokens: 2_500_000, ContextTokens: roomy})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != ExitMaxTokens || r.Steps != 3 || r.PromptTokens != 2_700_000 {
		t.Fatalf("token limit: exit %q after %d steps, %d prompt tokens", r.ExitStatus, r.Steps, r.PromptTokens)
	}
	r, err = Run(context.Background(), env, task, pol, Limits{MaxDollars: 2, ContextTokens: roomy})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != ExitMaxDollars || r.Steps != 2 || r.Dollars < 2.19 || r.Dollars > 2.21 {
		t.Fatalf("dollar limit: exit %q after %d steps, $%v", r.ExitStatus, r.Steps, r.Dollars)
	}
}

func TestInvalidToolCallsAreAnsweredAndCounted(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(byStep([]llmtest.Reply{
		call("u", "rm_rf", `{}`),
		call("b", ToolBash, `{"cmd":"ls"}`),
		call("j", ToolEditor, `{"command": "view", "path": `),
		call("e", ToolEditor, `{"command": "explode", "path": "/testbed/calc.py"}`),
		call("n", ToolEditor, `{"command": "insert", "path": "/testbed/calc.py", "insert_line": "3", "new_str": "x"}`),
		llmtest.Text("I think I am done."),
		call("f", ToolFinish, `{}`),
	}))
	// Sample 4: each test's rollouts are their own samples of the same task.
	r, err := Run(context.Background(), env, task, ModelPolicy{Client: newClient(t, env.Store, srv), Sample: 4}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != ExitFinished || r.InvalidCalls != 6 || r.Steps != 7 {
		t.Fatalf("exit %q, %d invalid calls, %d steps", r.ExitStatus, r.InvalidCalls, r.Steps)
	}
	answers := map[string]string{}
	for _, m := range r.Messages {
		if m.Role == "tool" {
			answers[m.ToolCallID] = m.Content
		}
	}
	for id, want := range map[string]string{
		"u": `ERROR: unknown tool "rm_rf"; available tools: execute_bash, str_replace_editor, think, finish`,
		"b": `ERROR: execute_bash has no parameter "cmd"`,
		"j": "ERROR: the arguments of str_replace_editor are not a valid JSON object",
		"e": `ERROR: unknown str_replace_editor command "explode"`,
		"n": `ERROR: parameter "insert_line" of str_replace_editor has the wrong type: got a JSON string, want int`,
	} {
		if !strings.HasPrefix(answers[id], want) {
			t.Errorf("answer to %s = %q, want prefix %q", id, answers[id], want)
		}
	}
	if m := r.Messages[2+5*2+1]; m.Role != "user" || m.Content != noToolCallText {
		t.Errorf("a turn without a tool call should be answered by a user nudge, got %+v", m)
	}
	if err := Trajectory(task, ModelPolicy{Client: newClient(t, env.Store, srv)}, r, nil, "x").Validate(); err != nil {
		t.Fatalf("trajectory with invalid calls does not validate: %v", err)
	}
}

func TestCommandTimeoutAndObservationTruncation(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	pol := ScriptedPolicy{Label: "limits", Calls: []schema.ToolCall{
		Call(ToolBash, map[string]any{"command": "sleep 30", "timeout": 1}),
		Call(ToolBash, map[string]any{"command": "seq 1 5000"}),
	}}
	r, err := Run(context.Background(), env, task, pol, Limits{ObservationChars: 200})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Messages[3].Content; !strings.Contains(got, "killed after the 1s timeout") || !strings.HasSuffix(got, "[Exit code: 137]") {
		t.Fatalf("timeout observation: %q", got)
	}
	got := r.Messages[5].Content
	if !strings.HasPrefix(got, "1\n2\n3\n") || !strings.HasSuffix(got, "4999\n5000\n[Exit code: 0]") || !strings.Contains(got, "[... observation truncated:") || len(got) > 300 {
		t.Fatalf("truncated observation (%d chars): %q", len(got), got)
	}
}

func TestFitContextElidesOldObservations(t *testing.T) {
	big := strings.Repeat("x", 1000)
	msgs := []schema.Message{
		{Role: "system", Content: "sys"},
		{Role: "user", Content: "task"},
		{Role: "assistant", ToolCalls: []schema.ToolCall{{ID: "1", Type: "function", Function: schema.FunctionCall{Name: ToolBash, Arguments: "{}"}}}},
		{Role: "tool", ToolCallID: "1", Content: big},
		{Role: "assistant", ToolCalls: []schema.ToolCall{{ID: "2", Type: "function", Function: schema.FunctionCall{Name: ToolBash, Arguments: "{}"}}}},
		{Role: "tool", ToolCallID: "2", Content: big},
	}
	size := 3 + 4 + 2*(len(ToolBash)+2) + 2*1000 // contents, tool names, arguments
	oneToOne := TokenEstimate{Chars: 1, Tokens: 1}
	view, chars, ok := fitContext(msgs, 0, 5000, oneToOne)
	if !ok || &view[0] != &msgs[0] || chars != size {
		t.Fatalf("messages that fit should be sent as they are (ok=%v, %d chars, want %d)", ok, chars, size)
	}
	view, chars, ok = fitContext(msgs, 0, 1500, oneToOne)
	if !ok || !strings.HasPrefix(view[3].Content, "[observation elided") || view[5].Content != big || msgs[3].Content != big || chars >= 1500 {
		t.Fatalf("ok=%v, %d chars, view[3]=%q; the newest observation must stay and msgs must not change", ok, chars, view[3].Content)
	}
	if _, _, ok := fitContext(msgs, 0, 900, oneToOne); ok {
		t.Fatal("a budget smaller than the newest observation cannot be met")
	}
	// The budget is in tokens: at 4 characters a token the messages fit in
	// 600, at 1 they do not; the characters sent with every call count.
	if _, _, ok := fitContext(msgs, 0, 600, TokenEstimate{Chars: 4, Tokens: 1}); !ok {
		t.Fatalf("%d characters at 4 a token should fit in 600 tokens", size)
	}
	if view, _, _ := fitContext(msgs, 400, 600, TokenEstimate{Chars: 4, Tokens: 1}); !strings.HasPrefix(view[3].Content, "[observation elided") {
		t.Fatal("400 more characters of tool schemas should push the messages over 600 tokens")
	}
	// Run stops with "context" when even elision cannot fit the budget (a
	// scripted policy reports no usage: the default rate applies).
	env := setup(t)
	task := calcTask(t, env)
	tools, err := toolsChars(toolsFor(task))
	if err != nil {
		t.Fatal(err)
	}
	fixed := len(task.System) + len(task.Prompt) + tools
	r, err := Run(context.Background(), env, task, ScriptedPolicy{Label: "ctx", Calls: []schema.ToolCall{
		Call(ToolBash, map[string]any{"command": "seq 1 2000"}),
	}}, Limits{ContextTokens: int(DefaultTokenEstimate.Estimate(fixed + 2000))})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != ExitContext || r.Steps != 1 {
		t.Fatalf("exit %q after %d steps", r.ExitStatus, r.Steps)
	}
}

func TestTokenEstimate(t *testing.T) {
	for _, c := range []struct {
		e     TokenEstimate
		chars int
		want  int64
	}{
		{DefaultTokenEstimate, 0, 0},
		{DefaultTokenEstimate, 1, 1},
		{DefaultTokenEstimate, 9, 3},
		{DefaultTokenEstimate, 10, 4},
		{TokenEstimate{Chars: 1000, Tokens: 250}, 4001, 1001},
		{TokenEstimate{}, 9, 3}, // the zero value is the default
	} {
		if got := c.e.Estimate(c.chars); got != c.want {
			t.Errorf("%+v.Estimate(%d) = %d, want %d", c.e, c.chars, got, c.want)
		}
	}
	e := DefaultTokenEstimate.Calibrated(7000, 2000)
	if e != (TokenEstimate{Chars: 7000, Tokens: 2000}) || e.Estimate(7) != 2 {
		t.Errorf("calibrated: %+v", e)
	}
	if e.Calibrated(100, 0) != e || e.Calibrated(0, 5) != e {
		t.Error("a call without usage (or with nothing sent) must leave the rate as it was")
	}
}

// sentChars is what Run counts of a request: its messages and its tools.
func sentChars(t *testing.T, r *llmtest.Request) int {
	n, err := toolsChars(r.Tools)
	if err != nil {
		t.Error(err)
	}
	for _, m := range r.Messages {
		n += messageChars(m)
	}
	return n
}

// TestContextBudgetCountsTokensAsTheEndpointReports drives an endpoint
// whose tokenizer is dense (a token per character) and one whose tokenizer
// is sparse (six characters a token), both reporting usage: the budget is
// met as each endpoint counts, and a replay from the store sends the same
// requests (it makes none).
func TestContextBudgetCountsTokensAsTheEndpointReports(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	ctx := context.Background()
	srv := llmtest.New()
	defer srv.Close()
	charsPerToken := 1
	script := byStep([]llmtest.Reply{
		call("", ToolBash, jsonArgs(map[string]any{"command": "seq 1 2000"})),
		call("", ToolBash, jsonArgs(map[string]any{"command": "seq 1 1000"})),
	})
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		rep := script(r)
		rep.PromptTokens = int64((sentChars(t, r) + charsPerToken - 1) / charsPerToken)
		return rep
	})
	run := func(sample, budget int) (*Rollout, []llmtest.Request) {
		t.Helper()
		srv.ResetCounters()
		before := len(srv.Log())
		r, err := Run(ctx, env, task, ModelPolicy{Client: newClient(t, env.Store, srv), Sample: sample}, Limits{ContextTokens: budget})
		if err != nil {
			t.Fatal(err)
		}
		return r, srv.Log()[before:]
	}
	elided := func(req llmtest.Request) bool {
		return strings.HasPrefix(req.Messages[3].Content, "[observation elided to fit the context budget")
	}

	// Sizes of the three requests, with room to spare.
	r, reqs := run(10, 1_000_000)
	if r.ExitStatus != ExitFinished || len(reqs) != 3 || elided(reqs[2]) {
		t.Fatalf("unbounded run: exit %q, %d requests", r.ExitStatus, len(reqs))
	}
	c1, c2, obs0 := sentChars(t, &reqs[1]), sentChars(t, &reqs[2]), messageChars(reqs[2].Messages[3])
	if obs0 < 8000 || c2-c1 < 3000 {
		t.Fatalf("observations of %d and %d characters are too short for this test", obs0, c2-c1)
	}

	// Dense: the third request would be c2 tokens, over a budget between
	// c1 and c2 (where 3 characters a token would fit), so the oldest
	// observation is elided.
	dense := (c1 + c2) / 2
	if DefaultTokenEstimate.Estimate(c2) > int64(dense) {
		t.Fatalf("budget %d does not tell a calibrated estimate from the default", dense)
	}
	r, reqs = run(11, dense)
	if r.ExitStatus != ExitFinished || len(reqs) != 3 || elided(reqs[1]) || !elided(reqs[2]) || sentChars(t, &reqs[2]) > dense {
		t.Fatalf("dense endpoint, budget %d: exit %q, %d requests, last of %d characters: %.100q", dense, r.ExitStatus, len(reqs), sentChars(t, &reqs[len(reqs)-1]), reqs[len(reqs)-1].Messages[3].Content)
	}
	if r.Messages[3].Content == reqs[2].Messages[3].Content {
		t.Error("the rollout's own messages must keep the elided observation")
	}
	// Replayed from the store: the cached replies carry the usage, so the
	// same requests are made (all of them cache hits).
	r2, reqs2 := run(11, dense)
	if len(reqs2) != 0 || r2.CachedCalls != 3 || r2.ExitStatus != ExitFinished || !bytes.Equal(mustJSON(t, r.Messages), mustJSON(t, r2.Messages)) {
		t.Fatalf("replay: %d requests, %d cached calls, exit %q", len(reqs2), r2.CachedCalls, r2.ExitStatus)
	}

	// Sparse: 6 characters a token. A budget a little over c2/6 holds
	// every request whole, where the default 3 would have stopped the
	// rollout at the second request.
	charsPerToken = 6
	sparse := c2/6 + 10
	if DefaultTokenEstimate.Estimate(c1) <= int64(sparse) {
		t.Fatalf("budget %d does not tell a calibrated estimate from the default", sparse)
	}
	r, reqs = run(12, sparse)
	if r.ExitStatus != ExitFinished || len(reqs) != 3 || elided(reqs[2]) {
		t.Fatalf("sparse endpoint, budget %d: exit %q, %d requests", sparse, r.ExitStatus, len(reqs))
	}
}

func TestLimitsYAML(t *testing.T) {
	var l Limits
	if err := yaml.Unmarshal([]byte("{max_steps: 60, context_tokens: 32000, command_timeout: 45s, max_dollars: 1.5}"), &l); err != nil {
		t.Fatal(err)
	}
	if l != (Limits{MaxSteps: 60, ContextTokens: 32000, CommandTimeout: 45 * time.Second, MaxDollars: 1.5}) {
		t.Fatalf("decoded %+v", l)
	}
	for text, want := range map[string]string{
		"{context_chars: 200000}": "context_chars is no longer read: the context budget is counted in tokens now; write context_tokens",
		"{context_tokens: 1.5}":   "context_tokens: want an integer",
		"{max_steps: \"60\"}":     "max_steps: want an integer",
		"{max_step: 60}":          "unknown field",
		"{command_timeout: 45}":   "limits:",
	} {
		var l Limits
		err := yaml.Unmarshal([]byte(text), &l)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", text, err, want)
		}
	}
}

func TestOracleReplaysAKnownSolution(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	fixed := strings.Replace(calcPy, "range(len(xs) - 1)", "range(len(xs))", 1)
	gold, err := env.Store.PutFiles(map[string]cache.File{
		"calc.py":            {Data: []byte(fixed + "\n\ndef mean(xs):\n    return total(xs) / len(xs)\n")},
		"tests/test_calc.py": {Data: []byte(testCalcPy)},
		"NOTES.md":           {Data: []byte("total() fixed\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	calls, err := OracleCalls(env.Store, task.Workspace, gold)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || !strings.Contains(calls[0].Function.Arguments, `"command":"create"`) || !strings.Contains(calls[1].Function.Arguments, `"command":"str_replace"`) {
		t.Fatalf("oracle script: %+v", calls)
	}
	oracle := ScriptedPolicy{Label: "oracle", Calls: calls}
	r, err := Run(context.Background(), env, task, oracle, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Final != gold || r.InvalidCalls != 0 || r.ExitStatus != ExitFinished || r.Steps != 3 {
		t.Fatalf("oracle rollout: exit %q, %d invalid, %d steps, patch:\n%s", r.ExitStatus, r.InvalidCalls, r.Steps, r.Patch)
	}
	g, err := Grade(context.Background(), env, task, r.Final)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Resolved {
		t.Fatalf("oracle not resolved: %v", g.Status)
	}
}

// dispute_test is offered only on a disputable task; there a valid call
// ends the run as disputed with the dispute recorded, a call without a
// reason is invalid, and elsewhere the tool is unknown.
func TestDisputeTest(t *testing.T) {
	env := setup(t)
	task := calcTask(t, env)
	dispute := Call(ToolDispute, map[string]any{"test": "tests/test_calc.py::test_total", "reason": "the spec says total([]) is None"})
	run := func(task Task, calls ...schema.ToolCall) *Rollout {
		t.Helper()
		r, err := Run(context.Background(), env, task, ScriptedPolicy{Label: "disputer", Calls: calls}, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := run(task, dispute)
	if r.ExitStatus != ExitFinished || r.Dispute != nil || r.InvalidCalls != 1 || len(r.Tools) != len(Tools()) {
		t.Fatalf("not disputable: exit %q, dispute %+v, %d invalid calls, %d tools", r.ExitStatus, r.Dispute, r.InvalidCalls, len(r.Tools))
	}
	if !strings.Contains(r.Messages[3].Content, `unknown tool "dispute_test"`) {
		t.Errorf("answer: %q", r.Messages[3].Content)
	}
	task.Disputable = true
	r = run(task, Call(ToolDispute, map[string]any{"test": "tests/test_calc.py::test_total"}), dispute, Call(ToolFinish, nil))
	if r.ExitStatus != ExitDisputed || r.Steps != 2 || r.InvalidCalls != 1 || r.Dispute == nil ||
		r.Dispute.Test != "tests/test_calc.py::test_total" || r.Dispute.Reason != "the spec says total([]) is None" {
		t.Fatalf("disputable: exit %q, %d steps, %d invalid, dispute %+v", r.ExitStatus, r.Steps, r.InvalidCalls, r.Dispute)
	}
	if last := r.Tools[len(r.Tools)-1]; last.Function.Name != ToolDispute || !strings.Contains(r.Messages[3].Content, "dispute_test") {
		t.Errorf("tools %v; answer %q", last.Function.Name, r.Messages[3].Content)
	}
}
