package stages

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
	"golang.org/x/sync/errgroup"
)

func init() {
	build.Register(&build.Kind{
		Name: "inject_bugs", Version: withLang("7"),
		Doc:      "procedural bugs (the language profile's transforms) in a validated repository, kept when tests fail with the bug and pass without it",
		Params:   func() any { return &InjectBugsParams{PerRepo: 20, Candidates: 40, TestTimeout: "10s"} },
		Pool:     "sandbox",
		Sections: []string{SectionSandbox},
		Assets:   []*build.Asset{mutateAsset},
		Run:      runInjectBugs,
	})
}

// InjectBugsParams are the params of the inject_bugs kind.
//
// The kind enumerates up to Candidates bugs with the repository's language
// profile (lang.Profile.Candidates; for Python lang/py/mutate.py, run in
// the sandbox on the validated tree), shuffled by Seed, runs the test
// suite once per candidate, and keeps a candidate when at least one test
// that passed in validation fails (FAIL_TO_PASS) and at least one still
// passes (PASS_TO_PASS). Candidates that time out (use up the test run's
// CPU time, see TestTimeout), break collection or import, or duplicate
// another's patch are dropped, each counted as "rejected:<reason>". Up to Combine instances join two kept bugs in
// different functions. Up to PerRepo instances (combined ones first) are
// re-verified from their packaged image and emitted.
type InjectBugsParams struct {
	// PerRepo is the most instances emitted per repository.
	PerRepo int `yaml:"per_repo" json:"per_repo"`
	// Candidates is the most candidate bugs tried per repository.
	Candidates int `yaml:"candidates" json:"candidates"`
	// Seed orders the candidates (lang.CandidateOptions.Seed).
	Seed int64 `yaml:"seed" json:"seed"`
	// Combine is how many instances combine two bugs.
	Combine int `yaml:"combine" json:"combine"`
	// Transforms restricts the language's bug transforms (default: all).
	Transforms []string `yaml:"transforms" json:"transforms,omitempty"`
	// Include restricts the source files (globs relative to the
	// repository root, ** for any directories).
	Include []string `yaml:"include" json:"include,omitempty"`
	// TestTimeout is the CPU time each test run may use ("10s", rounded
	// up to whole seconds); a candidate whose run uses more (an endless
	// loop) is rejected as "timeout". CPU time, unlike wall-clock time,
	// does not grow with the machine's load, so the verdict is the same on
	// a quiet and a busy machine. The wall-clock timeout of a test run is
	// only a backstop for runs that hang without using the CPU: the larger
	// of the recipe's sandbox timeout and 6 x TestTimeout
	// (see testLimits).
	TestTimeout string `yaml:"test_timeout" json:"test_timeout"`

	timeout time.Duration
}

// Validate checks the params.
func (p *InjectBugsParams) Validate() error {
	if p.PerRepo < 1 {
		return fmt.Errorf("per_repo must be at least 1")
	}
	if p.Candidates < 1 {
		return fmt.Errorf("candidates must be at least 1")
	}
	if p.Combine < 0 || p.Combine > p.PerRepo {
		return fmt.Errorf("combine must be between 0 and per_repo (%d)", p.PerRepo)
	}
	for _, t := range p.Transforms {
		if !transformName.MatchString(t) {
			return fmt.Errorf("transforms: %q is not a transform name", t)
		}
	}
	if err := checkIncludes(p.Include); err != nil {
		return err
	}
	t, err := parseTestTimeout(p.TestTimeout)
	p.timeout = t
	return err
}

var transformName = regexp.MustCompile(`^[a-z_]+$`)

func checkIncludes(globs []string) error {
	for _, g := range globs {
		if g == "" || g[0] == '/' || g[0] == '-' {
			return fmt.Errorf("include: %q must be a glob relative to the repository root", g)
		}
	}
	return nil
}

func parseTestTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("test_timeout: %q is not a duration such as \"10s\"", s)
	}
	if d < time.Second || d > time.Hour {
		return 0, fmt.Errorf("test_timeout: %s must be between 1s and 1h", d)
	}
	return d, nil
}

