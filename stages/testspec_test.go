package stages_test

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
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

	for _, typ := range []schema.TaskType{schema.TaskReproduce, schema.TaskTestgen} {
		b.Instance.TaskType = typ
		inst, err := stages.TestSpec(store, b)
		if err != nil {
			t.Fatal(err)
		}
		if inst.TestFiles != nil || inst.TestCmd != "python3 -m pytest -rA" {
			t.Errorf("%s: test_files %q, test_cmd %q; want none and the whole suite", typ, inst.TestFiles, inst.TestCmd)
		}
	}
}
