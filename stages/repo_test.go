package stages_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/stages"
)

func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestRepoKind snapshots a directory (without caches) and a git repository
// at a commit (not its working tree), and rejects bad sources.
func TestRepoKind(t *testing.T) {
	dir := t.TempDir()
	writeProject(t, dir, "plain", map[string]string{
		"src/p.py": "X = 1\n", "tests/test_p.py": "def test_x():\n    pass\n",
		"src/__pycache__/p.cpython-311.pyc": "junk", ".pytest_cache/v/x": "junk", "src/q.pyc": "junk",
	})
	gitDir := filepath.Join(dir, "gitproj")
	writeProject(t, dir, "gitproj", map[string]string{"lib.py": "V = 1\n", "tests/test_lib.py": "def test_v():\n    pass\n"})
	gitRun(t, gitDir, "init", "-q")
	gitRun(t, gitDir, "add", ".")
	gitRun(t, gitDir, "commit", "-q", "-m", "one")
	first := gitRun(t, gitDir, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(gitDir, "lib.py"), []byte("V = 2\n"), 0o644)
	gitRun(t, gitDir, "commit", "-q", "-am", "two")
	os.WriteFile(filepath.Join(gitDir, "lib.py"), []byte("V = 3 # uncommitted\n"), 0o644)

	recipe := "name: repotest\nstages:\n  repos:\n    uses: repo\n    with:\n      paths: [plain]\n      git: [{path: gitproj, commit: " + first + ", name: old}, {path: gitproj, commit: HEAD}]\n"
	p := filepath.Join(dir, "recipe.yaml")
	store, items := buildRepos(t, p, recipe)
	got := map[string]map[string]string{}
	for name, item := range items {
		files, err := store.Files(item.Tree)
		if err != nil {
			t.Fatal(err)
		}
		got[name] = map[string]string{}
		for f := range files {
			b, _ := store.ReadFile(item.Tree, f)
			got[name][f] = string(b)
		}
	}
	if len(got) != 3 || len(got["plain"]) != 2 || got["plain"]["src/p.py"] != "X = 1\n" {
		t.Errorf("plain snapshot %v (caches must be left out)", got["plain"])
	}
	if got["old"]["lib.py"] != "V = 1\n" || got["gitproj"]["lib.py"] != "V = 2\n" || len(got["gitproj"]) != 2 {
		t.Errorf("git snapshots: old %v, HEAD %v", got["old"], got["gitproj"])
	}

	bad := func(with, want string) {
		t.Helper()
		os.WriteFile(p, []byte("name: repotest\nstages:\n  repos:\n    uses: repo\n    with: "+with+"\n"), 0o644)
		r, err := build.LoadRecipe(p, func(string) string { return "" })
		if err == nil {
			_, err = build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(dir, "out")})
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("with %s: error %v, want it to mention %q", with, err, want)
		}
	}
	bad("{paths: [nosuch*]}", "matches nothing")
	bad("{git: [{path: gitproj}]}", "give both path and commit")
	bad("{git: [{path: gitproj, commit: deadbeef}]}", "is not a commit")
	bad("{paths: [plain], git: [{path: gitproj, commit: HEAD, name: plain}]}", "would both be item")
}

