package stages

import (
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
