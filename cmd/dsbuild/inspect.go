package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/dsbuild/dsbuild/schema"
	"github.com/urfave/cli/v3"
)

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:      "inspect",
		Usage:     "summarise a Parquet file: created_by, rows, row groups, compression, schema and the first rows",
		ArgsUsage: "FILE.parquet",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "rows", Value: 5, Usage: "how many rows to print as JSON (long strings are shortened)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error { return runInspect(cmd) },
	})
}

func runInspect(cmd *cli.Command) error {
	if cmd.Args().Len() != 1 {
		return usageError{"usage: dsbuild inspect FILE.parquet [--rows N]"}
	}
	rows := int(cmd.Int("rows"))
	if rows < 0 {
		return usageError{fmt.Sprintf("inspect: --rows %d must not be negative", rows)}
	}
	path := cmd.Args().First()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return usageError{fmt.Sprintf("inspect: %s does not exist", path)}
	}
	if err == nil && fi.IsDir() {
		return usageError{fmt.Sprintf("inspect: %s is a directory; give a .parquet file", path)}
	}
	return schema.Inspect(path, cmd.Root().Writer, rows)
}
