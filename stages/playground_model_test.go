package stages_test

// A scripted "model" for the SWE-Playground pipeline: one handler per role
// (proposer, decomposer, scaffolder, test writer, implementer, bug proposer,
// reproducer, fix and implement solvers), recognised by its system prompt,
// building a small stack-based calculator ("calc") and, with the same code
// under another package, a second project ("tally") whose implementation
// agent disputes a wrong test, makes a malformed tool call and leaves
// scratch files behind. Agent roles answer by
// step (the number of assistant turns so far) from canned tool calls; a
// retry is recognised by the feedback the stage adds to its prompt. Several
// replies are deliberately bad so that every verification gate is crossed
// both ways.

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/schema"
)

const calcSpec = "Input: RPN expressions of integers and the operators + - * / (integer division), separated by spaces. Output: the integer result. Errors: unknown tokens and malformed expressions raise ValueError; the CLI prints errors to stderr and exits 1."

var calcProject = map[string]any{
	"id": "calc", "name": "Calc", "language": "python",
	"description":      "A stack-based calculator evaluating reverse Polish notation expressions from the command line.",
	"specification":    calcSpec,
	"constraints":      []string{"command-line interface only"},
	"banned_libraries": []string{"numpy", "sympy"},
}

// rpnCalc is a near-duplicate of calcProject (dropped by propose_projects).
var rpnCalc = map[string]any{
	"id": "rpn_calc", "name": "Calc RPN", "language": "python",
	"description":   "A stack-based calculator evaluating reverse Polish notation expressions from the command line.",
	"specification": calcSpec,
}

// loopy is a project whose decomposition always has a cycle (rejected by
// decompose after its re-asks).
var loopy = map[string]any{
	"id": "loopy", "name": "Loopy", "language": "python",
	"description":   "A tiny regular-expression matcher built on backtracking over a parsed pattern tree.",
	"specification": "Input: a pattern and lines of text; output: the matching lines. Supports . * + ? and character classes.",
}

// tally is a second project, built from calc's code in package tally; its
// texts never say "calc", calc's never say "tally" (pgKit tells them apart).
var tally = map[string]any{
	"id": "tally", "name": "Tally", "language": "python",
	"description":   "Score-sheet tally formulas: whole-number counts combined by postfix operator words.",
	"specification": "A formula lists counts then operator symbols, postfix order, with sum, difference, product and floor quotient; bad symbols raise ValueError.",
}

// tallyTasks are calc's first two tasks.
var tallyTasks = calcTasks[:2]

// pgKit returns the project a request is about: "tally" or "calc".
func pgKit(r *llmtest.Request) string {
	for _, m := range r.Messages {
		if strings.Contains(strings.ToLower(m.Content), "tally") {
			return "tally"
		}
	}
	return "calc"
}

// pgIn rewrites calc's paths and imports for package kit.
func pgIn(kit, s string) string {
	return strings.NewReplacer("calc/", kit+"/", "calc.", kit+".").Replace(s)
}

// pgOffers reports whether the request offers the tool.
func pgOffers(r *llmtest.Request, tool string) bool {
	for _, t := range r.Tools {
		if t.Function.Name == tool {
			return true
		}
	}
	return false
}

// tallyWrongTest is the tally task 1.2 test the implementation agent
// disputes: 5 1 2 + 4 * + 3 - is 14, not 15.
const tallyWrongTest = "== 15"

var calcTasks = []map[string]any{
	{"id": "1.1", "title": "Tokenizer", "description": "tokenize(text) splits an expression into ints and operator strings; unknown tokens raise ValueError.",
		"phase": "core", "module": "tokenizer", "dependencies": []string{}, "difficulty": 1,
		"tests": []string{"happy: numbers and operators", "edge: extra whitespace", "error: unknown token raises ValueError"}},
	{"id": "1.2", "title": "Evaluator", "description": "evaluate(tokens) evaluates RPN tokens with a stack; underflow or leftovers raise ValueError.",
		"phase": "core", "module": "rpn", "dependencies": []string{"1.1"}, "difficulty": 2,
		"tests": []string{"happy: addition", "happy: nested expression", "error: stack underflow"}},
	{"id": "2.1", "title": "CLI", "description": "main(argv) prints the value of each expression and returns 0.",
		"phase": "interface", "module": "cli", "dependencies": []string{"1.2"}, "difficulty": 2,
		"tests": []string{"happy: prints the result"}},
	{"id": "2.2", "title": "CLI errors", "description": "main(argv) prints errors to stderr and returns 1.",
		"phase": "interface", "module": "cli", "dependencies": []string{"2.1"}, "difficulty": 2,
		"tests": []string{"error: malformed expression exits 1"}},
}

