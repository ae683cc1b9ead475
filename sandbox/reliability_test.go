package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 12: a sandbox must not hurt the runs after or beside it, and must be
// bounded as a whole. These tests use real bubblewrap; none asserts a short
// duration (they hold on a loaded machine).

// otherRunner returns a second Runner on the test store with its own slots,
// as a second build in the same process has.
func otherRunner(t *testing.T, jobs int) *Runner {
	t.Helper()
	r0, _ := setup(t)
	r, err := New(r0.store, Options{NoCache: true, Jobs: jobs, WorkDir: r0.workDir})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// silentForkBomb forks until the process limit and says nothing about it,
// so only the sandbox can tell that the limit was hit.
var silentForkBomb = []string{"sh", "-c", `exec 2>/dev/null; b() { b | b & }; b; sleep 600`}

// A fork bomb is stopped and reported as "processes" (not as a timeout),
// and neither the runs of another Runner going at the same time nor the
// next runs of its own Runner fail for it.
func TestForkBombHurtsNoOtherRun(t *testing.T) {
	_, img := setup(t)
	bomber, bystander := otherRunner(t, 1), otherRunner(t, 1)

	var bomb *Result
	var bombErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		bomb, bombErr = bomber.Run(context.Background(), Spec{Image: img, Argv: silentForkBomb,
			Limits: Limits{Timeout: 60 * time.Second}})
	}()
	// Runs beside the bomb, until it is over (at least three).
	// Runs with a small process limit fail at once if they share a uid
	// (and so RLIMIT_NPROC's count) with the bomb.
	small := Limits{Processes: 64}
	var failures []string
	n := 0
	for i := 0; ; i++ {
		finished := false
		select {
		case <-done:
			finished = true
		default:
		}
		if finished && n >= 3 {
			break
		}
		res, err := bystander.Run(context.Background(), Spec{Image: img, Argv: []string{"echo", "ok"}, Limits: small})
		n++
		switch {
		case err != nil:
			failures = append(failures, err.Error())
		case res.ExitCode != 0 || string(res.Stdout) != "ok\n":
			failures = append(failures, fmt.Sprintf("exit %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr))
		}
	}
	<-done
	if bombErr != nil {
		t.Fatalf("fork bomb: %v", bombErr)
	}
	if bomb.LimitHit != LimitProcesses || bomb.ExitCode == 0 {
		t.Errorf("fork bomb: limit %q exit %d after %s; want processes", bomb.LimitHit, bomb.ExitCode, bomb.Duration)
	}
	t.Logf("fork bomb: limit %q exit %d after %s; %d runs beside it", bomb.LimitHit, bomb.ExitCode, bomb.Duration, n)
	if len(failures) > 0 {
		t.Errorf("%d of %d runs of another runner beside the fork bomb failed, first: %s", len(failures), n, failures[0])
	}
	// The bomber's next runs, straight after, on its only slot.
	for i := range 5 {
		res, err := bomber.Run(context.Background(), Spec{Image: img, Argv: []string{"echo", "ok"}, Limits: small})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("run %d after the fork bomb: %v %+v", i, err, res)
		}
	}
}

// Two processes never get the same uid block: the lock is an flock held
// for the process's life.
func TestUIDBlocksAreExclusiveAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldUIDBlock$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DSBUILD_TEST_UID_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	var theirs int = -1
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "uid "); ok {
			theirs, _ = strconv.Atoi(v)
			break
		}
	}
	if theirs < 0 {
		t.Fatal("the helper process reported no uid")
	}
	// This process starts at the same block and must skip it.
	p := &uidPool{dir: dir, start: 7}
	for range uidBlockSize + 1 {
		uid, err := p.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if (uid-hostUIDBase)/uidBlockSize == (theirs-hostUIDBase)/uidBlockSize {
			t.Fatalf("uid %d is in the block of uid %d, which another process holds", uid, theirs)
		}
	}
	if len(p.blocks) != 2 {
		t.Fatalf("%d blocks taken for %d uids, want 2", len(p.blocks), uidBlockSize+1)
	}
}