func runInjectBugs(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*InjectBugsParams)
	t, err := newTaskMaker(c, p.timeout)
	if err != nil {
		return build.Output{}, err
	}
	t.countSpaced(ctx)
	muts, err := t.candidates(ctx, lang.ModeBugs, lang.CandidateOptions{Seed: p.Seed, Max: p.Candidates, Transforms: p.Transforms, Include: p.Include})
	if err != nil {
		return build.Output{}, err
	}
	cands := make([]*candidate, 0, len(muts))
	for _, m := range muts {
		cands = append(cands, &candidate{
			transform: m.Transform,
			sites:     []string{m.File + "::" + m.Function},
			sources:   map[string][]byte{m.File: []byte(m.NewSource)},
		})
	}
	t.evaluateAll(ctx, cands, true)
	if err := t.err(); err != nil {
		return build.Output{}, err
	}
	var kept []*candidate
	seen := map[string]bool{}
	for _, cd := range cands {
		if cd.reason == "" && seen[cd.gold] {
			cd.reason = "duplicate"
		}
		if cd.reason != "" {
			c.Count(ctx, "rejected:"+cd.reason, 1)
			continue
		}
		seen[cd.gold] = true
		kept = append(kept, cd)
	}

	// Pairs of kept bugs in different functions, in candidate order.
	var combos []*candidate
	if p.Combine > 0 {
		used := make([]bool, len(kept))
		for i := range kept {
			if used[i] || len(combos) >= 2*p.Combine {
				continue
			}
			for j := i + 1; j < len(kept); j++ {
				if used[j] || overlaps(kept[i].sites, kept[j].sites) {
					continue
				}
				cd, err := combineCandidates(t.store, t.v.Tree, kept[i], kept[j])
				if err != nil {
					continue // the two edits touch the same lines
				}
				used[i], used[j] = true, true
				combos = append(combos, cd)
				break
			}
		}
		t.evaluateAll(ctx, combos, true)
		if err := t.err(); err != nil {
			return build.Output{}, err
		}
		n := 0
		for _, cd := range combos {
			if cd.reason == "" && seen[cd.gold] {
				cd.reason = "duplicate"
			}
			if cd.reason != "" || n >= p.Combine {
				if cd.reason != "" {
					c.Count(ctx, "rejected:combined "+cd.reason, 1)
				}
				cd.reason = "skip"
				continue
			}
			seen[cd.gold] = true
			n++
		}
		combos = slices.DeleteFunc(combos, func(cd *candidate) bool { return cd.reason != "" })
		// A bug that is part of a combined instance is not an instance of
		// its own too: the two would be near-duplicates in one data set.
		var parts []*candidate
		for _, cd := range combos {
			parts = append(parts, cd.parts...)
		}
		if n := len(kept); len(parts) > 0 {
			kept = slices.DeleteFunc(kept, func(cd *candidate) bool { return slices.Contains(parts, cd) })
			c.Count(ctx, "joined into combined bugs", float64(n-len(kept)))
		}
	}

	order := append(append([]*candidate(nil), combos...), kept...)
	bundles, err := t.finalizeUpTo(ctx, order, p.PerRepo, schema.TaskFix, fixStatement)
	if err != nil {
		return build.Output{}, err
	}
	return t.output(ctx, bundles, "bug")
}