var loopyTasks = []map[string]any{
	{"id": "a", "title": "Parser", "description": "parse patterns", "phase": "p", "module": "m", "dependencies": []string{"b"}, "difficulty": 2, "tests": []string{"t"}},
	{"id": "b", "title": "Matcher", "description": "match text", "phase": "p", "module": "m", "dependencies": []string{"a"}, "difficulty": 2, "tests": []string{"t"}},
	{"id": "c", "title": "CLI", "description": "cli", "phase": "p", "module": "m", "dependencies": []string{}, "difficulty": 1, "tests": []string{"t"}},
}

const pgStub = "    raise NotImplementedError\n"

var scaffoldFiles = map[string]string{
	"calc/__init__.py":  "\"\"\"A stack-based (RPN) calculator.\"\"\"\n",
	"calc/__main__.py":  "import sys\n\nfrom calc.cli import main\n\nsys.exit(main(sys.argv[1:]))\n",
	"calc/tokenizer.py": "\"\"\"Tokenizer for RPN expressions.\"\"\"\n\n\ndef tokenize(text):\n    \"\"\"Split an expression into ints and operators.\"\"\"\n" + pgStub,
	"calc/rpn.py":       "\"\"\"Stack-based evaluation.\"\"\"\n\n\ndef evaluate(tokens):\n    \"\"\"Evaluate RPN tokens.\"\"\"\n" + pgStub,
	"calc/cli.py":       "\"\"\"Command-line interface.\"\"\"\n\n\ndef main(argv):\n    \"\"\"Print the value of each expression.\"\"\"\n" + pgStub,
	"tests/__init__.py": "",
}

const tokenizerImpl = `    tokens = []
    for part in text.split():
        if part in ("+", "-", "*", "/"):
            tokens.append(part)
            continue
        try:
            tokens.append(int(part))
        except ValueError:
            raise ValueError("unknown token: " + part) from None
    return tokens
`

const rpnImpl = `    ops = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": lambda a, b: a // b,
    }
    stack = []
    for tok in tokens:
        if tok in ops:
            if len(stack) < 2:
                raise ValueError("stack underflow")
            b = stack.pop()
            a = stack.pop()
            stack.append(ops[tok](a, b))
        else:
            stack.append(tok)
    if len(stack) != 1:
        raise ValueError("malformed expression")
    return stack[0]
`

const tokenizerTests = `import pytest

from calc.tokenizer import tokenize


def test_numbers_and_operators():
    assert tokenize("3 4 +") == [3, 4, "+"]


def test_extra_whitespace():
    assert tokenize("  10   2 / ") == [10, 2, "/"]


def test_unknown_token():
    with pytest.raises(ValueError):
        tokenize("3 x +")
`

const rpnTests = `import pytest

from calc.rpn import evaluate
from calc.tokenizer import tokenize


def test_addition():
    assert evaluate(tokenize("3 4 +")) == 7


def test_nested():
    assert evaluate(tokenize("5 1 2 + 4 * + 3 -")) == 14


def test_underflow():
    with pytest.raises(ValueError):
        evaluate(tokenize("1 +"))
`

const cliTests = `from calc.cli import main


def test_prints_result(capsys):
    assert main(["3 4 +"]) == 0
    assert capsys.readouterr().out == "7\n"
`

func pgCreate(path, text string) schema.ToolCall {
	return agent.Call(agent.ToolEditor, map[string]any{"command": "create", "path": "/testbed/" + path, "file_text": text})
}

func pgReplace(path, old, new string) schema.ToolCall {
	return agent.Call(agent.ToolEditor, map[string]any{"command": "str_replace", "path": "/testbed/" + path, "old_str": old, "new_str": new})
}

func pgJsonReply(v any) llmtest.Reply {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return llmtest.Text("```json\n" + string(b) + "\n```")
}

// pgByStep answers an agent conversation with calls[step], then finish.
func pgByStep(r *llmtest.Request, calls []schema.ToolCall) llmtest.Reply {
	step := 0
	for _, m := range r.Messages {
		if m.Role == "assistant" {
			step++
		}
	}
	if step < len(calls) {
		return llmtest.Reply{ToolCalls: []schema.ToolCall{calls[step]}}
	}
	return llmtest.Reply{ToolCalls: []schema.ToolCall{agent.Call(agent.ToolFinish, map[string]any{"message": "done"})}}
}

func pgFirstUser(r *llmtest.Request) string {
	for _, m := range r.Messages {
		if m.Role == "user" {
			return m.Content
		}
	}
	return ""
}

const pgRetried = "A previous attempt was rejected"

// playgroundRole is one role of the scripted model.
type playgroundRole struct {
	// marker is a phrase of the role's system prompt.
	marker string
	reply  func(r *llmtest.Request) llmtest.Reply
}