// TestHelperHoldUIDBlock is the other process of
// TestUIDBlocksAreExclusiveAcrossProcesses.
func TestHelperHoldUIDBlock(t *testing.T) {
	dir := os.Getenv("DSBUILD_TEST_UID_DIR")
	if dir == "" {
		t.Skip("helper process of TestUIDBlocksAreExclusiveAcrossProcesses")
	}
	p := &uidPool{dir: dir, start: 7}
	uid, err := p.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("uid %d\n", uid)
	os.Stdin.Read(make([]byte, 1)) // hold the block until the parent is done
}

// A uid that owns a process is not handed out.
func TestUIDWithProcessesIsNotReused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("host uids are used only as root")
	}
	p := &uidPool{dir: t.TempDir(), start: 11}
	first, err := p.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A leftover of the run: a process of the uid that outlives it.
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(first), Gid: uint32(first)}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	p.release(first, false)
	var got []int
	for range 3 {
		uid, err := p.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if uid == first {
			t.Fatalf("uid %d was handed out while it owns a process", uid)
		}
		got = append(got, uid)
	}
	// Once the leftover is gone, the uid is used again.
	cmd.Process.Kill()
	cmd.Wait()
	found := false
	for range uidBlockSize {
		uid, err := p.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if uid == first {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("uid %d was not used again after its process ended", first)
	}
}

// memoryCgroup returns the test runner and image, and skips on machines
// that give runs no memory cgroup (memory is then bounded per process
// only, as the package doc says).
func memoryCgroup(t *testing.T) *Runner {
	t.Helper()
	r, _ := setup(t)
	t.Log(r.Bounds())
	if !r.ramTmp() {
		t.Skipf("this machine gives runs no memory cgroup: %s", r.Bounds())
	}
	return r
}

// With memory: 256MiB, eight processes of 180 MiB each (each under the
// per-process limit) do not all fit: the run as a whole is bounded.
func TestMemoryBoundsTheWholeRun(t *testing.T) {
	r := memoryCgroup(t)
	_, img := setup(t)
	prog := `import os, time
kids = []
for i in range(8):
    pid = os.fork()
    if pid == 0:
        x = b"\x01" * (180 << 20)
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
time.sleep(5)
print("held", flush=True)
for k in kids:
    os.waitpid(k, 0)
`
	res := run(t, r, Spec{Image: img, Argv: []string{"python3", "-c", prog},
		Limits: Limits{MemoryBytes: 256 << 20, Timeout: 120 * time.Second}})
	if res.LimitHit != LimitMemory || res.ExitCode == 0 {
		t.Fatalf("8 x 180 MiB under memory: 256MiB: limit %q exit %d stdout %q stderr %.400s; want the memory limit", res.LimitHit, res.ExitCode, res.Stdout, res.Stderr)
	}
}

// Files in /tmp and /dev/shm count against a limit: the run's memory (where
// they are tmpfs in a memory cgroup) or the workspace (where they are on
// disk).
func TestTmpAndShmAreBounded(t *testing.T) {
	r, img := setup(t)
	t.Log(r.Bounds())
	res := run(t, r, Spec{Image: img, Argv: []string{"sh", "-c", "head -c 1200M /dev/zero > /tmp/a && head -c 1200M /dev/zero > /dev/shm/b && echo held"},
		Limits: Limits{MemoryBytes: 256 << 20, Timeout: 120 * time.Second}})
	if strings.Contains(string(res.Stdout), "held") || (res.LimitHit != LimitMemory && res.LimitHit != LimitWorkspace) {
		t.Fatalf("2.4 GB into /tmp and /dev/shm with memory 256MiB and workspace 2GiB: limit %q exit %d stdout %q stderr %.400s; want the memory or workspace limit",
			res.LimitHit, res.ExitCode, res.Stdout, res.Stderr)
	}
}

