package stages

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/schema"
)

func init() {
	build.Register(&build.Kind{
		Name: "stub_tasks", Version: withLang("9"),
		Doc:      "library-from-scratch tasks (Commit0 style): function bodies replaced by the language's \"not implemented\" (raise NotImplementedError in Python), one task per module (or function), topped up with single functions when a repository has fewer module tasks than min_tasks",
		Params:   func() any { return &StubTasksParams{Group: "module", Fallback: 8, MinTasks: 2, TestTimeout: "10s"} },
		Pool:     "sandbox",
		Sections: []string{SectionSandbox},
		Assets:   []*build.Asset{mutateAsset},
		Run:      runStubTasks,
	})
}

// StubTasksParams are the params of the stub_tasks kind.
//
// The repository's language profile lists every function and method whose
// body can be stubbed (lang.Profile.Candidates in stub mode; for Python
// mutate.py stub, see lang/py/README.md for what it skips). With group "module" (the
// default) one task stubs every such function of one source file, which is
// the Commit0 setting scaled to a module; with "function" each function is
// a task of its own. A task is kept when tests that passed in validation
// fail on the stubbed tree (its FAIL_TO_PASS); the tests that still pass are
// its PASS_TO_PASS. A stubbed module whose import or collection breaks is
// tried again in smaller units (Fallback; see moduleStubs); a unit that
// still breaks it is rejected ("breaks collection"), as is one no test
// notices ("no failing test"). Counters "stubs tried: ..." and "stubs kept:
// ..." say how many units of each size were tried and passed evaluation.
// Kept tasks are re-verified from their packaged image like bugs.
//
// A repository with few modules (or few whose stubs make tests fail) gives
// few module tasks; when fewer than MinTasks survive re-verification, single
// functions are tried as tasks of their own until MinTasks are made (see
// topUpStubs).
type StubTasksParams struct {
	// Group is "module" (one task per source file) or "function".
	Group string `yaml:"group" json:"group"`
	// PerRepo is the most tasks per repository; 0 means no limit. Modules
	// are taken in path order, functions in the profile's (seeded) order.
	PerRepo int `yaml:"per_repo" json:"per_repo"`
	// Seed orders the functions (lang.CandidateOptions.Seed).
	Seed int64 `yaml:"seed" json:"seed"`
	// Include restricts the source files (globs relative to the
	// repository root).
	Include []string `yaml:"include" json:"include,omitempty"`
	// Fallback is how many functions of a module whose stubs break test
	// collection are tried one at a time (group "module" only; default 8,
	// 0 turns the fallback off): see moduleStubs.
	Fallback int `yaml:"fallback" json:"fallback"`
	// MinTasks is the fewest tasks a repository should give with group
	// "module" (default 2; 0 turns the top-up off): when its module tasks
	// are fewer after re-verification, single functions that are not
	// already a task or a tried unit are evaluated, in mutate.py's seeded
	// order, up to topUpTries per missing task, and the first that pass
	// re-verification are added. PerRepo still caps the total.
	MinTasks int `yaml:"min_tasks" json:"min_tasks"`
	// TestTimeout is the CPU time each test run may use ("10s", rounded
	// up to whole seconds), as in inject_bugs: a stubbed module whose run
	// uses more is rejected as "timeout". The wall-clock timeout is a
	// backstop (see testLimits).
	TestTimeout string `yaml:"test_timeout" json:"test_timeout"`

	timeout time.Duration
}

// Validate checks the params.
func (p *StubTasksParams) Validate() error {
	if p.Group != "module" && p.Group != "function" {
		return fmt.Errorf("group must be \"module\" or \"function\", not %q", p.Group)
	}
	if p.PerRepo < 0 {
		return fmt.Errorf("per_repo must not be negative")
	}
	if p.Fallback < 0 {
		return fmt.Errorf("fallback must not be negative")
	}
	if p.MinTasks < 0 {
		return fmt.Errorf("min_tasks must not be negative")
	}
	if err := checkIncludes(p.Include); err != nil {
		return err
	}
	t, err := parseTestTimeout(p.TestTimeout)
	p.timeout = t
	return err
}

