package build_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
		{"empty file", "", `:1:1: the recipe is empty`},
		{"only comments", "# a recipe\n\n   # to be written\n", `:1:1: the recipe is empty`},
		{"two documents", "name: x\nstages:\n  a: {uses: list}\n---\nname: y\n", `:4:1: a second YAML document`},
		{"two documents after an end marker", "name: x\nstages:\n  a: {uses: list}\n...\nname: y\n", `:5:`},
		{"fractional integer", "name: x\nstages:\n  a: {uses: validate, with: {runs: 1.5}}\n", `:3:36: stage "a" (validate): runs: want an integer, got 1.5`},
		{"float integer", "name: x\nstages:\n  a:\n    uses: list\n    with:\n      count: 2.0\n", `:6:14: stage "a" (list): count: want an integer, got 2.0`},
		{"quoted integer", "name: x\nstages:\n  a: {uses: list, with: {count: \"3\"}}\n", `:3:33: stage "a" (list): count: want an integer, got a string`},
		{"integer in defaults", "name: x\ndefaults: {list: {count: 1e3}}\nstages:\n  a: {uses: list}\n", `:2:26: stage "a" (list): count: want an integer, got a string`},
		{"fractional pool", "name: x\npools: {llm: 1.5}\nstages:\n  a: {uses: list}\n", `:2:14: pools: llm: want an integer, got 1.5`},
		{"fractional section integer", "name: x\nmodels: {m: {base_url: \"http://h/v1\", model: m, max_tokens: 10.5}}\nstages:\n  a: {uses: list}\n", `:2:61: models: m.max_tokens: want an integer, got 10.5`},
		{"sandbox unknown field, flow", "name: x\nstages:\n  a: {uses: list}\n\nsandbox: {memory: 4GiB, bogus: 1}\n", `:5:25: sandbox: unknown field "bogus"`},
		{"sandbox unknown field, block", "name: x\nstages:\n  a: {uses: list}\nsandbox:\n    timeout: 120s\n    bogus: 1\n", `:6:5: sandbox: unknown field "bogus"`},
		{"sandbox bad size", "name: x\nstages:\n  a: {uses: list}\nsandbox:\n  timeout: 120s\n  memory: 4XB\n", `:6:11: sandbox: sandbox limits: memory: "4XB" is not a size`},
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

// inLimitedChild runs the calling test again in a child process whose
// address space is limited to 3 GiB, and reports its failure; in the child
// it returns true and the test body runs. A recipe that makes the loader
// exhaust memory then fails the test, not the machine.
func inLimitedChild(t *testing.T) bool {
	t.Helper()
	const env = "DSBUILD_TEST_LIMITED_CHILD"
	if os.Getenv(env) == t.Name() {
		lim := &syscall.Rlimit{Cur: 3 << 30, Max: 3 << 30}
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
			t.Fatal(err)
		}
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 4000 {
			out = append(out[:2000:2000], append([]byte("\n...\n"), out[len(out)-2000:]...)...)
		}
		t.Fatalf("the test failed in a child process limited to 3 GiB (%v):\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the child process ran no test:\n%s", out)
	}
	return false
}

