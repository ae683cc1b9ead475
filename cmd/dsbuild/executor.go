package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/slurm"
	"github.com/urfave/cli/v3"
)

// executorFlags choose where a build's nodes run.
var executorFlags = []cli.Flag{
	&cli.StringFlag{Name: "executor", Value: "local", Usage: "where nodes run, `local|slurm`: local is this process, slurm one Slurm job-array task per node, each running dsbuild worker against the same store",
		Validator: func(s string) error {
			if s != "local" && s != "slurm" {
				return usageError{fmt.Sprintf("--executor: want local or slurm, got %q", s)}
			}
			return nil
		}},
	&cli.StringFlag{Name: "slurm-partition", Usage: "Slurm partition of the jobs (else the recipe's slurm: partition, else the cluster's default)"},
	&cli.StringFlag{Name: "slurm-account", Usage: "Slurm account the jobs are charged to"},
	&cli.StringFlag{Name: "slurm-time", Usage: "time limit of each job, in sbatch's format (e.g. 2:00:00)"},
	&cli.IntFlag{Name: "slurm-cpus", Usage: "CPUs per job (sbatch --cpus-per-task; the worker's sandbox slots)"},
	&cli.StringFlag{Name: "slurm-mem", Usage: "memory per job, in sbatch's format (e.g. 8G)"},
	&cli.IntFlag{Name: "slurm-max-jobs", Usage: "jobs submitted and unfinished at once (default 100; also each job array's %cap)"},
	&cli.StringFlag{Name: "slurm-log-dir", Usage: "folder for the jobs' logs and batch scripts (default STORE/slurm; with --remote and no shared filesystem, a folder the nodes share if you want to read the logs here)"},
	&cli.StringFlag{Name: "slurm-worker-cache", Usage: "store directory the jobs open (default the build's --cache, on a shared filesystem; with --remote, a directory local to each node such as /scratch/dsbuild)"},
}

// buildJobs is the build's -j: as given, else with --executor slurm the
// jobs it may have in flight (--slurm-max-jobs, the recipe's max_jobs, or
// 100), since a node waiting in Slurm's queue holds its pool slot and the
// controller's CPU count says nothing of the cluster's.
func buildJobs(cmd *cli.Command, r *build.Recipe) int {
	if cmd.IsSet("jobs") || cmd.String("executor") != "slurm" {
		return int(cmd.Int("jobs"))
	}
	if cmd.IsSet("slurm-max-jobs") {
		return int(cmd.Int("slurm-max-jobs"))
	}
	if n := slurm.RecipeSection(r).MaxJobs; n > 0 {
		return n
	}
	return slurm.DefaultMaxJobs
}

// newExecutor returns the executor --executor names for a build of r over
// store (nil for local) and a function to call when the build returns.
func newExecutor(cmd *cli.Command, r *build.Recipe, store *cache.Store, obs build.Observer) (build.Executor, func() error, error) {
	if cmd.String("executor") != "slurm" {
		return nil, func() error { return nil }, nil
	}
	cfg := slurm.Config{Section: slurm.RecipeSection(r), LogDir: cmd.String("slurm-log-dir")}
	for _, f := range []struct {
		flag string
		to   *string
	}{{"slurm-partition", &cfg.Partition}, {"slurm-account", &cfg.Account}, {"slurm-time", &cfg.Time}, {"slurm-mem", &cfg.Mem}} {
		if cmd.IsSet(f.flag) {
			*f.to = cmd.String(f.flag)
		}
	}
	if cmd.IsSet("slurm-cpus") {
		cfg.CPUs = int(cmd.Int("slurm-cpus"))
	}
	if cmd.IsSet("slurm-max-jobs") {
		cfg.MaxJobs = int(cmd.Int("slurm-max-jobs"))
	}
	if err := cfg.Section.Validate(); err != nil {
		return nil, nil, usageError{"--slurm-*: " + err.Error()}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("--executor slurm: finding this dsbuild for the workers: %w", err)
	}
	// The workers open the same store: the same directory on a shared
	// filesystem, or their own over the same --remote.
	workerCache := store.Root()
	if d := cmd.String("slurm-worker-cache"); d != "" {
		if workerCache, err = filepath.Abs(d); err != nil {
			return nil, nil, err
		}
	}
	worker := []string{self, "--cache", workerCache}
	if u := remoteURL(cmd); u != "" {
		worker = append(worker, "--remote", u)
	}
	if cfg.LogDir != "" {
		if cfg.LogDir, err = filepath.Abs(cfg.LogDir); err != nil {
			return nil, nil, err
		}
	}
	cfg.Worker = append(worker, "worker")
	cfg.Log = func(msg string) { obs.Event(build.Event{Type: build.EventLog, Stage: "slurm", Message: msg}) }
	x, err := slurm.New(cfg, store)
	if err != nil {
		return nil, nil, err
	}
	return x, x.Close, nil
}
