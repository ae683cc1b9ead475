package stages_test

// SWE-Playground in languages other than Python: a scripted model builds
// the calculator of playground_model_test.go (a tokenizer, then an RPN
// evaluator) as a Node.js package and as a Go module, and the pipeline
// takes each from the proposal to exported, graded fix and implement
// tasks (pgLangKit says what differs between the languages).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/harness"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
)

// pgLangKit is one language's calculator and what the test expects of it.
type pgLangKit struct {
	language, title, id string
	// layout is the image layout of the environment.
	layout func(t *testing.T) string
	// scaffold are the scaffold's files in creation order; the stub is the
	// line of every stubbed body, badBody what the first scaffold attempt
	// puts in place of the first file's stub (a real body, rejected), and
	// badWhere what the rejection must say.
	scaffold      [][2]string
	stub, badBody string
	badWhere      string
	// impl are the files the implementation of each task writes whole.
	impl [2][2]string
	// tests are the test files and contents of the two tasks; passing is a
	// first attempt at task 1.1's tests that passes on the stubs, and
	// testEdit an edit of 1.1's tests (old, new) an implementation makes.
	tests    [2][2]string
	passing  string
	testEdit [2]string
	// bug is an edit of the evaluator (file, old, new) the tests catch,
	// uncaught one they do not.
	bug, uncaught [3]string
	// prompts are, per role marker, phrases its system prompt must hold.
	prompts map[string][]string
	// testIDPrefix starts every test id; protected are the bundles'
	// protected paths; testCmd is in the instances' test_cmd.
	testIDPrefix, protected, testCmd string
	// repro is a test file (path, content) that fails with bug and passes
	// without; weak a patch adding weakFile, a test that asserts nothing.
	// A kit without them makes no reproduce and testgen tasks.
	repro          [2]string
	weak, weakFile string
}

const jsStub = "  throw new Error(\"not implemented\");\n"

// pgLangCalcTasks are the two tasks of every language's calculator.
var pgLangCalcTasks = []map[string]any{
	{"id": "1.1", "title": "Tokenizer", "description": "tokenize(text) splits an expression into numbers and operator strings; unknown tokens throw.",
		"phase": "core", "module": "tokenizer", "dependencies": []string{}, "difficulty": 1,
		"tests": []string{"happy: numbers and operators", "edge: extra whitespace", "error: unknown token throws"}},
	{"id": "1.2", "title": "Evaluator", "description": "evaluate(tokens) evaluates RPN tokens with a stack; underflow or leftovers throw.",
		"phase": "core", "module": "rpn", "dependencies": []string{"1.1"}, "difficulty": 2,
		"tests": []string{"happy: addition", "happy: nested expression", "error: stack underflow"}},
}

var jsScaffold = map[string]string{
	"package.json":     "{\n  \"name\": \"jscalc\",\n  \"version\": \"0.1.0\",\n  \"bin\": {\"jscalc\": \"bin/jscalc.js\"}\n}\n",
	"src/index.js":     "'use strict';\n\nmodule.exports = { ...require('./tokenizer'), ...require('./rpn') };\n",
	"src/tokenizer.js": "'use strict';\n\n/** Split an expression into numbers and operator strings. */\nfunction tokenize(text) {\n" + jsStub + "}\n\nmodule.exports = { tokenize };\n",
	"src/rpn.js":       "'use strict';\n\n/** Evaluate RPN tokens with a stack. */\nfunction evaluate(tokens) {\n" + jsStub + "}\n\nmodule.exports = { evaluate };\n",
	"bin/jscalc.js": "#!/usr/bin/env node\n'use strict';\n\nconst { tokenize, evaluate } = require('../src');\n\n/** Print the value of each expression; return the exit status. */\nfunction main(argv) {\n" + jsStub + "}\n\n" +
		"if (require.main === module) {\n  process.exitCode = main(process.argv.slice(2));\n}\n\nmodule.exports = { main, tokenize, evaluate };\n",
}

