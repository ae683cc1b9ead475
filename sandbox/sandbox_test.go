package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/schema"
)

var fixture struct {
	sync.Mutex
	dir    string
	store  *cache.Store
	runner *Runner
	image  schema.Image
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.store != nil {
		fixture.store.Close()
		removeAll(fixture.dir)
	}
	os.Exit(code)
}

// setup returns a runner over a store shared by this package's tests, and
// the Debian test image (unpacked once).
func setup(tb testing.TB) (*Runner, schema.Image) {
	tb.Helper()
	fixture.Lock()
	defer fixture.Unlock()
	if fixture.runner == nil {
		dir, err := os.MkdirTemp("", "sandbox-test-")
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil { // the sandbox uid must reach it
			tb.Fatal(err)
		}
		st, err := cache.Open(dir)
		if err != nil {
			tb.Fatal(err)
		}
		r, err := New(st, Options{})
		if err != nil {
			tb.Fatal(err)
		}
		fixture.dir, fixture.store, fixture.runner = dir, st, r
		fixture.image = testenv.Image(tb, st)
		if _, err := r.Rootfs(fixture.image); err != nil {
			tb.Fatal(err)
		}
	}
	return fixture.runner, fixture.image
}

func run(t *testing.T, r *Runner, s Spec) *Result {
	t.Helper()
	res, err := r.Run(context.Background(), s)
	if err != nil {
		t.Fatalf("Run(%q): %v", s.Argv, err)
	}
	return res
}

func TestNewWithoutBwrapSaysWhatToInstall(t *testing.T) {
	st, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t.Setenv("PATH", t.TempDir())
	_, err = New(st, Options{})
	if err == nil || !strings.Contains(err.Error(), "apt-get install bubblewrap") {
		t.Fatalf("New without bwrap on PATH: got %v, want an error saying to install bubblewrap", err)
	}
}

var pytestProject = map[string]cache.File{
	"calc.py": {Data: []byte("def add(a, b):\n    return a + b\n\ndef div(a, b):\n    return a / b\n")},
	"tests/test_calc.py": {Data: []byte(`import pytest
from calc import add, div

def test_add():
    assert add(2, 3) == 5

@pytest.mark.parametrize("a,b,want", [(6, 3, 2), (1, 4, 0.25), (-8, 2, -4)])
def test_div(a, b, want):
    assert div(a, b) == want

def test_div_zero():
    with pytest.raises(ZeroDivisionError):
        div(1, 0)

def test_writes_file(tmp_path):
    open("written_by_test.txt", "w").write("hello from the sandbox\n")
`)},
	"conftest.py": {Data: []byte("import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\n")},
}

func TestPytestRunsInImageAndIsMemoised(t *testing.T) {
	r, img := setup(t)
	files := map[string]cache.File{"nonce.txt": {Data: []byte(time.Now().String())}} // a fresh key for each test run
	for p, f := range pytestProject {
		files[p] = f
	}
	ws, err := r.store.PutFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Image: img, Workspace: ws, Argv: []string{"python3", "-m", "pytest", "-q", "-p", "no:cacheprovider"}}
	res := run(t, r, spec)
	if res.ExitCode != 0 || res.LimitHit != "" || res.Cached {
		t.Fatalf("pytest: exit %d limit %q cached %v\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.LimitHit, res.Cached, res.Stdout, res.Stderr)
	}
	if !bytes.Contains(res.Stdout, []byte("6 passed")) {
		t.Fatalf("pytest output lacks '6 passed':\n%s", res.Stdout)
	}
	got, err := r.store.ReadFile(res.Output, "written_by_test.txt")
	if err != nil || string(got) != "hello from the sandbox\n" {
		t.Fatalf("output tree: written_by_test.txt = %q, %v", got, err)
	}
	if b, _ := r.store.ReadFile(res.Output, "calc.py"); !bytes.Equal(b, pytestProject["calc.py"].Data) {
		t.Fatalf("calc.py changed in output tree")
	}

	again := run(t, r, spec)
	if !again.Cached || again.Key != res.Key || again.Duration != res.Duration ||
		again.Output != res.Output || !bytes.Equal(again.Stdout, res.Stdout) || again.ExitCode != res.ExitCode {
		t.Fatalf("second run: cached %v key %s/%s duration %s/%s output %s/%s", again.Cached, again.Key.Short(), res.Key.Short(), again.Duration, res.Duration, again.Output, res.Output)
	}

	// Any change to the inputs is another key and a real run.
	spec.Env = []string{"PYTHONDONTWRITEBYTECODE=1"}
	third := run(t, r, spec)
	if third.Cached || third.Key == res.Key {
		t.Fatalf("changed env gave a cached result (key %s)", third.Key.Short())
	}
	// The workspace directories of finished runs are gone.
	des, err := os.ReadDir(filepath.Join(r.workDir, "work"))
	if err != nil || len(des) != 0 {
		t.Fatalf("work directory not empty after runs: %v %v", des, err)
	}
}