var playgroundRoles = []playgroundRole{
	{"You propose software projects", func(r *llmtest.Request) llmtest.Reply {
		return pgJsonReply(map[string]any{"projects": []any{calcProject, rpnCalc, loopy, tally}})
	}},
	{"You decompose a software project", func(r *llmtest.Request) llmtest.Reply {
		if strings.Contains(pgFirstUser(r), "(loopy)") {
			return pgJsonReply(map[string]any{"tasks": loopyTasks})
		}
		if pgKit(r) == "tally" {
			return pgJsonReply(map[string]any{"tasks": tallyTasks})
		}
		return pgJsonReply(map[string]any{"tasks": calcTasks})
	}},
	{"You scaffold a Python repository", func(r *llmtest.Request) llmtest.Reply {
		var calls []schema.ToolCall
		kit := pgKit(r)
		for _, p := range []string{"calc/__init__.py", "calc/__main__.py", "calc/tokenizer.py", "calc/rpn.py", "calc/cli.py", "tests/__init__.py"} {
			text := scaffoldFiles[p]
			if p == "calc/tokenizer.py" && kit == "calc" && !strings.Contains(pgFirstUser(r), pgRetried) {
				// First attempt: a body that is not a stub (rejected).
				text = strings.Replace(text, pgStub, "    return text.split()\n", 1)
			}
			calls = append(calls, pgCreate(pgIn(kit, p), pgIn(kit, text)))
		}
		return pgByStep(r, calls)
	}},
	{"You write unit tests for one task", func(r *llmtest.Request) llmtest.Reply {
		u := pgFirstUser(r)
		if kit := pgKit(r); kit == "tally" {
			switch {
			case strings.Contains(u, "Task 1.2:") && strings.Contains(u, "disputes the test"):
				// The review: the dispute is right; the test is fixed.
				return pgByStep(r, []schema.ToolCall{pgReplace("tests/test_task_1_2.py", tallyWrongTest, "== 14")})
			case strings.Contains(u, "Task 1.2:"):
				// A test contradicting the specification (disputed).
				return pgByStep(r, []schema.ToolCall{pgCreate("tests/test_task_1_2.py", strings.Replace(pgIn(kit, rpnTests), "== 14", tallyWrongTest, 1))})
			case strings.Contains(u, "Task 1.1:"):
				return pgByStep(r, []schema.ToolCall{pgCreate("tests/test_task_1_1.py", pgIn(kit, tokenizerTests))})
			}
			return llmtest.Status(400)
		}
		switch {
		case strings.Contains(u, "Task 1.1:") && !strings.Contains(u, pgRetried):
			// First attempt: a test that passes on the stubs (rejected).
			return pgByStep(r, []schema.ToolCall{pgCreate("tests/test_task_1_1.py", "def test_module_imports():\n    import calc.tokenizer\n")})
		case strings.Contains(u, "Task 1.1:"):
			return pgByStep(r, []schema.ToolCall{pgCreate("tests/test_task_1_1.py", tokenizerTests)})
		case strings.Contains(u, "Task 1.2:"):
			return pgByStep(r, []schema.ToolCall{pgCreate("tests/test_task_1_2.py", rpnTests)})
		case strings.Contains(u, "Task 2.1:"):
			return pgByStep(r, []schema.ToolCall{pgCreate("tests/test_task_2_1.py", cliTests)})
		}
		return llmtest.Status(400)
	}},
	{"You implement one task of a Python project", func(r *llmtest.Request) llmtest.Reply {
		u := pgFirstUser(r)
		if kit := pgKit(r); kit == "tally" {
			switch {
			case strings.Contains(u, "Task 1.1:"):
				// A malformed call and scratch files (a binary in the package,
				// notes outside the layout), then the right code: done, but
				// the trajectory fails the keep policy.
				return pgByStep(r, []schema.ToolCall{
					agent.Call("open_file", map[string]any{"path": "tally/tokenizer.py"}),
					agent.Call(agent.ToolBash, map[string]any{"command": `printf 'a\000b' > tally/scratch.bin && echo notes > notes.txt`}),
					pgReplace("tally/tokenizer.py", pgStub, tokenizerImpl)})
			case strings.Contains(u, "Task 1.2:") && pgOffers(r, agent.ToolDispute):
				return pgByStep(r, []schema.ToolCall{agent.Call(agent.ToolDispute, map[string]any{
					"test": "tests/test_task_1_2.py::test_nested", "reason": "5 1 2 + 4 * + 3 - is 14 under the specification; the test expects 15"})})
			case strings.Contains(u, "Task 1.2:"):
				return pgByStep(r, []schema.ToolCall{pgReplace("tally/rpn.py", pgStub, rpnImpl)})
			}
			return llmtest.Status(400)
		}
		switch {
		case strings.Contains(u, "Task 1.1:") && !strings.Contains(u, pgRetried):
			// First attempt: right code, but it edits the tests (rejected).
			return pgByStep(r, []schema.ToolCall{
				pgReplace("calc/tokenizer.py", pgStub, tokenizerImpl),
				pgReplace("tests/test_task_1_1.py", `== [3, 4, "+"]`, `== [3, 4, "+"]  # checked`)})
		case strings.Contains(u, "Task 1.1:"):
			return pgByStep(r, []schema.ToolCall{pgReplace("calc/tokenizer.py", pgStub, tokenizerImpl)})
		case strings.Contains(u, "Task 1.2:"):
			return pgByStep(r, []schema.ToolCall{pgReplace("calc/rpn.py", pgStub, rpnImpl)})
		case strings.Contains(u, "Task 2.1:"):
			// Always wrong: the task fails and 2.2 is skipped.
			return pgByStep(r, []schema.ToolCall{pgReplace("calc/cli.py", pgStub, "    print(\"seven\")\n    return 0\n")})
		}
		return llmtest.Status(400)
	}},
	{"You propose realistic bugs", func(r *llmtest.Request) llmtest.Reply {
		if pgKit(r) == "tally" {
			return pgJsonReply(map[string]any{"bugs": []any{
				map[string]any{"file": "tally/rpn.py", "original": `"+": lambda a, b: a + b,`, "replacement": `"+": lambda a, b: a - b,`,
					"issue": "Tally sums are wrong: `3 4 +` evaluates to -1 instead of 7."}}})
		}
		return pgJsonReply(map[string]any{"bugs": []any{
			map[string]any{"file": "calc/rpn.py", "original": `"+": lambda a, b: a + b,`, "replacement": `"+": lambda a, b: a - b,`,
				"issue": "Adding numbers gives wrong results: `3 4 +` evaluates to -1 instead of 7."},
			map[string]any{"file": "calc/rpn.py", "original": `"malformed expression"`, "replacement": `"bad expression"`,
				"issue": "The error message for malformed expressions changed."},
			map[string]any{"file": "tests/test_task_1_1.py", "original": "10", "replacement": "11",
				"issue": "A test is wrong."},
		}})
	}},
	{"write a test that reproduces a reported bug", func(r *llmtest.Request) llmtest.Reply {
		// A first attempt, and odd-seeded rollout samples, write a test that
		// fails on the buggy code and on the fixed code (rejected).
		want := "4"
		if strings.Contains(pgFirstUser(r), pgRetried) || (r.Seed != nil && *r.Seed%2 == 0) {
			want = "3"
		}
		return pgByStep(r, []schema.ToolCall{pgCreate("tests/test_repro.py",
			pgIn(pgKit(r), "from calc.rpn import evaluate\nfrom calc.tokenizer import tokenize\n\n\ndef test_addition_issue():\n    assert evaluate(tokenize(\"1 2 +\")) == "+want+"\n"))})
	}},
	{"resolve the issue the user reports", func(r *llmtest.Request) llmtest.Reply {
		return pgByStep(r, []schema.ToolCall{pgReplace(pgIn(pgKit(r), "calc/rpn.py"), `"+": lambda a, b: a - b,`, `"+": lambda a, b: a + b,`)})
	}},
	{"write unit tests from a checklist", func(r *llmtest.Request) llmtest.Reply {
		u := pgFirstUser(r)
		for file, text := range map[string]string{"tests/test_task_1_1.py": tokenizerTests, "tests/test_task_1_2.py": rpnTests} {
			if strings.Contains(u, "in "+file) {
				return pgByStep(r, []schema.ToolCall{pgCreate(file, pgIn(pgKit(r), text))})
			}
		}
		// Tests that assert nothing catch no mutant (unresolved).
		return pgByStep(r, []schema.ToolCall{pgCreate("tests/test_weak.py", "def test_nothing():\n    assert True\n")})
	}},
	{"implement functionality that is currently stubbed out", func(r *llmtest.Request) llmtest.Reply {
		kit := pgKit(r)
		return pgByStep(r, []schema.ToolCall{pgReplace(pgIn(kit, "calc/tokenizer.py"), pgStub, tokenizerImpl), pgReplace(pgIn(kit, "calc/rpn.py"), pgStub, rpnImpl)})
	}},
}

// playgroundModel answers every request by the role its system prompt names.
func playgroundModel(r *llmtest.Request) llmtest.Reply {
	if len(r.Messages) == 0 || r.Messages[0].Role != "system" {
		return llmtest.Reply{Status: 400, ErrorMessage: "scripted model: no system prompt"}
	}
	for _, role := range playgroundRoles {
		if strings.Contains(r.Messages[0].Content, role.marker) {
			return role.reply(r)
		}
	}
	return llmtest.Reply{Status: 400, ErrorMessage: fmt.Sprintf("scripted model: no role for system prompt %.80q", r.Messages[0].Content)}
}
