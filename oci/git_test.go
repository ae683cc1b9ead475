package oci

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/gitrepo"
)

// extractLayer unpacks the uncompressed layer diffID of s with tar into a
// new directory and returns it.
func extractLayer(t *testing.T, s *cache.Store, diffID string) string {
	t.Helper()
	d, err := cache.ParseDigest(diffID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Get(d)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("tar", "-x", "-f", "-", "-C", dir)
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	return dir
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// With GitRepository the task layer holds /testbed/.git after the tree: a
// repository git accepts, at the commit gitrepo.Commit names, with a clean
// status; two builders on two stores give the same, pinned, digest, and
// the layer without the option is the one it always was.
func TestWithTreeGitRepository(t *testing.T) {
	const golden = "sha256:973bbf945d139e944300a757bc1c3dfb5424478ccbbde026784b866fe43125c2"
	cfg := provenance
	cfg.GitRepository = true
	var digests []string
	for range 2 {
		s := newStore(t)
		b := NewBuilder(s, Options{})
		tree := projectTree(t, s, 1)
		img, err := b.WithTree(context.Background(), syntheticBase(t, s), tree, "/testbed", cfg)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, img.Digest)
		plain, err := b.WithTree(context.Background(), syntheticBase(t, s), tree, "/testbed", provenance)
		if err != nil {
			t.Fatal(err)
		}
		if plain.Digest == img.Digest {
			t.Fatal("the git option did not change the image")
		}

		layer := img.Layers[len(img.Layers)-1]
		seenGit := false
		for _, h := range tarEntries(t, s, layer) {
			isGit := strings.HasPrefix(h.Name, "testbed/.git/")
			if seenGit && !isGit {
				t.Errorf("tree entry %s after the .git entries", h.Name)
			}
			seenGit = seenGit || isGit
			if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
				t.Errorf("%s: owner %d:%d, mtime %v", h.Name, h.Uid, h.Gid, h.ModTime)
			}
		}
		if !seenGit {
			t.Fatal("no .git entries in the layer")
		}

		repo := filepath.Join(extractLayer(t, s, layer), "testbed")
		want, err := gitrepo.Commit(s, tree)
		if err != nil {
			t.Fatal(err)
		}
		runGit(t, repo, "fsck", "--strict", "--no-progress")
		if got := strings.TrimSpace(runGit(t, repo, "rev-parse", "HEAD")); got != want.String() {
			t.Errorf("HEAD %s, want %s", got, want)
		}
		if out := runGit(t, repo, "status", "--porcelain", "--untracked-files=all"); out != "" {
			t.Errorf("git status in the layer:\n%s", out)
		}
		if err := os.WriteFile(filepath.Join(repo, "src/mathx/ops.py"), []byte("def add(a, b):\n    return a - b\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if diff := runGit(t, repo, "diff"); !strings.Contains(diff, "+    return a - b") {
			t.Errorf("git diff after an edit:\n%s", diff)
		}
		cf, err := load(s, img.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if h := cf.config.History[len(cf.config.History)-1].CreatedBy; !strings.Contains(h, want.String()) {
			t.Errorf("history %q does not name the commit", h)
		}
	}
	if digests[0] != digests[1] {
		t.Fatalf("two stores gave %s and %s", digests[0], digests[1])
	}
	if digests[0] != golden {
		t.Errorf("digest %s, want the pinned %s", digests[0], golden)
	}
}

// A tree holding .git cannot be made a repository: WithTree says so and
// stores no image.
func TestWithTreeGitRefusesDotGit(t *testing.T) {
	s := newStore(t)
	tree, err := s.PutFiles(map[string]cache.File{"a.py": {Data: []byte("x\n")}, ".git/HEAD": {Data: []byte("ref: refs/heads/x\n")}})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder(s, Options{})
	_, err = b.WithTree(context.Background(), syntheticBase(t, s), tree, "/testbed", ConfigOptions{GitRepository: true})
	if err == nil || !strings.Contains(err.Error(), `".git"`) {
		t.Errorf("error %v, want one naming .git", err)
	}
}

// A Debian base has git and patch though the spec lists neither.
func TestDebianBaseHasGitAndPatch(t *testing.T) {
	if slices.Contains(pythonSpec.Debian.Packages, "git") || slices.Contains(pythonSpec.Debian.Packages, "patch") {
		t.Fatal("the test spec should not list git or patch itself")
	}
	s, img := pythonBase(t)
	names := map[string]bool{}
	for _, h := range tarEntries(t, s, img.Layers[0]) {
		names[h.Name] = true
	}
	for _, want := range []string{"usr/bin/git", "usr/bin/patch"} {
		if !names[want] {
			t.Errorf("debian base layer lacks %s", want)
		}
	}
}
