package stages

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/lang"
	"github.com/dsbuild/dsbuild/patch"
)

func init() {
	build.Register(&build.Kind{
		Name: "repo", Version: "2",
		Doc:    "snapshots projects (local directories, git path+commit, or repos: entries with per-repository test settings) as trees, one item per repository; sources outside the recipe's folder need allow_outside: true",
		Params: func() any { return &RepoParams{Exclude: DefaultRepoExclude} },
		// Directories are re-read in every build; an unchanged snapshot
		// keeps everything downstream cached (early cutoff). A git source
		// at a commit is cheap to re-read, so the whole kind is volatile.
		Volatile: true,
		Run:      runRepo,
	})
}

// DefaultRepoExclude are the names (path.Match patterns, matched against
// every path component) that the repo kind leaves out of a snapshot: version
// control, caches and byte code that would otherwise make equal sources
// look different.
var DefaultRepoExclude = []string{".git", "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", ".tox", "*.egg-info"}

// RepoParams are the params of the repo kind. Every directory matched by
// Paths, every Git source and every Repos entry becomes one item (a
// RepoItem), named after the directory (or the entry's Name); names must
// be unique.
type RepoParams struct {
	// Paths are globs of project directories, relative to the recipe.
	Paths []string `yaml:"paths" json:"paths,omitempty"`
	// Git are git repositories read at a commit with `git archive`.
	Git []GitRepo `yaml:"git" json:"git,omitempty"`
	// Repos are project directories (or git repositories, with Commit)
	// each with its own test settings, which validate, inject_bugs and
	// stub_tasks use instead of their stage's params: one stage serves
	// repositories that need different settings.
	Repos []RepoSpec `yaml:"repos" json:"repos,omitempty"`
	// Exclude are path.Match patterns of file and directory names left
	// out of the snapshot (default DefaultRepoExclude).
	Exclude []string `yaml:"exclude" json:"exclude"`
	// AllowOutside lets paths and git sources lie outside the recipe's
	// folder (an absolute path, "..", or a symbolic link leading out).
	// Without it such a source is an error: a recipe from elsewhere must
	// not be able to read, say, /etc or a home directory into the store
	// and its outputs. It does not enter keys.
	AllowOutside bool `yaml:"allow_outside" json:"-"`

	sources []repoSource
}

func (*RepoParams) producesTrees() {}

// GitRepo is a git repository read at one commit.
type GitRepo struct {
	// Path is the repository's directory (relative to the recipe).
	Path string `yaml:"path" json:"path"`
	// Commit is anything `git rev-parse` resolves to a commit; a full
	// hash pins the content.
	Commit string `yaml:"commit" json:"commit"`
	// Name is the item name; default the directory's base name.
	Name string `yaml:"name" json:"name,omitempty"`
}

// RepoSpec is one entry of RepoParams.Repos: a source and its settings.
type RepoSpec struct {
	// Path is the project directory (relative to the recipe).
	Path string `yaml:"path" json:"path"`
	// Commit, if set, reads Path as a git repository at that commit.
	Commit string `yaml:"commit" json:"commit,omitempty"`
	// Name is the item name; default the directory's base name.
	Name         string `yaml:"name" json:"name,omitempty"`
	RepoSettings `yaml:",inline" json:",inline"`
}

// RepoSettings are a repository's own test settings; each one that is set
// wins over the same param of the stage that uses the repository.
type RepoSettings struct {
	// Language names the repository's language ("python", "go", ...; see
	// lang.Names): validate's language.
	Language string `yaml:"language" json:"language,omitempty"`
	// Environment names the recipe environment to test in.
	Environment string `yaml:"environment" json:"environment,omitempty"`
	// TestCmd runs the tests (validate's test_cmd).
	TestCmd []string `yaml:"test_cmd" json:"test_cmd,omitempty"`
	// TestPaths are the test files or directories (validate's test_paths).
	TestPaths []string `yaml:"test_paths" json:"test_paths,omitempty"`
	// Deselect are test ids (or id prefixes) never run, passed to pytest
	// as --deselect: slow or network tests, say (Python only).
	Deselect []string `yaml:"deselect" json:"deselect,omitempty"`
	// Env are environment variables set in the repository's images (and
	// so in every test run and in the exported task images).
	Env map[string]string `yaml:"env" json:"env,omitempty"`
	// TestTimeout is the CPU-time budget of a test run in inject_bugs and
	// stub_tasks (their test_timeout).
	TestTimeout string `yaml:"test_timeout" json:"test_timeout,omitempty"`
}

