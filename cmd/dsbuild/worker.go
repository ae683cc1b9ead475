package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/urfave/cli/v3"
)

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:  "worker",
		Usage: "run one node of a build against the store (what an executor's jobs run)",
		Description: "SPEC is the digest of a node spec the build stored (build.NodeSpec): the recipe's path and\n" +
			"text, the stage, the item, the inputs' items and the key the build computed. The worker parses\n" +
			"the recipe, recomputes the key and refuses a mismatch, reports a memoised result without running,\n" +
			"else runs the node, stores its result (memoised first-writer-wins unless provisional) and then its\n" +
			"outcome, which the build waits for. Use the build's --cache (and --remote). Exit 2: a spec that\n" +
			"cannot run here (its outcome says why); 1: the node failed, or the store could not be written.",
		ArgsUsage: "SPEC",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return runWorker(ctx, cmd, cmd.Root().Writer, cmd.Root().ErrWriter)
		},
	})
}

func runWorker(ctx context.Context, cmd *cli.Command, stdout, stderr io.Writer) error {
	if cmd.Args().Len() != 1 {
		return usageError{"usage: dsbuild [--cache DIR] worker SPEC (the sha256:... digest of a node spec in the store)"}
	}
	specD, err := cache.ParseDigest(cmd.Args().First())
	if err != nil {
		return usageError{fmt.Sprintf("worker: %v", err)}
	}
	store, err := openStore(cmd)
	if err != nil {
		return err
	}
	defer store.Close()
	host, _ := os.Hostname()
	where := host
	if id := os.Getenv("SLURM_ARRAY_JOB_ID"); id != "" {
		where = fmt.Sprintf("job %s_%s on %s", id, os.Getenv("SLURM_ARRAY_TASK_ID"), host)
	} else if id := os.Getenv("SLURM_JOB_ID"); id != "" {
		where = fmt.Sprintf("job %s on %s", id, host)
	}
	oc, err := build.RunSpec(ctx, store, specD, build.WorkerOptions{Jobs: workerJobs(cmd), Worker: where, Observer: build.NewPlainObserver(stderr)})
	if ctx.Err() != nil {
		// Cancelled (scancel, Ctrl-C): no outcome, so the build sees the
		// job gone without one and submits the node again if it still
		// wants it.
		return ctx.Err()
	}
	var se *build.SpecError
	if errors.As(err, &se) {
		// Running it again cannot help: say so in the outcome, so the
		// build fails the node instead of submitting it again.
		if werr := build.PutOutcome(store, specD, &build.NodeOutcome{Error: se.Msg, Worker: where}); werr != nil {
			return fmt.Errorf("worker: %w", werr)
		}
		return usageError{"worker: " + se.Msg}
	}
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if err := build.PutOutcome(store, specD, oc); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if oc.Error != "" {
		fmt.Fprintf(stdout, "node failed: %s\n", oc.Error)
		return errors.New("worker: the node failed (its outcome says why)")
	}
	fmt.Fprintf(stdout, "node done: result %s\n", oc.Result)
	return nil
}

// workerJobs is the worker's sandbox slots: -j if given, else the CPUs
// Slurm gave the job, else 1.
func workerJobs(cmd *cli.Command) int {
	if cmd.IsSet("jobs") {
		return int(cmd.Int("jobs"))
	}
	if n, err := strconv.Atoi(os.Getenv("SLURM_CPUS_PER_TASK")); err == nil && n > 0 {
		return n
	}
	return 1
}
