package slurm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
)

// Executor runs nodes as Slurm job-array tasks (see the package doc). Make
// one with New; Close it when the build returns.
type Executor struct {
	cfg   Config
	store *cache.Store
	// name is the job name of every job of this executor (squeue follows
	// them by it) and nonce makes its node specs, and so their outcome
	// keys, its own.
	name, nonce string
	slots       chan struct{} // MaxJobs

	mu      sync.Mutex
	pending []*task          // waiting for sbatch
	live    map[string]*task // submitted, by "JOBID_TASK"
	cancel  []string         // task ids to scancel
	seq     int              // batch scripts written
	closed  bool

	kick     chan struct{}
	stop     chan struct{}
	loops    sync.WaitGroup
	closeErr error
}

type task struct {
	job     *build.RemoteNode
	spec    cache.Digest
	outcome cache.Key
	jobID   string // "JOBID_TASK" once submitted
	started bool   // squeue has shown it running
	gone    time.Time
	done    chan taskResult // buffered: one result
}

type taskResult struct {
	outcome *build.NodeOutcome
	lost    bool // the task left the queue with no outcome
	err     error
}

// New returns an executor that submits to Slurm and stores specs in store
// (the build's store, which the workers reach too).
func New(cfg Config, store *cache.Store) (*Executor, error) {
	cfg.defaults()
	if len(cfg.Worker) == 0 {
		return nil, errors.New("slurm: no worker command")
	}
	for _, c := range []string{cfg.Sbatch, cfg.Squeue, cfg.Scancel} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("slurm: %s not found: run on a machine with Slurm's commands (a login node), or start a local cluster with scripts/slurm-local.sh", c)
		}
	}
	if cfg.LogDir == "" {
		cfg.LogDir = filepath.Join(store.Root(), "slurm")
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("slurm: log folder: %w", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	nonce := hex.EncodeToString(b[:])
	x := &Executor{cfg: cfg, store: store, name: "dsbuild-" + nonce[:8], nonce: nonce,
		slots: make(chan struct{}, cfg.MaxJobs), live: map[string]*task{},
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
	x.loops.Add(2)
	go x.submitLoop()
	go x.pollLoop()
	return x, nil
}

// JobName is the Slurm job name of every job this executor submits.
func (x *Executor) JobName() string { return x.name }

// Exec implements build.Executor: it submits the node, waits for its
// outcome and submits it again (up to MaxAttempts jobs) if its job is lost.
func (x *Executor) Exec(ctx context.Context, job *build.RemoteNode) (*build.NodeOutcome, error) {
	var jobs []string
	for attempt := 1; ; attempt++ {
		spec := job.Spec
		spec.Attempt = fmt.Sprintf("%s/%d", x.nonce, attempt)
		d, err := build.PutJSON(x.store, spec)
		if err != nil {
			return nil, fmt.Errorf("slurm: storing the node spec: %w", err)
		}
		t := &task{job: job, spec: d, outcome: build.OutcomeKey(d), done: make(chan taskResult, 1)}
		select {
		case x.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !x.enqueue(t) {
			<-x.slots
			return nil, errors.New("slurm: executor closed")
		}
		var r taskResult
		select {
		case r = <-t.done:
		case <-ctx.Done():
			x.abandon(t)
			<-x.slots
			return nil, ctx.Err()
		}
		<-x.slots
		if r.err != nil {
			return nil, r.err
		}
		if !r.lost {
			return r.outcome, nil
		}
		jobs = append(jobs, t.jobID)
		log := x.LogFile(t.jobID)
		if attempt >= x.cfg.MaxAttempts {
			return nil, fmt.Errorf("slurm: %d jobs (%s) left the queue without finishing the node (cancelled, killed, out of memory or time, or their machine failed); the last job's log is %s",
				attempt, strings.Join(jobs, ", "), log)
		}
		x.cfg.Log(fmt.Sprintf("%s: job %s left the queue without finishing (log %s); submitting it again (attempt %d of %d)",
			job.Node, t.jobID, log, attempt+1, x.cfg.MaxAttempts))
	}
}

// LogFile is the log of the job task id ("JOBID_TASK").
func (x *Executor) LogFile(id string) string { return filepath.Join(x.cfg.LogDir, id+".log") }

func (x *Executor) enqueue(t *task) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return false
	}
	x.pending = append(x.pending, t)
	select {
	case x.kick <- struct{}{}:
	default:
	}
	return true
}

// abandon forgets t: dropped if not yet submitted, else cancelled.
func (x *Executor) abandon(t *task) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, p := range x.pending {
		if p == t {
			x.pending = append(x.pending[:i], x.pending[i+1:]...)
			return
		}
	}
	if t.jobID != "" {
		if _, ok := x.live[t.jobID]; ok {
			delete(x.live, t.jobID)
			x.cancel = append(x.cancel, t.jobID)
		}
	}
}

