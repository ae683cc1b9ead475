package gitrepo_test

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/gitrepo"
	"github.com/dsbuild/dsbuild/patch"
)

func newStore(t *testing.T) *cache.Store {
	t.Helper()
	s, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writeFiles creates files (path -> content; a "->" prefix makes a
// symlink to the rest, a "+x " prefix an executable file, a trailing slash
// in the path an empty directory) below dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(strings.TrimPrefix(content, "->"), full)
		case strings.HasPrefix(content, "+x "):
			err = os.WriteFile(full, []byte(strings.TrimPrefix(content, "+x ")), 0o755)
		default:
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// awkward exercises git's sort order (a.b, a/, a-b, a0 and a file "a"
// inside), names with spaces and non-ASCII, an empty file, executables,
// symlinks (dangling and into a directory), duplicate contents, an empty
// directory (which git does not track) and a directory holding only an
// empty directory.
var awkward = map[string]string{
	"a.b":                 "dot\n",
	"a-b":                 "dash\n",
	"a0":                  "zero\n",
	"a/a":                 "inner a\n",
	"a/b.py":              "print('b')\n",
	"a/b/c.py":            "print('c')\n",
	"a b/c d.txt":         "spaces\n",
	"ünï/çødé.py":         "# -*- coding: utf-8 -*-\nname = 'ü'\n",
	"empty":               "",
	"run_tests.sh":        "+x #!/bin/sh\nexec python3 -m pytest -q\n",
	"tools/gen":           "+x #!/bin/sh\necho gen\n",
	"link":                "->a/b.py",
	"dirlink":             "->a",
	"dangling":            "->does/not/exist",
	"copy.txt":            "dash\n",
	"emptydir/":           "",
	"hollow/inner/":       "",
	"deep/er/est/leaf.py": "x = 1\n",
	"Upper":               "capital\n",
	"_under":              "underscore\n",
}

func snapshot(t *testing.T, s *cache.Store, files map[string]string) cache.Digest {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	d, err := s.Snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// gitTar returns the tar WriteTar writes for tree below "repo/.git".
func gitTar(t *testing.T, s *cache.Store, tree cache.Digest) ([]byte, gitrepo.ID) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	id, err := gitrepo.WriteTar(tw, s, tree, "repo/.git")
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), id
}

// checkout materializes tree with its .git below a new directory and
// returns the repository's path.
func checkout(t *testing.T, s *cache.Store, tree cache.Digest) string {
	t.Helper()
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	if err := s.Materialize(tree, repo); err != nil {
		t.Fatal(err)
	}
	tarball, _ := gitTar(t, s, tree)
	cmd := exec.Command("tar", "-x", "-f", "-", "-C", root)
	cmd.Stdin = bytes.NewReader(tarball)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	return repo
}

// gitEnv keeps the host's git configuration out and fixes identity and
// dates the way gitrepo does.
func gitEnv(t *testing.T) []string {
	home := t.TempDir()
	date := gitrepo.Date.Format("2006-01-02T15:04:05Z")
	name, email, _ := strings.Cut(strings.TrimSuffix(gitrepo.Identity, ">"), " <")
	return append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME="+name, "GIT_AUTHOR_EMAIL="+email, "GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME="+name, "GIT_COMMITTER_EMAIL="+email, "GIT_COMMITTER_DATE="+date,
		"LC_ALL=C")
}

