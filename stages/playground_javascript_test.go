package stages_test

// SWE-Playground in JavaScript: a scripted model builds the calculator of
// playground_model_test.go as a Node.js package (CommonJS modules in src/,
// node:test tests in test/), and the pipeline takes it from the proposal to
// exported, graded fix and implement tasks.

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

const jsStub = "  throw new Error(\"not implemented\");\n"

var jsCalcProject = map[string]any{
	"id": "jscalc", "name": "JSCalc", "language": "javascript",
	"description":   "A stack-based calculator for reverse Polish notation, as a Node.js command-line tool.",
	"specification": "Input: RPN expressions of integers and + - * / (integer division, truncated), separated by spaces. Output: the integer result. Errors: unknown tokens and malformed expressions throw an Error; the CLI prints errors to stderr and exits 1.",
}

var jsCalcTasks = []map[string]any{
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

// jsPlaygroundRoles answer the JavaScript project's requests by the role
// their system prompt names. Deliberate missteps: the first scaffold has a
// real function body, the first tests of task 1.1 pass on the stubs, the
// first implementation of 1.1 edits its tests, and the bug proposer offers
// a bug in a test file and one no test catches.
var jsPlaygroundRoles = []playgroundRole{
	{"You propose software projects", func(r *llmtest.Request) llmtest.Reply {
		return pgJsonReply(map[string]any{"projects": []any{jsCalcProject}})
	}},
	{"You decompose a software project", func(r *llmtest.Request) llmtest.Reply {
		return pgJsonReply(map[string]any{"tasks": jsCalcTasks})
	}},
	{"You scaffold a JavaScript repository", func(r *llmtest.Request) llmtest.Reply {
		var calls []schema.ToolCall
		for _, p := range []string{"package.json", "src/index.js", "src/tokenizer.js", "src/rpn.js", "bin/jscalc.js"} {
			text := jsScaffold[p]
			if p == "src/tokenizer.js" && !strings.Contains(pgFirstUser(r), pgRetried) {
				text = strings.Replace(text, jsStub, "  return text.split(' ');\n", 1)
			}
			calls = append(calls, pgCreate(p, text))
		}
		return pgByStep(r, calls)
	}},
	{"You write unit tests for one task of a JavaScript project", func(r *llmtest.Request) llmtest.Reply {
		u := pgFirstUser(r)
		switch {
		case strings.Contains(u, "Task 1.1:") && !strings.Contains(u, pgRetried):
			return pgByStep(r, []schema.ToolCall{pgCreate("test/task_1_1.test.js",
				"const test = require('node:test');\n\ntest('module loads', () => {\n  require('../src/tokenizer');\n});\n")})
		case strings.Contains(u, "Task 1.1:"):
			return pgByStep(r, []schema.ToolCall{pgCreate("test/task_1_1.test.js", jsTokenizerTests)})
		case strings.Contains(u, "Task 1.2:"):
			return pgByStep(r, []schema.ToolCall{pgCreate("test/task_1_2.test.js", jsRPNTests)})
		}
		return llmtest.Status(400)
	}},
	{"You implement one task of a JavaScript project", func(r *llmtest.Request) llmtest.Reply {
		u := pgFirstUser(r)
		switch {
		case strings.Contains(u, "Task 1.1:") && !strings.Contains(u, pgRetried):
			return pgByStep(r, []schema.ToolCall{
				pgReplace("src/tokenizer.js", jsStub, jsTokenizerImpl),
				pgReplace("test/task_1_1.test.js", "/unknown token/", "/unknown/")})
		case strings.Contains(u, "Task 1.1:"):
			return pgByStep(r, []schema.ToolCall{pgReplace("src/tokenizer.js", jsStub, jsTokenizerImpl)})
		case strings.Contains(u, "Task 1.2:"):
			return pgByStep(r, []schema.ToolCall{pgReplace("src/rpn.js", jsStub, jsRPNImpl)})
		}
		return llmtest.Status(400)
	}},
	{"You propose realistic bugs for a finished JavaScript project", func(r *llmtest.Request) llmtest.Reply {
		return pgJsonReply(map[string]any{"bugs": []any{
			map[string]any{"file": "src/rpn.js", "original": "'+': (a, b) => a + b,", "replacement": "'+': (a, b) => a - b,",
				"issue": "JSCalc adds wrong: `3 4 +` prints -1 instead of 7."},
			map[string]any{"file": "src/rpn.js", "original": "'malformed expression'", "replacement": "'bad expression'",
				"issue": "The error message for malformed expressions changed."},
			map[string]any{"file": "test/task_1_1.test.js", "original": "10", "replacement": "11", "issue": "A test is wrong."},
		}})
	}},
	{"resolve the issue the user reports", func(r *llmtest.Request) llmtest.Reply {
		return pgByStep(r, []schema.ToolCall{pgReplace("src/rpn.js", "'+': (a, b) => a - b,", "'+': (a, b) => a + b,")})
	}},
	{"implement functionality that is currently stubbed out", func(r *llmtest.Request) llmtest.Reply {
		return pgByStep(r, []schema.ToolCall{pgReplace("src/tokenizer.js", jsStub, jsTokenizerImpl), pgReplace("src/rpn.js", jsStub, jsRPNImpl)})
	}},
}

func jsPlaygroundModel(r *llmtest.Request) llmtest.Reply {
	if len(r.Messages) == 0 || r.Messages[0].Role != "system" {
		return llmtest.Reply{Status: 400, ErrorMessage: "scripted model: no system prompt"}
	}
	for _, role := range jsPlaygroundRoles {
		if strings.Contains(r.Messages[0].Content, role.marker) {
			return role.reply(r)
		}
	}
	return llmtest.Reply{Status: 400, ErrorMessage: fmt.Sprintf("scripted model: no role for system prompt %.80q", r.Messages[0].Content)}
}

// jsPlaygroundRecipe is recipes/swe-playground.yaml cut down to fix and
// implement tasks, with one JavaScript theme among Python ones' default
// and the reproduce and testgen kinds (Python only) still in the graph.
const jsPlaygroundRecipe = `name: swe-playground-js
models:
  teacher: {base_url: %q, model: scripted, api_key_env: PLAYGROUND_TEST_KEY, seed: 1}
environments:
  base: {layout: %q}
sandbox: {timeout: 120s}
stages:
  projects:
    uses: propose_projects
    with: {model: teacher, per_call: 1, min_tasks: 2, themes: [{theme: calculators, language: javascript}]}
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
  reproduce_tasks:
    uses: derive_reproduce
    foreach: developed
    with: {model: teacher, count: 3}
  testgen_tasks:
    uses: derive_testgen
    foreach: developed
  fix_rollouts:
    uses: rollout
    foreach: fix_tasks
    with: {policy: model, model: teacher, samples: 1, keep: {resolved_only: true}}
  implement_rollouts:
    uses: rollout
    foreach: implement_tasks
    with: {policy: model, model: teacher, samples: 1, keep: {resolved_only: true}}
  dataset:
    uses: export
    from: [fix_tasks, implement_tasks, reproduce_tasks, testgen_tasks, fix_rollouts, implement_rollouts, develop_trajs]
    with: {name: SWE-Playground JS, test_fraction: 0.5, images: true}
`

// TestPlaygroundJavaScript runs one JavaScript project through propose ->
// decompose -> scaffold -> develop -> derive (fix, implement; reproduce and
// testgen decline it) -> rollouts -> export against the scripted model, in
// a Debian image with node and no Python: the prompts state node's
// conventions, the scaffold check rejects a real function body found with
// tree-sitter, tests go to test/task_<id>.test.js and run with node's test
// runner, edits to them are refused, and every exported instance is graded
// by the harness (gold resolves, empty and no-op patches do not); an
// offline replay makes no model call.
func TestPlaygroundJavaScript(t *testing.T) {
	store := testenv.Store(t)
	srv := llmtest.New()
	defer srv.Close()
	var mu sync.Mutex
	systems := map[string]string{} // role marker -> a system prompt
	var scaffoldRetry string       // the scaffold agent's prompt after a rejection
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		if len(r.Messages) > 0 {
			mu.Lock()
			for _, role := range jsPlaygroundRoles {
				if strings.Contains(r.Messages[0].Content, role.marker) {
					systems[role.marker] = r.Messages[0].Content
				}
				if u := pgFirstUser(r); strings.Contains(r.Messages[0].Content, "You scaffold") && strings.Contains(u, pgRetried) {
					scaffoldRetry = u
				}
			}
			mu.Unlock()
		}
		return jsPlaygroundModel(r)
	})
	t.Setenv("PLAYGROUND_TEST_KEY", "sk-test-not-a-secret")
	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(recipe, []byte(fmt.Sprintf(jsPlaygroundRecipe, srv.URL(), testenv.NodeLayout(t))), 0o644); err != nil {
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
	expect("reproduce_tasks", "rejected:language javascript not supported", 1)
	expect("testgen_tasks", "rejected:language javascript not supported", 1)
	expect("fix_rollouts", "kept", 1)
	expect("implement_rollouts", "kept", 1)

	// The prompts state the language's conventions.
	for marker, want := range map[string][]string{
		"You propose software projects":                                {`"language": "javascript"`, "Node.js 18", "no npm packages"},
		"You decompose a software project":                             {"test/task_<id>.test.js", "node:test", "src/index.js"},
		"You scaffold a JavaScript repository":                         {`throw new Error("not implemented");`, "bin/jscalc.js", "no test files"},
		"You write unit tests for one task of a JavaScript project":    {"node:assert", "in the file test/task_1_"},
		"You implement one task of a JavaScript project":               {"anything under test/"},
		"You propose realistic bugs for a finished JavaScript project": {"src/module.js"},
	} {
		for _, w := range want {
			if !strings.Contains(systems[marker], w) {
				t.Errorf("the system prompt of %q does not say %q:\n%s", marker, w, systems[marker])
			}
		}
	}

	// The first scaffold's real body was found by tree-sitter, and the
	// agent told where.
	if !strings.Contains(scaffoldRetry, "src/tokenizer.js:4: tokenize has a body other than throw new Error") {
		t.Errorf("the scaffold agent's retry does not say which body is not a stub:\n%s", scaffoldRetry)
	}

	// The developed project: node's test ids, all passing.
	projs := pgNodeValues[stages.PlaygroundProject](t, store, rec, "developed")
	if len(projs) != 1 {
		t.Fatalf("%d developed projects, want 1", len(projs))
	}
	proj := projs[0]
	if len(proj.Status) != 6 {
		t.Errorf("final test status has %d tests, want 6: %v", len(proj.Status), proj.Status)
	}
	for id, st := range proj.Status {
		if st != "PASSED" || !strings.HasPrefix(id, "test/task_1_") {
			t.Errorf("final repository: %s %s", id, st)
		}
	}
	for _, o := range proj.Outcomes {
		if o.Status != stages.OutcomeDone || o.TestFile != "test/task_"+strings.ReplaceAll(o.Task, ".", "_")+".test.js" || len(o.Tests) != 3 {
			t.Errorf("task %s: %s, test file %s, tests %v", o.Task, o.Status, o.TestFile, o.Tests)
		}
	}
	if b, err := store.ReadFile(proj.Final, "test/task_1_1.test.js"); err != nil || !strings.Contains(string(b), "/unknown token/") {
		t.Errorf("the tests of task 1.1 in the final repository (%v):\n%s", err, b)
	}

	// The derived tasks are JavaScript instances graded by node's runner.
	var bundles []stages.TaskBundle
	for _, st := range []string{"fix_tasks", "implement_tasks"} {
		bundles = append(bundles, pgNodeItems[stages.TaskBundle](t, store, rec, st)...)
	}
	for _, b := range bundles {
		if b.Instance.Language != "javascript" || !strings.Contains(b.Instance.TestCmd, "node --test") || strings.Join(b.Protected, ",") != "test/" {
			t.Errorf("%s: language %q, protected %v, test_cmd %q", b.Instance.InstanceID, b.Instance.Language, b.Protected, b.Instance.TestCmd)
		}
		if b.Instance.TaskType == schema.TaskImplement {
			start, err := store.ReadFile(b.Start, "src/rpn.js")
			if err != nil || !strings.Contains(string(start), jsStub) || !strings.Contains(b.Instance.ProblemStatement, `throw new Error("not implemented");`) {
				t.Errorf("implement task: src/rpn.js (%v):\n%s\nstatement: %s", err, start, b.Instance.ProblemStatement)
			}
		}
	}
	if len(bundles) != 2 {
		t.Errorf("%d fix and implement tasks, want 2", len(bundles))
	}

	pgGradeExport(ctx, t, store, out1, map[schema.TaskType]int{schema.TaskFix: 1, schema.TaskImplement: 1})
	var data *harness.Dataset
	if data, err = harness.OpenDataset(filepath.Dir(pgManifestPath(t, out1))); err != nil {
		t.Fatal(err)
	}
	for id, inst := range data.Instances {
		if inst.Language != "javascript" || len(inst.TestFiles) == 0 || !strings.HasPrefix(inst.TestFiles[0], "test/") {
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
