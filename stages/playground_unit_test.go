package stages

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/schema"
)

func pgSpec(id string, deps ...string) schema.TaskSpec {
	return schema.TaskSpec{ID: id, Title: "t" + id, Description: "d", Dependencies: deps, Difficulty: 2,
		Tests: []string{"happy"}, Phase: "p" + id, Module: "m"}
}

func TestPlaygroundCheckPlan(t *testing.T) {
	p := &DecomposeParams{Model: "m", MaxPhases: 2, MinTasks: 2, MaxTasks: 3, MaxReasks: 1}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	ordered, err := checkPlan([]schema.TaskSpec{pgSpec("b", "a"), pgSpec("a")}, p)
	if err != nil || ordered[0].ID != "a" || ordered[1].ID != "b" {
		t.Fatalf("valid plan: %v %v", ordered, err)
	}
	for name, c := range map[string]struct {
		tasks []schema.TaskSpec
		want  string
	}{
		"cycle":        {[]schema.TaskSpec{pgSpec("a", "b"), pgSpec("b", "a")}, "cycle"},
		"unknown dep":  {[]schema.TaskSpec{pgSpec("a", "zz"), pgSpec("b")}, "zz"},
		"too few":      {[]schema.TaskSpec{pgSpec("a")}, "between 2 and 3"},
		"too many":     {[]schema.TaskSpec{pgSpec("a"), pgSpec("b"), pgSpec("c"), pgSpec("d")}, "between 2 and 3"},
		"phases":       {[]schema.TaskSpec{pgSpec("a"), pgSpec("b"), pgSpec("c")}, "3 phases"},
		"no checklist": {[]schema.TaskSpec{pgSpec("a"), {ID: "b", Title: "t", Description: "d", Difficulty: 1, Phase: "pa", Module: "m"}}, "checklist"},
	} {
		_, err := checkPlan(c.tasks, p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, c.want)
		}
	}
}