// check reports a bad setting.
func (s *RepoSettings) check() error {
	if err := checkLanguage(s.Language); err != nil {
		return err
	}
	for _, tp := range s.TestPaths {
		if tp == "" || tp[0] == '/' || tp[0] == '-' {
			return fmt.Errorf("test_paths: %q must be a path relative to the repository root", tp)
		}
	}
	for _, id := range s.Deselect {
		if id == "" || id[0] == '-' {
			return fmt.Errorf("deselect: %q must be a test id", id)
		}
	}
	for k := range s.Env {
		if !envName.MatchString(k) {
			return fmt.Errorf("env: %q is not a variable name", k)
		}
	}
	if s.TestTimeout != "" {
		if _, err := parseTestTimeout(s.TestTimeout); err != nil {
			return err
		}
	}
	return nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// RepoItem is an item of the repo kind: a repository's tree and its own
// settings (zero when the recipe gives none).
type RepoItem struct {
	Tree     cache.Digest `json:"tree"`
	Settings RepoSettings `json:"settings,omitzero"`
}

type repoSource struct {
	name, dir, commit string // commit "" for a plain directory
	settings          RepoSettings
}

var repoItemName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

// Resolve expands the globs and checks the git sources.
func (p *RepoParams) Resolve(dir string) error {
	if len(p.Paths) == 0 && len(p.Git) == 0 && len(p.Repos) == 0 {
		return fmt.Errorf("give at least one directory in paths or repos, or repository in git")
	}
	for _, pat := range p.Exclude {
		if _, err := path.Match(pat, ""); err != nil {
			return fmt.Errorf("exclude: bad pattern %q: %v", pat, err)
		}
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	inside, err := p.insideCheck(dir)
	if err != nil {
		return err
	}
	seen := map[string]string{}
	add := func(s repoSource) error {
		if !repoItemName.MatchString(s.name) {
			return fmt.Errorf("repository %s: name %q must be letters, digits, '.', '_' or '-' (set a name)", s.dir, s.name)
		}
		if other, dup := seen[s.name]; dup {
			return fmt.Errorf("%s and %s would both be item %q", other, s.dir, s.name)
		}
		seen[s.name] = s.dir
		p.sources = append(p.sources, s)
		return nil
	}
	for _, g := range p.Paths {
		matches, err := filepath.Glob(abs(g))
		if err != nil {
			return fmt.Errorf("paths: %q: %v", g, err)
		}
		if len(matches) == 0 {
			return fmt.Errorf("paths: %q matches nothing (relative paths are resolved against %s)", g, dir)
		}
		sort.Strings(matches)
		for _, m := range matches {
			if err := sourceDir(m, inside); err != nil {
				return fmt.Errorf("paths: %v", err)
			}
			if err := add(repoSource{name: filepath.Base(m), dir: m}); err != nil {
				return fmt.Errorf("paths: %v", err)
			}
		}
	}
	for i, g := range p.Git {
		if g.Path == "" || g.Commit == "" {
			return fmt.Errorf("git[%d]: give both path and commit", i)
		}
		if strings.HasPrefix(g.Commit, "-") {
			return fmt.Errorf("git[%d]: commit %q must not start with '-'", i, g.Commit)
		}
		d := abs(g.Path)
		if err := sourceDir(d, inside); err != nil {
			return fmt.Errorf("git[%d]: %v", i, err)
		}
		if err := gitCommitExists(d, g.Commit); err != nil {
			return fmt.Errorf("git[%d]: %v", i, err)
		}
		name := g.Name
		if name == "" {
			name = filepath.Base(d)
		}
		if err := add(repoSource{name: name, dir: d, commit: g.Commit}); err != nil {
			return fmt.Errorf("git[%d]: %v", i, err)
		}
	}
	for i, r := range p.Repos {
		if r.Path == "" {
			return fmt.Errorf("repos[%d]: give a path", i)
		}
		if err := r.check(); err != nil {
			return fmt.Errorf("repos[%d] (%s): %v", i, r.Path, err)
		}
		d := abs(r.Path)
		if err := sourceDir(d, inside); err != nil {
			return fmt.Errorf("repos[%d]: %v", i, err)
		}
		if r.Commit != "" {
			if strings.HasPrefix(r.Commit, "-") {
				return fmt.Errorf("repos[%d]: commit %q must not start with '-'", i, r.Commit)
			}
			if err := gitCommitExists(d, r.Commit); err != nil {
				return fmt.Errorf("repos[%d]: %v", i, err)
			}
		}
		name := r.Name
		if name == "" {
			name = filepath.Base(d)
		}
		if err := add(repoSource{name: name, dir: d, commit: r.Commit, settings: r.RepoSettings}); err != nil {
			return fmt.Errorf("repos[%d]: %v", i, err)
		}
	}
	return nil
}

// insideCheck returns the check that a source directory lies inside the
// recipe's folder dir (nil with AllowOutside).
func (p *RepoParams) insideCheck(dir string) (func(string) error, error) {
	if p.AllowOutside {
		return nil, nil
	}
	root, err := realPath(dir)
	if err != nil {
		return nil, fmt.Errorf("the recipe's folder: %v", err)
	}
	return func(d string) error {
		real, err := realPath(d)
		if err != nil {
			return err
		}
		if rel, err := filepath.Rel(root, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("%s is outside the recipe's folder %s (set allow_outside: true to read sources from elsewhere)", d, root)
		}
		return nil
	}, nil
}

func realPath(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(a)
}

// sourceDir checks that d is a directory, not a symbolic link (whose
// target could change between builds without the recipe saying so), and
// that inside (if set) accepts it.
func sourceDir(d string, inside func(string) error) error {
	fi, err := os.Lstat(d)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link; name the directory it points to", d)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", d)
	}
	if inside != nil {
		return inside(d)
	}
	return nil
}

