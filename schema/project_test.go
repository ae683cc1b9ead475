package schema

import (
	"strings"
	"testing"
)

func TestOrderTaskSpecs(t *testing.T) {
	spec := func(id string, deps ...string) TaskSpec {
		return TaskSpec{ID: id, Title: "t" + id, Difficulty: 2, Dependencies: deps}
	}
	got, err := OrderTaskSpecs([]TaskSpec{spec("c", "b"), spec("a"), spec("b", "a"), spec("d")})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range got {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "a,b,c,d" {
		t.Errorf("order = %v, want a,b,c,d", ids)
	}
	for want, specs := range map[string][]TaskSpec{
		"dependency cycle among x, y": {spec("x", "y"), spec("y", "x")},
		"unknown dependency \"zz\"":   {spec("x", "zz")},
		"duplicate id":                {spec("x"), spec("x")},
		"depends on itself":           {spec("x", "x")},
		"difficulty 0 outside 1-5":    {{ID: "x", Title: "t"}},
	} {
		if _, err := OrderTaskSpecs(specs); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}

func TestProjectValidate(t *testing.T) {
	if err := (Project{ID: "mathx", Name: "mathx", Description: "d"}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Project{ID: "a/b", Name: "n", Description: "d"}).Validate(); err == nil || !strings.Contains(err.Error(), "file name") {
		t.Errorf("slash in id: %v", err)
	}
}
