package stages

// Shared pieces of the SWE-Playground kinds (propose_projects, decompose,
// scaffold, develop, develop_trajectories, derive_fix, derive_implement,
// derive_reproduce): their item formats, prompt templates and small tree and
// test-run helpers.

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
)

//go:embed playground_prompts/*.md
var playgroundPromptFS embed.FS

// playgroundPrompts are the SWE-Playground kinds' prompt templates; every
// kind that renders one declares the asset, so editing a template re-runs
// its nodes.
var playgroundPrompts = build.NewAsset("stages/playground_prompts", playgroundPromptFS)

// PlaygroundPlan is an item of the decompose kind: a project and its tasks
// in dependency order.
type PlaygroundPlan struct {
	Project schema.Project `json:"project"`
	// Package is the project's package name (derived from its id): the
	// Python import name or Go package, whose code lives in <package>/;
	// the npm package or Rust crate, whose code lives in src/.
	Package string            `json:"package"`
	Tasks   []schema.TaskSpec `json:"tasks"`
}

// PlaygroundScaffold is an item of the scaffold kind: the plan, the verified
// stub repository and the environment it was verified in.
type PlaygroundScaffold struct {
	Plan PlaygroundPlan `json:"plan"`
	// Environment is the recipe environment name ("" for the default).
	Environment string       `json:"environment,omitempty"`
	Base        schema.Image `json:"base"`
	Tree        cache.Digest `json:"tree"`
	// Trajectory is the blob of the scaffolding agent's schema.Trajectory.
	Trajectory cache.Digest `json:"trajectory"`
}

// Task outcomes recorded by the develop kind.
const (
	OutcomeDone    = "done"
	OutcomeFailed  = "failed"
	OutcomeSkipped = "skipped"
)

// PlaygroundTaskOutcome is what happened to one task of a project in the
// develop kind.
type PlaygroundTaskOutcome struct {
	Task   string `json:"task"`
	Status string `json:"status"`
	// Reason says why a task failed or was skipped.
	Reason string `json:"reason,omitempty"`
	// TestTries and ImplTries count the agent attempts made.
	TestTries int `json:"test_tries"`
	ImplTries int `json:"impl_tries"`
	// TestFile is the task's test file (relative to the repository root)
	// and Tests its pytest node ids.
	TestFile string   `json:"test_file,omitempty"`
	Tests    []string `json:"tests,omitempty"`
	// Tree is the repository after the task was done.
	Tree cache.Digest `json:"tree,omitzero"`
	// Disputes are the tests the implementation agent disputed, in order,
	// with what the test agent made of each.
	Disputes []PlaygroundDispute `json:"disputes,omitempty"`
}

// PlaygroundDispute is one dispute of a test by the implementation agent.
type PlaygroundDispute struct {
	Test   string `json:"test"`
	Reason string `json:"reason"`
	// Outcome is DisputeRevised, DisputeUpheld or DisputeRejected.
	Outcome string `json:"outcome"`
	// Trajectory is the blob of the disputing run's schema.Trajectory
	// (ending in the dispute_test call); it is not exported.
	Trajectory cache.Digest `json:"trajectory"`
}

// PlaygroundProject is an item of the develop kind: a finished project.
type PlaygroundProject struct {
	Plan        PlaygroundPlan `json:"plan"`
	Environment string         `json:"environment,omitempty"`
	Base        schema.Image   `json:"base"`
	// Scaffold is the stub repository; Final the repository after every
	// task that could be done.
	Scaffold cache.Digest            `json:"scaffold"`
	Final    cache.Digest            `json:"final"`
	Outcomes []PlaygroundTaskOutcome `json:"outcomes"`
	// Status is the status of every test on Final (all PASSED when the
	// project was built right).
	Status map[string]string `json:"status"`
	// Trajectories are blobs of schema.Trajectory: the accepted test-writing
	// ("testgen") and implementation ("implement") runs of the tasks that
	// were done (tests are kept only once an implementation passed them).
	Trajectories []cache.Digest `json:"trajectories"`
}

// renderPlayground renders the embedded template name (e.g.
// "decompose.system") with vars; a missing variable is an error.
func renderPlayground(ctx context.Context, name string, vars map[string]string) (string, error) {
	b, err := playgroundPrompts.ReadFile(ctx, "playground_prompts/"+name+".md")
	if err != nil {
		return "", fmt.Errorf("playground prompt %s: %v", name, err)
	}
	data := map[string]string{"workdir": agent.Workdir}
	for k, v := range vars {
		data[k] = v
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return "", fmt.Errorf("playground prompt %s: %v", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("playground prompt %s: %v", name, err)
	}
	return buf.String(), nil
}

var pyIdent = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

// packageName turns a project id into a Python package name.
func packageName(id string) string {
	s := strings.ToLower(id)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.Trim(b.String(), "_")
	if out == "" || !(out[0] >= 'a' && out[0] <= 'z') {
		out = "p" + out
	}
	if len(out) > 40 {
		out = out[:40]
	}
	return out
}

// itemSafe turns s into a valid item name part.
func itemSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out == "" {
		out = "_"
	}
	if len(out) > 150 {
		out = out[:150]
	}
	return out
}

// pgEditTree returns root with files written (nil data deletes the path).
func pgEditTree(store *cache.Store, root cache.Digest, files map[string][]byte) (cache.Digest, error) {
	changes := map[string]*cache.TreeEntry{}
	for p, data := range files {
		if data == nil {
			changes[p] = nil
			continue
		}
		d, err := store.Put(data)
		if err != nil {
			return cache.Digest{}, err
		}
		changes[p] = &cache.TreeEntry{Type: cache.TypeFile, Digest: d, Size: int64(len(data))}
	}
	return patch.Edit(store, root, changes)
}

