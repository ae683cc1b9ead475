package oci

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
)

// These tests kill a process that runs mmdebstrap through Builder.Base
// (this test binary run again as a helper: TestMmdebstrapHelper) with real
// signals, and check what it leaves behind: processes, mounts, temporary
// directories. They wait for conditions with generous bounds and assert no
// timings.

const (
	mmHelperStore  = "DSBUILD_OCI_KILL_STORE"
	mmHelperMirror = "DSBUILD_OCI_KILL_MIRROR"
)

// TestMmdebstrapHelper is not a test: it is the process the tests below
// kill. It builds a Debian base from the mirror it is given, and exits
// 130 when SIGINT or SIGTERM cancels it, like dsbuild.
func TestMmdebstrapHelper(t *testing.T) {
	dir := os.Getenv(mmHelperStore)
	if dir == "" {
		t.Skip("helper process for the kill tests")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := BaseSpec{Debian: &DebianSpec{Suite: "bookworm", Mirror: os.Getenv(mmHelperMirror)}}
	_, err = NewBuilder(st, Options{}).Base(ctx, spec)
	if ctx.Err() != nil {
		os.Stderr.WriteString("interrupted: " + err.Error() + "\n")
		os.Exit(130)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// mmRun is one helper process with its own directory: base/store is its
// store, base/tmp its TMPDIR, and every process it starts names base in
// its command line or environment.
type mmRun struct {
	base, store, tmp string
	cmd              *exec.Cmd
	done             chan struct{}
	log              string
}

func startMmdebstrap(t *testing.T, mirror string) *mmRun {
	t.Helper()
	base, err := os.MkdirTemp("", "dsbuild-oci-kill-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	r := &mmRun{base: base, store: filepath.Join(base, "store"), tmp: filepath.Join(base, "tmp"), done: make(chan struct{}), log: filepath.Join(base, "helper.log")}
	if err := os.MkdirAll(r.tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(os.Args[0], "-test.run=^TestMmdebstrapHelper$", "-test.count=1")
	r.cmd.Env = append(os.Environ(), mmHelperStore+"="+r.store, mmHelperMirror+"="+mirror, "TMPDIR="+r.tmp)
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); out.Close(); close(r.done) }()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			b, _ := os.ReadFile(r.log)
			t.Logf("helper output:\n%s", b)
		}
		// Whatever a failed test left: processes first, then mounts.
		for pid := range testenv.ProcessesNaming(base) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		testenv.WaitFor(30*time.Second, func() bool { return len(testenv.ProcessesNaming(base)) == 0 })
		for _, m := range testenv.HostMountsNaming(base) {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
		os.RemoveAll(base)
	})
	return r
}

// waitUntil waits (up to five minutes) for cond, failing the test if the
// helper ends first.
func (r *mmRun) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitWhileRunning(t, r.done, what, cond)
}

// mmdebstrapRunning reports whether the helper's mmdebstrap runs.
func (r *mmRun) mmdebstrapRunning() bool {
	for _, cmdline := range testenv.ProcessesNaming(r.base) {
		if strings.Contains(cmdline, "mmdebstrap") {
			return true
		}
	}
	return false
}

// noneLeft waits up to 60 s until no process and no mount of the helper
// is left, and fails the test otherwise.
func (r *mmRun) noneLeft(t *testing.T, after string) {
	t.Helper()
	if !testenv.WaitFor(60*time.Second, func() bool { return len(testenv.ProcessesNaming(r.base)) == 0 }) {
		t.Errorf("60 s after %s, processes are left: %v", after, testenv.ProcessesNaming(r.base))
	}
	if !testenv.WaitFor(60*time.Second, func() bool { return len(testenv.HostMountsNaming(r.base)) == 0 }) {
		t.Errorf("60 s after %s, mounts are left on the host: %v", after, testenv.HostMountsNaming(r.base))
	}
}