const jsTokenizerImpl = `  const tokens = [];
  for (const part of text.split(/\s+/).filter(Boolean)) {
    if (['+', '-', '*', '/'].includes(part)) {
      tokens.push(part);
    } else if (/^-?\d+$/.test(part)) {
      tokens.push(Number(part));
    } else {
      throw new Error('unknown token: ' + part);
    }
  }
  return tokens;
`

const jsRPNImpl = `  const ops = {
    '+': (a, b) => a + b,
    '-': (a, b) => a - b,
    '*': (a, b) => a * b,
    '/': (a, b) => Math.trunc(a / b),
  };
  const stack = [];
  for (const tok of tokens) {
    if (typeof tok === 'string') {
      if (stack.length < 2) throw new Error('stack underflow');
      const b = stack.pop();
      const a = stack.pop();
      stack.push(ops[tok](a, b));
    } else {
      stack.push(tok);
    }
  }
  if (stack.length !== 1) throw new Error('malformed expression');
  return stack[0];
`

const jsTokenizerTests = `'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { tokenize } = require('../src/tokenizer');

test('numbers and operators', () => {
  assert.deepEqual(tokenize('3 4 +'), [3, 4, '+']);
});

test('extra whitespace', () => {
  assert.deepEqual(tokenize('  10   2 / '), [10, 2, '/']);
});

test('unknown token throws', () => {
  assert.throws(() => tokenize('3 x +'), /unknown token/);
});
`

const jsRPNTests = `'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { evaluate } = require('../src/rpn');
const { tokenize } = require('../src/tokenizer');

test('addition', () => {
  assert.equal(evaluate(tokenize('3 4 +')), 7);
});

test('nested expression', () => {
  assert.equal(evaluate(tokenize('5 1 2 + 4 * + 3 -')), 14);
});

test('stack underflow', () => {
  assert.throws(() => evaluate(tokenize('1 +')), /stack underflow/);
});
`

var jsKit = pgLangKit{
	language: "javascript", title: "JavaScript", id: "jscalc", layout: testenv.NodeLayout,
	scaffold: [][2]string{{"src/tokenizer.js", jsScaffold["src/tokenizer.js"]}, {"package.json", jsScaffold["package.json"]}, {"src/index.js", jsScaffold["src/index.js"]},
		{"src/rpn.js", jsScaffold["src/rpn.js"]}, {"bin/jscalc.js", jsScaffold["bin/jscalc.js"]}},
	stub: jsStub, badBody: "  return text.split(' ');\n",
	badWhere: "src/tokenizer.js:4: tokenize has a body other than throw new Error",
	impl: [2][2]string{{"src/tokenizer.js", strings.Replace(jsScaffold["src/tokenizer.js"], jsStub, jsTokenizerImpl, 1)},
		{"src/rpn.js", strings.Replace(jsScaffold["src/rpn.js"], jsStub, jsRPNImpl, 1)}},
	tests:    [2][2]string{{"test/task_1_1.test.js", jsTokenizerTests}, {"test/task_1_2.test.js", jsRPNTests}},
	passing:  "const test = require('node:test');\n\ntest('module loads', () => {\n  require('../src/tokenizer');\n});\n",
	testEdit: [2]string{"/unknown token/", "/unknown/"},
	bug:      [3]string{"src/rpn.js", "'+': (a, b) => a + b,", "'+': (a, b) => a - b,"},
	uncaught: [3]string{"src/rpn.js", "'malformed expression'", "'bad expression'"},
	prompts: map[string][]string{
		"You propose software projects":                                {`"language": "javascript"`, "Node.js 18", "no npm packages"},
		"You decompose a software project":                             {"test/task_<id>.test.js", "node:test", "src/index.js"},
		"You scaffold a JavaScript repository":                         {`throw new Error("not implemented");`, "bin/jscalc.js", "no test files"},
		"You write unit tests for one task of a JavaScript project":    {"node:assert", "in the file test/task_1_"},
		"You implement one task of a JavaScript project":               {"anything under test/"},
		"You propose realistic bugs for a finished JavaScript project": {"src/module.js"},
	},
	testIDPrefix: "test/task_1_", protected: "test/", testCmd: "node --test",
	repro: [2]string{"test/repro.test.js", "const test = require('node:test');\nconst assert = require('node:assert/strict');\nconst { evaluate, tokenize } = require('../src');\n\n" +
		"test('sums add up', () => {\n  assert.equal(evaluate(tokenize('1 2 +')), 3);\n});\n"},
	weakFile: "test/weak.test.js",
	weak: "diff --git a/test/weak.test.js b/test/weak.test.js\nnew file mode 100644\n--- /dev/null\n+++ b/test/weak.test.js\n@@ -0,0 +1,3 @@\n" +
		"+const test = require('node:test');\n+\n+test('nothing', () => {});\n",
}

