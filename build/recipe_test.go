package build_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/stages"
)

func TestBadRecipesAreLocated(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"unknown top-level key", "name: x\nstagez: 1\nstages:\n  a: {uses: list}\n", `:2:1: unknown key "stagez"`},
		{"unknown stage key", "name: x\nstages:\n  a:\n    uses: list\n    wiht: {}\n", `:5:5: stage "a": unknown key "wiht"`},
		{"unknown kind", "name: x\nstages:\n  a: {uses: nope}\n", `:3:13: stage "a" uses unknown kind "nope"`},
		{"unknown param", "name: x\nstages:\n  a: {uses: list, with: {items: [a], bogus: 1}}\n", `:3:38: stage "a" (list): unknown field "bogus"`},
		{"wrong param type", "name: x\nstages:\n  a:\n    uses: list\n    with:\n      count: many\n", `:6:14: stage "a" (list): count: want an integer, got a string`},
		{"invalid params", "name: x\nstages:\n  a: {uses: list, with: {count: -1}}\n", `:3:25: stage "a" (list): count must not be negative`},
		{"missing dependency", "name: x\nstages:\n  a: {uses: test.echo, foreach: zz}\n", `:3:3: stage "a" depends on unknown stage "zz"`},
		{"cycle", "name: x\nstages:\n  a: {uses: test.echo, foreach: b}\n  b: {uses: test.join, from: [c]}\n  c: {uses: test.echo, foreach: a}\n", `dependency cycle: a -> b -> c -> a`},
		{"self dependency", "name: x\nstages:\n  a: {uses: test.join, from: a}\n", `:3:3: stage "a" depends on itself`},
		{"missing name", "stages:\n  a: {uses: list}\n", `:1:1: missing required key name:`},
		{"missing stages", "name: x\n", `:1:1: missing required key stages:`},
		{"missing uses", "name: x\nstages:\n  a: {with: {}}\n", `:3:3: stage "a" has no uses:`},
		{"duplicate stage", "name: x\nstages:\n  a: {uses: list}\n  a: {uses: list}\n", `duplicate`},
		{"syntax error", "name: x\nstages:\n  a: {uses: list\n", `:3:`},
		{"unset variable", "name: ${DSBUILD_TEST_UNSET}\nstages:\n  a: {uses: list}\n", `:1:7: environment variable DSBUILD_TEST_UNSET is not set`},
		{"bad pool", "name: x\npools: {llm: 0}\nstages:\n  a: {uses: list}\n", `pool "llm" needs a limit of at least 1`},
		{"unknown defaults kind", "name: x\ndefaults: {nope: {}}\nstages:\n  a: {uses: list}\n", `:2:12: defaults for unknown stage kind "nope"`},
		{"missing source", "name: x\nstages:\n  a: {uses: repo, with: {paths: [does-not-exist/*]}}\n", `stage "a" (repo): paths: "does-not-exist/*" matches nothing`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.yaml")
			os.WriteFile(path, []byte(c.text), 0o644)
			_, err := build.LoadRecipe(path, func(string) string { return "" })
			if err == nil {
				t.Fatal("recipe accepted")
			}
			if !build.IsBadInput(err) {
				t.Errorf("error %v is not bad input", err)
			}
			if !strings.HasPrefix(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error\n  %v\nwant it to start with the file and contain\n  %s", err, c.want)
			}
		})
	}
}

func TestInterpolationAndDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(path, []byte(`name: ${NAME:-fallback}
defaults:
  test.echo: {suffix: "${SUFFIX}", noise: 7}
stages:
  a: {uses: test.echo, with: {noise: 8}}
  b: {uses: test.echo, with: {suffix: "$${literal}"}}
`), 0o644)
	env := map[string]string{"SUFFIX": "-s"}
	r, err := build.LoadRecipe(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "fallback" {
		t.Errorf("name %q", r.Name)
	}
	var a, b string
	for _, s := range r.Stages {
		switch s.ID {
		case "a":
			a = strings.TrimSpace(strings.ReplaceAll(fmtParams(s.Params), "\n", ""))
		case "b":
			b = fmtParams(s.Params)
		}
	}
	if a != "-s 8" {
		t.Errorf("stage a params %q: want defaults overlaid by with", a)
	}
	if b != "${literal} 7" {
		t.Errorf("stage b params %q", b)
	}
}

func fmtParams(p any) string {
	e := p.(*echoParams)
	return e.Suffix + " " + strconv.Itoa(e.Noise)
}

type viewedSection struct {
	Result   string `yaml:"result" json:"result"`
	Endpoint string `yaml:"endpoint" json:"endpoint"`
}

func (v *viewedSection) KeyView() any { return v.Result }

func init() {
	build.RegisterSection("test_viewed", func() any { return &viewedSection{} })
	build.Register(&build.Kind{Name: "test.viewer", Version: "1", Sections: []string{"test_viewed"},
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			d, err := c.Store().Put([]byte("x"))
			return build.Value(d), err
		}})
}

func TestSectionKeyView(t *testing.T) {
	key := func(text string) cache.Key {
		path := filepath.Join(t.TempDir(), "r.yaml")
		os.WriteFile(path, []byte(text), 0o644)
		r, err := build.LoadRecipe(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		store, _ := cache.Open(filepath.Join(t.TempDir(), "c"))
		defer store.Close()
		plan, err := build.Plan(r, store)
		if err != nil {
			t.Fatal(err)
		}
		return plan[0].Key
	}
	a := key("name: v\ntest_viewed: {result: r1, endpoint: e1}\nstages:\n  s: {uses: test.viewer}\n")
	b := key("name: v\ntest_viewed: {result: r1, endpoint: e2}\nstages:\n  s: {uses: test.viewer}\n")
	c := key("name: v\ntest_viewed: {result: r2, endpoint: e1}\nstages:\n  s: {uses: test.viewer}\n")
	if a != b {
		t.Error("a field outside the key view changed the node key")
	}
	if a == c {
		t.Error("a field in the key view did not change the node key")
	}
}

func TestInterpolationFillsValuesOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(path, []byte("name: x  # set ${NOT_SET} to taste\nstages:\n  a: {uses: list, with: {items: [\"${V}\"]}}\n"), 0o644)
	_, err := build.LoadRecipe(path, func(k string) string { return map[string]string{"V": `a", "b`}[k] })
	if err == nil || !strings.Contains(err.Error(), ":3:35: the value of V holds characters that would change the recipe's structure") {
		t.Fatalf("err = %v", err)
	}
	r, err := build.LoadRecipe(path, func(k string) string { return map[string]string{"V": "plain"}[k] })
	if err != nil {
		t.Fatalf("a variable in a comment must be left alone: %v", err)
	}
	if got := r.Stages[0].Params.(*stages.ListParams).Items; len(got) != 1 || got[0] != "plain" {
		t.Fatalf("items %q", got)
	}
}