// leftovers lists mmdebstrap work directories in the store and anything in
// the helper's TMPDIR.
func (r *mmRun) leftovers() []string {
	m, _ := filepath.Glob(filepath.Join(r.store, "tmp", mmdebstrapPrefix+"*"))
	t, _ := filepath.Glob(filepath.Join(r.tmp, "*"))
	return append(m, t...)
}

// dsbuild SIGKILLed while mmdebstrap waits on a (slow) mirror: mmdebstrap
// and everything it started die with it, and the next start removes its
// work directory; nothing was written to the temp dir.
func TestSIGKILLDuringMmdebstrapLeavesNothing(t *testing.T) {
	mirror, requests := testenv.HangingMirror(t)
	r := startMmdebstrap(t, mirror)
	r.waitUntil(t, "mmdebstrap's first request to the mirror", func() bool { return requests.Load() > 0 && r.mmdebstrapRunning() })
	t.Logf("running: %v", testenv.ProcessesNaming(r.base))
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.noneLeft(t, "dsbuild was killed")
	st, err := cache.Open(r.store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	left := r.leftovers()
	if len(left) != 1 || !strings.HasPrefix(left[0], filepath.Join(r.store, "tmp", mmdebstrapPrefix)) {
		t.Fatalf("the killed mmdebstrap left %v, want one work directory in the store's tmp/", left)
	}
	NewBuilder(st, Options{}) // the next start
	if left := r.leftovers(); len(left) != 0 {
		t.Fatalf("the next start left %v", left)
	}
}

// dsbuild interrupted (SIGINT) while mmdebstrap waits on a mirror stops it
// and exits 130 promptly, leaving no process, mount or directory.
func TestSIGINTDuringMmdebstrapStopsIt(t *testing.T) {
	mirror, requests := testenv.HangingMirror(t)
	r := startMmdebstrap(t, mirror)
	r.waitUntil(t, "mmdebstrap's first request to the mirror", func() bool { return requests.Load() > 0 && r.mmdebstrapRunning() })
	r.cmd.Process.Signal(os.Interrupt)
	at := time.Now()
	select {
	case <-r.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("60 s after SIGINT the process still runs: %v", testenv.ProcessesNaming(r.base))
	}
	t.Logf("exited %v after SIGINT", time.Since(at).Round(time.Millisecond))
	if code := r.cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit status %d after SIGINT, want 130", code)
	}
	r.noneLeft(t, "SIGINT")
	if left := r.leftovers(); len(left) != 0 {
		t.Fatalf("an interrupted mmdebstrap left %v", left)
	}
}

// dsbuild SIGKILLed while mmdebstrap has the chroot's proc (and sysfs,
// /dev, ...) mounted, from the real mirror: no mount appears on the host
// (mmdebstrap has a mount namespace of its own) or outlives it, no process
// is left, and the next start removes its work directory.
func TestSIGKILLDuringMmdebstrapMountsLeavesNoMount(t *testing.T) {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Fatal("mmdebstrap not found: install it with `apt-get install mmdebstrap`")
	}
	r := startMmdebstrap(t, "")
	var mounted []string
	r.waitUntil(t, "a mount in mmdebstrap's chroot", func() bool {
		for pid, cmdline := range testenv.ProcessesNaming(r.base) {
			if strings.Contains(cmdline, "mmdebstrap") {
				if m := testenv.MountsNaming(filepath.Join("/proc", strconv.Itoa(pid), "mountinfo"), r.base); len(m) > 0 {
					mounted = m
					return true
				}
			}
		}
		return false
	})
	t.Logf("mounted in mmdebstrap's chroot: %v", mounted)
	if m := testenv.HostMountsNaming(r.base); len(m) > 0 {
		t.Errorf("mmdebstrap's mounts are on the host: %v", m)
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.noneLeft(t, "dsbuild was killed")
	st, err := cache.Open(r.store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := ReclaimLeftovers(st); n != 1 || err != nil {
		t.Fatalf("ReclaimLeftovers removed %d (%v), want the killed run's work directory", n, err)
	}
	if left := r.leftovers(); len(left) != 0 {
		t.Fatalf("left after reclaiming: %v", left)
	}
}