func runStubTasks(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*StubTasksParams)
	t, err := newTaskMaker(c, p.timeout)
	if err != nil {
		return build.Output{}, err
	}
	t.countSpaced(ctx)
	muts, err := t.candidates(ctx, lang.ModeStub, lang.CandidateOptions{Seed: p.Seed, Include: p.Include})
	if err != nil {
		return build.Output{}, err
	}
	var kept, tried []*candidate
	if p.Group == "function" {
		var cands []*candidate
		for _, m := range muts {
			cands = append(cands, functionStub(m))
		}
		t.evaluateAll(ctx, cands, false)
		if err := t.err(); err != nil {
			return build.Output{}, err
		}
		c.Count(ctx, "stubs tried: functions", float64(len(cands)))
		kept = t.keepStubs(ctx, cands, "stubs kept: functions")
	} else {
		kept, tried, err = t.moduleStubs(ctx, muts, p.Fallback)
		if err != nil {
			return build.Output{}, err
		}
	}
	want := len(kept)
	if p.PerRepo > 0 {
		want = min(want, p.PerRepo)
	}
	bundles, err := t.finalizeUpTo(ctx, kept, want, schema.TaskImplement, implementStatement)
	if err != nil {
		return build.Output{}, err
	}
	if p.Group == "module" && len(bundles) < p.MinTasks && (p.PerRepo == 0 || len(bundles) < p.PerRepo) {
		goal := p.MinTasks
		if p.PerRepo > 0 {
			goal = min(goal, p.PerRepo)
		}
		more, err := t.topUpStubs(ctx, muts, tried, goal-len(bundles))
		if err != nil {
			return build.Output{}, err
		}
		bundles = append(bundles, more...)
	}
	return t.output(ctx, bundles, "stub")
}

// topUpTries is how many single functions topUpStubs evaluates at most per
// task it is missing.
const topUpTries = 8

// topUpStubs makes up to need more tasks from single functions when the
// module tasks are too few: functions in mutate.py's seeded order, leaving
// out those of a module no test noticed stubbed whole (stubbing fewer of
// them makes no test fail either) and those already evaluated on their own
// (a module of one function, the fallback's singles). They are evaluated
// in batches of at least twice the missing tasks, the kept ones finalized
// in order, until need tasks are made or topUpTries*need functions were
// tried. Counters "stubs tried: functions (too few module tasks)" and
// "stubs kept: ..." say how many.
func (t *taskMaker) topUpStubs(ctx context.Context, muts []mutation, tried []*candidate, need int) ([]*TaskBundle, error) {
	done := map[string]bool{}
	silent := map[string]bool{}
	for _, cd := range tried {
		if len(cd.sites) == 1 {
			done[cd.sites[0]] = true
		}
		if cd.reason == "no failing test" {
			for f := range cd.sources {
				silent[f] = true
			}
		}
	}
	var cands []*candidate
	for _, m := range muts {
		if site := m.File + "::" + m.Function; !done[site] && !silent[m.File] {
			done[site] = true
			cands = append(cands, functionStub(m))
		}
	}
	cands = cands[:min(len(cands), topUpTries*need)]
	var out []*TaskBundle
	n := 0
	for len(cands) > 0 && len(out) < need {
		missing := need - len(out)
		batch := cands[:min(len(cands), max(2*missing, t.jobs))]
		cands = cands[len(batch):]
		t.evaluateAll(ctx, batch, false)
		if err := t.err(); err != nil {
			return nil, err
		}
		n += len(batch)
		kept := t.keepStubs(ctx, batch, "stubs kept: functions (too few module tasks)")
		bundles, err := t.finalizeUpTo(ctx, kept, missing, schema.TaskImplement, implementStatement)
		if err != nil {
			return nil, err
		}
		out = append(out, bundles...)
	}
	t.c.Count(ctx, "stubs tried: functions (too few module tasks)", float64(n))
	return out, nil
}

