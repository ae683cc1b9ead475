package stages_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// checkGitImage unpacks the task layer of img (its last) with tar and
// checks with git that /testbed is a repository at commit with a clean
// status, as an agent or grader finds it.
func checkGitImage(t *testing.T, store *cache.Store, img schema.Image, commit string) {
	t.Helper()
	d, err := cache.ParseDigest(img.Layers[len(img.Layers)-1])
	if err != nil {
		t.Fatal(err)
	}
	layer, err := store.Get(d)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	untar := exec.Command("tar", "-x", "-f", "-", "-C", dir)
	untar.Stdin = bytes.NewReader(layer)
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", filepath.Join(dir, "testbed")}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s in image %s: %v", strings.Join(args, " "), img.Digest, err)
		}
		return string(out)
	}
	git("fsck", "--strict", "--no-progress")
	if head := strings.TrimSpace(git("rev-parse", "HEAD")); head != commit {
		t.Errorf("image %s: HEAD %s, base_commit %s", img.Digest, head, commit)
	}
	if st := git("status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Errorf("image %s: git status not clean:\n%s", img.Digest, st)
	}
}