// Without a memory cgroup, /tmp and /dev/shm are on disk beside the
// workspace and count against its limit together.
func TestDiskTmpCountsAgainstWorkspace(t *testing.T) {
	r := otherRunner(t, 2)
	_, img := setup(t)
	r.cg, r.cgWhy = nil, "disabled by the test"
	res := run(t, r, Spec{Image: img, Argv: []string{"sh", "-c", "echo hi > /tmp/t && cat /tmp/t && echo x > /dev/shm/s && cat /dev/shm/s && echo w > w.txt"}})
	if res.ExitCode != 0 || string(res.Stdout) != "hi\nx\n" || res.LimitHit != "" {
		t.Fatalf("/tmp and /dev/shm on disk: exit %d limit %q stdout %q stderr %q", res.ExitCode, res.LimitHit, res.Stdout, res.Stderr)
	}
	if _, err := r.store.ReadFile(res.Output, "w.txt"); err != nil {
		t.Fatalf("workspace output lacks w.txt: %v", err)
	}
	if _, err := r.store.ReadFile(res.Output, "t"); err == nil {
		t.Fatalf("a file of /tmp is in the workspace output")
	}
	res = run(t, r, Spec{Image: img, Argv: []string{"sh", "-c", "head -c 40M /dev/zero > /tmp/a && head -c 40M /dev/zero > /dev/shm/b && echo done"},
		Limits: Limits{WorkspaceBytes: 64 << 20, Timeout: 120 * time.Second}})
	if res.LimitHit != LimitWorkspace || !res.Output.IsZero() {
		t.Fatalf("80 MB into /tmp and /dev/shm with workspace 64MiB: limit %q exit %d stdout %q output %s; want the workspace limit", res.LimitHit, res.ExitCode, res.Stdout, res.Output)
	}
}

// Without cgroups (forced here), the rlimits, the watcher and the stderr
// markers still name the limits, and a fork bomb's uid is not handed to
// the next run before its processes are gone.
func TestLimitsWithoutCgroups(t *testing.T) {
	r := otherRunner(t, 1)
	_, img := setup(t)
	r.cg, r.cgWhy = nil, "disabled by the test"
	cases := []struct {
		name   string
		argv   []string
		limits Limits
		want   string
	}{
		{"fork bomb", []string{"sh", "-c", `b() { b | b & }; b; sleep 600`}, Limits{Processes: 64, Timeout: 20 * time.Second}, LimitProcesses},
		{"10 GB allocation", []string{"python3", "-c", "x = bytearray(10 * 2**30)"}, Limits{MemoryBytes: 1 << 30}, LimitMemory},
		{"many small files", []string{"python3", "-c", "import time\nfor i in range(100000):\n    open('f%d' % i, 'wb').write(b'x' * 4000)\ntime.sleep(60)"}, Limits{WorkspaceBytes: 8 << 20, Timeout: 120 * time.Second}, LimitWorkspace},
	}
	for _, c := range cases {
		res := run(t, r, Spec{Image: img, Argv: c.argv, Limits: c.limits})
		if res.LimitHit != c.want || res.ExitCode == 0 {
			t.Errorf("%s: limit %q exit %d after %s, want %q\nstderr: %.300s", c.name, res.LimitHit, res.ExitCode, res.Duration, c.want, res.Stderr)
		}
		next, err := r.Run(context.Background(), Spec{Image: img, Argv: []string{"echo", "ok"}})
		if err != nil || next.ExitCode != 0 {
			t.Fatalf("the run after %s: %v %+v", c.name, err, next)
		}
	}
}

// Run cgroups that a killed dsbuild left behind are removed by the next.
func TestStaleRunCgroupsAreRemoved(t *testing.T) {
	r, _ := setup(t)
	if r.cg == nil {
		t.Skipf("no cgroups here: %s", r.Bounds())
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	var stale []string
	for _, parent := range []string{r.cg.memory, r.cg.pids} {
		if parent == "" {
			continue
		}
		dir := fmt.Sprintf("%s/dsbuild-%d-1", parent, gone.Process.Pid)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stale = append(stale, dir)
		removeStaleGroups(parent)
	}
	for _, dir := range stale {
		if _, err := os.Stat(dir); err == nil {
			os.Remove(dir)
			t.Errorf("stale run cgroup %s was not removed", dir)
		}
	}
}