// functionStub is the candidate that stubs one function.
func functionStub(m mutation) *candidate {
	return &candidate{
		transform: "stub",
		sites:     []string{m.File + "::" + m.Function},
		sources:   map[string][]byte{m.File: []byte(m.NewSource)},
	}
}

// keepStubs counts the rejections of evaluated candidates and returns the
// others, counted as counter.
func (t *taskMaker) keepStubs(ctx context.Context, cands []*candidate, counter string) []*candidate {
	var kept []*candidate
	for _, cd := range cands {
		if cd.reason != "" {
			t.c.Count(ctx, "rejected:"+cd.reason, 1)
			continue
		}
		kept = append(kept, cd)
	}
	t.c.Count(ctx, counter, float64(len(kept)))
	return kept
}

// mergedStub stubs every function of ms (all in file f) in one candidate.
func (t *taskMaker) mergedStub(f string, ms []mutation) (*candidate, error) {
	// Functions in line order, so the task's function list reads like
	// the file.
	ms = slices.Clone(ms)
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Line < ms[j].Line })
	old, err := t.store.ReadFile(t.v.Tree, f)
	if err != nil {
		return nil, err
	}
	variants := make([][]byte, len(ms))
	sites := make([]string, len(ms))
	for i, m := range ms {
		variants[i] = []byte(m.NewSource)
		sites[i] = f + "::" + m.Function
	}
	merged, err := mergeEdits(old, variants...)
	if err != nil {
		return nil, fmt.Errorf("repository %s: stubbing %s: %v", t.v.Repo, f, err)
	}
	return &candidate{transform: "stub", sites: sites, sources: map[string][]byte{f: merged}}, nil
}

// moduleStubs makes one candidate per source file that stubs all its
// functions, and evaluates them. A module whose stubs still break test
// collection (a function run at import time that mutate.py could not see:
// passed to map() at module level, called through an alias) falls back to
// smaller units: up to fallback of its functions, in mutate.py's seeded
// order, are stubbed one at a time; those that leave the suite collectable
// are stubbed together as one candidate ("the module less the functions
// that broke collection"), or, when that fails, kept one by one. Counters
// say how many units of each size were tried and kept. Besides the kept
// candidates it returns every candidate it evaluated.
func (t *taskMaker) moduleStubs(ctx context.Context, muts []mutation, fallback int) (kept, tried []*candidate, err error) {
	byFile := map[string][]mutation{}
	for _, m := range muts {
		byFile[m.File] = append(byFile[m.File], m)
	}
	files := make([]string, 0, len(byFile))
	for f := range byFile {
		files = append(files, f)
	}
	sort.Strings(files)
	modules := make([]*candidate, len(files))
	for i, f := range files {
		cd, err := t.mergedStub(f, byFile[f])
		if err != nil {
			return nil, nil, err
		}
		modules[i] = cd
	}
	t.evaluateAll(ctx, modules, false)
	if err := t.err(); err != nil {
		return nil, nil, err
	}
	t.c.Count(ctx, "stubs tried: modules", float64(len(modules)))

	// Smaller units for the modules that broke collection.
	var broken []string
	var singles []*candidate
	fileOf := map[*candidate]string{}
	for i, cd := range modules {
		if cd.reason != "breaks collection" || fallback == 0 {
			continue
		}
		broken = append(broken, files[i])
		for _, m := range byFile[files[i]][:min(fallback, len(byFile[files[i]]))] {
			s := functionStub(m)
			fileOf[s] = files[i]
			singles = append(singles, s)
		}
	}
	t.evaluateAll(ctx, singles, false)
	if err := t.err(); err != nil {
		return nil, nil, err
	}
	if len(broken) > 0 {
		t.c.Count(ctx, "stubs broke collection: modules (their functions tried one by one)", float64(len(broken)))
		t.c.Count(ctx, "stubs tried: functions of those modules", float64(len(singles)))
	}
	good := map[string][]mutation{}
	for _, s := range singles {
		if s.reason != "" {
			continue
		}
		f := fileOf[s]
		for _, m := range byFile[f] {
			if f+"::"+m.Function == s.sites[0] {
				good[f] = append(good[f], m)
			}
		}
	}
	var lessBroken []*candidate
	for _, f := range broken {
		if len(good[f]) >= 2 {
			cd, err := t.mergedStub(f, good[f])
			if err != nil {
				return nil, nil, err
			}
			lessBroken = append(lessBroken, cd)
		}
	}
	t.evaluateAll(ctx, lessBroken, false)
	if err := t.err(); err != nil {
		return nil, nil, err
	}
	tried = append(append(append(tried, modules...), singles...), lessBroken...)
	for _, cd := range modules {
		if cd.reason == "breaks collection" && fallback > 0 {
			continue // replaced by its smaller units
		}
		if cd.reason != "" {
			t.c.Count(ctx, "rejected:"+cd.reason, 1)
			continue
		}
		kept = append(kept, cd)
	}
	t.c.Count(ctx, "stubs kept: modules", float64(len(kept)))
	merged := map[string]bool{}
	n := 0
	for _, cd := range lessBroken {
		if cd.reason == "" {
			f, _, _ := strings.Cut(cd.sites[0], "::")
			merged[f] = true
			kept = append(kept, cd)
			n++
		}
	}
	if len(lessBroken) > 0 {
		t.c.Count(ctx, "stubs kept: modules less the functions that broke collection", float64(n))
	}
	// The functions that still broke collection are rejected; the others
	// are tasks of their own unless they are in a merged one.
	var rest []*candidate
	for _, s := range singles {
		if s.reason != "" || !merged[fileOf[s]] {
			rest = append(rest, s)
		}
	}
	if len(singles) > 0 {
		kept = append(kept, t.keepStubs(ctx, rest, "stubs kept: single functions")...)
	}
	return kept, tried, nil
}

