package stages

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
)

// TestSpec returns b's task instance with the test specification an outside
// harness needs to grade it without dsbuild, in the conventions of SWE-bench
// and SWE-smith:
//
//   - test_cmd: the complete shell command run with `sh -c` in /testbed:
//     the bundle's test command followed by the test files that hold the
//     FAIL_TO_PASS and PASS_TO_PASS tests (SWE-bench's "test directives");
//   - test_files: every file of the start tree under the bundle's protected
//     prefixes, which grading restores to its start state before running
//     test_cmd (as SWE-bench checks the test patch's files out at
//     base_commit), so a patch that edits tests cannot make them pass.
//
// Reproduce and testgen tasks are answered with tests: nothing is restored
// (test_files is empty) and test_cmd runs the whole suite, so that the
// tests a model adds run too.
func TestSpec(store *cache.Store, b TaskBundle) (schema.TaskInstance, error) {
	inst := b.Instance
	argv := b.TestCmd
	if len(argv) == 0 {
		argv = DefaultTestCmd
	}
	switch inst.TaskType {
	case schema.TaskReproduce, schema.TaskTestgen:
		inst.TestCmd = shellJoin(argv)
		inst.TestFiles = nil
		return inst, nil
	}
	files, err := protectedFiles(store, b.Start, b.Protected)
	if err != nil {
		return schema.TaskInstance{}, fmt.Errorf("task %s: test files: %w", inst.InstanceID, err)
	}
	inst.TestFiles = files
	inst.TestCmd = shellJoin(append(append([]string(nil), argv...), testDirectives(inst.FailToPass, inst.PassToPass)...))
	return inst, nil
}

// protectedFiles lists the regular files and symlinks of tree under the
// protected prefixes, sorted.
func protectedFiles(store *cache.Store, tree cache.Digest, protected []string) ([]string, error) {
	if len(protected) == 0 || tree.IsZero() {
		return nil, nil
	}
	all, err := store.Files(tree)
	if err != nil {
		return nil, err
	}
	var out []string
	for p, e := range all {
		if e.Type != cache.TypeDir && patch.Selected(p, protected) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// testDirectives are the files that hold the given pytest node ids
// ("tests/test_a.py::test_x[1]" -> "tests/test_a.py"), sorted, each once.
func testDirectives(lists ...[]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, ids := range lists {
		for _, id := range ids {
			file, _, _ := strings.Cut(id, "::")
			if file != "" && !seen[file] {
				seen[file] = true
				out = append(out, file)
			}
		}
	}
	sort.Strings(out)
	return out
}