// gitCommitExists checks that commit names a commit of the git repository
// at dir.
func gitCommitExists(dir, commit string) error {
	rev := exec.Command("git", "-C", dir, "rev-parse", "--verify", "--quiet", commit+"^{commit}")
	var stderr bytes.Buffer
	rev.Stderr = &stderr
	if err := rev.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return fmt.Errorf("running git (is it installed?): %v", err)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("commit: cannot look up %q in %s: %s", commit, dir, msg)
		}
		return fmt.Errorf("commit: %q is not a commit of the git repository %s", commit, dir)
	}
	return nil
}

func runRepo(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*RepoParams)
	items := make([]build.Item, 0, len(p.sources))
	for _, s := range p.sources {
		var (
			d   cache.Digest
			err error
		)
		if s.commit == "" {
			d, err = snapshotRepoDir(c.Store(), s.dir, p.Exclude)
		} else {
			d, err = snapshotGitCommit(ctx, c.Store(), s.dir, s.commit, p.Exclude)
		}
		if err != nil {
			return build.Output{}, build.BadInput("repository %s: %v", s.name, err)
		}
		item, err := c.PutJSON(RepoItem{Tree: d, Settings: s.settings})
		if err != nil {
			return build.Output{}, err
		}
		items = append(items, build.Item{Name: s.name, Value: item})
	}
	return build.Collection(items), nil
}

// excludedPath reports whether any component of the slash-separated rel
// matches one of patterns.
func excludedPath(rel string, patterns []string) bool {
	for _, part := range strings.Split(rel, "/") {
		for _, pat := range patterns {
			if ok, _ := path.Match(pat, part); ok {
				return true
			}
		}
	}
	return false
}

// snapshotRepoDir stores dir as a tree without the excluded paths.
func snapshotRepoDir(store *cache.Store, dir string, exclude []string) (cache.Digest, error) {
	d, err := store.Snapshot(dir)
	if err != nil {
		return cache.Digest{}, err
	}
	// Excluded directories go whole, with the empty directories inside
	// them: a git checkout's .git holds some (branches/, refs/tags/), and
	// deleting only its files left a .git that the task image's git
	// repository cannot hold.
	drop := map[string]*cache.TreeEntry{}
	err = store.Walk(d, func(rel string, _ cache.TreeEntry) error {
		inExcluded := strings.Contains(rel, "/") && excludedPath(path.Dir(rel), exclude)
		if excludedPath(rel, exclude) && !inExcluded {
			drop[rel] = nil
		}
		return nil
	})
	if err != nil {
		return cache.Digest{}, err
	}
	if len(drop) == 0 {
		return d, nil
	}
	return patch.Edit(store, d, drop)
}

// snapshotGitCommit stores the tree of commit in the git repository at dir,
// read with `git archive`, without the excluded paths.
func snapshotGitCommit(ctx context.Context, store *cache.Store, dir, commit string, exclude []string) (cache.Digest, error) {
	rev := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--verify", "--quiet", commit+"^{commit}")
	var revOut bytes.Buffer
	rev.Stdout = &revOut
	if err := rev.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return cache.Digest{}, fmt.Errorf("%s: %q is not a commit of this git repository", dir, commit)
		}
		return cache.Digest{}, fmt.Errorf("running git (is it installed?): %v", err)
	}
	hash := strings.TrimSpace(revOut.String())
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "archive", "--format=tar", hash)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return cache.Digest{}, fmt.Errorf("git archive %s: %v: %s", hash, err, strings.TrimSpace(stderr.String()))
	}
	changes := map[string]*cache.TreeEntry{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return cache.Digest{}, fmt.Errorf("reading git archive: %v", err)
		}
		rel := strings.TrimSuffix(h.Name, "/")
		if rel == "" || rel == "." || excludedPath(rel, exclude) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				return cache.Digest{}, fmt.Errorf("reading git archive: %s: %v", rel, err)
			}
			d, err := store.Put(data)
			if err != nil {
				return cache.Digest{}, err
			}
			changes[rel] = &cache.TreeEntry{Type: cache.TypeFile, Exec: h.Mode&0o111 != 0, Size: int64(len(data)), Digest: d}
		case tar.TypeSymlink:
			changes[rel] = &cache.TreeEntry{Type: cache.TypeSymlink, Target: h.Linkname}
		case tar.TypeDir, tar.TypeXGlobalHeader:
			// directories are implied by their files; the global header
			// carries the commit id.
		default:
			return cache.Digest{}, fmt.Errorf("git archive: %s has unsupported type %q", rel, h.Typeflag)
		}
	}
	return patch.Edit(store, cache.Digest{}, changes)
}

// checkLanguage reports a language no profile is registered for ("" is
// fine: validate detects it).
func checkLanguage(name string) error {
	if name == "" {
		return nil
	}
	if _, err := lang.Get(name); err != nil {
		return fmt.Errorf("language: %v", err)
	}
	return nil
}