// TestRepoSourcesCheckedAtLoad: a source that is a symbolic link, lies
// outside the recipe's folder (without allow_outside), or names a commit
// that does not exist is bad input when the recipe is loaded, located at
// the param, before any store exists.
func TestRepoSourcesCheckedAtLoad(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "recipe")
	writeProject(t, dir, "plain", map[string]string{"p.py": "X = 1\n"})
	writeProject(t, root, "elsewhere", map[string]string{"secret.py": "KEY = 1\n"})
	gitDir := filepath.Join(dir, "gitproj")
	writeProject(t, dir, "gitproj", map[string]string{"lib.py": "V = 1\n"})
	gitRun(t, gitDir, "init", "-q")
	gitRun(t, gitDir, "add", ".")
	gitRun(t, gitDir, "commit", "-q", "-m", "one")
	if err := os.Symlink("plain", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "elsewhere"), filepath.Join(dir, "out-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "via"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(dir, "via", "up")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "recipe.yaml")
	load := func(with string) error {
		t.Helper()
		os.WriteFile(p, []byte("name: repotest\nstages:\n  repos:\n    uses: repo\n    with: "+with+"\n"), 0o644)
		_, err := build.LoadRecipe(p, func(string) string { return "" })
		return err
	}
	for _, c := range []struct{ with, want string }{
		{"{paths: [link]}", ":5:19: stage \"repos\" (repo): paths: " + filepath.Join(dir, "link") + " is a symbolic link"},
		{"{paths: [out-link]}", "is a symbolic link"},
		{"{git: [{path: link, commit: HEAD}]}", "is a symbolic link"},
		{"{paths: [/etc]}", ":5:19: stage \"repos\" (repo): paths: /etc is outside the recipe's folder"},
		{"{paths: [../elsewhere]}", "is outside the recipe's folder"},
		{"{paths: [via/up/elsewhere]}", "is outside the recipe's folder"},
		{"{git: [{path: gitproj, commit: 0123456789abcdef0123456789abcdef01234567}]}", `:5:42: stage "repos" (repo): git[0]: commit: "0123456789abcdef0123456789abcdef01234567" is not a commit`},
		{"{git: [{path: gitproj, commit: nosuchbranch}]}", "is not a commit"},
	} {
		err := load(c.with)
		if err == nil || !build.IsBadInput(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("with %s: error %v, want bad input mentioning %q", c.with, err, c.want)
		}
	}
	for _, with := range []string{
		"{paths: [plain], git: [{path: gitproj, commit: HEAD}]}",
		"{paths: [../elsewhere], allow_outside: true}",
		"{paths: [" + filepath.Join(root, "elsewhere") + "], allow_outside: true}",
	} {
		if err := load(with); err != nil {
			t.Errorf("with %s: %v", with, err)
		}
	}
}

// TestRepoSnapshotDropsGitDirWhole: a project directory that is a git
// checkout, snapshotted without commit:, leaves .git out whole, the empty
// directories git keeps there (refs/tags, objects/pack) included; a tree
// holding .git cannot become a task image's git repository.
func TestRepoSnapshotDropsGitDirWhole(t *testing.T) {
	dir := t.TempDir()
	writeProject(t, dir, "checkout", map[string]string{"lib.py": "V = 1\n", "tests/test_lib.py": "def test_v():\n    pass\n"})
	co := filepath.Join(dir, "checkout")
	gitRun(t, co, "init", "-q")
	gitRun(t, co, "add", ".")
	gitRun(t, co, "commit", "-q", "-m", "one")
	if err := os.MkdirAll(filepath.Join(co, ".git", "refs", "tags"), 0o755); err != nil {
		t.Fatal(err)
	}
	store, items := buildRepos(t, filepath.Join(dir, "recipe.yaml"), "name: repotest\nstages:\n  repos: {uses: repo, with: {paths: [checkout]}}\n")
	item := items["checkout"]
	var paths []string
	store.Walk(item.Tree, func(p string, _ cache.TreeEntry) error {
		paths = append(paths, p)
		return nil
	})
	for _, p := range paths {
		if p == ".git" || strings.HasPrefix(p, ".git/") {
			t.Fatalf("snapshot holds %s (all paths: %v)", p, paths)
		}
	}
	if len(paths) != 3 { // lib.py, tests, tests/test_lib.py
		t.Errorf("snapshot paths %v", paths)
	}
}

// buildRepos writes recipe to p, builds it (its first stage is of kind
// repo) in a fresh store, and returns the store and the repositories by
// item name.
func buildRepos(t *testing.T, p, recipe string) (*cache.Store, map[string]stages.RepoItem) {
	t.Helper()
	if err := os.WriteFile(p, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := build.LoadRecipe(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	store := testenv.Store(t)
	rec, err := build.Build(context.Background(), r, store, build.Options{OutDir: filepath.Join(filepath.Dir(p), "out")})
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Output build.Output `json:"output"`
	}
	if err := build.GetJSON(store, rec.Nodes[0].Result, &res); err != nil {
		t.Fatal(err)
	}
	items := map[string]stages.RepoItem{}
	for _, it := range res.Output.Items {
		var item stages.RepoItem
		if err := build.GetJSON(store, it.Value, &item); err != nil {
			t.Fatal(err)
		}
		items[it.Name] = item
	}
	return store, items
}