// candidate is one modified tree on its way to becoming a task instance.
type candidate struct {
	transform string
	// sites are the changed functions as "file::qualname".
	sites []string
	// sources are the new texts of the changed files.
	sources map[string][]byte

	tree     cache.Digest // the modified tree
	gold     string       // patch from tree back to the validated tree
	reason   string       // why it was rejected ("" if kept)
	f2p, p2p []string
	output   string // test output of the full run on tree
	// parts are the kept single bugs a combined candidate joins.
	parts []*candidate
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// combineCandidates joins the edits of a and b (in different functions)
// into one candidate; edits of the same file are merged hunk by hunk.
func combineCandidates(store *cache.Store, orig cache.Digest, a, b *candidate) (*candidate, error) {
	sources := map[string][]byte{}
	for f, s := range a.sources {
		sources[f] = s
	}
	for f, s := range b.sources {
		if prev, ok := sources[f]; ok {
			old, err := store.ReadFile(orig, f)
			if err != nil {
				return nil, err
			}
			merged, err := mergeEdits(old, prev, s)
			if err != nil {
				return nil, err
			}
			s = merged
		}
		sources[f] = s
	}
	return &candidate{transform: "combine", sites: append(slices.Clone(a.sites), b.sites...), sources: sources, parts: []*candidate{a, b}}, nil
}

// mergeEdits applies to old the changes that turned it into each of
// variants, which must touch disjoint lines.
func mergeEdits(old []byte, variants ...[]byte) ([]byte, error) {
	var hunks []patch.Hunk
	for _, v := range variants {
		hunks = append(hunks, patch.Hunks(old, v, 0)...)
	}
	sort.SliceStable(hunks, func(i, j int) bool { return hunks[i].OldLine < hunks[j].OldLine })
	lines := strings.SplitAfter(string(old), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var out strings.Builder
	pos, prevStart := 0, -1
	for _, h := range hunks {
		start := h.OldLine - 1
		if h.Old == "" && start > 0 && h.OldLine > len(lines) {
			start = len(lines)
		}
		n := strings.Count(h.Old, "\n")
		if h.Old != "" && !strings.HasSuffix(h.Old, "\n") {
			n++
		}
		if start < pos || start == prevStart || start+n > len(lines) {
			return nil, fmt.Errorf("edits overlap at line %d", h.OldLine)
		}
		if strings.Join(lines[start:start+n], "") != h.Old {
			return nil, fmt.Errorf("edit at line %d does not match", h.OldLine)
		}
		out.WriteString(strings.Join(lines[pos:start], ""))
		out.WriteString(h.New)
		pos, prevStart = start+n, start
	}
	out.WriteString(strings.Join(lines[pos:], ""))
	return []byte(out.String()), nil
}

// taskMaker holds what the task kinds share while working on one
// validated repository.
type taskMaker struct {
	c      *build.Call
	store  *cache.Store
	v      Validated
	prof   lang.Profile // the repository's language
	env    agent.Env    // sandbox limits with the test timeout
	images *oci.Builder
	files  map[string]cache.TreeEntry // of the validated tree
	paths  []string                   // its files' paths (no directories), sorted
	// passing are the tests that passed in every validation run, less
	// those whose ids hold whitespace (spaced counts them).
	passing   []string
	spaced    int
	protected []string

	jobs int

	mu    sync.Mutex
	first error // the first infrastructure error of a concurrent batch
}

func newTaskMaker(c *build.Call, timeout time.Duration) (*taskMaker, error) {
	if c.Input == nil {
		return nil, build.BadInput("stage %s needs foreach: <validate stage>", c.Stage)
	}
	t := &taskMaker{c: c, store: c.Store(), jobs: runtime.NumCPU()}
	if err := c.GetJSON(c.Input.Value, &t.v); err != nil {
		return nil, build.BadInput("stage %s: item %s is not a validated repository: %v", c.Stage, c.Input.Name, err)
	}
	if t.v.Repo == "" || t.v.Tree.IsZero() || t.v.Image.Digest == "" || len(t.v.TestCmd) == 0 {
		return nil, build.BadInput("stage %s: item %s is not a validated repository (repo, tree, image or test_cmd missing)", c.Stage, c.Input.Name)
	}
	prof, err := lang.Get(t.v.Language)
	if err != nil {
		return nil, build.BadInput("stage %s: item %s: %v", c.Stage, c.Input.Name, err)
	}
	t.prof = prof
	env, err := AgentEnv(c)
	if err != nil {
		return nil, err
	}
	if t.v.TestTimeout != "" {
		// The repository's own test_timeout (repo kind, repos:) wins.
		if timeout, err = parseTestTimeout(t.v.TestTimeout); err != nil {
			return nil, build.BadInput("stage %s: item %s: %v", c.Stage, c.Input.Name, err)
		}
	}
	// A suite that takes longer than the test_timeout even without a bug
	// would time out with every candidate: the budget is at least
	// suiteBudgetFactor times the suite's time in validation.
	if floor := time.Duration(math.Ceil(suiteBudgetFactor*t.v.SuiteSeconds)) * time.Second; floor > timeout {
		timeout = floor
	}
	env.SandboxLimits = testLimits(env.SandboxLimits, timeout)
	t.env = env
	if t.images, err = Images(c); err != nil {
		return nil, err
	}
	if t.files, err = t.store.Files(t.v.Tree); err != nil {
		return nil, err
	}
	for f, e := range t.files {
		if e.Type != cache.TypeDir {
			t.paths = append(t.paths, f)
		}
	}
	sort.Strings(t.paths)
	// SWE-bench's pytest log parser splits "PASSED <id>" on whitespace,
	// so a Python id with a space (a parametrised test whose parameter
	// holds one) could never be graded there: such tests are left out of
	// FAIL_TO_PASS and PASS_TO_PASS (and counted as "tests left out: id
	// with spaces"). Other languages' reports are read by their profile's
	// parser (the instance names its language), where names are sentences
	// as often as not (node:test, Go subtests).
	for _, id := range passingTests(t.v.Status) {
		if t.prof.Name() == lang.Python && strings.ContainsAny(id, " \t") {
			t.spaced++
			continue
		}
		t.passing = append(t.passing, id)
	}
	t.protected = protectedPaths(t.prof, t.v.TestPaths, t.files)
	return t, nil
}

// suiteBudgetFactor is how many times the suite's own time in validation
// (Validated.SuiteSeconds, wall-clock, an upper bound of its CPU time) a
// test run of inject_bugs and stub_tasks may use in CPU time at least,
// whatever test_timeout says.
const suiteBudgetFactor = 3

// testWallFactor is how many times its CPU-time budget (test_timeout) a
// test run of inject_bugs and stub_tasks may take in wall-clock time at
// least; see testLimits.
const testWallFactor = 6

// testLimits returns the limits of a test run of inject_bugs and
// stub_tasks, from the recipe's limits and the kind's test_timeout.
//
// The test_timeout is the run's CPU-time budget (RLIMIT_CPU, whole
// seconds, at least 1): an endless loop hits it after the same CPU time on
// any machine, and the sandbox memoises that "cpu" result as final. The
// wall-clock timeout is a generous backstop, for a run that hangs without
// using the CPU (a deadlock, a long sleep): the larger of the recipe's
// sandbox timeout and testWallFactor times the budget, so a test run that
// fits its budget has room on a machine loaded several times over; and a
// run that hits it is re-run by the sandbox with more slack and never
// memoised as final (see the sandbox package doc).
func testLimits(recipe sandbox.Limits, budget time.Duration) sandbox.Limits {
	l := recipe.WithDefaults()
	l.CPUSeconds = max(1, int(math.Ceil(budget.Seconds())))
	l.Timeout = max(l.Timeout, testWallFactor*budget)
	return l
}

// rejection is the reason a candidate whose test run hit limit is
// rejected for: "timeout" for the CPU-time budget (test_timeout) and the
// wall-clock backstop alike, the limit's name for the others.
func rejection(limit string) string {
	if limit == sandbox.LimitCPU || limit == sandbox.LimitTimeout {
		return "timeout"
	}
	return limit
}

// protectedPaths are what grading restores so that editing tests cannot
// make them pass: the tests/ or test/ directories that hold files under the
// test paths (everywhere when there are none), the test paths that are
// files, and every test file of the language (prof.IsTestFile: for Python
// test_*.py, *_test.py, every conftest.py and the top-level pytest.ini)
// that no such directory holds. Test paths themselves are not protected
// whole: a project whose testpaths is its package (tests inside the
// package) would otherwise have its fix undone.
func protectedPaths(prof lang.Profile, testPaths []string, files map[string]cache.TreeEntry) []string {
	under := func(f string) bool {
		if len(testPaths) == 0 {
			return true
		}
		for _, tp := range testPaths {
			tp = strings.TrimSuffix(tp, "/")
			if f == tp || tp == "." || strings.HasPrefix(f, tp+"/") {
				return true
			}
		}
		return false
	}
	set := map[string]bool{}
	var single []string
	for f, e := range files {
		if e.Type == cache.TypeDir {
			continue
		}
		if under(f) {
			parts := strings.Split(f, "/")
			dir := ""
			for i, part := range parts[:len(parts)-1] {
				if part == "tests" || part == "test" {
					dir = strings.Join(parts[:i+1], "/") + "/"
					break
				}
			}
			if dir != "" {
				set[dir] = true
				continue
			}
			if slices.Contains(testPaths, f) {
				set[f] = true
				continue
			}
		}
		if prof.IsTestFile(f) {
			single = append(single, f)
		}
	}
	// (patch.Selected selects everything when given nothing.)
	covered := slices.Collect(maps.Keys(set))
	for _, f := range single {
		if len(covered) == 0 || !patch.Selected(f, covered) {
			set[f] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// countSpaced counts the passing tests left out of the task lists for
// the whitespace in their ids.
func (t *taskMaker) countSpaced(ctx context.Context) {
	if t.spaced > 0 {
		t.c.Count(ctx, "tests left out: id with spaces", float64(t.spaced))
	}
}

func (t *taskMaker) fail(err error) {
	t.mu.Lock()
	if t.first == nil {
		t.first = err
	}
	t.mu.Unlock()
}

func (t *taskMaker) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first
}

// mutation is one candidate of the language profile with its file's new
// text.
type mutation struct {
	lang.Candidate
	// NewSource is File with Edit applied (filled in by
	// taskMaker.candidates).
	NewSource string
}

// candidates enumerates the language profile's candidates of mode on the
// validated tree (for Python, mutate.py in the sandbox, with the script on
// stdin) and applies each one's edit to its file. What a profile's program
// prints on stderr is logged.
func (t *taskMaker) candidates(ctx context.Context, mode lang.Mode, opts lang.CandidateOptions) ([]mutation, error) {
	if err := mutateAsset.Check(ctx); err != nil {
		return nil, err
	}
	limits := SandboxLimits(t.c)
	src := lang.Source{
		Files:    t.paths,
		ReadFile: func(p string) ([]byte, error) { return t.store.ReadFile(t.v.Tree, p) },
		Run: func(ctx context.Context, argv []string, stdin []byte) ([]byte, []byte, int, error) {
			res, err := t.env.Sandbox.Run(ctx, sandbox.Spec{
				Image: t.v.Image, Workspace: t.v.Tree, Dir: agent.Workdir, Limits: limits,
				Argv: argv, Env: agent.TestEnv(t.prof), Stdin: stdin,
			})
			if err != nil {
				return nil, nil, 0, err
			}
			if res.LimitHit != "" {
				return nil, nil, 0, fmt.Errorf("%s hit the %s limit: %s", argv[0], res.LimitHit, tailText(string(res.Stderr), 2000))
			}
			if msg := strings.TrimSpace(string(res.Stderr)); msg != "" && res.ExitCode == 0 {
				t.c.Session.Logf(t.c.Stage, "%s: %s", t.v.Repo, tailText(msg, 2000))
			}
			return res.Stdout, res.Stderr, res.ExitCode, nil
		},
	}
	cands, err := t.prof.Candidates(ctx, src, mode, opts)
	if errors.Is(err, lang.ErrBadOptions) {
		return nil, build.BadInput("stage %s: %v", t.c.Stage, err)
	}
	if err != nil {
		return nil, fmt.Errorf("repository %s: %s candidates: %w", t.v.Repo, mode, err)
	}
	out := make([]mutation, len(cands))
	originals := map[string][]byte{}
	for i, cd := range cands {
		old, ok := originals[cd.File]
		if !ok {
			if old, err = t.store.ReadFile(t.v.Tree, cd.File); err != nil {
				return nil, fmt.Errorf("repository %s: %s candidate %s names %s: %v", t.v.Repo, mode, cd.ID, cd.File, err)
			}
			originals[cd.File] = old
		}
		e := cd.Edit
		if e.Start < 0 || e.Start > e.End || e.End > len(old) {
			return nil, fmt.Errorf("repository %s: %s candidate %s edits bytes %d-%d of %s (%d bytes)", t.v.Repo, mode, cd.ID, e.Start, e.End, cd.File, len(old))
		}
		out[i] = mutation{Candidate: cd, NewSource: string(old[:e.Start]) + e.Replacement + string(old[e.End:])}
	}
	return out, nil
}

func tailText(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// treeOf stores the candidate's files over the validated tree.
func (t *taskMaker) treeOf(cd *candidate) (cache.Digest, error) {
	changes := map[string]*cache.TreeEntry{}
	for f, src := range cd.sources {
		old, ok := t.files[f]
		if !ok || old.Type != cache.TypeFile {
			return cache.Digest{}, fmt.Errorf("candidate changes %s, which is not a file of %s", f, t.v.Repo)
		}
		d, err := t.store.Put(src)
		if err != nil {
			return cache.Digest{}, err
		}
		changes[f] = &cache.TreeEntry{Type: cache.TypeFile, Exec: old.Exec, Size: int64(len(src)), Digest: d}
	}
	return patch.Edit(t.store, t.v.Tree, changes)
}

// changedFiles returns the sorted files a candidate changes.
func (cd *candidate) changedFiles() []string {
	files := make([]string, 0, len(cd.sources))
	for f := range cd.sources {
		files = append(files, f)
	}
	sort.Strings(files)
	return files
}

// evaluateAll runs the full test suite on every candidate's tree,
// concurrently, and sets its verdict. Infrastructure errors are kept for
// t.err.
func (t *taskMaker) evaluateAll(ctx context.Context, cands []*candidate, needP2P bool) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(t.jobs)
	for _, cd := range cands {
		g.Go(func() error {
			if err := t.evaluate(gctx, cd, needP2P); err != nil {
				t.fail(err)
				return err
			}
			return nil
		})
	}
	g.Wait()
}

func (t *taskMaker) evaluate(ctx context.Context, cd *candidate, needP2P bool) error {
	tree, err := t.treeOf(cd)
	if err != nil {
		return err
	}
	cd.tree = tree
	if cd.gold, err = patch.Diff(t.store, tree, t.v.Tree, cd.changedFiles()...); err != nil {
		return err
	}
	if cd.gold == "" {
		cd.reason = "no change"
		return nil
	}
	rep, err := agent.RunTests(ctx, t.env, t.prof, t.v.Image, tree, t.v.TestCmd, t.v.TestPaths)
	if err != nil {
		return err
	}
	cd.output = rep.Output
	cd.f2p, cd.p2p = nil, nil
	switch {
	case rep.LimitHit != "":
		cd.reason = rejection(rep.LimitHit)
		return nil
	case len(rep.CollectionErrors) > 0:
		cd.reason = "breaks collection"
		return nil
	}
	for _, id := range t.passing {
		st, ok := rep.Status[id]
		switch {
		case !ok:
			cd.reason = "breaks collection"
			return nil
		case st == lang.StatusPassed:
			cd.p2p = append(cd.p2p, id)
		default:
			cd.f2p = append(cd.f2p, id)
		}
	}
	switch {
	case len(cd.f2p) == 0:
		cd.reason = "no failing test"
	case needP2P && len(cd.p2p) == 0:
		cd.reason = "no passing test left"
	}
	return nil
}

// statementFunc writes the problem statement of a kept candidate.
// It gets the repository's language and its files (sorted paths).
type statementFunc func(prof lang.Profile, repo string, files []string, cd *candidate) string

// finalizeUpTo turns candidates, in order, into re-verified task bundles
// until want of them are made or the candidates run out.
func (t *taskMaker) finalizeUpTo(ctx context.Context, order []*candidate, want int, taskType schema.TaskType, statement statementFunc) ([]*TaskBundle, error) {
	var out []*TaskBundle
	for len(order) > 0 && len(out) < want {
		batch := order[:min(want-len(out), len(order))]
		order = order[len(batch):]
		bundles := make([]*TaskBundle, len(batch))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(t.jobs)
		for i, cd := range batch {
			g.Go(func() error {
				b, err := t.finalize(gctx, cd, taskType, statement)
				bundles[i] = b
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for i, b := range bundles {
			if b == nil {
				t.c.Count(ctx, "rejected:"+batch[i].reason, 1)
				continue
			}
			out = append(out, b)
		}
	}
	if n := len(order); n > 0 {
		t.c.Count(ctx, "surplus", float64(n))
	}
	return out, nil
}

// finalize packages a kept candidate: its image (base plus the start tree
// at /testbed), its instance, and a re-verification from that image: the
// FAIL_TO_PASS tests fail and PASS_TO_PASS pass on the start tree, and all
// pass on the gold patch applied to it. A candidate failing that gets a nil
// bundle and reason "reverify".
func (t *taskMaker) finalize(ctx context.Context, cd *candidate, taskType schema.TaskType, statement statementFunc) (*TaskBundle, error) {
	key, err := cache.KeyOf(struct {
		Repo  string `json:"repo"`
		Patch string `json:"patch"`
	}{t.v.Repo, cd.gold})
	if err != nil {
		return nil, err
	}
	id := t.v.Repo + "__" + cd.transform + "-" + key.String()[:8]
	labels := provenanceLabels(t.v.Repo, cd.tree)
	labels["org.dsbuild.instance"] = id
	img, commit, err := taskImage(ctx, t.store, t.images, t.v.Base, cd.tree, oci.ConfigOptions{Labels: labels, WorkingDir: agent.Workdir})
	if err != nil {
		return nil, fmt.Errorf("instance %s: image: %w", id, err)
	}
	img.Ref = imageRef(t.v.Repo, id)

	solution, err := patch.Apply(t.store, cd.tree, cd.gold)
	if err != nil {
		cd.reason = "reverify"
		t.c.Session.Logf(t.c.Stage, "%s: gold patch does not apply: %v", id, err)
		return nil, nil
	}
	tests := append(slices.Clone(cd.f2p), cd.p2p...)
	start, err := agent.RunTests(ctx, t.env, t.prof, img, cd.tree, t.v.TestCmd, tests)
	if err != nil {
		return nil, err
	}
	fixed, err := agent.RunTests(ctx, t.env, t.prof, img, solution, t.v.TestCmd, tests)
	if err != nil {
		return nil, err
	}
	if why := reverifyProblem(start, fixed, cd.f2p, cd.p2p); why != "" {
		cd.reason = "reverify"
		t.c.Session.Logf(t.c.Stage, "%s: re-verification failed: %s", id, why)
		return nil, nil
	}

	inst := schema.TaskInstance{
		InstanceID:             id,
		Repo:                   t.v.Repo,
		BaseCommit:             commit,
		Patch:                  cd.gold,
		TestPatch:              "",
		ProblemStatement:       statement(t.prof, t.v.Repo, t.paths, cd),
		HintsText:              "",
		CreatedAt:              "1970-01-01T00:00:00Z",
		Version:                "1",
		FailToPass:             cd.f2p,
		PassToPass:             cd.p2p,
		EnvironmentSetupCommit: commit,
		TaskType:               taskType,
		Image:                  img.Ref + "@" + img.Digest,
		TestCmd:                shellJoin(t.v.TestCmd),
		SourceProject:          t.v.Repo,
		Difficulty:             difficulty(taskType, cd),
		Language:               t.prof.Name(),
	}
	if err := inst.Validate(); err != nil {
		return nil, err
	}
	return &TaskBundle{
		Instance: inst, Image: img, Start: cd.tree, Solution: solution,
		TestCmd: t.v.TestCmd, Protected: t.protected,
	}, nil
}

// reverifyProblem says what is wrong with the runs from the packaged image,
// or "".
func reverifyProblem(start, fixed *agent.TestReport, f2p, p2p []string) string {
	for _, r := range []*agent.TestReport{start, fixed} {
		if r.LimitHit != "" {
			return "hit the " + r.LimitHit + " limit"
		}
	}
	for _, id := range f2p {
		if start.Status[id] == lang.StatusPassed {
			return id + " passes with the bug"
		}
		if fixed.Status[id] != lang.StatusPassed {
			return id + " does not pass with the gold patch"
		}
	}
	for _, id := range p2p {
		if start.Status[id] != lang.StatusPassed {
			return id + " does not pass on the start tree"
		}
		if fixed.Status[id] != lang.StatusPassed {
			return id + " does not pass with the gold patch"
		}
	}
	return ""
}

// output stores the bundles as items <repo>.<what>-<n>.
func (t *taskMaker) output(ctx context.Context, bundles []*TaskBundle, what string) (build.Output, error) {
	items := make([]build.Item, 0, len(bundles))
	for i, b := range bundles {
		d, err := t.c.PutJSON(b)
		if err != nil {
			return build.Output{}, err
		}
		items = append(items, build.Item{Name: fmt.Sprintf("%s.%s-%d", t.v.Repo, what, i), Value: d})
		t.c.Count(ctx, "kept", 1)
	}
	return build.Collection(items), nil
}

// difficulty rates an instance from 1 to 5: for fixes, by how much the
// gold patch changes, how many places it touches and how few tests point at
// the bug; for implementations, by how many functions are stubbed.
func difficulty(taskType schema.TaskType, cd *candidate) int {
	if taskType == schema.TaskImplement {
		n := len(cd.sites)
		switch {
		case n <= 1:
			return 1
		case n <= 3:
			return 2
		case n <= 6:
			return 3
		case n <= 10:
			return 4
		}
		return 5
	}
	d := 1
	removed := 0
	for _, l := range strings.Split(cd.gold, "\n") {
		if strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "---") {
			removed++
		}
	}
	if removed > 1 {
		d++
	}
	if len(cd.sites) > 1 {
		d++
	}
	if len(cd.sources) > 1 {
		d++
	}
	if len(cd.f2p) == 1 {
		d++
	}
	return min(d, 5)
}

// Problem statements without a model: written from what the failing run
// printed, like a user's bug report. They name the failing tests and quote
// the assertion and exception lines; they never describe the transform or
// show the patch.

const (
	statementTests = 5   // failing tests quoted in detail
	statementLines = 6   // error lines quoted per test
	statementWidth = 200 // longest quoted line
)

var (
	sectionRule   = regexp.MustCompile(`^=+ (.*?) =+$`)
	failureHeader = regexp.MustCompile(`^_{3,} (.+?) _{3,}$`)
	assertEqual   = regexp.MustCompile(`^assert (.+) == (.+)$`)
	whereCall     = regexp.MustCompile(`^\+\s+where (.+?) = (.+)$`)
)

// failureDetails maps the heading of every FAILURES and ERRORS section of
// pytest output ("test_a", "TestX.test_b", "ERROR at setup of test_c") to
// its "E" lines.
func failureDetails(output string) map[string][]string {
	details := map[string][]string{}
	inside, current := false, ""
	for _, line := range strings.Split(output, "\n") {
		line = strings.TrimRight(line, "\r")
		if m := sectionRule.FindStringSubmatch(line); m != nil && !strings.HasPrefix(line, "_") {
			inside = m[1] == "FAILURES" || m[1] == "ERRORS"
			current = ""
			continue
		}
		if !inside {
			continue
		}
		if m := failureHeader.FindStringSubmatch(line); m != nil {
			current = m[1]
			for _, pre := range []string{"ERROR at setup of ", "ERROR at teardown of "} {
				current = strings.TrimPrefix(current, pre)
			}
			continue
		}
		if current != "" && (line == "E" || strings.HasPrefix(line, "E ")) {
			text := strings.TrimSpace(line[1:])
			if text == "" || strings.HasPrefix(text, "Use -v") {
				continue // pytest's advice, not the failure
			}
			details[current] = append(details[current], text)
		}
	}
	return details
}

// summaryMessages maps test ids to the message of their "FAILED id - msg"
// or "ERROR id - msg" summary line.
func summaryMessages(output string) map[string]string {
	msgs := map[string]string{}
	for _, line := range strings.Split(output, "\n") {
		for _, pre := range []string{"FAILED ", "ERROR "} {
			if rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), pre); ok {
				if id, msg, ok := strings.Cut(rest, " - "); ok {
					msgs[id] = msg
				}
			}
		}
	}
	return msgs
}

// headingOf is the failure-section heading pytest prints for a test id:
// the part after the file, with "::" as ".".
func headingOf(id string) string {
	_, rest, ok := strings.Cut(id, "::")
	if !ok {
		return id
	}
	return strings.ReplaceAll(rest, "::", ".")
}

func clip(s string) string {
	if len(s) > statementWidth {
		return s[:statementWidth] + "..."
	}
	return s
}

// testEvidence writes the failing tests and what they reported: for
// Python the "E" lines of pytest's failure sections (or the summary line's
// message); for other languages, whose reports say less in a common form,
// the test ids alone.
func testEvidence(b *strings.Builder, prof lang.Profile, f2p []string, output string) {
	details, msgs := map[string][]string{}, map[string]string{}
	if prof.Name() == lang.Python {
		details, msgs = failureDetails(output), summaryMessages(output)
	}
	for i, id := range f2p {
		if i == statementTests {
			fmt.Fprintf(b, "\n(and %d more failing tests)\n", len(f2p)-i)
			break
		}
		fmt.Fprintf(b, "\n`%s`\n", id)
		lines := details[headingOf(id)]
		if len(lines) == 0 && msgs[id] != "" {
			lines = []string{msgs[id]}
		}
		if len(lines) == 0 {
			if prof.Name() == lang.Python {
				b.WriteString("(no error message)\n")
			}
			continue
		}
		b.WriteString("```\n")
		for j, l := range lines {
			if j == statementLines {
				b.WriteString("...\n")
				break
			}
			b.WriteString(clip(l) + "\n")
		}
		b.WriteString("```\n")
		if exp := expectation(lines); exp != "" {
			b.WriteString(exp + "\n")
		}
	}
}

// expectation turns "assert X == Y" (with pytest's "+ where X = f(a)") into
// an expected-versus-actual sentence.
func expectation(lines []string) string {
	m := assertEqual.FindStringSubmatch(lines[0])
	if m == nil {
		return ""
	}
	actual, expected := m[1], m[2]
	for _, l := range lines[1:] {
		if w := whereCall.FindStringSubmatch(l); w != nil && w[1] == actual {
			return fmt.Sprintf("Expected `%s` to give `%s`, but it gave `%s`.", clip(w[2]), clip(expected), clip(actual))
		}
	}
	return fmt.Sprintf("Expected `%s`, got `%s`.", clip(expected), clip(actual))
}

// fixStatement is the problem statement of a procedural bug: an issue
// about the failing tests.
func fixStatement(prof lang.Profile, repo string, repoFiles []string, cd *candidate) string {
	var b strings.Builder
	files := prof.TestFiles(cd.f2p, repoFiles)
	if len(cd.f2p) == 1 {
		fmt.Fprintf(&b, "%s: %s fails\n\n", repo, headingOf(cd.f2p[0]))
	} else {
		fmt.Fprintf(&b, "%s: %d tests fail in %s\n\n", repo, len(cd.f2p), strings.Join(files, ", "))
	}
	fmt.Fprintf(&b, "Running the test suite of %s gives failures in code that should work. ", repo)
	if len(cd.f2p) == 1 {
		b.WriteString("This test fails:\n")
	} else {
		fmt.Fprintf(&b, "These %d tests fail:\n", len(cd.f2p))
	}
	testEvidence(&b, prof, cd.f2p, cd.output)
	b.WriteString("\nThe other tests pass. Please fix the library so that the failing tests pass again, without changing the tests.\n")
	return b.String()
}
