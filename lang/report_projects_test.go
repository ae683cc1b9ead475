package lang_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// quickstartProjects runs the test suites of the projects under
// recipes/languages (the quickstart projects of each language) in the
// sandbox (see TestInSandbox): every test passes, the profile detects the
// project, and a TestCommand narrowed to one test file runs exactly that
// file's tests (TestFiles maps them back to it).
func quickstartProjects(t *testing.T, st *cache.Store, r *sandbox.Runner, img schema.Image) {
	for _, c := range []struct {
		language string
		minTests int
		narrow   string // one test file
	}{
		{"go", 25, "text/text_test.go"},
		{"javascript", 25, "test/dates.test.js"},
		{"rust", 20, "tests/matrix.rs"},
	} {
		t.Run(c.language, func(t *testing.T) {
			p, err := lang.Get(c.language)
			if err != nil {
				t.Fatal(err)
			}
			root := filepath.Join("..", "recipes", "languages", c.language)
			files := map[string]cache.File{}
			var names []string
			err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(root, path)
				b, err := os.ReadFile(path)
				files[filepath.ToSlash(rel)] = cache.File{Data: b}
				names = append(names, filepath.ToSlash(rel))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(names)
			if got := lang.Detect(names); got == nil || got.Name() != c.language {
				t.Errorf("lang.Detect(%s project) = %v", c.language, got)
			}
			ws, err := st.PutFiles(files)
			if err != nil {
				t.Fatal(err)
			}
			run := func(paths []string) (lang.Report, int, string) {
				res, err := r.Run(context.Background(), sandbox.Spec{
					Image: img, Workspace: ws, Argv: p.TestCommand(paths), Env: p.TestEnv(),
					Dir: "/testbed", Limits: sandbox.Limits{Timeout: 5 * time.Minute},
				})
				if err != nil {
					t.Fatal(err)
				}
				out := string(res.Stdout) + string(res.Stderr)
				return p.ParseReport(out), res.ExitCode, out
			}

			all, exit, out := run(nil)
			if exit != 0 || len(all.CollectionErrors) > 0 || len(all.Status) < c.minTests {
				t.Fatalf("exit %d, collection errors %q, %d tests (want >= %d):\n%s", exit, all.CollectionErrors, len(all.Status), c.minTests, out)
			}
			for id, s := range all.Status {
				if s != lang.StatusPassed {
					t.Errorf("%s: %s", id, s)
				}
			}
			var ids []string
			for id := range all.Status {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			t.Logf("%d tests pass, e.g. %q", len(ids), ids[0])

			one, exit, out := run([]string{c.narrow})
			if exit != 0 || len(one.Status) == 0 || len(one.Status) >= len(all.Status) {
				t.Fatalf("narrowed to %s: exit %d, %d of %d tests:\n%s", c.narrow, exit, len(one.Status), len(all.Status), out)
			}
			var narrowed []string
			for id := range one.Status {
				if all.Status[id] == "" {
					t.Errorf("narrowed run has %q, which the full run has not", id)
				}
				narrowed = append(narrowed, id)
			}
			if got := p.TestFiles(narrowed, names); len(got) != 1 || got[0] != c.narrow {
				t.Errorf("TestFiles(tests of %s) = %q", c.narrow, got)
			}
			for _, id := range ids {
				if _, ok := one.Status[id]; !ok && strings.Join(p.TestFiles([]string{id}, names), ",") == c.narrow {
					t.Errorf("%q is in %s but the narrowed run left it out", id, c.narrow)
				}
			}
		})
	}
}
