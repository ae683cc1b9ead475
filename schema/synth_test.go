package schema

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
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

// synthRepoFile is file f of project p: deterministic Python-like source,
// what an agent sees when it views a file. Agents look at the same files
// of a repository over and over, within and across trajectories.
func synthRepoFile(p, f int) string {
	key := [2]int{p, f}
	if s, ok := synthFiles.Load(key); ok {
		return s.(string)
	}
	s := makeSynthRepoFile(p, f)
	synthFiles.Store(key, s)
	return s
}

var synthFiles sync.Map

func makeSynthRepoFile(p, f int) string {
	r := rand.New(rand.NewPCG(uint64(p), uint64(f)+1000))
	var b strings.Builder
	for line := 1; line <= 40; line++ {
		fmt.Fprintf(&b, "%6d\t", line)
		switch line % 8 {
		case 1:
			fmt.Fprintf(&b, "def %s_%s(%s, %s):\n", synthWords[r.IntN(len(synthWords))], synthWords[r.IntN(len(synthWords))], synthWords[r.IntN(len(synthWords))], synthWords[r.IntN(len(synthWords))])
		case 7:
			fmt.Fprintf(&b, "    return %s\n", synthWords[r.IntN(len(synthWords))])
		default:
			fmt.Fprintf(&b, "    %s = %s(%s)\n", synthWords[r.IntN(len(synthWords))], synthWords[r.IntN(len(synthWords))], synthWords[r.IntN(len(synthWords))])
		}
	}
	return b.String()
}

// synthTestRun is the pytest output of project p with some tests failing.
func synthTestRun(p int, r *rand.Rand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "============================= test session starts ==============================\ncollected 24 items\n\n")
	failed := 0
	for i := 0; i < 24; i++ {
		status := "PASSED"
		if r.IntN(8) == 0 {
			status = "FAILED"
			failed++
		}
		fmt.Fprintf(&b, "tests/test_%s.py::test_%s_%d %s\n", synthWords[(p+i/6)%len(synthWords)], synthWords[(p*7+i)%len(synthWords)], i, status)
	}
	fmt.Fprintf(&b, "\n========================= %d failed, %d passed in 0.%02ds =========================\n", failed, 24-failed, r.IntN(100))
	return b.String()
}

// synthTrajectory builds trajectory n; turns is the number of tool calls.
// Tool outputs come from the project's files and test runs, as in real
// rollouts; the assistant's reasoning is random text.
func synthTrajectory(n, turns int) Trajectory {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	inst := n / 3
	proj := inst % 97
	msgs := []Message{
		{Role: "system", Content: synthSystemPrompt},
		{Role: "user", Content: "Fix this issue:\n" + synthText(r, 40)},
	}
	for t := 0; t < turns; t++ {
		id := fmt.Sprintf("call_%d_%d", n, t)
		var call FunctionCall
		var output string
		switch t % 3 {
		case 0:
			f := r.IntN(6)
			call = FunctionCall{Name: "str_replace_editor", Arguments: fmt.Sprintf(`{"command":"view","path":"/testbed/src/mod%d.py"}`, f)}
			output = synthRepoFile(proj, f)
		case 1:
			call = FunctionCall{Name: "bash", Arguments: `{"command":"cd /testbed && python3 -m pytest -q"}`}
			output = synthTestRun(proj, r)
		default:
			w := synthWords[r.IntN(len(synthWords))]
			call = FunctionCall{Name: "bash", Arguments: fmt.Sprintf(`{"command":"grep -rn %s src/ | head"}`, w)}
			lines := strings.Split(synthRepoFile(proj, r.IntN(6)), "\n")
			output = strings.Join(lines[r.IntN(20):][:10], "\n")
		}
		msgs = append(msgs,
			Message{Role: "assistant", Content: synthText(r, 12), ToolCalls: []ToolCall{{ID: id, Type: "function", Function: call}}},
			Message{Role: "tool", ToolCallID: id, Name: call.Name, Content: output})
	}
	msgs = append(msgs, Message{Role: "assistant", Content: "Done. " + synthText(r, 8)})
	return Trajectory{
		TrajectoryID:     fmt.Sprintf("traj-%07d", n),
		InstanceID:       synthInstanceID(inst),
		Repo:             fmt.Sprintf("dsbuild/proj%03d", proj),
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
		Language:               "python",
	}
}
