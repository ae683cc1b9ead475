package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/schema"
)

// podman runs podman with its own storage under root (vfs, so no kernel
// overlay support is needed) and runc, as a user with a fresh machine
// would, and returns the combined output.
func podman(t *testing.T, root, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("podman", append([]string{"--root", filepath.Join(root, "storage"), "--runroot", filepath.Join(root, "run"),
		"--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// An exported task image works the way agents and harnesses use one:
// skopeo copies it out of the dataset's OCI layout under the instance's
// image_name, podman runs it by that name (digest included), /testbed is a
// clean git repository whose HEAD is base_commit, the task's tests fail as
// FAIL_TO_PASS says, `git apply` takes the gold patch, after which they
// pass, and `git diff` shows an edit.
func TestExportedImageWorksWithSkopeoPodmanAndGit(t *testing.T) {
	fx := buildEvalDataset(t)
	var inst schema.TaskInstance
	for _, in := range fx.instances {
		if in.TaskType == schema.TaskFix && len(in.FailToPass) > 0 {
			inst = in
			break
		}
	}
	if inst.InstanceID == "" {
		t.Fatal("no fix instance in the dataset")
	}
	name, digest, ok := strings.Cut(inst.Image, "@")
	if !ok || !strings.HasPrefix(name, "localhost/") {
		t.Fatalf("image %q is not localhost/REPOSITORY:TAG@DIGEST", inst.Image)
	}
	tag := name[strings.LastIndex(name, ":")+1:]
	// podman wants its run root shorter than 50 characters.
	root, err := os.MkdirTemp("", "pm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		podman(t, root, "", "system", "reset", "--force")
		os.RemoveAll(root)
	})
	storage := fmt.Sprintf("containers-storage:[vfs@%s+%s]%s", filepath.Join(root, "storage"), filepath.Join(root, "run"), name)
	outb, err := exec.Command("skopeo", "copy", "oci:"+filepath.Join(fx.dataset, "images")+":"+tag, storage).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy oci:images:%s: %v\n%s", tag, err, outb)
	}
	out, err := podman(t, root, "", "image", "inspect", "--format", "{{.Digest}}", name)
	if err != nil || strings.TrimSpace(out) != digest {
		t.Fatalf("podman image inspect %s: %v %q, want %s", name, err, out, digest)
	}

	f2p := inst.FailToPass[0]
	script := `set -e
cd /testbed
echo "HEAD=$(git rev-parse HEAD)"
echo "STATUS=[$(git status --porcelain)]"
git log -1 --format='AUTHOR=%an <%ae> %aI'
(` + inst.TestCmd + `) > /tmp/before.log 2>&1 || true
cat > /tmp/gold.patch
git apply --check /tmp/gold.patch
git apply /tmp/gold.patch
echo "DIFF=$(git diff --name-only | tr '\n' ' ')"
(` + inst.TestCmd + `) > /tmp/after.log 2>&1 || true
echo '# edited' >> README.md 2>/dev/null || echo '# edited' > README.md
git add -N README.md
echo "EDIT=$(git diff --name-only | tr '\n' ' ')"
echo ===BEFORE; cat /tmp/before.log; echo ===AFTER; cat /tmp/after.log
`
	// podman's default open-files and process limits (1048576) are above
	// the hard limits of some machines (20000 and 96365 on the CI VMs),
	// where runc then fails to start the container.
	out, err = podman(t, root, inst.Patch, "run", "--rm", "-i", "--network", "none", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", inst.Image, "sh", "-c", script)
	if err != nil {
		t.Fatalf("podman run %s: %v\n%s", inst.Image, err, out)
	}
	before, after, _ := strings.Cut(out, "===AFTER")
	for _, want := range []string{
		"HEAD=" + inst.BaseCommit,
		"STATUS=[]",
		"AUTHOR=",
		"FAILED " + f2p,
	} {
		if !strings.Contains(before, want) {
			t.Errorf("before the patch: no %q in\n%s", want, before)
		}
	}
	if !strings.Contains(after, "PASSED "+f2p) {
		t.Errorf("after git apply of the gold patch: %s does not pass:\n%s", f2p, after)
	}
	patched := patchedFiles(inst.Patch)
	for _, f := range patched {
		if !strings.Contains(before, "DIFF=") || !strings.Contains(before[strings.Index(before, "DIFF="):], f) {
			t.Errorf("git diff after the patch does not name %s:\n%s", f, before)
		}
	}
	if !strings.Contains(before, "EDIT=") || !strings.Contains(before[strings.Index(before, "EDIT="):], "README.md") {
		t.Errorf("git diff does not show the edit:\n%s", before)
	}
	if inst.EnvironmentSetupCommit != inst.BaseCommit || len(inst.BaseCommit) != 40 {
		t.Errorf("base_commit %q, environment_setup_commit %q: want one 40-hex commit", inst.BaseCommit, inst.EnvironmentSetupCommit)
	}
}

// patchedFiles lists the files a unified diff changes (its "+++ b/" lines).
func patchedFiles(diff string) []string {
	var files []string
	for _, l := range strings.Split(diff, "\n") {
		if f, ok := strings.CutPrefix(l, "+++ b/"); ok {
			files = append(files, f)
		}
	}
	return files
}
