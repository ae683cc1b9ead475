package lang_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// TestInSandbox runs real test runners in the bubblewrap sandbox on a
// Debian bookworm image with golang-go, nodejs, rustc and cargo
// (testenv.LangImage, unpacked once for both groups of subtests): the
// runner cases ("runner/...", see runnerOutput) and the quickstart
// projects ("projects/...", see quickstartProjects).
func TestInSandbox(t *testing.T) {
	st := testenv.Store(t)
	r, err := sandbox.New(st, sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := testenv.LangImage(t, st)
	t.Run("runner", func(t *testing.T) { runnerOutput(t, st, r, img) })
	t.Run("projects", func(t *testing.T) { quickstartProjects(t, st, r, img) })
}

// runnerOutput runs each runner case's project with its profile's
// TestCommand and TestEnv and checks the parsed report. With
// DSBUILD_CAPTURE=1 it also writes the output (stdout then stderr, as
// graders read it) to testdata/captured/<case>.out for
// TestParseCapturedOutput.
func runnerOutput(t *testing.T, st *cache.Store, r *sandbox.Runner, img schema.Image) {
	for _, c := range runnerCases {
		t.Run(c.name, func(t *testing.T) {
			p, err := lang.Get(c.language)
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]cache.File{}
			for name, data := range projectFiles(t, c) {
				files[name] = cache.File{Data: data}
			}
			ws, err := st.PutFiles(files)
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Run(context.Background(), sandbox.Spec{
				Image:     img,
				Workspace: ws,
				Argv:      p.TestCommand(nil),
				Env:       p.TestEnv(),
				Dir:       "/testbed",
				Limits:    sandbox.Limits{Timeout: 5 * time.Minute},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.LimitHit != "" {
				t.Fatalf("limit %s hit:\n%s%s", res.LimitHit, res.Stdout, res.Stderr)
			}
			if res.ExitCode == 0 {
				t.Errorf("exit status 0, want a failure (every fixture has failing tests)")
			}
			out := string(res.Stdout) + string(res.Stderr)
			if os.Getenv("DSBUILD_CAPTURE") != "" {
				dst := filepath.Join("testdata", "captured", c.name+".out")
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			checkReport(t, c, p.ParseReport(out), out)
		})
	}
}