func TestIdentityAndIsolation(t *testing.T) {
	r, img := setup(t)
	res := run(t, r, Spec{Image: img, Argv: []string{"sh", "-c", `id -u; id -g; grep CapEff /proc/self/status; hostname; pwd; echo "$HOME"; ls /proc | grep -c '^[0-9]'`}})
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	want := []string{"1000", "1000", "CapEff:\t0000000000000000", "sandbox", "/testbed", "/tmp"}
	if res.ExitCode != 0 || len(lines) != 7 {
		t.Fatalf("exit %d, stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d: got %q, want %q", i, lines[i], w)
		}
	}
	// Only the sandbox's own few processes are visible (new pid namespace).
	if n := lines[6]; n != "3" && n != "4" && n != "5" {
		t.Errorf("processes visible inside: %s", n)
	}
}

func TestExitCodeStdinEnv(t *testing.T) {
	r, img := setup(t)
	res := run(t, r, Spec{Image: img, Argv: []string{"sh", "-c", `cat; echo "$GREETING" >&2; exit 3`},
		Env: []string{"GREETING=hi"}, Stdin: []byte("from stdin\n")})
	if res.ExitCode != 3 || res.LimitHit != "" || string(res.Stdout) != "from stdin\n" || string(res.Stderr) != "hi\n" {
		t.Fatalf("got exit %d limit %q stdout %q stderr %q", res.ExitCode, res.LimitHit, res.Stdout, res.Stderr)
	}
}

func TestBadSpecsAreErrors(t *testing.T) {
	r, img := setup(t)
	bad := map[string]Spec{
		"no argv":       {Image: img},
		"bad env":       {Image: img, Argv: []string{"true"}, Env: []string{"NOEQUALS"}},
		"relative dir":  {Image: img, Argv: []string{"true"}, Dir: "testbed"},
		"dir in /proc":  {Image: img, Argv: []string{"true"}, Dir: "/proc/x"},
		"bad digest":    {Image: schema.Image{Digest: "sha256:nothex"}, Argv: []string{"true"}},
		"negative cpu":  {Image: img, Argv: []string{"true"}, Limits: Limits{CPUSeconds: -1}},
		"missing layer": {Image: schema.Image{Digest: cache.DigestOf([]byte("x")).String(), Layers: []string{cache.DigestOf([]byte("x")).String()}}, Argv: []string{"true"}},
	}
	for name, s := range bad {
		if res, err := r.Run(context.Background(), s); err == nil {
			t.Errorf("%s: want an error, got result %+v", name, res)
		}
	}
	// A program that does not exist is the program's failure, not ours.
	res := run(t, r, Spec{Image: img, Argv: []string{"/no/such/program"}})
	if res.ExitCode == 0 {
		t.Fatalf("missing program exited 0")
	}
}

