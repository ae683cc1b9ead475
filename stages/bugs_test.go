package stages_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/gitrepo"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/stages"
)

// taskBaseLayout is testenv.PythonLayout: the test Debian rootfs as an OCI layout.
func taskBaseLayout(t *testing.T) string { t.Helper(); return testenv.PythonLayout(t) }

// writeProject writes files (path -> text) under dir/name.
func writeProject(t *testing.T, dir, name string, files map[string]string) {
	t.Helper()
	for p, text := range files {
		full := filepath.Join(dir, name, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const conftest = "import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'src'))\n"

// edgeProject exercises the rejection reasons: a mutant that loops
// forever (timeout), mutants that break import (collection), and an
// order-dependent test that passes in the full suite but fails when the
// re-verification runs FAIL_TO_PASS first (reverify).
var edgeProject = map[string]string{
	"conftest.py":          conftest,
	"src/edge/__init__.py": "",
	"src/edge/loop.py": `def countdown(n):
    i = n
    while i > 0:
        i -= 1
    return i
`,
	"src/edge/table.py": `def make_table():
    t = {}
    t["a"] = 1
    return t


ONE = make_table()["a"]
`,
	"src/edge/state.py": "flag = False\n",
	"src/edge/double.py": `def double(x):
    return x * 2
`,
	"tests/test_a_loop.py": `from edge.loop import countdown
from edge.table import ONE


def test_countdown():
    assert countdown(3) == 0


def test_one():
    assert ONE == 1
`,
	"tests/test_b_setflag.py": `from edge import state


def test_set_flag():
    state.flag = True
`,
	"tests/test_c_double.py": `from edge import state
from edge.double import double


def test_double_after_flag():
    assert state.flag
    assert double(2) == 4
`,
}

// flakyProject has a test whose outcome depends on the run number.
var flakyProject = map[string]string{
	"conftest.py":           conftest,
	"src/flaky/__init__.py": "def one():\n    return 1\n",
	"tests/test_flaky.py": `import os
from flaky import one


def test_one():
    assert one() == 1


def test_odd_runs_only():
    assert int(os.environ.get("DSBUILD_RUN", "1")) % 2 == 1
`,
}

// brokenProject has no passing test.
var brokenProject = map[string]string{
	"conftest.py":            conftest,
	"src/broken/__init__.py": "def two():\n    return 3\n",
	"tests/test_broken.py":   "from broken import two\n\n\ndef test_two():\n    assert two() == 2\n",
}

const taskRecipe = `name: tasktest
environments:
  python: {layout: %q}
sandbox: {timeout: 60s}
stages:
  repos:
    uses: repo
    with: {paths: [%q, "projects/*"], allow_outside: true}
  checked:
    uses: validate
    foreach: repos
    with: {runs: 3}
  bugs:
    uses: inject_bugs
    foreach: checked
    with: {per_repo: 4, candidates: 14, combine: 1, seed: 3, test_timeout: 3s}
  edgebugs:
    uses: inject_bugs
    foreach: checked
    with: {per_repo: 5, candidates: 40, transforms: [swap_arith, remove_statement], include: ["src/edge/**"], test_timeout: 2s}
  stubs:
    uses: stub_tasks
    foreach: checked
    with: {group: module, test_timeout: 3s}
`

type taskBuild struct {
	dir   string
	text  []byte
	store *cache.Store
	rec   *build.Record
	r     *build.Recipe
}

// buildTaskRecipe builds taskRecipe over mathx (from the quickstart) and
// the edge, flaky and broken projects.
func buildTaskRecipe(t *testing.T) *taskBuild {
	t.Helper()
	base := taskBaseLayout(t)
	dir := t.TempDir()
	writeProject(t, filepath.Join(dir, "projects"), "edge", edgeProject)
	writeProject(t, filepath.Join(dir, "projects"), "flaky", flakyProject)
	writeProject(t, filepath.Join(dir, "projects"), "broken", brokenProject)
	mathx, err := filepath.Abs("../recipes/quickstart/projects/mathx")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "recipe.yaml")
	text := []byte(fmt.Sprintf(taskRecipe, base, mathx))
	if err := os.WriteFile(p, text, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	store := testenv.Store(t)
	rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")})
	if err != nil {
		t.Fatal(err)
	}
	return &taskBuild{dir: dir, text: text, store: store, rec: rec, r: r}
}

func (b *taskBuild) summary(t *testing.T, stage string) build.StageSummary {
	t.Helper()
	for _, s := range b.rec.Stages {
		if s.Stage == stage {
			return s
		}
	}
	t.Fatalf("no stage %s in the record", stage)
	return build.StageSummary{}
}

// nodeCounts returns the counters of the node of stage for item.
func (b *taskBuild) nodeCounts(t *testing.T, stage, item string) map[string]float64 {
	t.Helper()
	for _, n := range b.rec.Nodes {
		if n.Stage == stage && (n.Item == item || strings.HasPrefix(n.Item, item+"/")) {
			var res struct {
				Counts map[string]float64 `json:"counts"`
			}
			if err := build.GetJSON(b.store, n.Result, &res); err != nil {
				t.Fatalf("node %s: %v", n.ID, err)
			}
			return res.Counts
		}
	}
	t.Fatalf("no node of %s for %s", stage, item)
	return nil
}

// items returns the output items (as the node named them) of the node of
// stage for repo.
func (b *taskBuild) items(t *testing.T, stage, repo string) []build.Item {
	t.Helper()
	var out []build.Item
	for _, n := range b.rec.Nodes {
		if n.Stage != stage || (n.Item != repo && !strings.HasPrefix(n.Item, repo+"/")) {
			continue
		}
		var res struct {
			Output build.Output `json:"output"`
		}
		if err := build.GetJSON(b.store, n.Result, &res); err != nil {
			t.Fatalf("node %s: %v", n.ID, err)
		}
		out = append(out, res.Output.Items...)
	}
	return out
}

func (b *taskBuild) bundles(t *testing.T, stage, repo string) []stages.TaskBundle {
	t.Helper()
	var out []stages.TaskBundle
	for _, it := range b.items(t, stage, repo) {
		var tb stages.TaskBundle
		if err := build.GetJSON(b.store, it.Value, &tb); err != nil {
			t.Fatal(err)
		}
		out = append(out, tb)
	}
	return out
}

// TestTaskKinds builds one recipe through repo, validate, inject_bugs and
// stub_tasks in a real sandbox and checks each kind's output; sharing the
// build keeps the suite fast.
func TestTaskKinds(t *testing.T) {
	b := buildTaskRecipe(t)
	t.Run("validate", func(t *testing.T) { checkValidate(t, b) })
	t.Run("inject_bugs", func(t *testing.T) { checkInjectBugs(t, b) })
	t.Run("inject_bugs_rejections", func(t *testing.T) { checkBugRejections(t, b) })
	t.Run("stub_tasks", func(t *testing.T) { checkStubTasks(t, b) })
	t.Run("bad_transform", func(t *testing.T) {
		// mutate.py refuses an unknown transform (exit 2): bad input,
		// reported as such, not an infrastructure failure.
		text := strings.Replace(string(b.text), "transforms: [swap_arith, remove_statement]", "transforms: [no_such_transform]", 1)
		p := filepath.Join(b.dir, "bad-recipe.yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := build.LoadRecipe(p, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		_, err = build.Build(context.Background(), r, b.store, build.Options{OutDir: t.TempDir(), KeepGoing: true})
		if err == nil || !build.IsBadInput(err) || !strings.Contains(err.Error(), "no_such_transform") {
			t.Errorf("unknown transform: error %v (bad input: %v)", err, build.IsBadInput(err))
		}
	})
	t.Run("replay", func(t *testing.T) {
		rec, err := build.Build(context.Background(), b.r, b.store, build.Options{OutDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range rec.Stages {
			if s.Stage != "repos" && s.Ran != 0 {
				t.Errorf("stage %s ran %d nodes again", s.Stage, s.Ran)
			}
		}
		old := map[string]cache.Digest{}
		for _, n := range b.rec.Nodes {
			old[n.ID] = n.Result
		}
		for _, n := range rec.Nodes {
			if old[n.ID] != n.Result {
				t.Errorf("node %s has another result on replay", n.ID)
			}
		}
	})
}

func checkInjectBugs(t *testing.T, b *taskBuild) {
	bundles := b.bundles(t, "bugs", "mathx")
	if len(bundles) != 4 {
		t.Fatalf("mathx: %d bug instances, want per_repo = 4 (counts %v)", len(bundles), b.nodeCounts(t, "bugs", "mathx"))
	}
	items := b.items(t, "bugs", "mathx")
	if items[0].Name != "mathx.bug-0" {
		t.Errorf("first item is named %q", items[0].Name)
	}
	env := agent.Env{Store: b.store}
	runner, err := sandbox.New(b.store, sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env.Sandbox = runner
	orig, err := b.store.Snapshot("../recipes/quickstart/projects/mathx")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	combined := 0
	for _, tb := range bundles {
		in := tb.Instance
		if ids[in.InstanceID] {
			t.Errorf("instance id %s twice", in.InstanceID)
		}
		ids[in.InstanceID] = true
		if !strings.HasPrefix(in.InstanceID, "mathx__") || in.TaskType != "fix" || in.Repo != "mathx" || in.SourceProject != "mathx" {
			t.Errorf("instance %s: id/type/repo %q %q %q", in.InstanceID, in.TaskType, in.Repo, in.SourceProject)
		}
		if strings.HasPrefix(in.InstanceID, "mathx__combine-") {
			combined++
		}
		if err := in.Validate(); err != nil {
			t.Error(err)
		}
		if len(in.FailToPass) == 0 || len(in.PassToPass) == 0 || in.Difficulty < 1 {
			t.Errorf("%s: F2P %v, P2P %d tests, difficulty %d", in.InstanceID, in.FailToPass, len(in.PassToPass), in.Difficulty)
		}
		// The Debian base, the project's install layer, the start tree.
		if in.Image != tb.Image.Ref+"@"+tb.Image.Digest || len(tb.Image.Layers) != 3 {
			t.Errorf("%s: image %q, bundle image %+v", in.InstanceID, in.Image, tb.Image)
		}
		commit, err := gitrepo.Commit(b.store, tb.Start)
		if err != nil || in.BaseCommit != commit.String() || in.EnvironmentSetupCommit != in.BaseCommit || in.CreatedAt != "1970-01-01T00:00:00Z" || in.TestPatch != "" {
			t.Errorf("%s: base_commit %s environment_setup_commit %s (start tree's commit %s, %v) created_at %s", in.InstanceID, in.BaseCommit, in.EnvironmentSetupCommit, commit, err, in.CreatedAt)
		}
		checkGitImage(t, b.store, tb.Image, in.BaseCommit)
		// The gold patch turns the start tree back into the project, and
		// touches no test.
		fixed, err := patch.Apply(b.store, tb.Start, in.Patch)
		if err != nil || fixed != orig || fixed != tb.Solution {
			t.Errorf("%s: gold patch gives %v (err %v), want the original %v", in.InstanceID, fixed, err, orig)
		}
		paths, _ := patch.Paths(in.Patch)
		for _, p := range paths {
			if !strings.HasPrefix(p, "src/") {
				t.Errorf("%s: gold patch touches %s", in.InstanceID, p)
			}
		}
		// The statement reports the failing tests but not the bug.
		if !strings.Contains(in.ProblemStatement, in.FailToPass[0]) || strings.Contains(in.ProblemStatement, "diff --git") ||
			strings.Contains(in.ProblemStatement, "replaced") || strings.Contains(in.ProblemStatement, "swap") {
			t.Errorf("%s: problem statement:\n%s", in.InstanceID, in.ProblemStatement)
		}
		if !slices.Contains(tb.Protected, "tests/") || !slices.Contains(tb.Protected, "conftest.py") {
			t.Errorf("%s: protected %v", in.InstanceID, tb.Protected)
		}
		// The packaged image (with the buggy tree baked in) fails the
		// FAIL_TO_PASS tests when run without a workspace of its own, and
		// grading the solution resolves the task.
		g, err := agent.Grade(context.Background(), env, agent.Task{
			InstanceID: in.InstanceID, Image: tb.Image, Workspace: tb.Start, Protected: tb.Protected,
			TestCmd: tb.TestCmd, FailToPass: in.FailToPass, PassToPass: in.PassToPass,
		}, tb.Solution)
		if err != nil || !g.Resolved {
			t.Errorf("%s: grading the solution: resolved %v, err %v", in.InstanceID, g != nil && g.Resolved, err)
		}
		g, err = agent.Grade(context.Background(), env, agent.Task{
			InstanceID: in.InstanceID, Image: tb.Image, Workspace: tb.Start, Protected: tb.Protected,
			TestCmd: tb.TestCmd, FailToPass: in.FailToPass, PassToPass: in.PassToPass,
		}, tb.Start)
		if err != nil || g.Resolved {
			t.Errorf("%s: grading the buggy tree: resolved %v, err %v", in.InstanceID, g != nil && g.Resolved, err)
		}
	}
	if combined != 1 {
		t.Errorf("%d combined instances, want combine = 1", combined)
	}
	counts := b.nodeCounts(t, "bugs", "mathx")
	if counts["kept"] != 4 {
		t.Errorf("mathx bug counters %v, want kept 4", counts)
	}
}

func checkBugRejections(t *testing.T, b *taskBuild) {
	counts := b.nodeCounts(t, "edgebugs", "edge")
	for _, reason := range []string{"rejected:timeout", "rejected:breaks collection", "rejected:reverify"} {
		if counts[reason] < 1 {
			t.Errorf("edge: no %q in counters %v", reason, counts)
		}
	}
	bundles := b.bundles(t, "edgebugs", "edge")
	if len(bundles) != 1 || int(counts["kept"]) != len(bundles) {
		t.Fatalf("edge: %d instances, counters %v; want only the removed `i = n`", len(bundles), counts)
	}
	in := bundles[0].Instance
	if !slices.Equal(in.FailToPass, []string{"tests/test_a_loop.py::test_countdown"}) || !strings.HasPrefix(in.InstanceID, "edge__remove_statement-") {
		t.Errorf("edge instance %s: F2P %v", in.InstanceID, in.FailToPass)
	}
	if !strings.Contains(in.ProblemStatement, "UnboundLocalError") {
		t.Errorf("edge statement does not quote the error:\n%s", in.ProblemStatement)
	}
}

// slowProject's suite takes 9 s of wall-clock time (a sleep) but well under
// a second of CPU time.
var slowProject = map[string]string{
	"conftest.py":          conftest,
	"src/slow/__init__.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
	"tests/test_slow.py": `import time
from slow import add, sub


def test_add_slowly():
    time.sleep(9)
    assert add(2, 3) == 5


def test_sub():
    assert sub(5, 3) == 2
`,
}

// test_timeout is a CPU-time budget, not a wall-clock limit: a suite that
// sleeps past it (using no CPU, so this holds on any machine and under any
// load) is not rejected as "timeout", and its bugs are kept. The sleep is
// longer than test_timeout times sandbox.SlackFactor, so the sandbox's
// slack re-run alone would not save a wall-clock limit of test_timeout.
func TestTestTimeoutBoundsCPUTime(t *testing.T) {
	base := taskBaseLayout(t)
	dir := t.TempDir()
	writeProject(t, filepath.Join(dir, "projects"), "slow", slowProject)
	text := fmt.Sprintf(`name: slowtest
environments:
  python: {layout: %q}
sandbox: {timeout: 60s}
stages:
  repos:   {uses: repo, with: {paths: ["projects/*"]}}
  checked: {uses: validate, foreach: repos, with: {runs: 1}}
  bugs:    {uses: inject_bugs, foreach: checked, with: {per_repo: 1, candidates: 2, transforms: [swap_arith], test_timeout: 2s}}
`, base)
	p := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	store := testenv.Store(t)
	rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")})
	if err != nil {
		t.Fatal(err)
	}
	b := &taskBuild{dir: dir, text: []byte(text), store: store, rec: rec, r: r}
	counts := b.nodeCounts(t, "bugs", "slow")
	if counts["kept"] != 1 || counts["rejected:timeout"] != 0 {
		t.Fatalf("slow: bug counters %v; want one kept and none rejected as timeout", counts)
	}
	in := b.bundles(t, "bugs", "slow")[0].Instance
	if len(in.FailToPass)+len(in.PassToPass) != 2 {
		t.Errorf("%s: F2P %v, P2P %v; want both tests", in.InstanceID, in.FailToPass, in.PassToPass)
	}
}
