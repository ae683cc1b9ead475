package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/harness"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/urfave/cli/v3"
)

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:  "eval",
		Usage: "grade model patches on an exported dataset the way the SWE-bench harness does",
		Description: "INSTANCES is a dataset folder written by an export stage (or its tasks/instances.jsonl);\n" +
			"PREDICTIONS holds {\"instance_id\", \"model_name_or_path\", \"model_patch\"} objects: one a line (JSONL),\n" +
			"a JSON list of them, or a JSON object of them keyed by instance id (SWE-agent's preds.json).\n" +
			"Each patch is applied to /testbed of the instance's image from the folder's OCI layout (exactly,\n" +
			"else with `patch --fuzz=5` inside the image), the instance's test_files are restored, test_cmd\n" +
			"runs in the sandbox and the instance is resolved when every FAIL_TO_PASS and PASS_TO_PASS test\n" +
			"passes. Reproduce and testgen tasks are answered with tests: the test files the patch adds or\n" +
			"changes must fail on /testbed and pass with golden_code_patch applied (reproduce), or pass on\n" +
			"/testbed and fail with at least half of mutant_patches applied one at a time (testgen).\n" +
			"Test runs are cached by content in the store. The report goes to --report\n" +
			"(default eval/<model>.<run id>.json).",
		ArgsUsage: "INSTANCES PREDICTIONS.jsonl",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "report", Usage: "where to write the report `FILE` (default eval/<model>.<run id>.json)"},
			&cli.StringFlag{Name: "run-id", Usage: "the run's name in the report and its default path (default: the predictions file's name)"},
			&cli.StringSliceFlag{Name: "instance-ids", Usage: "grade only these instances (comma-separated or repeated)"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "wall-clock limit of each test run"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error { return runEval(ctx, cmd) },
	})
}

func runEval(ctx context.Context, cmd *cli.Command) error {
	if cmd.Args().Len() != 2 {
		return usageError{"usage: dsbuild eval INSTANCES PREDICTIONS.jsonl [--report FILE] [--run-id ID] [--instance-ids ID,...] [-j N]"}
	}
	if cmd.Duration("timeout") <= 0 {
		return usageError{fmt.Sprintf("eval: --timeout %s must be positive", cmd.Duration("timeout"))}
	}
	data, err := harness.OpenDataset(cmd.Args().Get(0))
	if err != nil {
		return err
	}
	predsPath := cmd.Args().Get(1)
	preds, err := harness.ReadPredictions(predsPath, data)
	if err != nil {
		return err
	}
	if preds, err = onlyInstances(preds, data, cmd.StringSlice("instance-ids")); err != nil {
		return err
	}
	runID := cmd.String("run-id")
	if runID == "" {
		runID = strings.TrimSuffix(filepath.Base(predsPath), filepath.Ext(predsPath))
	}
	if strings.ContainsAny(runID, "/\x00") || runID == "" {
		return usageError{fmt.Sprintf("eval: run id %q must be a non-empty name without '/'", runID)}
	}
	model := preds[0].Model
	out := cmd.String("report")
	if out == "" {
		out = harness.DefaultReportPath(model, runID)
	}
	store, err := openStore(cmd)
	if err != nil {
		return err
	}
	defer store.Close()
	g, err := harness.NewGrader(store, data, harness.Options{
		Jobs: int(cmd.Int("jobs")), Limits: sandbox.Limits{Timeout: cmd.Duration("timeout")},
	})
	if err != nil {
		return err
	}
	verdicts, err := g.GradeAll(ctx, preds)
	if err != nil {
		return fmt.Errorf("eval: %w (no report written)", build.ErrInterrupted)
	}
	rep := harness.NewReport(data, model, runID, verdicts)
	if err := rep.Write(out); err != nil {
		return fmt.Errorf("eval: writing the report: %w", err)
	}
	printEvalSummary(cmd.Root().Writer, rep, out)
	return nil
}

// onlyInstances keeps the predictions of the instances in ids (all when
// ids is empty); an id the dataset lacks is a usage error.
func onlyInstances(preds []harness.Prediction, data *harness.Dataset, ids []string) ([]harness.Prediction, error) {
	if len(ids) == 0 {
		return preds, nil
	}
	want := map[string]bool{}
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if _, ok := data.Instances[id]; !ok {
			return nil, usageError{fmt.Sprintf("eval: --instance-ids: %q is not an instance of %s", id, data.Dir)}
		}
		want[id] = true
	}
	var out []harness.Prediction
	for _, p := range preds {
		if want[p.InstanceID] {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, usageError{"eval: --instance-ids selects no instance the predictions name"}
	}
	return out, nil
}

func printEvalSummary(w io.Writer, r *harness.Report, path string) {
	for _, id := range r.ErrorIDs {
		fmt.Fprintf(w, "error       %s: %s\n", id, firstLine(r.Instances[id].Error))
	}
	for _, id := range r.TouchedTestIDs {
		fmt.Fprintf(w, "tests reset %s: the patch edits %s\n", id, strings.Join(r.Instances[id].TouchedTestFiles, ", "))
	}
	pct := 0.0
	if r.SubmittedInstances > 0 {
		pct = 100 * float64(r.ResolvedInstances) / float64(r.SubmittedInstances)
	}
	fmt.Fprintf(w, "%s on %d of %d instances: %d resolved (%.1f%%), %d unresolved, %d empty patch, %d error\n",
		r.Model, r.SubmittedInstances, r.TotalInstances, r.ResolvedInstances, pct, r.UnresolvedInstances, r.EmptyPatchInstances, r.ErrorInstances)
	fmt.Fprintf(w, "report: %s\n", path)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
