package stages

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/schema"
)

func init() {
	build.Register(&build.Kind{
		Name: "stub_tasks", Version: "5",
		Doc:      "library-from-scratch tasks (Commit0 style): function bodies replaced by raise NotImplementedError, one task per module (or function)",
		Params:   func() any { return &StubTasksParams{Group: "module", TestTimeout: "10s"} },
		Pool:     "sandbox",
		Sections: []string{SectionSandbox},
		Assets:   []*build.Asset{mutateAsset},
		Run:      runStubTasks,
	})
}

// StubTasksParams are the params of the stub_tasks kind.
//
// mutate.py stub lists every function and method whose body can be stubbed
// (see stages/py/README.md for what it skips). With group "module" (the
// default) one task stubs every such function of one source file, which is
// the Commit0 setting scaled to a module; with "function" each function is
// a task of its own. A task is kept when tests that passed in validation
// fail on the stubbed tree (its FAIL_TO_PASS); the tests that still pass are
// its PASS_TO_PASS. A stubbed module whose import or collection breaks is
// rejected ("breaks collection"), as is one no test notices ("no failing
// test"). Kept tasks are re-verified from their packaged image like bugs.
type StubTasksParams struct {
	// Group is "module" (one task per source file) or "function".
	Group string `yaml:"group" json:"group"`
	// PerRepo is the most tasks per repository; 0 means no limit. Modules
	// are taken in path order, functions in mutate.py's (seeded) order.
	PerRepo int `yaml:"per_repo" json:"per_repo"`
	// Seed orders the functions (mutate.py --seed).
	Seed int64 `yaml:"seed" json:"seed"`
	// Include restricts the source files (globs relative to the
	// repository root).
	Include []string `yaml:"include" json:"include,omitempty"`
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
	args := []string{"--seed", strconv.FormatInt(p.Seed, 10)}
	for _, g := range p.Include {
		args = append(args, "--include", g)
	}
	muts, err := t.mutate(ctx, "stub", args...)
	if err != nil {
		return build.Output{}, err
	}
	var cands []*candidate
	if p.Group == "function" {
		for _, m := range muts {
			cands = append(cands, &candidate{
				transform: "stub",
				sites:     []string{m.File + "::" + m.Function},
				sources:   map[string][]byte{m.File: []byte(m.NewSource)},
			})
		}
	} else {
		byFile := map[string][]mutation{}
		for _, m := range muts {
			byFile[m.File] = append(byFile[m.File], m)
		}
		files := make([]string, 0, len(byFile))
		for f := range byFile {
			files = append(files, f)
		}
		sort.Strings(files)
		for _, f := range files {
			ms := byFile[f]
			// Functions in line order, so the task's function list reads
			// like the file.
			sort.SliceStable(ms, func(i, j int) bool { return ms[i].Line < ms[j].Line })
			old, err := t.store.ReadFile(t.v.Tree, f)
			if err != nil {
				return build.Output{}, err
			}
			variants := make([][]byte, len(ms))
			sites := make([]string, len(ms))
			for i, m := range ms {
				variants[i] = []byte(m.NewSource)
				sites[i] = f + "::" + m.Function
			}
			merged, err := mergeEdits(old, variants...)
			if err != nil {
				return build.Output{}, fmt.Errorf("repository %s: stubbing %s: %v", t.v.Repo, f, err)
			}
			cands = append(cands, &candidate{transform: "stub", sites: sites, sources: map[string][]byte{f: merged}})
		}
	}
	t.evaluateAll(ctx, cands, false)
	if err := t.err(); err != nil {
		return build.Output{}, err
	}
	var kept []*candidate
	for _, cd := range cands {
		if cd.reason != "" {
			c.Count(ctx, "rejected:"+cd.reason, 1)
			continue
		}
		kept = append(kept, cd)
	}
	want := len(kept)
	if p.PerRepo > 0 {
		want = min(want, p.PerRepo)
	}
	bundles, err := t.finalizeUpTo(ctx, kept, want, schema.TaskImplement, implementStatement)
	if err != nil {
		return build.Output{}, err
	}
	return t.output(ctx, bundles, "stub")
}

// implementStatement asks for the stubbed functions to be written.
func implementStatement(repo string, cd *candidate) string {
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
	b.WriteString("These functions currently raise `NotImplementedError` and need a real implementation:\n\n")
	for _, f := range files {
		for _, fn := range byFile[f] {
			fmt.Fprintf(&b, "- `%s` in `%s`\n", fn, f)
		}
	}
	b.WriteString("\nKeep their names, signatures and docstrings. Read the tests to learn the expected behaviour; ")
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