const goStub = "\tpanic(\"not implemented\")\n"

const goTokenizerStub = "package gocalc\n\n// Token is a number or an operator.\ntype Token struct {\n\tOp  string\n\tNum int\n}\n\n" +
	"// Tokenize splits an expression into tokens; an unknown token is an error.\nfunc Tokenize(text string) ([]Token, error) {\n" + goStub + "}\n"

const goRPNStub = "package gocalc\n\n// Evaluate evaluates RPN tokens with a stack.\nfunc Evaluate(tokens []Token) (int, error) {\n" + goStub + "}\n"

const goTokenizerImpl = `package gocalc

import (
	"fmt"
	"strconv"
	"strings"
)

// Token is a number or an operator.
type Token struct {
	Op  string
	Num int
}

// Tokenize splits an expression into tokens; an unknown token is an error.
func Tokenize(text string) ([]Token, error) {
	var toks []Token
	for _, f := range strings.Fields(text) {
		switch f {
		case "+", "-", "*", "/":
			toks = append(toks, Token{Op: f})
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("unknown token: %s", f)
		}
		toks = append(toks, Token{Num: n})
	}
	return toks, nil
}
`

const goRPNImpl = `package gocalc

import "errors"

// Evaluate evaluates RPN tokens with a stack.
func Evaluate(tokens []Token) (int, error) {
	ops := map[string]func(a, b int) int{
		"+": func(a, b int) int { return a + b },
		"-": func(a, b int) int { return a - b },
		"*": func(a, b int) int { return a * b },
		"/": func(a, b int) int { return a / b },
	}
	var stack []int
	for _, t := range tokens {
		if t.Op == "" {
			stack = append(stack, t.Num)
			continue
		}
		if len(stack) < 2 {
			return 0, errors.New("stack underflow")
		}
		a, b := stack[len(stack)-2], stack[len(stack)-1]
		stack = append(stack[:len(stack)-2], ops[t.Op](a, b))
	}
	if len(stack) != 1 {
		return 0, errors.New("malformed expression")
	}
	return stack[0], nil
}
`

// goTokenizerTests: on the stubs the first test panics, which ends the
// package's test binary, so the other two are never reported.
const goTokenizerTests = `package gocalc

import (
	"reflect"
	"testing"
)

func TestTokenizeNumbersAndOperators(t *testing.T) {
	got, err := Tokenize("3 4 +")
	if want := []Token{{Num: 3}, {Num: 4}, {Op: "+"}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestTokenizeWhitespace(t *testing.T) {
	got, err := Tokenize("  10   2 / ")
	if want := []Token{{Num: 10}, {Num: 2}, {Op: "/"}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestTokenizeUnknown(t *testing.T) {
	if _, err := Tokenize("3 x +"); err == nil {
		t.Fatal("no error for an unknown token")
	}
}
`

const goRPNTests = `package gocalc

import "testing"

func eval(t *testing.T, s string) (int, error) {
	t.Helper()
	toks, err := Tokenize(s)
	if err != nil {
		t.Fatal(err)
	}
	return Evaluate(toks)
}

func TestEvaluateAddition(t *testing.T) {
	if v, err := eval(t, "3 4 +"); err != nil || v != 7 {
		t.Fatalf("got %v, %v", v, err)
	}
}

func TestEvaluateNested(t *testing.T) {
	if v, err := eval(t, "5 1 2 + 4 * + 3 -"); err != nil || v != 14 {
		t.Fatalf("got %v, %v", v, err)
	}
}

func TestEvaluateUnderflow(t *testing.T) {
	if _, err := eval(t, "1 +"); err == nil {
		t.Fatal("no error for a stack underflow")
	}
}
`

