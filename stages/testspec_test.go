package stages_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
)

// TestSpec expands the protected prefixes to the start tree's files and
// makes test_cmd the test command with the test files of FAIL_TO_PASS and
// PASS_TO_PASS as its directives; tasks answered with tests restore
// nothing and run the whole suite. The result survives the Hub encoding.
func TestTestSpec(t *testing.T) {
	store, err := cache.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	start, err := store.PutFiles(map[string]cache.File{
		"conftest.py":            {Data: []byte("# root\n")},
		"src/m/__init__.py":      {Data: []byte("")},
		"tests/__init__.py":      {Data: []byte("")},
		"tests/data/case.txt":    {Data: []byte("1\n")},
		"tests/test_a.py":        {Data: []byte("def test_x(): pass\n")},
		"tests/test b.py":        {Data: []byte("def test_y(): pass\n")},
		"tests_extra/test_no.py": {Data: []byte("")},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := stages.TaskBundle{
		Instance: schema.TaskInstance{
			InstanceID: "m.bug.1", TaskType: schema.TaskFix, TestCmd: "python3 -m pytest",
			FailToPass: []string{"tests/test_a.py::test_x"},
			PassToPass: []string{"tests/test b.py::test_y[1 2]", "tests/test_a.py::test_z"},
		},
		Start: start, TestCmd: []string{"python3", "-m", "pytest", "-rA"},
		Protected: []string{"tests/", "conftest.py"},
	}
	inst, err := stages.TestSpec(store, b)
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"conftest.py", "tests/__init__.py", "tests/data/case.txt", "tests/test b.py", "tests/test_a.py"}
	if !reflect.DeepEqual(inst.TestFiles, wantFiles) {
		t.Errorf("test_files = %q, want %q", inst.TestFiles, wantFiles)
	}
	if want := `python3 -m pytest -rA 'tests/test b.py' tests/test_a.py`; inst.TestCmd != want {
		t.Errorf("test_cmd = %q, want %q", inst.TestCmd, want)
	}
	if b.Instance.TestCmd != "python3 -m pytest" || b.Instance.TestFiles != nil {
		t.Error("TestSpec changed the bundle's own instance")
	}
	line, err := inst.SWEBenchJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := schema.ParseSWEBenchJSON(line)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.TestFiles, wantFiles) || back.TestCmd != inst.TestCmd {
		t.Errorf("after the Hub encoding: test_files %q, test_cmd %q", back.TestFiles, back.TestCmd)
	}

	// Tasks answered with tests carry what grading them needs: the fix, or
	// the mutants, as code-only diffs against the start tree.
	edit := func(path, text string) cache.Digest {
		t.Helper()
		d, err := patch.Edit(store, start, map[string]*cache.TreeEntry{path: {Type: cache.TypeFile, Digest: mustPut(t, store, text)}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	fixed := edit("src/m/__init__.py", "X = 1\n")
	b.Instance.TaskType, b.Fixed, b.Instance.Patch = schema.TaskReproduce, fixed, "the reference test"
	inst, err = stages.TestSpec(store, b)
	if err != nil {
		t.Fatal(err)
	}
	if inst.TestFiles != nil || inst.TestCmd != "python3 -m pytest -rA" {
		t.Errorf("reproduce: test_files %q, test_cmd %q; want none and the whole suite", inst.TestFiles, inst.TestCmd)
	}
	if back, err := patch.Apply(store, start, inst.GoldenCodePatch); err != nil || readFile(t, store, back, "src/m/__init__.py") != "X = 1\n" || inst.GoldenTestPatch != "the reference test" {
		t.Errorf("reproduce: golden_code_patch %q (applies: %v), golden_test_patch %q", inst.GoldenCodePatch, err, inst.GoldenTestPatch)
	}
	b.Fixed = cache.Digest{}
	if _, err := stages.TestSpec(store, b); err == nil {
		t.Error("a reproduce bundle without its fixed tree got a test spec")
	}

	b.Instance.TaskType = schema.TaskTestgen
	b.Mutants = []cache.Digest{fixed, edit("src/m/__init__.py", "X = 2\n")}
	inst, err = stages.TestSpec(store, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(inst.MutantPatches) != 2 || inst.GoldenCodePatch != "" {
		t.Fatalf("testgen: mutant_patches %q, golden_code_patch %q", inst.MutantPatches, inst.GoldenCodePatch)
	}
	for i, m := range inst.MutantPatches {
		if back, err := patch.Apply(store, start, m); err != nil || readFile(t, store, back, "src/m/__init__.py") != readFile(t, store, b.Mutants[i], "src/m/__init__.py") {
			t.Errorf("mutant_patches[%d] does not make mutant %d: %v", i, i, err)
		}
	}
	line, err = inst.SWEBenchJSON()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := schema.ParseSWEBenchJSON(line); err != nil || !reflect.DeepEqual(back.MutantPatches, inst.MutantPatches) {
		t.Errorf("mutant_patches after the Hub encoding: %q (%v)", back.MutantPatches, err)
	}
	b.Mutants = append(b.Mutants, edit("tests/test_a.py", "def test_x(): assert 0\n"))
	if _, err := stages.TestSpec(store, b); err == nil || !strings.Contains(err.Error(), "tests/test_a.py") {
		t.Errorf("a mutant that edits a test file: %v", err)
	}
}

func mustPut(t *testing.T, store *cache.Store, text string) cache.Digest {
	t.Helper()
	d, err := store.Put([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readFile(t *testing.T, store *cache.Store, tree cache.Digest, path string) string {
	t.Helper()
	b, err := store.ReadFile(tree, path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
