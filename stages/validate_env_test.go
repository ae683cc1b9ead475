package stages_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	_ "github.com/dsbuild/dsbuild/stages"
)

// A validate stage needs no environment: of its own when every repository
// of its repo stage names one (a recipe with an environment per language),
// and each name is checked when the recipe loads.
func TestValidateTakesEachRepositorysEnvironment(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"g", "j"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const head = "name: x\nenvironments:\n  go: {debian: {suite: bookworm, packages: [golang-go]}}\n  js: {debian: {suite: bookworm, packages: [nodejs]}}\nstages:\n"
	const checked = "  checked: {uses: validate, foreach: repos}\n"
	cases := []struct{ name, repos, want string }{
		{"each names one", "  repos: {uses: repo, with: {repos: [{path: g, environment: go}, {path: j, environment: js}]}}\n", ""},
		{"one names none", "  repos: {uses: repo, with: {repos: [{path: g, environment: go}, {path: j}]}}\n",
			`stage "checked" (validate): environment: must name one of the recipe's environments (go, js)`},
		{"paths beside them", "  repos: {uses: repo, with: {paths: [g], repos: [{path: j, environment: js}]}}\n",
			`stage "checked" (validate): environment: must name one of the recipe's environments (go, js)`},
		{"an undefined one", "  repos: {uses: repo, with: {repos: [{path: g, environment: go}, {path: j, environment: rust}]}}\n",
			`environment of repository j in stage repos: "rust" is not one of the recipe's environments (go, js)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "r.yaml")
			if err := os.WriteFile(path, []byte(head+c.repos+checked), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := build.LoadRecipe(path, func(string) string { return "" })
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("LoadRecipe: %v", err)
			case c.want != "" && (err == nil || !build.IsBadInput(err) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("LoadRecipe: %v; want a bad-input error containing %q", err, c.want)
			}
		})
	}
}
