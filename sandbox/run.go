package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// watch records the first limit a run hits and kills the run for it.
type watch struct {
	mu     sync.Mutex
	limit  string
	cancel context.CancelFunc
}

func (w *watch) hit(limit string) {
	w.mu.Lock()
	if w.limit == "" {
		w.limit = limit
	}
	w.mu.Unlock()
	w.cancel()
}

func (w *watch) get() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.limit
}

// capture keeps the first max bytes written to it and calls over once more
// than max have been written.
type capture struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	max  int64
	n    int64
	over func()
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	room := c.max - int64(c.buf.Len())
	if room > 0 {
		c.buf.Write(p[:min(room, int64(len(p)))])
	}
	c.n += int64(len(p))
	exceeded := c.n > c.max
	c.mu.Unlock()
	if exceeded {
		c.over()
	}
	return len(p), nil
}

// bytes returns what was kept, with a marker when output was cut.
func (c *capture) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := bytes.Clone(c.buf.Bytes())
	if out == nil {
		out = []byte{}
	}
	if c.n > c.max {
		out = append(out, fmt.Sprintf("\n[dsbuild sandbox: output truncated after %d bytes; the run was stopped]\n", c.max)...)
	}
	return out
}

// bwrapStatus is what bubblewrap writes to --json-status-fd.
type bwrapStatus struct {
	ChildPID *int `json:"child-pid"`
	ExitCode *int `json:"exit-code"`
}

func (r *Runner) bwrapRun(ctx context.Context, s Spec, rootfs, ws string, uid int) (*Result, error) {
	l := s.Limits
	runCtx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	w := &watch{cancel: cancel}

	cmd := exec.CommandContext(runCtx, r.prlimit, r.bwrapArgs(s, rootfs, ws)...)
	cmd.Env = []string{}
	cmd.Dir = "/"
	// bwrap leads a process group of its own, and dies with this process
	// (Pdeathsig, SIGKILL) even before its own --die-with-parent is set up
	// or while it waits for the sandbox: a dsbuild killed mid-run must not
	// leave a sandbox running for its whole program. (Pdeathsig fires when
	// the thread that started bwrap ends, so that thread must outlive it:
	// Go's threads do, unless a goroutine locked to one exits.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if r.asRoot {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}
	}
	var childPID atomic.Int64
	cmd.Cancel = func() error {
		// Killing the sandbox's pid 1 makes the kernel kill everything in
		// its pid namespace; bwrap then reaps it and reports 137. Killing
		// bwrap instead would leave pid 1 a zombie of the host's init.
		var err error
		if pid := childPID.Load(); pid > 0 {
			err = syscall.Kill(int(pid), syscall.SIGKILL)
		} else {
			// Not started yet: bwrap leads its process group, and
			// --die-with-parent takes the sandbox down with it.
			err = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if errors.Is(err, syscall.ESRCH) {
			// The sandbox ended just as the deadline passed: Wait then
			// reports bwrap's exit as usual, not "canceling Cmd: no such
			// process" (a race that machine load makes likely).
			return os.ErrProcessDone
		}
		return err
	}
	// If the program survives the kill above, os/exec kills bwrap.
	cmd.WaitDelay = 2 * time.Second
	if s.Stdin != nil {
		cmd.Stdin = bytes.NewReader(s.Stdin)
	}
	stdout := &capture{max: l.OutputBytes, over: func() { w.hit(LimitOutput) }}
	stderr := &capture{max: l.OutputBytes, over: func() { w.hit(LimitOutput) }}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusR.Close()
	cmd.ExtraFiles = []*os.File{statusW}

	start := time.Now()
	if err := r.start(cmd, uid); err != nil {
		statusW.Close()
		return nil, fmt.Errorf("starting bubblewrap: %w", err)
	}
	statusW.Close()
	statusDone := make(chan bwrapStatus, 1)
	go func() {
		// bwrap writes {"child-pid": N, ...} when the sandbox's pid 1
		// starts and {"exit-code": N} when it ends.
		var all bwrapStatus
		dec := json.NewDecoder(statusR)
		for {
			var st bwrapStatus
			if dec.Decode(&st) != nil {
				break
			}
			if st.ChildPID != nil {
				all.ChildPID = st.ChildPID
				childPID.Store(int64(*st.ChildPID))
			}
			if st.ExitCode != nil {
				all.ExitCode = st.ExitCode
			}
		}
		io.Copy(io.Discard, statusR)
		statusDone <- all
	}()
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		r.monitor(stopWatch, w, ws, uid, l)
	}()
	waitErr := cmd.Wait()
	dur := time.Since(start)
	close(stopWatch)
	<-watchDone
	status := <-statusDone

	res := &Result{Stdout: stdout.bytes(), Stderr: stderr.bytes(), Duration: dur}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		return nil, fmt.Errorf("waiting for bubblewrap: %w", waitErr)
	}
	started, exited := status.ChildPID != nil, status.ExitCode != nil
	if exited {
		res.ExitCode = *status.ExitCode
	}
	limit := w.get()
	killed := limit != "" || errors.Is(runCtx.Err(), context.DeadlineExceeded) || ctx.Err() != nil
	if ctx.Err() != nil {
		return nil, ctx.Err() // cancelled by the caller: no result
	}
	if !exited {
		if !killed {
			msg := string(stderr.bytes())
			if started {
				msg = "bubblewrap exited without reporting the program's status: " + msg
			}
			return nil, &errSetup{stderr: msg}
		}
		res.ExitCode = 128 + int(syscall.SIGKILL)
	}
	if limit == "" && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
		limit = LimitTimeout
	}
	if limit == "" || limit == LimitTimeout {
		// A program that ran into an rlimit and then hung until the
		// timeout hit that rlimit first.
		if c := classify(res, cmd.ProcessState, l); c != "" {
			limit = c
		}
	}
	res.LimitHit = limit
	return res, nil
}

// classify infers which rlimit a finished run ran into from how it ended.
// Kernel rlimits leave no record, so this reads the exit status and, for
// memory and processes, the usual messages programs print when an
// allocation or fork fails.
func classify(res *Result, ps *os.ProcessState, l Limits) string {
	switch res.ExitCode {
	case 128 + int(syscall.SIGXCPU):
		return LimitCPU
	case 128 + int(syscall.SIGXFSZ):
		return LimitWorkspace
	case 128 + int(syscall.SIGKILL):
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			if cpu >= time.Duration(l.CPUSeconds)*time.Second {
				return LimitCPU
			}
		}
	}
	if res.ExitCode == 0 {
		return ""
	}
	tail := res.Stderr
	if len(tail) > 8192 {
		tail = tail[len(tail)-8192:]
	}
	for _, m := range memoryMarkers {
		if bytes.Contains(tail, []byte(m)) {
			return LimitMemory
		}
	}
	for _, m := range processMarkers {
		if bytes.Contains(tail, []byte(m)) {
			return LimitProcesses
		}
	}
	return ""
}

var memoryMarkers = []string{"MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory", "Out of memory"}

var processMarkers = []string{"Cannot fork", "fork: retry", "fork: Resource temporarily unavailable", "BlockingIOError: [Errno 11]", "can't start new thread"}