func TestOtherDir(t *testing.T) {
	r, img := setup(t)
	ws, err := r.store.PutFiles(map[string]cache.File{"a.txt": {Data: []byte("A")}})
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, r, Spec{Image: img, Workspace: ws, Dir: "/work/repo", Argv: []string{"sh", "-c", "pwd; cat a.txt; echo B > b.txt"}})
	if res.ExitCode != 0 || string(res.Stdout) != "/work/repo\nA" {
		t.Fatalf("exit %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	if b, err := r.store.ReadFile(res.Output, "b.txt"); err != nil || string(b) != "B\n" {
		t.Fatalf("b.txt = %q, %v", b, err)
	}
}

// hostProcessesOf lists host processes whose command line contains s.
func hostProcessesOf(t *testing.T, s string) []string {
	out, err := exec.Command("ps", "-eo", "pid,uid,args").Output()
	if err != nil {
		t.Fatal(err)
	}
	var hits []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, s) && !strings.Contains(l, "ps -eo") {
			hits = append(hits, l)
		}
	}
	return hits
}

func TestHostilePrograms(t *testing.T) {
	r, img := setup(t)

	// A service on the host's loopback that must not be reachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted sync.WaitGroup
	var acceptedN int
	var mu sync.Mutex
	accepted.Add(1)
	go func() {
		defer accepted.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			acceptedN++
			mu.Unlock()
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	rootfs, err := r.Rootfs(img)
	if err != nil {
		t.Fatal(err)
	}
	passwdBefore, err := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	hostPasswdBefore, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}

	short := Limits{Timeout: 20 * time.Second, Processes: 64, OutputBytes: 64 << 10, MemoryBytes: 1 << 30, CPUSeconds: 5, WorkspaceBytes: 8 << 20}
	cases := []struct {
		name      string
		argv      []string
		limits    Limits
		wantLimit string
		wantExit  int // -1: any non-zero
		check     func(t *testing.T, res *Result)
	}{
		{name: "fork bomb", argv: []string{"sh", "-c", `b() { b | b & }; b; sleep 30`}, limits: Limits{Timeout: 3 * time.Second, Processes: 64}, wantLimit: LimitProcesses, wantExit: 137},
		{name: "python fork loop", argv: []string{"python3", "-c", "import os\nwhile True:\n    if os.fork() == 0:\n        import time; time.sleep(60)"}, limits: short, wantLimit: LimitProcesses, wantExit: -1},
		{name: "endless output", argv: []string{"yes", "all work and no play"}, limits: short, wantLimit: LimitOutput, wantExit: 137,
			check: func(t *testing.T, res *Result) {
				if len(res.Stdout) < 64<<10 || len(res.Stdout) > 64<<10+200 || !bytes.Contains(res.Stdout, []byte("output truncated")) {
					t.Errorf("stdout is %d bytes, want 64KiB plus a truncation marker; tail %q", len(res.Stdout), res.Stdout[max(0, len(res.Stdout)-120):])
				}
			}},
		{name: "sleep forever", argv: []string{"sh", "-c", "sleep 1001 & setsid sleep 1002 & sleep infinity"}, limits: Limits{Timeout: time.Second}, wantLimit: LimitTimeout, wantExit: 137,
			check: func(t *testing.T, res *Result) {
				// The result is the slack run's (see runOnce).
				if res.Duration < SlackFactor*900*time.Millisecond || res.Duration > SlackFactor*time.Second+3*time.Second {
					t.Errorf("duration %s, want about %ds", res.Duration, SlackFactor)
				}
				if !res.Provisional {
					t.Errorf("a run that hit the wall-clock timeout is not provisional")
				}
				time.Sleep(100 * time.Millisecond)
				if ps := append(hostProcessesOf(t, "sleep 1001"), hostProcessesOf(t, "sleep 1002")...); len(ps) > 0 {
					t.Errorf("sandboxed processes survived the timeout: %q", ps)
				}
			}},
		{name: "connect outside", argv: []string{"python3", "-c", "import socket; socket.create_connection(('1.1.1.1', 80), timeout=3)"}, limits: short, wantExit: -1,
			check: func(t *testing.T, res *Result) {
				if !bytes.Contains(res.Stderr, []byte("Network is unreachable")) {
					t.Errorf("stderr %q, want 'Network is unreachable'", res.Stderr)
				}
			}},
		{name: "connect host loopback", argv: []string{"python3", "-c", fmt.Sprintf("import socket; socket.create_connection(('127.0.0.1', %d), timeout=3)", port)}, limits: short, wantExit: -1,
			check: func(t *testing.T, res *Result) {
				if !bytes.Contains(res.Stderr, []byte("Connection refused")) {
					t.Errorf("stderr %q, want 'Connection refused'", res.Stderr)
				}
			}},
		{name: "write outside testbed", argv: []string{"sh", "-c", `for f in /etc/passwd /etc/evil /usr/evil /evil /root/evil /var/evil /dev/shm/../evil; do (echo pwned > $f) 2>/dev/null && echo "wrote $f"; done; echo ok > /tmp/fine && cat /tmp/fine`}, limits: short, wantExit: 0,
			check: func(t *testing.T, res *Result) {
				if string(res.Stdout) != "ok\n" {
					t.Errorf("stdout %q: a write outside /testbed and /tmp succeeded", res.Stdout)
				}
			}},
		{name: "10 GB allocation", argv: []string{"python3", "-c", "x = bytearray(10 * 2**30); print(len(x))"}, limits: short, wantLimit: LimitMemory, wantExit: 1},
		{name: "busy loop", argv: []string{"python3", "-c", "while True: pass"}, limits: Limits{CPUSeconds: 1, Timeout: 20 * time.Second}, wantLimit: LimitCPU, wantExit: -1},
		{name: "one big file", argv: []string{"sh", "-c", "head -c 20000000 /dev/zero > big"}, limits: short, wantLimit: LimitWorkspace, wantExit: -1},
		{name: "many small files", argv: []string{"python3", "-c", "import time\nfor i in range(100000):\n    open('f%d' % i, 'wb').write(b'x' * 4000)\ntime.sleep(30)"}, limits: short, wantLimit: LimitWorkspace, wantExit: -1,
			check: func(t *testing.T, res *Result) {
				if !res.Output.IsZero() {
					t.Errorf("oversized workspace was stored as %s", res.Output)
				}
				if res.Duration > 10*time.Second {
					t.Errorf("workspace limit noticed only after %s", res.Duration)
				}
			}},
		{name: "fill tmp", argv: []string{"sh", "-c", "head -c 7000000 /dev/zero > /tmp/a; head -c 7000000 /dev/zero > /tmp/b || echo full"}, limits: short, wantExit: 0,
			check: func(t *testing.T, res *Result) {
				if string(res.Stdout) != "full\n" {
					t.Errorf("stdout %q: /tmp is not bounded", res.Stdout)
				}
			}},
	}
	if !r.ramTmp() {
		// /tmp is on disk and counts against the workspace limit.
		fill := &cases[len(cases)-1]
		fill.wantLimit, fill.wantExit, fill.check = LimitWorkspace, -1, nil
		fill.argv = []string{"sh", "-c", "head -c 7000000 /dev/zero > /tmp/a; head -c 7000000 /dev/zero > /tmp/b; sleep 30"}
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			res := run(t, r, Spec{Image: img, Argv: c.argv, Limits: c.limits})
			if res.LimitHit != c.wantLimit {
				t.Errorf("limit hit %q, want %q (exit %d, %s)\nstderr: %.600s", res.LimitHit, c.wantLimit, res.ExitCode, res.Duration, res.Stderr)
			}
			if (c.wantExit == -1 && res.ExitCode == 0) || (c.wantExit != -1 && res.ExitCode != c.wantExit) {
				t.Errorf("exit %d, want %d\nstderr: %.600s", res.ExitCode, c.wantExit, res.Stderr)
			}
			if c.check != nil {
				c.check(t, res)
			}
			if r.asRoot {
				// Nothing of the run is left on the host.
				owners := processOwners()
				for _, uid := range hostUIDs.held() {
					if n := owners[uint32(uid)]; n != 0 {
						out, _ := exec.Command("ps", "-eo", "pid,ppid,uid,stat,args").Output()
						t.Errorf("%d processes of sandbox uid %d still running\n%s", n, uid, out)
					}
				}
			}
		})
	}

	ln.Close()
	accepted.Wait()
	if acceptedN != 0 {
		t.Errorf("the host's loopback service accepted %d connections from the sandbox", acceptedN)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd")); !bytes.Equal(b, passwdBefore) {
		t.Errorf("image's /etc/passwd changed")
	}
	if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, hostPasswdBefore) {
		t.Errorf("host's /etc/passwd changed")
	}
	for _, p := range []string{"etc/evil", "usr/evil", "evil", "root/evil", "var/evil"} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err == nil {
			t.Errorf("/%s was created in the image", p)
		}
		if _, err := os.Lstat("/" + p); err == nil {
			t.Errorf("/%s was created on the host", p)
		}
	}
	if des, _ := os.ReadDir(filepath.Join(r.workDir, "work")); len(des) != 0 {
		t.Errorf("workspaces left behind: %d", len(des))
	}
}

