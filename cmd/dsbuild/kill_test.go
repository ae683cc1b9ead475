package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/internal/testenv"
)

// Killing dsbuild while mmdebstrap builds an environment, with real
// signals: nothing may outlive it, and the next start removes what it
// left. The mirror is a local server that never finishes a response, so
// mmdebstrap is mid-download for as long as the test wants, on any
// machine. Conditions are polled with generous bounds; no timing is
// asserted.

// killRecipe is a recipe whose first node needs a Debian environment from
// mirror.
func killRecipe(t *testing.T, dir, mirror string) string {
	t.Helper()
	proj := filepath.Join(dir, "projects", "tiny")
	files := map[string]string{
		"pyproject.toml":       "[project]\nname = \"tiny\"\nversion = \"0.1.0\"\n",
		"src/tiny/__init__.py": "def add(a, b):\n    return a + b\n",
		"tests/test_add.py":    "from tiny import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
	}
	for name, body := range files {
		p := filepath.Join(proj, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return writeRecipe(t, dir, fmt.Sprintf(`name: killed
environments:
  python:
    debian: {suite: bookworm, packages: [python3, python3-pytest], mirror: %q}
stages:
  repos:   {uses: repo, with: {paths: [projects/*]}}
  checked: {uses: validate, foreach: repos, with: {environment: python, runs: 1}}
`, mirror))
}

// killedBuild is a dsbuild build running in the background.
type killedBuild struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *strings.Builder
}

func startBuild(t *testing.T, dir string, args ...string) *killedBuild {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Join(dir, "tmp"))
	b := &killedBuild{cmd: cmd, done: make(chan struct{}), out: &strings.Builder{}}
	var mu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, b.out}, lockedWriter{&mu, b.out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-b.done
	})
	return b
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// waitMmdebstrap waits until the build's mmdebstrap has asked the mirror
// for something.
func (b *killedBuild) waitMmdebstrap(t *testing.T, dir string, requests *atomic.Int32, before int32) {
	t.Helper()
	ok := testenv.WaitFor(5*time.Minute, func() bool {
		select {
		case <-b.done:
			return true
		default:
		}
		if requests.Load() <= before {
			return false
		}
		for _, c := range testenv.ProcessesNaming(dir) {
			if strings.Contains(c, "mmdebstrap") {
				return true
			}
		}
		return false
	})
	select {
	case <-b.done:
		t.Fatalf("the build ended before mmdebstrap ran:\n%s", b.out)
	default:
	}
	if !ok {
		t.Fatal("mmdebstrap never started")
	}
}

// nothingRuns fails the test unless, within 60 s, no process and no host
// mount names dir.
func nothingRuns(t *testing.T, dir, after string) {
	t.Helper()
	if !testenv.WaitFor(60*time.Second, func() bool { return len(testenv.ProcessesNaming(dir)) == 0 }) {
		t.Fatalf("60 s after %s, processes are left: %v", after, testenv.ProcessesNaming(dir))
	}
	if !testenv.WaitFor(60*time.Second, func() bool { return len(testenv.HostMountsNaming(dir)) == 0 }) {
		t.Fatalf("60 s after %s, mounts are left: %v", after, testenv.HostMountsNaming(dir))
	}
}

// mmLeftovers lists mmdebstrap work directories in the store, and anything
// in the builds' TMPDIR.
func mmLeftovers(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "store", "tmp", "mmdebstrap-*"))
	t, _ := filepath.Glob(filepath.Join(dir, "tmp", "*"))
	return append(m, t...)
}

// SIGKILL, SIGINT and a double SIGINT while mmdebstrap runs: nothing is
// left running or mounted; SIGINT exits 130; the next start removes the
// work directory a SIGKILL left, and gc removes any.
func TestKillDuringMmdebstrap(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
	mirror, requests := testenv.HangingMirror(t)
	recipe := killRecipe(t, dir, mirror)
	t.Cleanup(func() {
		for pid := range testenv.ProcessesNaming(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		testenv.WaitFor(30*time.Second, func() bool { return len(testenv.ProcessesNaming(dir)) == 0 })
		for _, m := range testenv.HostMountsNaming(dir) {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
	})
	args := []string{"--cache", "store", "--out", "out", recipe}

	// 1. SIGKILL: mmdebstrap and all it started die with dsbuild.
	b := startBuild(t, dir, args...)
	b.waitMmdebstrap(t, dir, requests, 0)
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
	nothingRuns(t, dir, "SIGKILL")
	killed := mmLeftovers(dir)
	if len(killed) != 1 || !strings.Contains(killed[0], filepath.Join("store", "tmp", "mmdebstrap-")) {
		t.Fatalf("after SIGKILL: %v, want one mmdebstrap work directory in the store", killed)
	}

	// 2. The next start removes it; SIGINT then stops the build with 130,
	// promptly, leaving nothing.
	b = startBuild(t, dir, args...)
	b.waitMmdebstrap(t, dir, requests, requests.Load())
	if _, err := os.Stat(killed[0]); !os.IsNotExist(err) {
		t.Fatalf("the next start did not remove %s: %v", killed[0], err)
	}
	b.cmd.Process.Signal(os.Interrupt)
	at := time.Now()
	select {
	case <-b.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("60 s after SIGINT dsbuild still runs: %v", testenv.ProcessesNaming(dir))
	}
	t.Logf("SIGINT during mmdebstrap: dsbuild exited %v later", time.Since(at).Round(time.Millisecond))
	if code := b.cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d after SIGINT, want %d\n%s", code, exitInterrupted, b.out)
	}
	nothingRuns(t, dir, "SIGINT")
	if left := mmLeftovers(dir); len(left) != 0 {
		t.Fatalf("SIGINT left %v", left)
	}

	// 3. Two SIGINTs (the second kills dsbuild at once): nothing keeps
	// running, and gc removes what is left.
	b = startBuild(t, dir, args...)
	b.waitMmdebstrap(t, dir, requests, requests.Load())
	b.cmd.Process.Signal(os.Interrupt)
	time.Sleep(20 * time.Millisecond)
	b.cmd.Process.Signal(os.Interrupt)
	<-b.done
	t.Logf("after two SIGINTs: %v", b.cmd.ProcessState)
	nothingRuns(t, dir, "two SIGINTs")
	if r := dsbuild(t, dir, "--cache", "store", "cache", "gc"); r.code != 0 {
		t.Fatalf("gc: %d %s", r.code, r.stderr)
	}
	if left := mmLeftovers(dir); len(left) != 0 {
		t.Fatalf("after gc: %v", left)
	}
}
