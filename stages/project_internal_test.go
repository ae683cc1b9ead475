package stages

import (
	"slices"
	"testing"

	"github.com/dsbuild/dsbuild/agent"
)

// TestPluginOptions drops from addopts the options pytest (7.2, bookworm)
// reports for plugins the environment lacks, with the values of options
// given without "=", and keeps the rest.
func TestPluginOptions(t *testing.T) {
	addopts := []string{"-p", "xdist", "--cov=foo", "--cov-report", "term", "-n", "auto", "--strict-markers", "-ra"}
	importErr := `ImportError: Error importing plugin "xdist": No module named 'xdist'`
	kept, dropped, required := pluginOptions(addopts, importErr)
	if !slices.Equal(dropped, []string{"-p", "xdist"}) || len(kept) != len(addopts)-2 || required {
		t.Errorf("import error: kept %v, dropped %v, required %v", kept, dropped, required)
	}
	usage := "ERROR: usage: __main__.py [options] [file_or_dir] [file_or_dir] [...]\n" +
		"__main__.py: error: unrecognized arguments: --cov=foo --cov-report -n auto\n  inifile: /testbed/tox.ini\n"
	kept, dropped, _ = pluginOptions(kept, usage)
	if !slices.Equal(kept, []string{"--strict-markers", "-ra"}) || !slices.Equal(dropped, []string{"--cov=foo", "--cov-report", "term", "-n", "auto"}) {
		t.Errorf("usage error: kept %v, dropped %v", kept, dropped)
	}
	// An error about options that are not in addopts (the recipe's own
	// test_cmd) drops nothing.
	if kept, dropped, _ := pluginOptions([]string{"-q"}, usage); len(dropped) != 0 || !slices.Equal(kept, []string{"-q"}) {
		t.Errorf("foreign error: kept %v, dropped %v", kept, dropped)
	}
	if _, _, required := pluginOptions(nil, "Missing required plugins: pytest-mock"); !required {
		t.Error("required_plugins not noticed")
	}
	// -pNAME in one word.
	if kept, dropped, _ := pluginOptions([]string{"-pxdist", "-q"}, importErr); !slices.Equal(kept, []string{"-q"}) || len(dropped) != 1 {
		t.Errorf("-pxdist: kept %v, dropped %v", kept, dropped)
	}
}

// TestSuiteSeconds reads pytest's session time, -q and full summaries.
func TestSuiteSeconds(t *testing.T) {
	reports := []*agent.TestReport{
		{Output: "....\n736 passed in 41.23s\n"},
		{Output: "=== 730 passed, 6 failed in 52.50s (0:00:52) ===\n"},
		{Output: "no summary"},
	}
	if got := suiteSeconds(reports); got != 52.5 {
		t.Errorf("suiteSeconds = %v, want 52.5", got)
	}
}