// pgCopyPaths returns dst with every file under the prefixes, and every
// test file of the language, made as in src (files only in dst there are
// removed).
func pgCopyPaths(store *cache.Store, l pgLang, src, dst cache.Digest, prefixes []string) (cache.Digest, error) {
	return agent.RestoreProtected(store, l.prof, src, dst, prefixes)
}

// pgFiles lists the file paths of tree, sorted.
func pgFiles(store *cache.Store, tree cache.Digest) ([]string, map[string]cache.TreeEntry, error) {
	files, err := store.Files(tree)
	if err != nil {
		return nil, nil, err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, files, nil
}

// isTestPath reports whether a repository path is test code.
func isTestPath(p string) bool {
	base := p[strings.LastIndex(p, "/")+1:]
	return strings.HasPrefix(p, "tests/") || strings.HasPrefix(base, "test_") || strings.HasSuffix(base, "_test.py") || base == "conftest.py"
}

// pgRunTests runs the language's tests on tree and returns the report:
// those in the test files given, or all. (pytest takes the files as
// arguments; the other profiles' commands are made for them.)
func pgRunTests(ctx context.Context, c *build.Call, l pgLang, image schema.Image, tree cache.Digest, files ...string) (*agent.TestReport, error) {
	env, err := AgentEnv(c)
	if err != nil {
		return nil, err
	}
	if l.python() {
		return agent.RunTests(ctx, env, l.prof, image, tree, DefaultTestCmd, files)
	}
	cmd := l.testCmd()
	if len(files) > 0 {
		cmd = l.prof.TestCommand(files)
	}
	return agent.RunTests(ctx, env, l.prof, image, tree, cmd, nil)
}

// statusSplit returns the sorted node ids whose status is (or is not) PASSED.
func passedIDs(status map[string]string) (passed, notPassed []string) {
	for id, st := range status {
		if st == lang.StatusPassed {
			passed = append(passed, id)
		} else {
			notPassed = append(notPassed, id)
		}
	}
	sort.Strings(passed)
	sort.Strings(notPassed)
	return passed, notPassed
}

// trimOutput keeps the tail of a test output for feedback messages.
func trimOutput(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// pgCodeDump returns the code files of tree as a prompt section, each
// under a header, up to limit bytes: the test files if tests, else the
// sources.
func pgCodeDump(store *cache.Store, l pgLang, tree cache.Digest, tests bool, limit int) (string, error) {
	paths, _, err := pgFiles(store, tree)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range paths {
		if !(tests && l.isTestCode(p) || !tests && l.isSource(p)) {
			continue
		}
		data, err := store.ReadFile(tree, p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", p, data)
		if b.Len() > limit {
			break
		}
	}
	out := b.String()
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// pinnedRef returns "ref@digest" for a task instance's image field.
func pinnedRef(img schema.Image) string {
	ref := img.Ref
	if ref == "" {
		ref = "dsbuild/playground"
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref + "@" + img.Digest
}

// Reasons pgDropScratch gives for a file that is not part of a project.
const (
	ScratchIgnored = "ignored"        // build and tool debris (__pycache__, *.pyc, .pytest_cache, ...)
	ScratchBinary  = "binary"         // a binary file (NUL in its first 8000 bytes)
	ScratchOutside = "outside layout" // outside the project's declared directories
)

// scratchDirs are directories whose content is never project code.
var scratchDirs = []string{"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".tox", ".cache", ".ipynb_checkpoints"}

// scratchReason says why the file at p with content data, which an agent
// created, is scratch rather than project: "" keeps it. layout lists the
// project's directories ("pkg/", "tests/"); nil accepts any place.
func scratchReason(p string, data []byte, layout []string) string {
	parts := strings.Split(p, "/")
	for _, part := range parts[:len(parts)-1] {
		for _, d := range scratchDirs {
			if part == d || strings.HasSuffix(part, ".egg-info") {
				return ScratchIgnored
			}
		}
	}
	base := parts[len(parts)-1]
	for _, suf := range []string{".pyc", ".pyo", ".swp", "~", ".orig", ".rej"} {
		if strings.HasSuffix(base, suf) {
			return ScratchIgnored
		}
	}
	if base == ".coverage" || base == ".DS_Store" {
		return ScratchIgnored
	}
	if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
		return ScratchBinary
	}
	if len(layout) > 0 && !patch.Selected(p, layout) {
		return ScratchOutside
	}
	return ""
}

// pgDropScratch returns after without the files an agent created (absent
// from before) that scratchReason rejects, counting each as "scratch
// dropped:<reason>" and logging its path. Files the project already had are
// never dropped.
func pgDropScratch(ctx context.Context, c *build.Call, before, after cache.Digest, layout []string) (cache.Digest, error) {
	store := c.Store()
	old, err := store.Files(before)
	if err != nil {
		return cache.Digest{}, err
	}
	paths, files, err := pgFiles(store, after)
	if err != nil {
		return cache.Digest{}, err
	}
	drop := map[string][]byte{}
	for _, p := range paths {
		if _, ok := old[p]; ok {
			continue
		}
		var data []byte
		if e := files[p]; e.Type == cache.TypeFile {
			if data, err = store.Get(e.Digest); err != nil {
				return cache.Digest{}, err
			}
		}
		if why := scratchReason(p, data, layout); why != "" {
			drop[p] = nil
			c.Count(ctx, "scratch dropped:"+why, 1)
			c.Session.Logf(c.Stage, "dropped the agent's scratch file %s (%s)", p, why)
		}
	}
	if len(drop) == 0 {
		return after, nil
	}
	return pgEditTree(store, after, drop)
}
