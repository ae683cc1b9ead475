package stages_test

import (
	"slices"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/stages"
)

// checkValidate looks at the validate stage of TestTaskKinds: flaky tests
// (here: failing on even DSBUILD_RUN) are excluded, a repository without a
// passing test is rejected with its reason, and good ones are kept whole,
// their tests found in their tests/ directory.
func checkValidate(t *testing.T, b *taskBuild) {
	get := func(repo string) *stages.Validated {
		items := b.items(t, "checked", repo)
		if len(items) == 0 {
			return nil
		}
		var v stages.Validated
		if err := build.GetJSON(b.store, items[0].Value, &v); err != nil {
			t.Fatal(err)
		}
		return &v
	}
	if v := get("broken"); v != nil {
		t.Errorf("broken project was kept: %+v", v.Status)
	}
	// The rejection names its cause: the first test that did not pass,
	// with pytest's message.
	want := "rejected:no passing test: none of 1 tests passes; first: tests/test_broken.py::test_two failed: assert 3 == 2"
	if c := b.nodeCounts(t, "checked", "broken"); c[want] != 1 {
		t.Errorf("broken project counters %v; want %q", c, want)
	}

	flaky := get("flaky")
	if flaky == nil {
		t.Fatal("flaky project was rejected; its stable test passes")
	}
	if !slices.Equal(flaky.Flaky, []string{"tests/test_flaky.py::test_odd_runs_only"}) {
		t.Errorf("flaky tests %v", flaky.Flaky)
	}
	if _, ok := flaky.Status["tests/test_flaky.py::test_odd_runs_only"]; ok || flaky.Status["tests/test_flaky.py::test_one"] != "PASSED" {
		t.Errorf("flaky project status %v", flaky.Status)
	}

	mathx := get("mathx")
	if mathx == nil {
		t.Fatal("mathx was rejected")
	}
	if len(mathx.Status) != 33 || len(mathx.Flaky) != 0 {
		t.Errorf("mathx: %d tests, flaky %v", len(mathx.Status), mathx.Flaky)
	}
	if mathx.Repo != "mathx" || len(mathx.Image.Layers) != len(mathx.Base.Layers)+1 || !slices.Equal(mathx.TestPaths, []string{"tests"}) {
		t.Errorf("mathx validated: %+v", mathx)
	}
	if s := b.summary(t, "checked"); s.Counts["kept"] != 3 || s.Items != 3 {
		t.Errorf("checked summary %+v", s)
	}
}
