package schema

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Synthetic, deterministic data for tests and benchmarks: trajectories that
// look like agent rollouts (a long fixed system prompt, tool calls to bash
// and an editor, tool output, a final patch).

var synthWords = strings.Fields(`the a of to in is for that def return self if else
import from class test assert value error none true false list dict parse token
line file path result args kwargs raise print len range node tree index key
matrix vector solve parser lexer expression number string output input check
failed passed pytest collected items src tests module function`)

const synthSystemPrompt = `You are a software engineering agent working in a repository at /testbed.
You can run shell commands with the bash tool and edit files with str_replace_editor.
Work step by step: reproduce the problem, find the cause, fix it, and run the tests.
Do not modify the tests. When you are done, call submit.` + "\n"

func synthTools() []Tool {
	return []Tool{
		{Type: "function", Function: ToolFunction{Name: "bash", Description: "Run a bash command in the workspace.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"command":{"type":"string","description":"The command."}},"required":["command"]}`)}},
		{Type: "function", Function: ToolFunction{Name: "str_replace_editor", Description: "View, create and edit files.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"command":{"type":"string","enum":["view","create","str_replace","insert","undo_edit"]},"path":{"type":"string"},"old_str":{"type":"string"},"new_str":{"type":"string"}},"required":["command","path"]}`)}},
		{Type: "function", Function: ToolFunction{Name: "submit", Description: "Finish the task.",
			Parameters: json.RawMessage(`{"type":"object","properties":{}}`)}},
	}
}

func synthText(r *rand.Rand, words int) string {
	var b strings.Builder
	for i := 0; i < words; i++ {
		if i > 0 {
			if r.IntN(12) == 0 {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(synthWords[r.IntN(len(synthWords))])
	}
	return b.String()
}

var synthTaskTypes = []TaskType{TaskFix, TaskReproduce, TaskImplement, TaskTestgen}

// synthInstanceID names instance i (instances have several trajectories).
func synthInstanceID(i int) string { return fmt.Sprintf("proj%03d__bug-%05d", i%97, i) }

// synthTrajectory builds trajectory n; turns scales its length.
func synthTrajectory(n, turns int) Trajectory {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	inst := n / 3
	msgs := []Message{
		{Role: "system", Content: synthSystemPrompt},
		{Role: "user", Content: "Fix this issue:\n" + synthText(r, 40)},
	}
	for t := 0; t < turns; t++ {
		id := fmt.Sprintf("call_%d_%d", n, t)
		call := ToolCall{ID: id, Type: "function", Function: FunctionCall{Name: "bash",
			Arguments: fmt.Sprintf(`{"command":"grep -rn %s src/ | head"}`, synthWords[r.IntN(len(synthWords))])}}
		msgs = append(msgs,
			Message{Role: "assistant", Content: synthText(r, 10), ToolCalls: []ToolCall{call}},
			Message{Role: "tool", ToolCallID: id, Name: "bash", Content: synthText(r, 30)})
	}
	msgs = append(msgs, Message{Role: "assistant", Content: "Done. " + synthText(r, 8)})
	return Trajectory{
		TrajectoryID:     fmt.Sprintf("traj-%07d", n),
		InstanceID:       synthInstanceID(inst),
		Repo:             fmt.Sprintf("dsbuild/proj%03d", inst%97),
		TaskType:         synthTaskTypes[inst%len(synthTaskTypes)],
		Model:            "teacher-model",
		Policy:           "agent",
		Messages:         msgs,
		Tools:            synthTools(),
		Patch:            "diff --git a/src/x.py b/src/x.py\n--- a/src/x.py\n+++ b/src/x.py\n@@ -1 +1 @@\n-" + synthText(r, 6) + "\n+" + synthText(r, 6) + "\n",
		Resolved:         n%4 != 0,
		Reward:           float64(n%5) / 4,
		ExitStatus:       "submitted",
		PromptTokens:     int64(1000 + r.IntN(50000)),
		CompletionTokens: int64(100 + r.IntN(5000)),
	}
}

// synthTask builds task instance i.
func synthTask(i int) TaskInstance {
	r := rand.New(rand.NewPCG(uint64(i), 11))
	return TaskInstance{
		InstanceID:             synthInstanceID(i),
		Repo:                   fmt.Sprintf("dsbuild/proj%03d", i%97),
		BaseCommit:             fmt.Sprintf("%040x", i),
		Patch:                  "diff --git a/src/x.py b/src/x.py\n" + synthText(r, 20),
		TestPatch:              "diff --git a/tests/test_x.py b/tests/test_x.py\n" + synthText(r, 20),
		ProblemStatement:       synthText(r, 60) + " <b>&</b>",
		CreatedAt:              "2026-01-01T00:00:00Z",
		Version:                "0.1",
		FailToPass:             []string{fmt.Sprintf("tests/test_x.py::test_%d", i)},
		PassToPass:             []string{"tests/test_y.py::test_a", "tests/test_y.py::test_b[1-2]"},
		EnvironmentSetupCommit: fmt.Sprintf("%040x", i%97),
		TaskType:               synthTaskTypes[i%len(synthTaskTypes)],
		Image:                  "dsbuild/quickstart:proj@sha256:" + strings.Repeat("ab", 32),
		TestCmd:                "python3 -m pytest -q",
		SourceProject:          fmt.Sprintf("proj%03d", i%97),
		Difficulty:             1 + i%5,
	}
}