func TestPlaygroundProposalValidation(t *testing.T) {
	v := validateProposals("python")
	good := `{"projects":[{"id":"calc","name":"Calc","description":"d","language":"Python","specification":"s"}]}`
	if err := v([]byte(good)); err != nil {
		t.Fatalf("good proposal rejected: %v", err)
	}
	for name, bad := range map[string]string{
		"empty":    `{"projects":[]}`,
		"no spec":  `{"projects":[{"id":"calc","name":"Calc","description":"d","language":"python"}]}`,
		"language": `{"projects":[{"id":"calc","name":"Calc","description":"d","language":"rust","specification":"s"}]}`,
		"bad id":   `{"projects":[{"id":"Calc-2","name":"Calc","description":"d","language":"python","specification":"s"}]}`,
		"not json": `{"projects": [`,
	} {
		if err := v([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPlaygroundNearDuplicates(t *testing.T) {
	a := wordSet("A stack-based calculator evaluating reverse Polish notation expressions")
	b := wordSet("Calc: a stack based calculator evaluating reverse polish notation expressions!")
	c := wordSet("A regular-expression matcher built on backtracking")
	if j := jaccard(a, b); j < 0.6 {
		t.Errorf("near-duplicates have similarity %v", j)
	}
	if j := jaccard(a, c); j >= 0.2 {
		t.Errorf("different projects have similarity %v", j)
	}
}

func TestPlaygroundNames(t *testing.T) {
	for in, want := range map[string]string{"calc": "calc", "My-Project 2": "my_project_2", "9lives": "p9lives", "--": "p"} {
		if got := packageName(in); got != want {
			t.Errorf("packageName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := taskTestFile("1.2.3"); got != "tests/test_task_1_2_3.py" {
		t.Errorf("taskTestFile: %q", got)
	}
	for p, want := range map[string]bool{"tests/a.py": true, "pkg/test_x.py": true, "pkg/x_test.py": true, "conftest.py": true, "pkg/x.py": false} {
		if isTestPath(p) != want {
			t.Errorf("isTestPath(%q) != %v", p, want)
		}
	}
}

func TestPlaygroundParamsValidate(t *testing.T) {
	bad := []interface{ Validate() error }{
		&ProposeParams{PerCall: 1, MinTasks: 1, Similarity: 0.5},                                                             // no model
		&ProposeParams{Model: "m", PerCall: 1, MinTasks: 1, Similarity: 0.5, Themes: []ProposeTheme{{Theme: "x"}}, Calls: 2}, // both
		&DecomposeParams{Model: "m", MaxPhases: 5, MinTasks: 5, MaxTasks: 4},
		&ScaffoldParams{Model: "m"},
		&DevelopParams{Model: "m", MaxTestTries: 1},
		&DeriveFixParams{Model: "m"},
		&DeriveTestgenParams{Mutants: 2, MinKilled: 3, MutantTimeout: "1s"},
		&DeriveTestgenParams{Mutants: 2, MinKilled: 1, MutantTimeout: "soon"},
	}
	for i, p := range bad {
		if p.Validate() == nil {
			t.Errorf("params %d (%T) accepted", i, p)
		}
	}
}

func TestPlaygroundLanguageConventions(t *testing.T) {
	for name, want := range map[string][2]string{
		"":           {"tests/test_task_1_2.py", "raise NotImplementedError"},
		"python":     {"tests/test_task_1_2.py", "raise NotImplementedError"},
		"go":         {"calc/task_1_2_test.go", `panic("not implemented")`},
		"javascript": {"test/task_1_2.test.js", `throw new Error("not implemented");`},
		"rust":       {"tests/task_1_2.rs", "unimplemented!()"},
	} {
		l, err := pgLanguage(name)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if got := l.testFile("calc", "1.2"); got != want[0] {
			t.Errorf("%q: test file %q, want %q", name, got, want[0])
		}
		if l.stub != want[1] {
			t.Errorf("%q: stub %q, want %q", name, l.stub, want[1])
		}
		// The profile agrees that the task's test file is a test file, and
		// the bug proposer and dumps take it for a test.
		if f := l.testFile("calc", "1.2"); !l.prof.IsTestFile(f) || !l.isTest(f) || l.isSource(f) || !l.isTestCode(f) {
			t.Errorf("%q: %s is not taken for a test file", name, f)
		}
		if pgTexts[l.name()].layout == nil || pgTexts[l.name()].scaffold == nil {
			t.Errorf("%q: no prompt texts", name)
		}
	}
	if _, err := pgLanguage("cobol"); err == nil || !strings.Contains(err.Error(), "javascript") {
		t.Errorf("an unknown language: %v", err)
	}
	// Go's task tests are the file's Test functions, reported or not.
	l, _ := pgLanguage("go")
	got := l.fileTests("calc/task_1_test.go", []byte("package calc\n\nfunc TestA(t *testing.T) {}\nfunc TestB(t *testing.T) {}\nfunc helper() {}\n"),
		map[string]string{"calc::TestA": "FAILED", "calc::TestA/sub": "FAILED", "calc::TestOther": "PASSED"})
	if strings.Join(got, ",") != "calc::TestA,calc::TestA/sub,calc::TestB" {
		t.Errorf("go file tests: %v", got)
	}
}

func TestPlaygroundProposeThemes(t *testing.T) {
	p := &ProposeParams{Model: "m", PerCall: 1, MinTasks: 1, Similarity: 0.5, Language: "python",
		Themes: []ProposeTheme{{Theme: "graphs"}, {Theme: "vm", Language: "JavaScript"}}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p.Themes)
	if err != nil {
		t.Fatal(err)
	}
	// A theme without a language of its own is a plain string, as before.
	if string(b) != `["graphs",{"language":"javascript","theme":"vm"}]` {
		t.Errorf("themes encode as %s", b)
	}
	var back []ProposeTheme
	if err := json.Unmarshal(b, &back); err != nil || back[0] != p.Themes[0] || back[1] != p.Themes[1] {
		t.Errorf("themes decode as %+v (%v)", back, err)
	}
	p.Themes = []ProposeTheme{{Theme: "vm", Language: "cobol"}}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "themes[0]") {
		t.Errorf("a theme in an unknown language: %v", err)
	}
}