var goKit = pgLangKit{
	language: "go", title: "Go", id: "gocalc", layout: testenv.GoLayout,
	scaffold: [][2]string{{"gocalc/tokenizer.go", goTokenizerStub}, {"go.mod", "module gocalc\n\ngo 1.19\n"}, {"gocalc/rpn.go", goRPNStub},
		{"cmd/gocalc/main.go", "package main\n\nimport \"os\"\n\n// run prints the value of each expression and returns the exit status.\nfunc run(args []string) int {\n" + goStub + "}\n\nfunc main() {\n\tos.Exit(run(os.Args[1:]))\n}\n"}},
	stub: goStub, badBody: "\tvar toks []Token\n\treturn toks, nil\n",
	badWhere: "gocalc/tokenizer.go:10: Tokenize has a body other than panic",
	impl:     [2][2]string{{"gocalc/tokenizer.go", goTokenizerImpl}, {"gocalc/rpn.go", goRPNImpl}},
	tests:    [2][2]string{{"gocalc/task_1_1_test.go", goTokenizerTests}, {"gocalc/task_1_2_test.go", goRPNTests}},
	passing:  "package gocalc\n\nimport \"testing\"\n\nfunc TestTokenType(t *testing.T) {\n\t_ = Token{Op: \"+\"}\n}\n",
	testEdit: [2]string{`"3 x +"`, `"3 y +"`},
	bug:      [3]string{"gocalc/rpn.go", `"+": func(a, b int) int { return a + b },`, `"+": func(a, b int) int { return a - b },`},
	uncaught: [3]string{"gocalc/rpn.go", `"malformed expression"`, `"bad expression"`},
	prompts: map[string][]string{
		"You propose software projects":                        {`"language": "go"`, "Go 1.19", "no third-party modules"},
		"You decompose a software project":                     {"gocalc/task_<id>_test.go", "cmd/gocalc/main.go"},
		"You scaffold a Go repository":                         {`panic("not implemented")`, "module gocalc", "no _test.go file"},
		"You write unit tests for one task of a Go project":    {"testing package", "in the file gocalc/task_1_"},
		"You implement one task of a Go project":               {"any _test.go file"},
		"You propose realistic bugs for a finished Go project": {"gocalc/module.go"},
	},
	testIDPrefix: "gocalc::Test", testCmd: "go test -json",
}