func TestCancelledContextIsAnErrorAndNotMemoised(t *testing.T) {
	r, img := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	s := Spec{Image: img, Argv: []string{"sleep", "5"}}
	if _, err := r.Run(ctx, s); err == nil {
		t.Fatal("cancelled run returned no error")
	}
	k, err := r.Key(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.store.MemoGet(context.Background(), k); ok {
		t.Fatal("a cancelled run was memoised")
	}
}

func TestConcurrentRunsKeepTheirWorkspaces(t *testing.T) {
	r, img := setup(t)
	var wg sync.WaitGroup
	outs := make([]*Result, 6)
	errs := make([]error, 6)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = r.Run(context.Background(), Spec{Image: img, Argv: []string{"sh", "-c", fmt.Sprintf("echo %d > n.txt; sleep 0.2; cat n.txt", i)}})
		}()
	}
	wg.Wait()
	for i, res := range outs {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		if want := fmt.Sprintf("%d\n", i); string(res.Stdout) != want {
			t.Errorf("run %d: stdout %q, want %q", i, res.Stdout, want)
		}
		if b, err := r.store.ReadFile(res.Output, "n.txt"); err != nil || string(b) != fmt.Sprintf("%d\n", i) {
			t.Errorf("run %d: n.txt in output = %q, %v", i, b, err)
		}
	}
}

