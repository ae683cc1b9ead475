package stages

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
	"golang.org/x/sync/errgroup"
)

func init() {
	build.Register(&build.Kind{
		Name: "validate", Version: withLang("6"),
		Doc:      "detects a repository's language (or takes language:), installs a Python repository into its environment (src/ or flat layout, as pip install -e would), runs its tests (for Python the project's pytest testpaths unless the recipe names test paths; otherwise the language's test command) several times; keeps it (minus flaky tests and modules that cannot be collected) if a test passes",
		Params:   func() any { return &ValidateParams{Runs: 3} },
		Pool:     "sandbox",
		Sections: []string{SectionEnvironments, SectionSandbox, SectionSalt},
		Assets:   []*build.Asset{projectAsset},
		Run:      runValidate,
	})
}

// RunEnvVar is set to the run number (1, 2, ...) in the environment of each
// of validate's test runs. Sandbox runs are memoised by their inputs, so
// without it the second and third run would replay the first instead of
// running again; with it each run has a key of its own and flaky tests can
// show. A test suite may read it, but should not need to.
const RunEnvVar = "DSBUILD_RUN"

// ValidateParams are the params of the validate kind.
type ValidateParams struct {
	// Environment names the recipe environment (base image); "" takes the
	// recipe's only one, or DefaultEnvironment.
	Environment string `yaml:"environment" json:"environment,omitempty"`
	// Runs is how many times the suite runs (default 3); a test whose
	// status is not the same in every run is flaky.
	Runs int `yaml:"runs" json:"runs"`
	// Language names the repositories' language ("python", "go", ...; see
	// lang.Names); a repository's own language (repos:) wins. When neither
	// is set, lang.Detect tells it from the repository's files (Python when
	// nothing matches).
	Language string `yaml:"language" json:"language,omitempty"`
	// TestCmd runs the tests. For Python (default DefaultTestCmd) test
	// paths or ids are appended; for other languages it runs as given, and
	// by default is the language's own command for the test paths
	// (lang.Profile.TestCommand).
	TestCmd []string `yaml:"test_cmd" json:"test_cmd"`
	// TestPaths are the test files or directories, relative to the
	// repository root. By default a repository's tests are found as its
	// authors' bare `pytest` would: the testpaths of its pytest
	// configuration (pytest.ini, pyproject.toml, tox.ini, setup.cfg), else
	// its tests/ or test/ directory, else the tests/ directories inside its
	// packages, else pytest's discovery from the root. The configuration's
	// python_files, markers and addopts always apply, as pytest reads them.
	TestPaths []string `yaml:"test_paths" json:"test_paths,omitempty"`
}

// Validate fills defaults and checks the params.
func (p *ValidateParams) Validate() error {
	if p.Runs < 1 || p.Runs > 20 {
		return fmt.Errorf("runs must be between 1 and 20, not %d", p.Runs)
	}
	if err := checkLanguage(p.Language); err != nil {
		return err
	}
	for _, tp := range p.TestPaths {
		if tp == "" || tp[0] == '/' || tp[0] == '-' {
			return fmt.Errorf("test_paths: %q must be a path relative to the repository root", tp)
		}
	}
	return nil
}