// pgLangRoles answer a kit's requests by the role their system prompt
// names. Deliberate missteps: the first scaffold has a real function body,
// the first tests of task 1.1 pass on the stubs, the first implementation
// of 1.1 edits its tests, and the bug proposer offers a bug in a test file
// and one no test catches.
func pgLangRoles(k pgLangKit) []playgroundRole {
	project := map[string]any{
		"id": k.id, "name": k.title + " Calc", "language": k.language,
		"description":   "A stack-based calculator for reverse Polish notation, as a " + k.title + " command-line tool.",
		"specification": "Input: RPN expressions of integers and + - * / (integer division, truncated), separated by spaces. Output: the integer result. Errors: unknown tokens and malformed expressions are errors; the CLI prints them to stderr and exits 1.",
	}
	// implement rewrites a stubbed file whole (the editor's create refuses
	// an existing file).
	implement := func(i int) schema.ToolCall {
		for _, f := range k.scaffold {
			if f[0] == k.impl[i][0] {
				return pgReplace(f[0], f[1], k.impl[i][1])
			}
		}
		panic("no scaffold file " + k.impl[i][0])
	}
	return []playgroundRole{
		{"You propose software projects", func(r *llmtest.Request) llmtest.Reply {
			return pgJsonReply(map[string]any{"projects": []any{project}})
		}},
		{"You decompose a software project", func(r *llmtest.Request) llmtest.Reply {
			return pgJsonReply(map[string]any{"tasks": pgLangCalcTasks})
		}},
		{"You scaffold a " + k.title + " repository", func(r *llmtest.Request) llmtest.Reply {
			var calls []schema.ToolCall
			for i, f := range k.scaffold {
				text := f[1]
				if i == 0 && !strings.Contains(pgFirstUser(r), pgRetried) {
					text = strings.Replace(text, k.stub, k.badBody, 1)
				}
				calls = append(calls, pgCreate(f[0], text))
			}
			return pgByStep(r, calls)
		}},
		{"You write unit tests for one task of a " + k.title + " project", func(r *llmtest.Request) llmtest.Reply {
			u := pgFirstUser(r)
			switch {
			case strings.Contains(u, "Task 1.1:") && !strings.Contains(u, pgRetried):
				return pgByStep(r, []schema.ToolCall{pgCreate(k.tests[0][0], k.passing)})
			case strings.Contains(u, "Task 1.1:"):
				return pgByStep(r, []schema.ToolCall{pgCreate(k.tests[0][0], k.tests[0][1])})
			case strings.Contains(u, "Task 1.2:"):
				return pgByStep(r, []schema.ToolCall{pgCreate(k.tests[1][0], k.tests[1][1])})
			}
			return llmtest.Status(400)
		}},
		{"You implement one task of a " + k.title + " project", func(r *llmtest.Request) llmtest.Reply {
			u := pgFirstUser(r)
			switch {
			case strings.Contains(u, "Task 1.1:") && !strings.Contains(u, pgRetried):
				return pgByStep(r, []schema.ToolCall{implement(0), pgReplace(k.tests[0][0], k.testEdit[0], k.testEdit[1])})
			case strings.Contains(u, "Task 1.1:"):
				return pgByStep(r, []schema.ToolCall{implement(0)})
			case strings.Contains(u, "Task 1.2:"):
				return pgByStep(r, []schema.ToolCall{implement(1)})
			}
			return llmtest.Status(400)
		}},
		{"You propose realistic bugs for a finished " + k.title + " project", func(r *llmtest.Request) llmtest.Reply {
			return pgJsonReply(map[string]any{"bugs": []any{
				map[string]any{"file": k.bug[0], "original": k.bug[1], "replacement": k.bug[2], "issue": "Sums are wrong: `3 4 +` gives -1 instead of 7."},
				map[string]any{"file": k.uncaught[0], "original": k.uncaught[1], "replacement": k.uncaught[2], "issue": "The error message for malformed expressions changed."},
				map[string]any{"file": k.tests[0][0], "original": "10", "replacement": "11", "issue": "A test is wrong."},
			}})
		}},
		{"resolve the issue the user reports", func(r *llmtest.Request) llmtest.Reply {
			return pgByStep(r, []schema.ToolCall{pgReplace(k.bug[0], k.bug[2], k.bug[1])})
		}},
		{"implement functionality that is currently stubbed out", func(r *llmtest.Request) llmtest.Reply {
			return pgByStep(r, []schema.ToolCall{implement(0), implement(1)})
		}},
		{"write a test that reproduces a reported bug", func(r *llmtest.Request) llmtest.Reply {
			return pgByStep(r, []schema.ToolCall{pgCreate(k.repro[0], k.repro[1])})
		}},
		{"write unit tests from a checklist", func(r *llmtest.Request) llmtest.Reply {
			for _, f := range k.tests {
				if strings.Contains(pgFirstUser(r), "in "+f[0]) {
					return pgByStep(r, []schema.ToolCall{pgCreate(f[0], f[1])})
				}
			}
			return llmtest.Status(400)
		}},
	}
}

