package agent_test

import (
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
)

// Grading restores the tests, and also every conftest.py and pytest.ini a
// patch adds or changes anywhere: a new conftest.py with a hook that turns
// failures into passes must not survive.
func TestRestoreProtectedTakesConftestAnywhere(t *testing.T) {
	st, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	python, err := lang.Get(lang.Python)
	if err != nil {
		t.Fatal(err)
	}
	start, err := st.PutFiles(map[string]cache.File{
		"pkg/mod.py":        {Data: []byte("def f():\n    return 1\n")},
		"tests/test_mod.py": {Data: []byte("def test_f():\n    assert False\n")},
		"tests/conftest.py": {Data: []byte("# fixtures\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	final, err := st.PutFiles(map[string]cache.File{
		"pkg/mod.py":        {Data: []byte("def f():\n    return 2\n")},
		"tests/test_mod.py": {Data: []byte("def test_f():\n    assert True\n")},
		"conftest.py":       {Data: []byte("import pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n    yield\n")},
		"pkg/conftest.py":   {Data: []byte("# hack\n")},
		"pytest.ini":        {Data: []byte("[pytest]\naddopts = -p no:warnings\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	changed, err := agent.ProtectedChanges(st, python, start, final, []string{"tests/test_mod.py"})
	if err != nil {
		t.Fatal(err)
	}
	want := "conftest.py pkg/conftest.py pytest.ini tests/conftest.py tests/test_mod.py"
	if got := strings.Join(changed, " "); got != want {
		t.Errorf("protected changes %q, want %q", got, want)
	}
	restored, err := agent.RestoreProtected(st, python, start, final, []string{"tests/test_mod.py"})
	if err != nil {
		t.Fatal(err)
	}
	files, err := st.Files(restored)
	if err != nil {
		t.Fatal(err)
	}
	startFiles, _ := st.Files(start)
	finalFiles, _ := st.Files(final)
	if len(files) != 3 || files["tests/test_mod.py"] != startFiles["tests/test_mod.py"] ||
		files["tests/conftest.py"] != startFiles["tests/conftest.py"] || files["pkg/mod.py"] != finalFiles["pkg/mod.py"] {
		t.Errorf("restored tree %v", files)
	}
	// Nothing protected: nothing restored.
	if got, _ := agent.RestoreProtected(st, python, start, final, nil); got != final {
		t.Error("restored with nothing protected")
	}
}