// CheckRecipe checks, when the recipe is loaded, what validate takes from
// the rest of it: repositories from a foreach: stage whose items are
// trees, and an environment the recipe defines.
func (p *ValidateParams) CheckRecipe(r *build.Recipe, st *build.Stage) error {
	if st.Foreach == "" {
		return fmt.Errorf("validate needs foreach: <a stage of repositories, such as one of kind repo>")
	}
	if src := r.Stage(st.Foreach); src != nil {
		if _, ok := src.Params.(treeSource); !ok {
			return fmt.Errorf("foreach: stage %s (kind %s) does not produce repository trees; validate takes a stage of kind repo", src.ID, src.Kind.Name)
		}
		if rp, ok := src.Params.(*RepoParams); ok && p.Environment == "" && rp.eachNamesEnvironment() {
			// Every repository names its own environment (one per
			// language, say): the stage needs none.
			for _, spec := range rp.Repos {
				if err := CheckEnvironment(r, "environment of repository "+spec.Path+" in stage "+src.ID, spec.Environment); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return CheckEnvironment(r, "environment", p.Environment)
}

// eachNamesEnvironment reports whether the stage lists only repos: entries
// and each of them names an environment.
func (p *RepoParams) eachNamesEnvironment() bool {
	if len(p.Paths) > 0 || len(p.Git) > 0 || len(p.Repos) == 0 {
		return false
	}
	for _, spec := range p.Repos {
		if spec.Environment == "" {
			return false
		}
	}
	return true
}

// treeSource marks the params of kinds whose items are repository trees,
// the input of validate.
type treeSource interface{ producesTrees() }

// CheckEnvironment reports, when a recipe is loaded, whether name picks
// an environment the way Environment will when a node runs: a name the
// recipe's environments: section defines, or "" when the section has at
// most one environment. param names the param the name came from, which
// locates the error. Kinds that call Environment use it in CheckRecipe
// (see build.RecipeChecker).
func CheckEnvironment(r *build.Recipe, param, name string) error {
	var names []string
	if envs, _ := r.Section(SectionEnvironments).(*Environments); envs != nil {
		names = sortedKeys(*envs)
	}
	switch {
	case name == "" && len(names) > 1:
		return fmt.Errorf("%s: must name one of the recipe's environments (%s)", param, strings.Join(names, ", "))
	case name == "":
		return nil
	case len(names) == 0:
		return fmt.Errorf("%s: %q is not defined: the recipe has no environments: section", param, name)
	case !slices.Contains(names, name):
		return fmt.Errorf("%s: %q is not one of the recipe's environments (%s)", param, name, strings.Join(names, ", "))
	}
	return nil
}

// CheckModel reports, when a recipe is loaded, whether name is a profile
// of the recipe's models: section, as Model will need when a node runs.
// param names the param the name came from, which locates the error. Kinds
// that call Model use it in CheckRecipe (see build.RecipeChecker).
func CheckModel(r *build.Recipe, param, name string) error {
	var names []string
	if models, _ := r.Section(SectionModels).(*Models); models != nil {
		names = sortedKeys(*models)
	}
	switch {
	case name == "":
		return fmt.Errorf("%s: must name one of the recipe's models", param)
	case len(names) == 0:
		return fmt.Errorf("%s: %q is not defined: the recipe has no models: section", param, name)
	case !slices.Contains(names, name):
		return fmt.Errorf("%s: %q is not one of the recipe's models (%s)", param, name, strings.Join(names, ", "))
	}
	return nil
}

func runValidate(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*ValidateParams)
	if c.Input == nil {
		return build.Output{}, build.BadInput("stage %s: validate needs foreach: <repo stage>", c.Stage)
	}
	repo := c.Input.Name
	var item RepoItem
	if err := c.GetJSON(c.Input.Value, &item); err != nil || item.Tree.IsZero() {
		return build.Output{}, build.BadInput("stage %s: item %s is not a repository of the repo kind: %v", c.Stage, repo, err)
	}
	tree := item.Tree
	if _, err := c.Store().GetTree(tree); err != nil {
		return build.Output{}, build.BadInput("stage %s: item %s is not a tree: %v", c.Stage, repo, err)
	}
	set := item.Settings
	files, err := c.Store().Files(tree)
	if err != nil {
		return build.Output{}, err
	}
	prof, err := repoLanguage(c, repo, set.Language, p.Language, files)
	if err != nil {
		return build.Output{}, err
	}
	envName := p.Environment
	if set.Environment != "" {
		envName = set.Environment
	}
	base, err := languageEnvironment(ctx, c, envName, prof)
	if err != nil {
		return build.Output{}, err
	}
	runner, err := Sandbox(c)
	if err != nil {
		return build.Output{}, err
	}
	limits := SandboxLimits(c)
	testCmd := p.TestCmd
	if len(set.TestCmd) > 0 {
		testCmd = set.TestCmd
	}
	var s suite
	if prof.Name() == lang.Python {
		s, err = pythonSuite(ctx, c, runner, repo, tree, base, testCmd, p.TestPaths, set)
	} else {
		s, err = languageSuite(ctx, c, repo, tree, base, prof, testCmd, p.TestPaths, set)
	}
	if err != nil {
		return build.Output{}, err
	}
	base, img, testCmd, testPaths, from, ignored, collectOut := s.base, s.img, s.testCmd, s.testPaths, s.from, s.ignored, s.collectOut
	argv := append(slices.Clone(testCmd), agent.TestArgs(prof, testPaths)...)

	reports := make([]*agent.TestReport, p.Runs)
	g, gctx := errgroup.WithContext(ctx)
	for i := range reports {
		g.Go(func() error {
			res, err := runner.Run(gctx, sandbox.Spec{
				Image: img, Workspace: tree, Argv: argv, Dir: agent.Workdir, Limits: limits,
				Env: append(agent.TestEnv(prof), RunEnvVar+"="+strconv.Itoa(i+1)),
			})
			if err != nil {
				return fmt.Errorf("repository %s: test run %d: %w", repo, i+1, err)
			}
			out := string(res.Stdout) + string(res.Stderr)
			reports[i] = &agent.TestReport{Report: prof.ParseReport(out), ExitCode: res.ExitCode, Output: out, LimitHit: res.LimitHit}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return build.Output{}, err
	}
	for i, r := range reports {
		if r.LimitHit != "" {
			c.Session.Logf(c.Stage, "%s: test run %d hit the %s limit", repo, i+1, r.LimitHit)
			c.Count(ctx, "rejected:"+r.LimitHit, 1)
			return build.Collection(nil), nil
		}
	}
	status, flaky := stableStatus(reports)
	passing := 0
	for _, st := range status {
		if st == lang.StatusPassed {
			passing++
		}
	}
	if passing == 0 {
		cause := firstCause(reports[0].Output)
		if len(ignored) > 0 && (cause == "" || len(status) == 0) {
			cause = firstCause(collectOut) // every test module was ignored
		}
		if cause == "" {
			cause = fmt.Sprintf("exit %d", reports[0].ExitCode)
			switch {
			case len(status) == 0 && len(reports[0].CollectionErrors) == 0:
				cause = fmt.Sprintf("no test collected from %v (%s)", testPaths, from)
			case len(status) > 0:
				cause = firstFailure(status, reports[0].Output)
			}
		}
		c.Session.Logf(c.Stage, "%s: no test passed in every run (%d stable, %d flaky; exit %d): %s\n%s", repo, len(status), len(flaky), reports[0].ExitCode, cause, tailText(reports[0].Output, 3000))
		c.Count(ctx, "rejected:no passing test: "+cause, 1)
		return build.Collection(nil), nil
	}
	if len(flaky) > 0 {
		c.Count(ctx, "flaky tests", float64(len(flaky)))
	}
	c.Count(ctx, "tests", float64(len(status)+len(flaky)))
	c.Count(ctx, "tests passing", float64(passing))
	d, err := c.PutJSON(Validated{
		Repo: repo, Language: prof.Name(), Tree: tree, Environment: envName, Base: base, Image: img,
		TestCmd: testCmd, TestPaths: testPaths, Status: status, Flaky: flaky,
		Ignored: ignored, TestTimeout: set.TestTimeout, SuiteSeconds: suiteSeconds(reports),
	})
	if err != nil {
		return build.Output{}, err
	}
	c.Count(ctx, "kept", 1)
	return build.Collection([]build.Item{{Name: repo, Value: d}}), nil
}

var sessionTime = regexp.MustCompile(`(?m)\bin ([0-9]+(?:\.[0-9]+)?)s(?: \([0-9:]+\))?(?: =+)?\s*$`)

// suiteSeconds is the longest session time pytest reported in reports.
func suiteSeconds(reports []*agent.TestReport) float64 {
	longest := 0.0
	for _, r := range reports {
		ms := sessionTime.FindAllStringSubmatch(r.Output, -1)
		if len(ms) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(ms[len(ms)-1][1], 64); err == nil {
			longest = max(longest, v)
		}
	}
	return longest
}

// firstFailure names the first (by id) test of status that did not pass,
// with its message from pytest's short summary ("FAILED id - msg").
func firstFailure(status map[string]string, output string) string {
	ids := make([]string, 0, len(status))
	for id := range status {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	id := ids[0]
	msg := summaryMessages(output)[id]
	cause := fmt.Sprintf("none of %d tests passes; first: %s %s", len(ids), id, strings.ToLower(status[id]))
	if msg != "" {
		cause += ": " + clip(msg)
	}
	return cause
}

// installProject returns base with the project installed as installTree
// describes (into the site-packages directory project.py found) and env
// set in its configuration; base itself when there is nothing to add.
func installProject(ctx context.Context, c *build.Call, base schema.Image, info projectInfo, env map[string]string) (schema.Image, error) {
	images, err := Images(c)
	if err != nil {
		return schema.Image{}, err
	}
	tree, err := installTree(c.Store(), info)
	if err != nil {
		return schema.Image{}, err
	}
	if tree.IsZero() && len(env) == 0 {
		return base, nil
	}
	site := info.Site
	if site == "" || !strings.HasPrefix(site, "/") {
		return schema.Image{}, fmt.Errorf("the environment's python3 has no site-packages directory to install the project into")
	}
	img, err := images.WithTree(ctx, base, tree, path.Clean(site), oci.ConfigOptions{Env: envVars(env), WorkingDir: agent.Workdir})
	if err != nil {
		return schema.Image{}, fmt.Errorf("installing the project: %w", err)
	}
	return img, nil
}

// stableStatus returns the status of every test that every run reported
// with the same status, and the sorted ids of the others (flaky).
func stableStatus(reports []*agent.TestReport) (map[string]string, []string) {
	all := map[string]bool{}
	for _, r := range reports {
		for id := range r.Status {
			all[id] = true
		}
	}
	status := map[string]string{}
	var flaky []string
	for id := range all {
		st, ok := reports[0].Status[id]
		for _, r := range reports[1:] {
			if other, has := r.Status[id]; !has || other != st {
				ok = false
			}
		}
		if ok {
			status[id] = st
		} else {
			flaky = append(flaky, id)
		}
	}
	sort.Strings(flaky)
	return status, flaky
}

// provenanceLabels are the image labels of the images the task kinds make:
// the repository an image came from and the digest of its tree. They name
// content only: a node key in a label would change the image's digest
// whenever the key changed (a param that does not change the image, say),
// and so defeat early cutoff for everything downstream of the image.
// Recipe and stage names are left out for the same reason. (Labels do not
// reach sandbox run keys, which depend on layers and environment only.)
func provenanceLabels(repo string, tree cache.Digest) map[string]string {
	return map[string]string{
		"org.dsbuild.repo": repo,
		"org.dsbuild.tree": tree.String(),
	}
}

// passingTests returns the sorted ids of the tests whose status is PASSED.
func passingTests(status map[string]string) []string {
	var out []string
	for id, st := range status {
		if st == lang.StatusPassed {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// suite is how validate runs a repository's tests: in img (base with the
// repository at /testbed), testCmd with testPaths as far as the language
// takes them (agent.TestArgs).
type suite struct {
	base, img  schema.Image
	testCmd    []string
	testPaths  []string
	from       string   // where testPaths came from, for messages
	ignored    []string // test modules left out: they cannot be collected
	collectOut string   // the output of pytest --collect-only (Python)
}

// pythonSuite installs a Python repository into base as pip install -e
// would (project.py reads its layout), picks its test paths as its authors'
// bare pytest would, and makes testCmd runnable in the environment: options
// of addopts whose plugin is missing dropped, test modules that cannot be
// collected ignored, the repository's deselected ids left out.
func pythonSuite(ctx context.Context, c *build.Call, runner *sandbox.Runner, repo string, tree cache.Digest, base schema.Image, testCmd, stagePaths []string, set RepoSettings) (suite, error) {
	if len(testCmd) == 0 {
		testCmd = pythonProfile.TestCommand(nil)
	}
	images, err := Images(c)
	if err != nil {
		return suite{}, err
	}
	limits := SandboxLimits(c)
	info, err := probeProject(ctx, c, runner, base, tree)
	if err != nil {
		return suite{}, fmt.Errorf("repository %s: reading its layout: %w", repo, err)
	}
	base, err = installProject(ctx, c, base, info, set.Env)
	if err != nil {
		return suite{}, fmt.Errorf("repository %s: %w", repo, err)
	}
	img, err := images.WithTree(ctx, base, tree, agent.Workdir, oci.ConfigOptions{
		Labels:     provenanceLabels(repo, tree),
		WorkingDir: agent.Workdir,
	})
	if err != nil {
		return suite{}, fmt.Errorf("repository %s: image: %w", repo, err)
	}
	testCmd = slices.Clone(testCmd)
	for _, id := range set.Deselect {
		testCmd = append(testCmd, "--deselect", id)
	}
	baseCmd := slices.Clone(testCmd)
	testPaths, from := stagePaths, "the stage's test_paths"
	switch {
	case len(set.TestPaths) > 0:
		testPaths, from = set.TestPaths, "the repository's test_paths"
	case len(testPaths) > 0:
	case len(info.TestPaths) > 0:
		testPaths, from = info.TestPaths, "testpaths in "+info.Config
	default:
		testPaths, from = info.TestDirs, "the test directories found"
	}
	c.Session.Logf(c.Stage, "%s: import roots %v, pytest config %q, test paths %v (from %s)", repo, info.ImportRoots, info.Config, testPaths, from)

	// Test modules that cannot be collected (an import the environment
	// cannot satisfy, say) would interrupt every run; they are found by
	// collecting once, and left out of this and every later run with
	// --ignore, so that the task kinds do not take their error for the
	// effect of a bug or a stub.
	collect := func() (string, error) {
		collected, err := runner.Run(ctx, sandbox.Spec{
			Image: img, Workspace: tree, Argv: append(append(slices.Clone(testCmd), "--collect-only"), testPaths...),
			Dir: agent.Workdir, Limits: limits, Env: agent.BashEnv,
		})
		if err != nil {
			return "", fmt.Errorf("repository %s: collecting tests: %w", repo, err)
		}
		return string(collected.Stdout) + string(collected.Stderr), nil
	}
	collectOut, err := collect()
	if err != nil {
		return suite{}, err
	}
	// Options of the project's addopts whose plugin the environment lacks
	// (--cov, -n, -p xdist) stop pytest before it collects anything: they
	// are dropped by overriding addopts with the rest (-o addopts=...), as
	// a user without the plugin would, one plugin at a time (pytest names
	// the first missing -p plugin only).
	addopts, requiredCleared := info.Addopts, false
	var droppedOpts []string
	for range 4 {
		kept, dropped, required := pluginOptions(addopts, collectOut)
		if len(dropped) == 0 && (!required || requiredCleared) {
			break
		}
		addopts, droppedOpts = kept, append(droppedOpts, dropped...)
		requiredCleared = requiredCleared || required
		testCmd = slices.Clone(baseCmd)
		testCmd = append(testCmd, "-o", "addopts="+shellJoin(addopts))
		if requiredCleared {
			testCmd = append(testCmd, "-o", "required_plugins=")
		}
		if collectOut, err = collect(); err != nil {
			return suite{}, err
		}
	}
	if len(droppedOpts) > 0 || requiredCleared {
		c.Count(ctx, "addopts options dropped: plugin missing", float64(len(droppedOpts)))
		c.Session.Logf(c.Stage, "%s: addopts options dropped (their plugins are not in the environment): %s (required_plugins cleared: %v)", repo, strings.Join(droppedOpts, " "), requiredCleared)
	}
	collectErrs := pythonProfile.ParseReport(collectOut).CollectionErrors
	var ignored []string
	for _, f := range collectErrs {
		if strings.Contains(f, "::") || strings.HasPrefix(f, "-") || f == "." || slices.Contains(testPaths, f) || strings.HasSuffix(f, "conftest.py") {
			continue // not a test module: ignoring it would ignore everything
		}
		ignored = append(ignored, f)
		testCmd = append(testCmd, "--ignore="+f)
	}
	if len(ignored) > 0 {
		c.Count(ctx, "test modules ignored: cannot be collected", float64(len(ignored)))
		c.Session.Logf(c.Stage, "%s: test modules ignored (cannot be collected): %s; first cause: %s", repo, strings.Join(ignored, ", "), firstCause(collectOut))
	}
	return suite{base: base, img: img, testCmd: testCmd, testPaths: testPaths, from: from, ignored: ignored, collectOut: collectOut}, nil
}

// languageSuite prepares a repository in a language other than Python:
// the repository's env set in base, its test paths as the recipe gives
// them (none: the whole repository), and testCmd as given or the
// language's own command for those paths.
func languageSuite(ctx context.Context, c *build.Call, repo string, tree cache.Digest, base schema.Image, prof lang.Profile, testCmd, stagePaths []string, set RepoSettings) (suite, error) {
	if len(set.Deselect) > 0 {
		return suite{}, build.BadInput("stage %s: repository %s: deselect is for Python (pytest) repositories; %s tests are chosen with test_paths or test_cmd", c.Stage, repo, prof.Name())
	}
	images, err := Images(c)
	if err != nil {
		return suite{}, err
	}
	if len(set.Env) > 0 {
		// An empty layer carrying the config (a zero tree is no tree).
		empty, err := c.Store().EmptyTree()
		if err != nil {
			return suite{}, err
		}
		base, err = images.WithTree(ctx, base, empty, agent.Workdir, oci.ConfigOptions{Env: envVars(set.Env), WorkingDir: agent.Workdir})
		if err != nil {
			return suite{}, fmt.Errorf("repository %s: setting env: %w", repo, err)
		}
	}
	img, err := images.WithTree(ctx, base, tree, agent.Workdir, oci.ConfigOptions{
		Labels:     provenanceLabels(repo, tree),
		WorkingDir: agent.Workdir,
	})
	if err != nil {
		return suite{}, fmt.Errorf("repository %s: image: %w", repo, err)
	}
	testPaths, from := stagePaths, "the stage's test_paths"
	if len(set.TestPaths) > 0 {
		testPaths, from = set.TestPaths, "the repository's test_paths"
	}
	if len(testCmd) == 0 {
		testCmd = prof.TestCommand(testPaths)
	}
	c.Session.Logf(c.Stage, "%s: %s, test command %q", repo, prof.Name(), shellJoin(testCmd))
	return suite{base: base, img: img, testCmd: slices.Clone(testCmd), testPaths: testPaths, from: from}, nil
}

// repoLanguage is the profile of a repository: its own language setting,
// else the stage's, else the one lang.Detect finds in its files, else
// Python (whose run then says what it does not find).
func repoLanguage(c *build.Call, repo, own, stage string, files map[string]cache.TreeEntry) (lang.Profile, error) {
	name, from := own, "the repository's language"
	if name == "" {
		name, from = stage, "the stage's language"
	}
	if name != "" {
		p, err := lang.Get(name)
		if err != nil {
			return nil, build.BadInput("stage %s: repository %s: %s: %v", c.Stage, repo, from, err)
		}
		return p, nil
	}
	paths := make([]string, 0, len(files))
	for f, e := range files {
		if e.Type != cache.TypeDir {
			paths = append(paths, f)
		}
	}
	sort.Strings(paths)
	if p := lang.Detect(paths); p != nil {
		if p.Name() != lang.Python {
			also := ""
			if pythonProfile.Detect(paths) {
				also = "; Python matches too"
			}
			c.Session.Logf(c.Stage, "%s: detected language %s%s (set language: to choose another)", repo, p.Name(), also)
		}
		return p, nil
	}
	c.Session.Logf(c.Stage, "%s: no known language detected (%s); trying %s", repo, strings.Join(lang.Names(), ", "), lang.Python)
	return pythonProfile, nil
}

// languageEnvironment returns the base image of the recipe's environment
// called name (see Environment) with the packages prof needs: a Debian
// environment that lacks some of them gets them added (as every Debian base
// gets git and patch); other environments are taken as they are, and must
// hold the language's tools themselves.
func languageEnvironment(ctx context.Context, c *build.Call, name string, prof lang.Profile) (schema.Image, error) {
	spec, err := environmentSpec(c, name)
	if err != nil {
		return schema.Image{}, err
	}
	if spec.Debian != nil {
		d := *spec.Debian
		d.Packages = slices.Clone(d.Packages)
		for _, pkg := range prof.Packages() {
			if !slices.ContainsFunc(d.Packages, func(q string) bool { return debianPackageName(q) == pkg }) {
				d.Packages = append(d.Packages, pkg)
			}
		}
		spec.Debian = &d
	}
	b, err := Images(c)
	if err != nil {
		return schema.Image{}, err
	}
	img, err := b.Base(ctx, spec)
	if err != nil {
		return schema.Image{}, fmt.Errorf("environment %q: %w", name, err)
	}
	return img, nil
}

// debianPackageName is the package name of a Debian package entry, without
// a version, release or architecture ("git=1:2.39" -> "git").
func debianPackageName(p string) string {
	if i := strings.IndexAny(p, ":=/"); i >= 0 {
		return p[:i]
	}
	return p
}

// envVars are env as NAME=value, sorted by name.
func envVars(env map[string]string) []string {
	var vars []string
	for _, k := range sortedKeys(env) {
		vars = append(vars, k+"="+env[k])
	}
	return vars
}
