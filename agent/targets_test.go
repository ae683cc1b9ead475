package agent_test

import (
	"slices"
	"testing"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/lang"
)

// TestTargets keeps the files each language's runner runs as tests and
// leaves out the helpers beside them, which grading overlays but does not
// name on the command line (go test on a testdata directory, cargo test
// --test common or node on a fixture would fail or run nothing).
func TestTestTargets(t *testing.T) {
	for _, c := range []struct {
		language string
		paths    []string
		want     []string
	}{
		{"python", []string{"tests/test_a.py", "tests/conftest.py", "tests/helpers.py", "pkg/b_test.py", "tests/data.json"},
			[]string{"pkg/b_test.py", "tests/test_a.py"}},
		{"go", []string{"calc/add_test.go", "calc/testdata/in.txt", "task_x_test.go", "calc/add_test.go"},
			[]string{"calc/add_test.go", "task_x_test.go"}},
		{"javascript", []string{"test/task_x.test.js", "test/fixtures/data.json", "src/a.spec.mjs", "src/a.js"},
			[]string{"src/a.spec.mjs", "test/task_x.test.js"}},
		{"rust", []string{"tests/task_x.rs", "tests/common/mod.rs", "tests/big/main.rs", "tests/data/in.txt", "src/lib.rs"},
			[]string{"tests/big/main.rs", "tests/task_x.rs"}},
	} {
		p, err := lang.Get(c.language)
		if err != nil {
			t.Fatal(err)
		}
		if got := agent.TestTargets(p, c.paths); !slices.Equal(got, c.want) {
			t.Errorf("TestTargets(%s, %q) = %q, want %q", c.language, c.paths, got, c.want)
		}
	}
}