// implementStatement asks for the stubbed functions to be written.
func implementStatement(prof lang.Profile, repo string, _ []string, cd *candidate) string {
	var b strings.Builder
	byFile := map[string][]string{}
	var files []string
	for _, s := range cd.sites {
		f, fn, _ := strings.Cut(s, "::")
		if _, ok := byFile[f]; !ok {
			files = append(files, f)
		}
		byFile[f] = append(byFile[f], fn)
	}
	sort.Strings(files)
	if len(cd.sites) == 1 {
		f, fn, _ := strings.Cut(cd.sites[0], "::")
		fmt.Fprintf(&b, "%s: implement %s in %s\n\n", repo, fn, f)
	} else {
		fmt.Fprintf(&b, "%s: implement the missing functions of %s\n\n", repo, strings.Join(files, ", "))
	}
	if prof.Name() == lang.Python {
		b.WriteString("These functions currently raise `NotImplementedError` and need a real implementation:\n\n")
	} else {
		b.WriteString("These functions are stubs that only report that they are not implemented, and need a real implementation:\n\n")
	}
	for _, f := range files {
		for _, fn := range byFile[f] {
			fmt.Fprintf(&b, "- `%s` in `%s`\n", fn, f)
		}
	}
	if prof.Name() == lang.Python {
		b.WriteString("\nKeep their names, signatures and docstrings. Read the tests to learn the expected behaviour; ")
	} else {
		b.WriteString("\nKeep their names, signatures and doc comments. Read the tests to learn the expected behaviour; ")
	}
	fmt.Fprintf(&b, "%d of them fail until the functions are implemented, for example:\n", len(cd.f2p))
	shown := cd.f2p[:min(len(cd.f2p), statementTests)]
	for _, id := range shown {
		fmt.Fprintf(&b, "- `%s`\n", id)
	}
	if len(cd.f2p) > len(shown) {
		fmt.Fprintf(&b, "- ... and %d more\n", len(cd.f2p)-len(shown))
	}
	b.WriteString("\nDo not change the tests.\n")
	return b.String()
}