// pgLangRecipe is recipes/swe-playground.yaml cut down to fix and
// implement tasks, with one theme in the kit's language (the stage's is
// Python's default), and the reproduce and testgen kinds (Python only)
// still in the graph.
const pgLangRecipe = `name: swe-playground-%[4]s
models:
  teacher: {base_url: %[1]q, model: scripted, api_key_env: PLAYGROUND_TEST_KEY, seed: 1}
environments:
  base: {layout: %[2]q}
sandbox: {timeout: 120s}
stages:
  projects:
    uses: propose_projects
    with: {model: teacher, per_call: 1, min_tasks: 2, themes: [{theme: calculators, language: %[3]s}]}
  plans:
    uses: decompose
    foreach: projects
    with: {model: teacher, min_tasks: 2, max_tasks: 10}
  scaffolds:
    uses: scaffold
    foreach: plans
    with: {model: teacher, environment: base, max_tries: 2, limits: {max_steps: 20}}
  developed:
    uses: develop
    foreach: scaffolds
    with: {model: teacher, max_test_tries: 2, max_impl_tries: 2, max_disputes: 0, limits: {max_steps: 20}}
  develop_trajs:
    uses: develop_trajectories
    foreach: developed
  fix_tasks:
    uses: derive_fix
    foreach: developed
    with: {model: teacher, count: 3}
  implement_tasks:
    uses: derive_implement
    foreach: developed
  fix_rollouts:
    uses: rollout
    foreach: fix_tasks
    with: {policy: model, model: teacher, samples: 1, keep: {resolved_only: true}}
  implement_rollouts:
    uses: rollout
    foreach: implement_tasks
    with: {policy: model, model: teacher, samples: 1, keep: {resolved_only: true}}
%[5]s  dataset:
    uses: export
    from: [fix_tasks, implement_tasks, fix_rollouts, implement_rollouts, develop_trajs%[6]s]
    with: {name: SWE-Playground %[4]s, test_fraction: 0.5, images: true}
`

// pgLangTestTasks are the stages of reproduce and testgen tasks and their
// rollouts, for kits that have them.
const pgLangTestTasks = `  reproduce_tasks:
    uses: derive_reproduce
    foreach: developed
    with: {model: teacher, count: 3}
  testgen_tasks:
    uses: derive_testgen
    foreach: developed
    with: {mutants: 4, min_killed: 1}
  reproduce_rollouts:
    uses: rollout
    foreach: reproduce_tasks
    with: {policy: model, model: teacher, samples: 1, keep: {resolved_only: true}}
  testgen_rollouts:
    uses: rollout
    foreach: testgen_tasks
    with: {policy: model, model: teacher, samples: 1, keep: {resolved_only: true}}
`

// TestPlaygroundJavaScript runs one JavaScript project through propose ->
// decompose -> scaffold -> develop -> derive (fix, implement; reproduce and
// testgen decline it) -> rollouts -> export against the scripted model, in
// a Debian image with node and no Python; see pgLangEndToEnd.
func TestPlaygroundJavaScript(t *testing.T) { pgLangEndToEnd(t, jsKit) }

// TestPlaygroundGo runs one Go project as TestPlaygroundJavaScript runs its
// JavaScript one, in an image with Go and no Python. Its stubs panic, so a
// test run on them reports the first test of a package only.
func TestPlaygroundGo(t *testing.T) { pgLangEndToEnd(t, goKit) }