// TestRecipeLimits: recipes built to exhaust the loader's memory (an alias
// bomb, deep nesting, a huge file) are located bad input instead.
func TestRecipeLimits(t *testing.T) {
	if !inLimitedChild(t) {
		return
	}
	var bomb strings.Builder
	bomb.WriteString("name: bomb\nmodels:\n  m:\n    base_url: http://127.0.0.1:1/v1\n    model: x\n    extra_body:\n")
	bomb.WriteString("      a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", ")
		fmt.Fprintf(&bomb, "      a%d: &a%d [%s]\n", i, i, refs)
	}
	bomb.WriteString("stages:\n  s: {uses: list, with: {items: [a]}}\n")

	const n = 100_000 // 200 KB of brackets
	cases := []struct{ name, text, want string }{
		{"alias bomb", bomb.String(), `:11:51: aliases expand to more than 100000 nodes`},
		{"nested brackets", "name: x\nstages:\n  s: {uses: list, with: {items: " + strings.Repeat("[", n) + strings.Repeat("]", n) + "}}\n",
			`:3:93: collections nest deeper than 64 levels`},
		{"nested block lists", "name: x\nstages:\n  s:\n    uses: list\n    with:\n      items:\n        " + strings.Repeat("- ", n) + "x\n",
			`:7:129: collections nest deeper than 64 levels`},
		{"huge file", "name: x\n# " + strings.Repeat("x", build.MaxRecipeBytes) + "\nstages: {}\n",
			`:2:1048569: the recipe is larger than 1048576 bytes`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.yaml")
			os.WriteFile(path, []byte(c.text), 0o644)
			_, err := build.LoadRecipe(path, func(string) string { return "" })
			if err == nil || !build.IsBadInput(err) || !strings.HasPrefix(err.Error(), path+c.want) {
				t.Fatalf("error %v\nwant bad input starting %s%s", err, path, c.want)
			}
		})
	}
	// Aliases within the limit still work.
	path := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(path, []byte("name: x\nitems: &items [a, b]\nstages:\n  s: {uses: list, with: {items: *items}}\n"), 0o644)
	_, err := build.LoadRecipe(path, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown key "items"`) {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(path, []byte("name: x\nstages:\n  s: {uses: list, with: {items: [&a x, *a]}}\n"), 0o644)
	if r, err := build.LoadRecipe(path, nil); err != nil {
		t.Fatal(err)
	} else if got := r.Stages[0].Params.(*stages.ListParams).Items; len(got) != 2 || got[1] != "x" {
		t.Fatalf("items %q", got)
	}
}

// TestInterpolatedValuesStayPlain: a variable's value fills in a plain
// value or is refused, located at its ${...}; it never adds a comment, a
// block scalar, an alias, an anchor or a tag.
func TestInterpolatedValuesStayPlain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.yaml")
	text := "name: x\nstages:\n  a:\n    uses: test.echo\n    with: {suffix: ${OK}${V},\n           noise: 7}\n"
	os.WriteFile(path, []byte(text), 0o644)
	for _, v := range []string{"x\t# comment", "|", ">", "*anchor", "&anchor x", "!!int 3", "a: b", "b:", "- x", " x", "x ", "#x", "a #b", "a\nb", "a\\nb", "{x}", "x\x00"} {
		_, err := build.LoadRecipe(path, func(k string) string { return map[string]string{"OK": "ok", "V": v}[k] })
		if err == nil || !build.IsBadInput(err) || !strings.Contains(err.Error(), path+":5:25: the value of V holds characters that would change the recipe's structure") {
			t.Errorf("V=%q: error %v", v, err)
		}
	}
	for _, v := range []string{"-3", "plain", "a#b", "http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-Coder-32B-Instruct", "a b", "x:y", "~/p", "50%", "a|b", "a*b"} {
		r, err := build.LoadRecipe(path, func(k string) string { return map[string]string{"OK": "ok", "V": v}[k] })
		if err != nil {
			t.Errorf("V=%q: %v", v, err)
			continue
		}
		if got := fmtParams(r.Stages[0].Params); got != "ok"+v+" 7" {
			t.Errorf("V=%q: params %q, want the value as written and noise 7", v, got)
		}
	}
}

func init() {
	build.Register(&build.Kind{
		Name: "test.model_user", Version: "1", Params: func() any { return &modelUserParams{} },
		Run: func(ctx context.Context, c *build.Call) (build.Output, error) {
			d, err := c.Store().Put([]byte("x"))
			return build.Value(d), err
		},
	})
}

type modelUserParams struct {
	Model string `yaml:"model" json:"model"`
}

func (p *modelUserParams) CheckRecipe(r *build.Recipe, st *build.Stage) error {
	return stages.CheckModel(r, "model", p.Model)
}

// TestReferencesCheckedAtLoad: what a stage names elsewhere in the recipe
// (an environment, a model, the stage it takes items from) is checked when
// the recipe is loaded, located at the name.
func TestReferencesCheckedAtLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "p"), 0o755); err != nil {
		t.Fatal(err)
	}
	const envs = "environments:\n  python: {debian: {suite: bookworm, packages: [python3]}}\n  other: {debian: {suite: bookworm, packages: [python3]}}\n"
	const models = "models:\n  teacher: {base_url: \"http://127.0.0.1:1/v1\", model: m}\n"
	cases := []struct{ name, text, want string }{
		{"undefined environment", "name: x\n" + envs + "stages:\n  repos: {uses: repo, with: {paths: [p]}}\n  checked: {uses: validate, foreach: repos, with: {environment: gpu}}\n",
			`:7:65: stage "checked" (validate): environment: "gpu" is not one of the recipe's environments (other, python)`},
		{"no environments", "name: x\nstages:\n  repos: {uses: repo, with: {paths: [p]}}\n  checked:\n    uses: validate\n    foreach: repos\n    with:\n      environment: python\n",
			`:8:20: stage "checked" (validate): environment: "python" is not defined: the recipe has no environments: section`},
		{"environment in defaults", "name: x\n" + envs + "defaults: {validate: {environment: gpu}}\nstages:\n  repos: {uses: repo, with: {paths: [p]}}\n  checked: {uses: validate, foreach: repos}\n",
			`:5:36: stage "checked" (validate): environment: "gpu" is not one of`},
		{"ambiguous environment", "name: x\n" + envs + "stages:\n  repos: {uses: repo, with: {paths: [p]}}\n  checked: {uses: validate, foreach: repos}\n",
			`:7:3: stage "checked" (validate): environment: must name one of the recipe's environments (other, python)`},
		{"foreach over values", "name: x\nstages:\n  words: {uses: list, with: {items: [a]}}\n  checked: {uses: validate, foreach: words}\n",
			`:4:38: stage "checked" (validate): foreach: stage words (kind list) does not produce repository trees`},
		{"no foreach", "name: x\nstages:\n  checked: {uses: validate}\n",
			`:3:3: stage "checked" (validate): validate needs foreach:`},
		{"undefined model", "name: x\n" + models + "stages:\n  s: {uses: test.model_user, with: {model: student}}\n",
			`:5:44: stage "s" (test.model_user): model: "student" is not one of the recipe's models (teacher)`},
		{"no models", "name: x\nstages:\n  s: {uses: test.model_user, with: {model: teacher}}\n",
			`:3:44: stage "s" (test.model_user): model: "teacher" is not defined: the recipe has no models: section`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "r.yaml")
			os.WriteFile(path, []byte(c.text), 0o644)
			_, err := build.LoadRecipe(path, func(string) string { return "" })
			if err == nil || !build.IsBadInput(err) || !strings.HasPrefix(err.Error(), path+c.want) {
				t.Fatalf("error %v\nwant bad input starting %s%s", err, path, c.want)
			}
		})
	}
	path := filepath.Join(dir, "r.yaml")
	os.WriteFile(path, []byte("name: x\n"+envs+models+"stages:\n  repos: {uses: repo, with: {paths: [p]}}\n  checked: {uses: validate, foreach: repos, with: {environment: other}}\n  s: {uses: test.model_user, with: {model: teacher}}\n"), 0o644)
	if _, err := build.LoadRecipe(path, nil); err != nil {
		t.Fatal(err)
	}
}

