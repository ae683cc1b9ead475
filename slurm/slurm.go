// Package slurm owns dsbuild's Slurm executor (a build.Executor): it runs a
// build's nodes as Slurm job-array tasks, each `dsbuild worker SPEC` against
// the build's store (a directory on a filesystem the cluster shares, or a
// local directory per machine over one S3 bucket with --remote).
//
// Slurm does all the scheduling; the executor only batches, submits and
// follows:
//
//   - Nodes the engine hands over (it holds each node's pool slot first, so
//     the recipe's pool limits bound the nodes in flight as in a local
//     build) are collected into batches and submitted with one sbatch per
//     batch, a job array capped at MaxJobs tasks running at once
//     (--array=0-N%MaxJobs), at most one sbatch per SubmitInterval. No more
//     than MaxJobs of the executor's tasks are submitted and unfinished at
//     any time.
//   - A worker stores the node's result (memoised first-writer-wins) and
//     then an outcome under build.OutcomeKey(spec). The executor follows its
//     tasks with squeue (Slurm's accounting, sacct, is often off) and reads
//     the outcome of every task that has left the queue.
//   - A task that left the queue with no outcome (cancelled, killed, out of
//     memory or time, its machine died) failed for reasons of the cluster,
//     not of the node: it is submitted again, up to MaxAttempts times; then
//     the node fails with the job ids and the last job's log file.
//   - Cancelling a node's context (Ctrl-C, or the build stopping at a
//     failure) cancels its task with scancel; Close cancels every task
//     still in the queue.
//
// Model calls stay bounded cluster-wide: the engine submits at most the
// "llm" pool's limit of model-calling nodes at once (64 unless the
// recipe's pools: says otherwise), and each worker's model client makes at
// most the profile's max_in_flight requests at once, so no more than
// llm-limit × max_in_flight requests are in flight on the whole cluster.
// (A profile's rate limits hold per worker, not per cluster.)
package slurm

import (
	"fmt"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/build"
)

// SectionName is the recipe's top-level section with Slurm settings. No
// stage kind reads it, so it is part of no node key: where a node runs
// does not change what it gives.
const SectionName = "slurm"

// Section is the recipe's `slurm:` section. Flags override it field by
// field.
type Section struct {
	Partition string `yaml:"partition" json:"partition,omitempty"`
	Account   string `yaml:"account" json:"account,omitempty"`
	// Time is a job's time limit in sbatch's format (for example "2:00:00").
	Time string `yaml:"time" json:"time,omitempty"`
	// CPUs per job (sbatch --cpus-per-task); the worker's sandbox pool.
	CPUs int `yaml:"cpus" json:"cpus,omitempty"`
	// Mem per job in sbatch's format (for example "8G").
	Mem string `yaml:"mem" json:"mem,omitempty"`
	// MaxJobs bounds the build's jobs submitted and unfinished at once.
	MaxJobs int `yaml:"max_jobs" json:"max_jobs,omitempty"`
}

// Validate checks the section's numbers.
func (s *Section) Validate() error {
	if s.CPUs < 0 {
		return fmt.Errorf("cpus: want at least 1, got %d", s.CPUs)
	}
	if s.MaxJobs < 0 {
		return fmt.Errorf("max_jobs: want at least 1, got %d", s.MaxJobs)
	}
	for _, f := range []struct{ name, v string }{{"partition", s.Partition}, {"account", s.Account}, {"time", s.Time}, {"mem", s.Mem}} {
		if strings.ContainsAny(f.v, " \t\n'\"") {
			return fmt.Errorf("%s: %q holds a space or quote", f.name, f.v)
		}
	}
	return nil
}

func init() {
	build.RegisterSection(SectionName, func() any { return &Section{} })
}

// RecipeSection returns r's `slurm:` section (zero if it has none).
func RecipeSection(r *build.Recipe) Section {
	if s, ok := r.Section(SectionName).(*Section); ok && s != nil {
		return *s
	}
	return Section{}
}

// Config is how the executor submits and follows jobs.
type Config struct {
	// Section holds the job resources: partition, account, time, cpus, mem,
	// and MaxJobs (default 100).
	Section
	// Worker is the command line that runs one node, to which the spec
	// digest is appended: for example [/usr/bin/dsbuild --cache /shared/store
	// worker]. It must run the same dsbuild as the build.
	Worker []string
	// LogDir receives one log per job task, JOBID_TASK.log, and the batch
	// scripts.
	LogDir string
	// SubmitInterval is the least time between two sbatch calls (default 1s).
	SubmitInterval time.Duration
	// PollInterval is how often squeue is asked about the tasks (default 1s).
	PollInterval time.Duration
	// Grace is how long a task may be gone from the queue before its missing
	// outcome counts as lost (default 5s; raise it where the shared
	// filesystem shows one machine's files to another late, as NFS's
	// attribute cache can).
	Grace time.Duration
	// MaxAttempts bounds the jobs one node is given (default 3).
	MaxAttempts int
	// MaxArray bounds the tasks of one job array (default 1000, below
	// Slurm's default MaxArraySize of 1001).
	MaxArray int
	// Log receives the executor's notes (a job lost and submitted again).
	Log func(msg string)
	// Commands are the Slurm commands, for tests (default sbatch, squeue,
	// scancel from $PATH).
	Sbatch, Squeue, Scancel string
}

// DefaultMaxJobs is Config.MaxJobs when none is given.
const DefaultMaxJobs = 100

func (c *Config) defaults() {
	if c.MaxJobs < 1 {
		c.MaxJobs = DefaultMaxJobs
	}
	if c.SubmitInterval <= 0 {
		c.SubmitInterval = time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.Grace <= 0 {
		c.Grace = 5 * time.Second
	}
	if c.MaxAttempts < 1 {
		c.MaxAttempts = 3
	}
	if c.MaxArray < 1 {
		c.MaxArray = 1000
	}
	if c.Log == nil {
		c.Log = func(string) {}
	}
	if c.Sbatch == "" {
		c.Sbatch = "sbatch"
	}
	if c.Squeue == "" {
		c.Squeue = "squeue"
	}
	if c.Scancel == "" {
		c.Scancel = "scancel"
	}
}
