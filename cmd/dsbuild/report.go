package main

import (
	"context"
	"fmt"
	"io"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	htmlreport "github.com/dsbuild/dsbuild/report"
	"github.com/urfave/cli/v3"
)

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:  "report",
		Usage: "write the HTML report of a recipe's last build: funnel, cost, timeline and dataset plots",
		Description: "Reads the recipe's last build record from the store, with the counters of its nodes and the\n" +
			"datasets its export stages wrote, and writes one self-contained HTML page (inline SVG plots,\n" +
			"no scripts, nothing fetched from the network). Every build writes the same page beside its\n" +
			"output folder as <out>.report.html; this command writes it again, by default to that place\n" +
			"for the default output folder (out/<recipe name>.report.html).",
		ArgsUsage: "RECIPE.yaml",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "o", Aliases: []string{"output"}, Usage: "write the page to `FILE` (default out/<recipe name>.report.html)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error { return runReport(cmd) },
	})
}

func runReport(cmd *cli.Command) error {
	if cmd.Args().Len() != 1 {
		return usageError{"usage: dsbuild report RECIPE.yaml [-o FILE]"}
	}
	r, err := loadRecipe(cmd, cmd.Args().First())
	if err != nil {
		return err
	}
	store, err := openStore(cmd)
	if err != nil {
		return err
	}
	defer store.Close()
	rec, err := latestRecord(store, r.Name, "report")
	if err != nil {
		return err
	}
	path := cmd.String("o")
	if path == "" {
		if path, err = htmlreport.Path("out/" + r.Name); err != nil {
			return err
		}
	}
	if err := htmlreport.Write(rec, store, path); err != nil {
		return err
	}
	fmt.Fprintf(cmd.Root().Writer, "report: %s\n", path)
	return nil
}

// writeBuildReport writes the report of a build beside its output folder
// out and names it on stdout (not with --json). A report that cannot be
// written is said on stderr and does not fail the build: the outputs are
// complete without it.
func writeBuildReport(cmd *cli.Command, stdout, stderr io.Writer, store *cache.Store, rec *build.Record, out string) {
	path, err := htmlreport.Path(out)
	if err == nil {
		err = htmlreport.Write(rec, store, path)
	}
	if err != nil {
		fmt.Fprintf(stderr, "dsbuild: no build report: %v\n", err)
		return
	}
	if !cmd.Bool("json") {
		fmt.Fprintf(stdout, "report: %s\n", path)
	}
}