func TestWorkDirFallsBackWhenStoreIsPrivate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("not root: the sandbox runs as this user and needs no fallback")
	}
	private := filepath.Join(t.TempDir(), "private")
	if err := os.MkdirAll(filepath.Join(private, "store"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(private, 0o700)
	st, err := cache.Open(filepath.Join(private, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := New(st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if strings.HasPrefix(r.workDir, private) || !searchableByOthers(r.workDir) {
			t.Fatalf("work dir %s: want a reachable directory outside %s", r.workDir, private)
		}
		defer os.RemoveAll(r.workDir)
	} else if r.workDir != st.Root() {
		t.Fatalf("work dir %s, want the store root", r.workDir)
	}
}

func TestConcurrentIdenticalRunsSeeOneResult(t *testing.T) {
	r, img := setup(t)
	// Output that differs on every execution: the nanosecond clock.
	spec := Spec{Image: img, Argv: []string{"sh", "-c", "cat /proc/uptime; echo $$"}, Env: []string{"T=" + t.Name()}}
	results := make([]*Result, 8)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.Run(context.Background(), spec)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	stored := run(t, r, spec)
	ran := 0
	for i, res := range results {
		if res == nil {
			t.Fatal("a run failed")
		}
		if string(res.Stdout) != string(stored.Stdout) {
			t.Fatalf("run %d saw %q but %q is memoised", i, res.Stdout, stored.Stdout)
		}
		if !res.Cached {
			ran++
		}
	}
	if ran > 1 {
		t.Fatalf("%d of 8 identical concurrent runs executed; want one", ran)
	}
}