// Close stops submitting and cancels every task still in the queue. Call
// it once the build has returned.
func (x *Executor) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return x.closeErr
	}
	x.closed = true
	for _, t := range x.pending {
		t.done <- taskResult{err: errors.New("slurm: executor closed")}
	}
	x.pending = nil
	ids := x.cancel
	x.cancel = nil
	for id, t := range x.live {
		ids = append(ids, id)
		t.done <- taskResult{err: errors.New("slurm: executor closed")}
	}
	x.live = map[string]*task{}
	x.mu.Unlock()
	close(x.stop)
	x.loops.Wait()
	x.closeErr = x.scancel(ids)
	return x.closeErr
}

func (x *Executor) scancel(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	out, err := exec.Command(x.cfg.Scancel, ids...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("slurm: scancel: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// submitLoop submits what is pending, one sbatch per SubmitInterval at
// most: nodes that become ready meanwhile join the next batch.
func (x *Executor) submitLoop() {
	defer x.loops.Done()
	var last time.Time
	for {
		select {
		case <-x.kick:
		case <-x.stop:
			return
		}
		if wait := time.Until(last.Add(x.cfg.SubmitInterval)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-x.stop:
				return
			}
		}
		x.mu.Lock()
		n := min(len(x.pending), x.cfg.MaxArray)
		batch := append([]*task(nil), x.pending[:n]...)
		x.pending = x.pending[n:]
		if len(x.pending) > 0 {
			select {
			case x.kick <- struct{}{}:
			default:
			}
		}
		x.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		last = time.Now()
		id, err := x.submit(batch)
		x.mu.Lock()
		for i, t := range batch {
			switch {
			case err != nil:
				t.done <- taskResult{err: err}
			case x.closed:
				// Close has run: cancel what was just submitted.
				x.cancel = append(x.cancel, fmt.Sprintf("%s_%d", id, i))
			default:
				t.jobID = fmt.Sprintf("%s_%d", id, i)
				x.live[t.jobID] = t
			}
		}
		cancel := x.cancel
		x.cancel = nil
		x.mu.Unlock()
		if err := x.scancel(cancel); err != nil {
			x.cfg.Log(err.Error())
		}
	}
}

// submit writes a batch script running the worker on each task's spec and
// submits it as one job array. It returns the array's job id.
func (x *Executor) submit(batch []*task) (string, error) {
	x.mu.Lock()
	x.seq++
	script := filepath.Join(x.cfg.LogDir, fmt.Sprintf("%s-%d.sh", x.name, x.seq))
	x.mu.Unlock()
	var b strings.Builder
	b.WriteString("#!/bin/bash\n# dsbuild: one node per array task (see dsbuild worker --help)\nspecs=(")
	for _, t := range batch {
		b.WriteString(" " + t.spec.String())
	}
	b.WriteString(" )\nexec")
	for _, a := range x.cfg.Worker {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString(" \"${specs[$SLURM_ARRAY_TASK_ID]}\"\n")
	if err := cache.WriteFileAtomic("", script, []byte(b.String())); err != nil {
		return "", fmt.Errorf("slurm: writing the batch script: %w", err)
	}
	args := []string{"--parsable", "--job-name", x.name,
		"--array", fmt.Sprintf("0-%d%%%d", len(batch)-1, x.cfg.MaxJobs),
		"--output", filepath.Join(x.cfg.LogDir, "%A_%a.log")}
	if x.cfg.CPUs > 0 {
		args = append(args, "--cpus-per-task", strconv.Itoa(x.cfg.CPUs))
	}
	for _, f := range []struct{ flag, v string }{{"--partition", x.cfg.Partition}, {"--account", x.cfg.Account}, {"--time", x.cfg.Time}, {"--mem", x.cfg.Mem}} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	args = append(args, script)
	// sbatch fails now and then when slurmctld is busy: try a few times.
	var out []byte
	var err error
	for try := range 4 {
		if try > 0 {
			select {
			case <-time.After(time.Duration(try) * 2 * time.Second):
			case <-x.stop:
				return "", errors.New("slurm: executor closed")
			}
		}
		var stderr bytes.Buffer
		cmd := exec.Command(x.cfg.Sbatch, args...)
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err == nil {
			id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
			if _, perr := strconv.Atoi(id); perr != nil {
				return "", fmt.Errorf("slurm: sbatch printed %q, not a job id", out)
			}
			return id, nil
		}
		err = fmt.Errorf("slurm: sbatch %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return "", err
}

// pollLoop follows the submitted tasks: squeue says which are still queued
// or running; a task gone from the queue has its outcome read, or after
// Grace with none is lost.
func (x *Executor) pollLoop() {
	defer x.loops.Done()
	tick := time.NewTicker(x.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-x.stop:
			return
		}
		x.mu.Lock()
		n := len(x.live)
		cancel := x.cancel
		x.cancel = nil
		x.mu.Unlock()
		if err := x.scancel(cancel); err != nil {
			x.cfg.Log(err.Error())
		}
		if n == 0 {
			continue
		}
		states, err := x.squeue()
		if err != nil {
			x.cfg.Log(err.Error()) // a busy slurmctld: ask again next time
			continue
		}
		x.mu.Lock()
		var gone, started []*task
		for id, t := range x.live {
			switch states[id] {
			case "RUNNING", "COMPLETING":
				if !t.started {
					t.started = true
					started = append(started, t)
				}
				t.gone = time.Time{}
			case "":
				if t.gone.IsZero() {
					t.gone = time.Now()
				}
				gone = append(gone, t)
			default:
				t.gone = time.Time{}
			}
		}
		x.mu.Unlock()
		for _, t := range started {
			if t.job.Started != nil {
				t.job.Started()
			}
		}
		for _, t := range gone {
			oc, found, err := x.readOutcome(t)
			var r taskResult
			switch {
			case err != nil:
				r = taskResult{err: err}
			case found:
				r = taskResult{outcome: oc}
			case time.Since(t.gone) >= x.cfg.Grace:
				r = taskResult{lost: true}
			default:
				continue
			}
			x.mu.Lock()
			if _, ok := x.live[t.jobID]; ok {
				delete(x.live, t.jobID)
				t.done <- r
			}
			x.mu.Unlock()
		}
	}
}

// squeue returns the state of each of the executor's tasks in the queue,
// by "JOBID_TASK".
func (x *Executor) squeue() (map[string]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(x.cfg.Squeue, "--noheader", "--array", "--name", x.name, "--format", "%F %K %T")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("slurm: squeue: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	states := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		states[f[0]+"_"+f[1]] = f[2]
	}
	return states, nil
}

// readOutcome reads the outcome t's worker stored, if any.
func (x *Executor) readOutcome(t *task) (*build.NodeOutcome, bool, error) {
	oc, ok, err := build.ReadOutcome(x.store, t.spec)
	if err != nil {
		return nil, false, fmt.Errorf("slurm: job %s: %w", t.jobID, err)
	}
	if ok && oc.Worker == "" {
		oc.Worker = "job " + t.jobID
	}
	return oc, ok, nil
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