// git runs git in dir and returns its stdout; it fails the test on a
// non-zero exit.
func git(t *testing.T, dir string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = gitEnv(t)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestRepositoryIsWhatGitMakes(t *testing.T) {
	s := newStore(t)
	tree := snapshot(t, s, awkward)
	want, err := gitrepo.Commit(s, tree)
	if err != nil {
		t.Fatal(err)
	}
	repo := checkout(t, s, tree)

	if out := git(t, repo, "", "fsck", "--strict", "--no-dangling", "--no-progress"); out != "" {
		t.Errorf("git fsck --strict: %s", out)
	}
	if got := strings.TrimSpace(git(t, repo, "", "rev-parse", "HEAD")); got != want.String() {
		t.Errorf("HEAD %s, Commit says %s", got, want)
	}
	if got := strings.TrimSpace(git(t, repo, "", "symbolic-ref", "HEAD")); got != "refs/heads/"+gitrepo.Branch {
		t.Errorf("HEAD is %s", got)
	}
	// The index matches HEAD's tree before git looks at the files...
	if out := git(t, repo, "", "diff-index", "--cached", "HEAD"); out != "" {
		t.Errorf("index differs from HEAD:\n%s", out)
	}
	// ...and the work tree matches the index.
	if out := git(t, repo, "", "status", "--porcelain", "--untracked-files=all", "--ignored"); out != "" {
		t.Errorf("git status not clean:\n%s", out)
	}
	if out := git(t, repo, "", "diff", "HEAD"); out != "" {
		t.Errorf("git diff HEAD not empty:\n%s", out)
	}
	// What running the tests leaves behind stays out of status and add -A.
	for _, p := range []string{"__pycache__/m.cpython-311.pyc", "pkg/__pycache__/x.pyc", ".pytest_cache/v/cache/nodeids"} {
		os.MkdirAll(filepath.Join(repo, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(repo, p), []byte{0, 1, 2}, 0o644)
	}
	if out := git(t, repo, "", "status", "--porcelain", "--untracked-files=all"); out != "" {
		t.Errorf("git status after a test run not clean:\n%s", out)
	}
	log := git(t, repo, "", "log", "--format=%an <%ae>|%aI|%cn <%ce>|%cI|%P|%B")
	date := "1980-01-01T00:00:00+00:00"
	if wantLog := gitrepo.Identity + "|" + date + "|" + gitrepo.Identity + "|" + date + "||" + gitrepo.Message + "\n"; log != wantLog {
		t.Errorf("git log:\n%q\nwant\n%q", log, wantLog)
	}
	files := git(t, repo, "", "ls-files", "-s", "-z")
	for _, want := range []string{"100755 ", "120000 ", "100644 "} {
		if !strings.Contains(files, want) {
			t.Errorf("no %s entry in ls-files: %q", want, files)
		}
	}
	if strings.Contains(files, "emptydir") || strings.Contains(files, "hollow") {
		t.Errorf("empty directories tracked: %q", files)
	}

	// Real git, given the same files, identity, date and message, makes
	// the same commit.
	fresh := t.TempDir()
	if err := s.Materialize(tree, fresh); err != nil {
		t.Fatal(err)
	}
	git(t, fresh, "", "init", "-q", "-b", gitrepo.Branch)
	git(t, fresh, "", "add", "-A")
	git(t, fresh, gitrepo.Message, "commit", "-q", "--cleanup=verbatim", "-F", "-")
	if got := strings.TrimSpace(git(t, fresh, "", "rev-parse", "HEAD")); got != want.String() {
		t.Errorf("git commit of the same files is %s, Commit says %s", got, want)
	}
}

func TestEditsShowAndPatchesApply(t *testing.T) {
	s := newStore(t)
	tree := snapshot(t, s, awkward)
	repo := checkout(t, s, tree)

	// An edit shows in git status and git diff.
	if err := os.WriteFile(filepath.Join(repo, "a b", "c d.txt"), []byte("spaces, edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := git(t, repo, "", "status", "--porcelain"); got != " M \"a b/c d.txt\"\n" {
		t.Errorf("git status after an edit: %q", got)
	}
	diff := git(t, repo, "", "diff")
	if !strings.Contains(diff, "-spaces\n+spaces, edited\n") {
		t.Errorf("git diff after an edit:\n%s", diff)
	}

	// A patch from dsbuild's patch package applies with git apply, and the
	// result is the tree the patch was made to.
	changed := map[string]string{}
	for p, c := range awkward {
		changed[p] = c
	}
	changed["ünï/çødé.py"] = "# -*- coding: utf-8 -*-\nname = 'ö'\n"
	changed["a/b/new file.py"] = "new = True\n"
	delete(changed, "a-b")
	changed["empty"] = "+x now executable and not empty\n"
	changed["link"] = "->a/a"
	to := snapshot(t, s, changed)
	p, err := patch.Diff(s, tree, to)
	if err != nil {
		t.Fatal(err)
	}
	clean := checkout(t, s, tree)
	git(t, clean, p, "apply", "--check", "-")
	git(t, clean, p, "apply", "-")
	git(t, clean, "", "add", "-A")
	treeID := strings.TrimSpace(git(t, clean, "", "write-tree"))
	got := strings.TrimSpace(git(t, clean, gitrepo.Message, "commit-tree", treeID))
	want, err := gitrepo.Commit(s, to)
	if err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Errorf("after git apply of the dsbuild patch the commit of the files is %s, want %s (Commit of the target tree)\n%s", got, want, p)
	}
}

func TestEmptyTree(t *testing.T) {
	s := newStore(t)
	tree, err := s.EmptyTree()
	if err != nil {
		t.Fatal(err)
	}
	repo := checkout(t, s, tree)
	git(t, repo, "", "fsck", "--strict", "--no-progress")
	if out := git(t, repo, "", "status", "--porcelain"); out != "" {
		t.Errorf("git status: %q", out)
	}
	if got := strings.TrimSpace(git(t, repo, "", "rev-parse", "HEAD^{tree}")); got != "4b825dc642cb6eb9a060e54bf8d69288fbee4904" {
		t.Errorf("empty tree id %s", got)
	}
}

// Two stores, and the second time without remembered ids, give the same
// bytes.
func TestDeterministic(t *testing.T) {
	s1, s2 := newStore(t), newStore(t)
	t1 := snapshot(t, s1, awkward)
	b1, id1 := gitTar(t, s1, t1)
	b1again, _ := gitTar(t, s1, t1)
	t2 := snapshot(t, s2, awkward)
	gitrepo.ForgetIDs()
	b2, id2 := gitTar(t, s2, t2)
	if t1 != t2 {
		t.Fatalf("same files snapshotted to %s and %s", t1, t2)
	}
	if id1 != id2 || !bytes.Equal(b1, b2) || !bytes.Equal(b1, b1again) {
		t.Errorf("two builds differ: %s %s, %d and %d bytes", id1, id2, len(b1), len(b2))
	}
	c, err := gitrepo.Commit(s2, t2)
	if err != nil || c != id1 {
		t.Errorf("Commit %s, %v; WriteTar said %s", c, err, id1)
	}
}

func TestRefusesDotGit(t *testing.T) {
	s := newStore(t)
	for _, bad := range []string{".git/HEAD", "sub/.GIT/config", "x/GIT~1/y"} {
		files := map[string]string{"ok.py": "x\n", bad: "ref: refs/heads/main\n"}
		tree := snapshot(t, s, files)
		_, err := gitrepo.Commit(s, tree)
		where := bad[:strings.LastIndex(bad, "/")]
		if err == nil || !strings.Contains(err.Error(), where) {
			t.Errorf("%s: Commit error %v, want one naming %q", bad, err, where)
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if _, err := gitrepo.WriteTar(tw, s, tree, "repo/.git"); err == nil || buf.Len() != 0 {
			t.Errorf("%s: WriteTar error %v after %d bytes", bad, err, buf.Len())
		}
	}
}
