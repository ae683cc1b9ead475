package stages_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
)

// A model profile the recipe does not define is bad input found at load
// time, located at the param that names it, for every kind that uses models.
func TestUndefinedModelIsFoundAtLoad(t *testing.T) {
	for _, stage := range []string{
		`{uses: propose_projects, with: {model: nosuch, themes: [a]}}`,
		`{uses: rollout, foreach: src, with: {policy: model, model: nosuch}}`,
		`{uses: derive_reproduce, foreach: src, with: {model: teacher, agent_model: nosuch}}`,
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, "recipe.yaml")
		text := `name: m
models:
  teacher: {model: m, base_url: "http://127.0.0.1:1/v1", api_key_env: NONE}
stages:
  src: {uses: list, with: {items: [a]}}
  x: ` + stage + "\n"
		os.WriteFile(p, []byte(text), 0o644)
		_, err := build.LoadRecipe(p, func(string) string { return "" })
		if !build.IsBadInput(err) || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "recipe.yaml:6:") {
			t.Errorf("%s: err = %v", stage, err)
		}
	}
}