// pgLangEndToEnd runs k's project through the pipeline: the prompts state
// the language's conventions, the scaffold check rejects a real function
// body found with tree-sitter, tests go to the language's test files and
// run with its runner, edits to them are refused, and every exported
// instance is graded by the harness (gold resolves, empty and no-op
// patches do not); an offline replay makes no model call.
func pgLangEndToEnd(t *testing.T, k pgLangKit) {
	roles := pgLangRoles(k)
	store := testenv.Store(t)
	srv := llmtest.New()
	defer srv.Close()
	var mu sync.Mutex
	systems := map[string]string{} // role marker -> a system prompt
	var scaffoldRetry string       // the scaffold agent's prompt after a rejection
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		if len(r.Messages) == 0 || r.Messages[0].Role != "system" {
			return llmtest.Reply{Status: 400, ErrorMessage: "scripted model: no system prompt"}
		}
		sys := r.Messages[0].Content
		mu.Lock()
		defer mu.Unlock()
		if u := pgFirstUser(r); strings.Contains(sys, "You scaffold") && strings.Contains(u, pgRetried) {
			scaffoldRetry = u
		}
		for _, role := range roles {
			if strings.Contains(sys, role.marker) {
				systems[role.marker] = sys
				return role.reply(r)
			}
		}
		return llmtest.Reply{Status: 400, ErrorMessage: fmt.Sprintf("scripted model: no role for system prompt %.80q", sys)}
	})
	t.Setenv("PLAYGROUND_TEST_KEY", "sk-test-not-a-secret")
	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipe.yaml")
	extra, extraFrom := "", ""
	if k.weak != "" {
		extra, extraFrom = pgLangTestTasks, ", reproduce_tasks, testgen_tasks, reproduce_rollouts, testgen_rollouts"
	}
	if err := os.WriteFile(recipe, []byte(fmt.Sprintf(pgLangRecipe, srv.URL(), k.layout(t), k.language, k.title, extra, extraFrom)), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(recipe, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out1 := t.TempDir()
	rec, err := build.Build(ctx, r, store, build.Options{Jobs: 2, OutDir: out1})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	calls := srv.Requests()
	sum := map[string]build.StageSummary{}
	for _, s := range rec.Stages {
		sum[s.Stage] = s
		t.Logf("%-18s items=%d counts=%v", s.Stage, s.Items, s.Counts)
	}
	expect := func(stage, counter string, want float64) {
		t.Helper()
		if got := sum[stage].Counts[counter]; got != want {
			t.Errorf("stage %s: counter %q = %v, want %v (all: %v)", stage, counter, got, want, sum[stage].Counts)
		}
	}
	expect("projects", "kept", 1)
	expect("plans", "kept", 1)
	expect("scaffolds", "kept", 1)
	expect("scaffolds", "retry:scaffold check failed", 1)
	expect("developed", "retry:tests pass before implementation", 1)
	expect("developed", "retry:implementation edited tests", 1)
	expect("developed", "tasks:done", 2)
	expect("fix_tasks", "kept", 1)
	expect("fix_tasks", "rejected:bug edits tests", 1)
	expect("fix_tasks", "rejected:no failing test", 1)
	expect("implement_tasks", "kept", 1)
	want := map[schema.TaskType]int{schema.TaskFix: 1, schema.TaskImplement: 1}
	if k.weak != "" {
		// The reproduction test fails on the buggy code only; the
		// reference tests of both tasks kill tree-sitter mutants.
		expect("reproduce_tasks", "kept", 1)
		expect("testgen_tasks", "kept", 2)
		expect("reproduce_rollouts", "kept", 1)
		expect("testgen_rollouts", "kept", 2)
		want[schema.TaskReproduce], want[schema.TaskTestgen] = 1, 2
	}
	expect("fix_rollouts", "kept", 1)
	expect("implement_rollouts", "kept", 1)

	// The prompts state the language's conventions.
	for marker, want := range k.prompts {
		for _, w := range want {
			if !strings.Contains(systems[marker], w) {
				t.Errorf("the system prompt of %q does not say %q:\n%s", marker, w, systems[marker])
			}
		}
	}
	// The first scaffold's real body was found by tree-sitter, and the
	// agent told where.
	if !strings.Contains(scaffoldRetry, k.badWhere) {
		t.Errorf("the scaffold agent's retry does not say %q:\n%s", k.badWhere, scaffoldRetry)
	}

	// The developed project: the runner's test ids, all passing.
	projs := pgNodeValues[stages.PlaygroundProject](t, store, rec, "developed")
	if len(projs) != 1 {
		t.Fatalf("%d developed projects, want 1", len(projs))
	}
	proj := projs[0]
	if len(proj.Status) != 6 {
		t.Errorf("final test status has %d tests, want 6: %v", len(proj.Status), proj.Status)
	}
	for id, st := range proj.Status {
		if st != "PASSED" || !strings.HasPrefix(id, k.testIDPrefix) {
			t.Errorf("final repository: %s %s", id, st)
		}
	}
	for i, o := range proj.Outcomes {
		if o.Status != stages.OutcomeDone || o.TestFile != k.tests[i][0] || len(o.Tests) != 3 {
			t.Errorf("task %s: %s, test file %s, tests %v", o.Task, o.Status, o.TestFile, o.Tests)
		}
	}
	if b, err := store.ReadFile(proj.Final, k.tests[0][0]); err != nil || string(b) != k.tests[0][1] {
		t.Errorf("the tests of task 1.1 in the final repository (%v):\n%s", err, b)
	}

	// The derived tasks are instances of the language, graded by its runner.
	var bundles []stages.TaskBundle
	for _, st := range []string{"fix_tasks", "implement_tasks", "reproduce_tasks", "testgen_tasks"} {
		bundles = append(bundles, pgNodeItems[stages.TaskBundle](t, store, rec, st)...)
	}
	protected := k.protected
	if protected == "" { // Go: the test files themselves
		protected = k.tests[0][0] + "," + k.tests[1][0]
	}
	for _, b := range bundles {
		wantProtected := protected
		if k.protected == "" && b.Instance.TaskType != schema.TaskFix && b.Instance.TaskType != schema.TaskImplement {
			wantProtected = "-" // Go's test files of the start tree differ; not checked
		}
		if b.Instance.Language != k.language || !strings.Contains(b.Instance.TestCmd, k.testCmd) || wantProtected != "-" && strings.Join(b.Protected, ",") != wantProtected {
			t.Errorf("%s: language %q, protected %v, test_cmd %q", b.Instance.InstanceID, b.Instance.Language, b.Protected, b.Instance.TestCmd)
		}
		if b.Instance.TaskType == schema.TaskImplement {
			start, err := store.ReadFile(b.Start, k.impl[1][0])
			if err != nil || !strings.Contains(string(start), k.stub) || !strings.Contains(b.Instance.ProblemStatement, strings.TrimSpace(k.stub)) {
				t.Errorf("implement task: %s (%v):\n%s\nstatement: %s", k.impl[1][0], err, start, b.Instance.ProblemStatement)
			}
		}
	}
	if n := want[schema.TaskFix] + want[schema.TaskImplement] + want[schema.TaskReproduce] + want[schema.TaskTestgen]; len(bundles) != n {
		t.Errorf("%d derived tasks, want %d", len(bundles), n)
	}

	pgGradeExport(ctx, t, store, out1, want, k.weak, k.weakFile)
	data, err := harness.OpenDataset(filepath.Dir(pgManifestPath(t, out1)))
	if err != nil {
		t.Fatal(err)
	}
	for id, inst := range data.Instances {
		if inst.TaskType != schema.TaskFix && inst.TaskType != schema.TaskImplement {
			continue // answered with tests: nothing is restored
		}
		if inst.Language != k.language || strings.Join(inst.TestFiles, ",") != k.tests[0][0]+","+k.tests[1][0] {
			t.Errorf("exported %s: language %q, test_files %v", id, inst.Language, inst.TestFiles)
		}
	}

	// Offline replay: zero model calls, the same outputs.
	rec2, err := build.Build(ctx, r, store, build.Options{Jobs: 2, OutDir: t.TempDir(), Offline: true})
	if err != nil {
		t.Fatalf("offline build: %v", err)
	}
	if srv.Requests() != calls {
		t.Errorf("offline replay made %d model calls", srv.Requests()-calls)
	}
	if a, b := pgNodeResults(rec), pgNodeResults(rec2); !pgEqualMaps(a, b) {
		t.Errorf("offline replay gave other node results:\n%v\n%v", a, b)
	}
}

// pgManifestPath finds the one manifest.json under dir.
func pgManifestPath(t *testing.T, dir string) string {
	t.Helper()
	var found []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "manifest.json" {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 1 {
		t.Fatalf("want one manifest.json under %s, found %q", dir, found)
	}
	return found[0]
}
