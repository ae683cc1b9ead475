package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/llm/llmtest"
)

const retryRecipe = `name: retrytest
models:
  m: {base_url: %q, model: scripted, api_key_env: RETRY_TEST_KEY}
stages:
  projects:
    uses: propose_projects
    with: {model: m, themes: [parsing, graphs], per_call: 1, min_tasks: 3}
`

// The endpoint's 429 and 500 replies are retried, counted on the stage
// whose call they delayed and shown in the build summary, with a log line;
// the summary's TIME is the stage's wall time, within the build's.
func TestSummaryShowsRetriesAndWallTime(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(llmtest.RateLimited(time.Millisecond), llmtest.Status(500))
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		theme := "parsing"
		if strings.Contains(r.LastUserMessage(), "graphs") {
			theme = "graphs"
		}
		b, _ := json.Marshal(map[string]any{"projects": []any{map[string]any{
			"id": theme + "_kit", "name": theme + " kit", "language": "python",
			"description":   "A small library for " + theme + " with a command-line front end.",
			"specification": "Input and output of " + theme + " operations, errors raise ValueError.",
		}}})
		return llmtest.Text(string(b))
	})
	t.Setenv("RETRY_TEST_KEY", "sk-test-not-a-secret")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "recipe.yaml"), []byte(fmt.Sprintf(retryRecipe, srv.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	r := dsbuild(t, dir, "--cache", filepath.Join(dir, "cache"), "--out", "out", "recipe.yaml")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	all := r.stdout + r.stderr
	if !strings.Contains(all, "llm retries=2 (http 429: 1, http 500: 1)") {
		t.Errorf("the summary does not show the retries:\n%s", all)
	}
	if !strings.Contains(all, "retried 1 times (http 429") && !strings.Contains(all, "retried 2 times (http 429, http 500)") {
		t.Errorf("no log line for the retried call:\n%s", all)
	}
	header := regexp.MustCompile(`(?m)^STAGE\s+KIND\s+NODES\s+RAN\s+CACHED\s+FAILED\s+ITEMS\s+TIME\s+NODE TIME\s+DETAILS$`)
	if !header.MatchString(r.stdout) {
		t.Fatalf("summary header:\n%s", r.stdout)
	}
	row := regexp.MustCompile(`(?m)^projects\s+propose_projects\s+1\s+1\s+0\s+0\s+\d+\s+([0-9.]+)s\s+([0-9.]+)s\s`).FindStringSubmatch(r.stdout)
	total := regexp.MustCompile(`build retrytest: ok in ([0-9.]+)s`).FindStringSubmatch(r.stdout)
	if row == nil || total == nil {
		t.Fatalf("summary:\n%s", r.stdout)
	}
	wall, _ := strconv.ParseFloat(row[1], 64)
	build, _ := strconv.ParseFloat(total[1], 64)
	if wall <= 0 || wall > build+0.05 {
		t.Errorf("stage TIME %.1fs, build %.2fs", wall, build)
	}
}