// TestOutputFolderOfAnotherIsRefused: a build never deletes a folder that
// dsbuild did not write, unless forced; its own output it replaces.
func TestOutputFolderOfAnotherIsRefused(t *testing.T) {
	e := newEnv(t)
	const r = `name: pub
stages:
  words: {uses: list, with: {items: [a, b]}}
  echo:  {uses: test.echo, foreach: words, with: {suffix: "!"}}
  out:   {uses: bundle, from: [echo]}
`
	mine := filepath.Join(e.dir, "mine")
	if err := os.MkdirAll(filepath.Join(mine, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	precious := filepath.Join(mine, "src", "main.go")
	os.WriteFile(precious, []byte("package main\n"), 0o644)
	rec, _, err := e.build(r, build.Options{OutDir: mine})
	if err == nil || !build.IsBadInput(err) || rec != nil || !strings.Contains(err.Error(), "which dsbuild did not write") {
		t.Fatalf("build into a folder of someone else's: %v, %v", rec, err)
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "package main\n" {
		t.Fatalf("the folder was touched: %q %v", b, err)
	}
	file := filepath.Join(e.dir, "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, _, err := e.build(r, build.Options{OutDir: file}); err == nil || !build.IsBadInput(err) {
		t.Fatalf("build over a file: %v", err)
	}

	// Its own output, several stages and a leftover of a killed publish
	// included, is fine to replace; so is an empty folder.
	const two = `name: pub
stages:
  words: {uses: list, with: {items: [a, b]}}
  echo:  {uses: test.echo, foreach: words, with: {suffix: "!"}}
  out:   {uses: bundle, from: [echo]}
  out2:  {uses: bundle, from: [words]}
`
	for _, text := range []string{r, r, two, two} {
		if _, _, err := e.build(text, build.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(e.dir, "out", "out2.tmp-0123abcd", "x"), 0o755)
	os.MkdirAll(filepath.Join(e.dir, "out", "out.old-4242-89abcdef", "y"), 0o755)
	if _, _, err := e.build(two, build.Options{}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(e.dir, "empty"), 0o755)
	if _, _, err := e.build(r, build.Options{OutDir: filepath.Join(e.dir, "empty")}); err != nil {
		t.Fatal(err)
	}

	// Forced, the folder is replaced.
	if _, _, err := e.build(r, build.Options{OutDir: mine, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(precious); err == nil {
		t.Fatal("a forced build kept the old folder")
	}
	if _, err := build.PublishedTree(mine); err != nil {
		t.Fatalf("forced build published nothing: %v", err)
	}
}
