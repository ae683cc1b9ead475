// Command dsbuild builds training datasets for coding agents from recipes:
// a DAG of hashed stages whose every output, model call and sandbox run is
// cached by content.
//
// This package owns flags, console output and exit codes only; the work is
// done by the build engine and the stage kinds.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/sandbox"
	_ "github.com/dsbuild/dsbuild/stages"
	"github.com/urfave/cli/v3"
	"golang.org/x/term"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1   // a build ran and something failed
	exitBadInput    = 2   // bad recipe, flag or argument; nothing was built
	exitInterrupted = 130 // Ctrl-C
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first Ctrl-C stops the build cleanly; a second one kills it.
		<-ctx.Done()
		stop()
	}()
	err := cliError(newApp(os.Stdout, os.Stderr).Run(ctx, os.Args))
	stop()
	os.Exit(report(os.Stderr, err))
}

// versionStamp is set by `make build` (-ldflags -X) to `git describe
// --always --dirty` of the checkout.
var versionStamp string

// version says which dsbuild this is: the module version when installed
// with `go install module@version`, else the commit it was built from
// (with "+dirty" for uncommitted changes), and the Go release.
func version() string {
	v := "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if versionStamp != "" {
		// make build stamps `git describe`: the build may have no VCS
		// information (GOFLAGS=-buildvcs=false, or a copy without .git).
		return versionStamp + " " + bi.GoVersion
	}
	if bi.Main.Version != "" {
		v = bi.Main.Version
	}
	var rev, dirty, at string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		case "vcs.time":
			at = " " + s.Value
		}
	}
	if rev != "" && (v == "(devel)" || strings.Contains(v, "-0.")) {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " commit " + rev + dirty + at
	}
	return v + " " + bi.GoVersion
}

// usageError marks a mistake in how dsbuild was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func report(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, context.Canceled) && !errors.Is(err, build.ErrInterrupted) {
		fmt.Fprintln(w, "dsbuild: interrupted")
		return exitInterrupted
	}
	fmt.Fprintf(w, "dsbuild: %v\n", err)
	var ue usageError
	switch {
	case errors.Is(err, build.ErrInterrupted), errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue), build.IsBadInput(err):
		return exitBadInput
	}
	return exitFailed
}

var helpTopicRE = regexp.MustCompile(`^No help topic for '(.*)'`)

// cliError rewrites an error of the command-line library (which would
// have it exit with its own status, 3) as a usage error in dsbuild's words.
func cliError(err error) error {
	var ec cli.ExitCoder
	if !errors.As(err, &ec) {
		return err
	}
	if m := helpTopicRE.FindStringSubmatch(err.Error()); m != nil {
		topic := m[1]
		if k, ok := build.LookupKind(topic); ok {
			return usageError{fmt.Sprintf("no help topic %q: %s is a stage kind (%s); `dsbuild kinds` lists them, `dsbuild help` lists the commands", topic, topic, k.Doc)}
		}
		return usageError{fmt.Sprintf("no help topic %q: `dsbuild help` lists the commands", topic)}
	}
	return usageError{err.Error()}
}

// extraCommands are subcommands defined in other files of this package
// (push, inspect, ...), added by their init functions. A command writes to
// cmd.Root().Writer and opens the store with openStore(cmd).
var extraCommands []*cli.Command

func defaultCacheDir() string {
	if d := os.Getenv("DSBUILD_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "dsbuild")
	}
	return ".dsbuild-cache"
}

func newApp(stdout, stderr io.Writer) *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "cache", Usage: "store directory (default $DSBUILD_CACHE, else the user cache dir)"},
		remoteFlag,
		&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: runtime.NumCPU(), Usage: "nodes run at once in the cpu and sandbox pools (at least 1)",
			Validator: func(n int) error {
				if n < 1 {
					return usageError{fmt.Sprintf("-j/--jobs: want at least 1, got %d", n)}
				}
				return nil
			}},
		&cli.BoolFlag{Name: "keep-going", Aliases: []string{"k"}, Usage: "build everything that does not depend on a failure"},
		&cli.BoolFlag{Name: "offline", Usage: "no network effects: a cache miss that needs one is an error"},
		&cli.StringFlag{Name: "out", Usage: "output folder (default out/<recipe name>); a folder holding files dsbuild did not write is refused"},
		&cli.BoolFlag{Name: "force", Usage: "publish to --out even if it holds files dsbuild did not write (they are deleted)"},
		&cli.BoolFlag{Name: "json", Usage: "print progress as JSON events, one per line"},
		&cli.GenericFlag{Name: "recheck", Value: &fraction{}, Usage: "run again this `FRACTION` of cache hits (nodes and sandbox runs; --recheck alone: all) and fail on any that gives another result"},
	}
	flags = append(flags, executorFlags...)
	buildCmd := func(ctx context.Context, cmd *cli.Command) error {
		if cmd.Args().Len() != 1 {
			return usageError{"usage: dsbuild [build] RECIPE.yaml"}
		}
		return runBuild(ctx, cmd, stdout, stderr, cmd.Args().First())
	}
	app := &cli.Command{
		Name:      "dsbuild",
		Usage:     "build datasets for coding agents from recipes, every step cached by content",
		ArgsUsage: "RECIPE.yaml",
		Flags:     flags,
		Writer:    stdout,
		ErrWriter: stderr,
		Action:    buildCmd,
		Version:   version(),
		// Errors come back from Run and report picks the exit status; the
		// library must not exit by itself (with its own status 3).
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
		Commands: []*cli.Command{
			{Name: "build", Usage: "build a recipe", ArgsUsage: "RECIPE.yaml", Action: buildCmd},
			{Name: "plan", Usage: "say which nodes are cached and which would run, and why", ArgsUsage: "RECIPE.yaml",
				Action: func(ctx context.Context, cmd *cli.Command) error { return runPlan(cmd, stdout) }},
			{Name: "explain", Usage: "show a node's key inputs and what changed since the last build", ArgsUsage: "RECIPE.yaml NODE",
				Action: func(ctx context.Context, cmd *cli.Command) error { return runExplain(cmd, stdout) }},
			{Name: "version", Usage: "say which dsbuild this is (as --version)",
				Action: func(ctx context.Context, cmd *cli.Command) error {
					fmt.Fprintf(stdout, "dsbuild version %s\n", version())
					return nil
				}},
			{Name: "kinds", Usage: "list the stage kinds recipes can use",
				Action: func(ctx context.Context, cmd *cli.Command) error { return runKinds(stdout) }},
			{Name: "cache", Usage: "look after the store", ArgsUsage: "verify | gc | stats",
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if cmd.Args().Len() > 0 {
						return usageError{fmt.Sprintf("unknown command %q for dsbuild cache (want verify, gc or stats)", cmd.Args().First())}
					}
					return cli.ShowSubcommandHelp(cmd)
				},
				Commands: []*cli.Command{
					{Name: "verify", Usage: "check every blob, memo entry and build record without changing anything (exit 1 if any is bad)",
						Flags:  []cli.Flag{&cli.BoolFlag{Name: "repair", Usage: "also repair: move corrupt blobs to quarantine/ and remove bad memo entries (needs the store to itself)"}},
						Action: func(ctx context.Context, cmd *cli.Command) error { return runVerify(ctx, cmd, stdout) }},
					{Name: "gc", Usage: "remove what no kept build record reaches",
						Flags:  []cli.Flag{&cli.IntFlag{Name: "keep", Value: 1, Usage: "build records to keep per recipe"}},
						Action: func(ctx context.Context, cmd *cli.Command) error { return runGC(cmd, stdout) }},
					{Name: "stats", Usage: "count what the store holds",
						Action: func(ctx context.Context, cmd *cli.Command) error { return runStats(cmd, stdout) }},
				}},
		},
	}
	app.Commands = append(app.Commands, extraCommands...)
	markUsageErrors(app)
	return app
}

// markUsageErrors makes a flag or argument mistake on any command a
// usageError (exit status 2).
func markUsageErrors(cmd *cli.Command) {
	cmd.OnUsageError = func(ctx context.Context, cmd *cli.Command, err error, isSub bool) error {
		return usageError{err.Error()}
	}
	for _, sub := range cmd.Commands {
		markUsageErrors(sub)
	}
}

func cacheDir(cmd *cli.Command) string {
	if d := cmd.String("cache"); d != "" {
		return d
	}
	return defaultCacheDir()
}

func loadRecipe(cmd *cli.Command, path string) (*build.Recipe, error) {
	return build.LoadRecipe(path, nil)
}

func runBuild(ctx context.Context, cmd *cli.Command, stdout, stderr io.Writer, path string) error {
	r, err := loadRecipe(cmd, path)
	if err != nil {
		return err
	}
	// Refuse an output folder before the store is touched.
	out := cmd.String("out")
	if out == "" {
		out = filepath.Join("out", r.Name)
	}
	if !cmd.Bool("force") {
		if err := build.CheckOutDir(out); err != nil {
			return err
		}
	}
	store, err := openStore(cmd)
	if err != nil {
		return err
	}
	defer store.Close()
	var obs build.Observer
	var tty *build.TTYObserver
	switch {
	case cmd.Bool("json"):
		obs = build.NewJSONObserver(stdout)
	case isTerminal(stderr):
		tty = build.NewTTYObserver(stderr, func() int { return terminalWidth(stderr) })
		obs = tty
	default:
		obs = build.NewPlainObserver(stderr)
	}
	executor, closeExecutor, err := newExecutor(cmd, r, store, obs)
	if err != nil {
		return err
	}
	rec, err := build.Build(ctx, r, store, build.Options{
		Jobs: buildJobs(cmd, r), KeepGoing: cmd.Bool("keep-going"), Offline: cmd.Bool("offline"),
		OutDir: out, Force: cmd.Bool("force"), Observer: obs, Recheck: recheckFraction(cmd),
		Executor: executor,
	})
	if cerr := closeExecutor(); cerr != nil && err == nil {
		err = cerr
	}
	if tty != nil {
		tty.Close()
	}
	if rec != nil && !cmd.Bool("json") {
		printSummary(stdout, rec)
	}
	if rec != nil {
		writeBuildReport(cmd, stdout, stderr, store, rec, out)
	}
	return err
}

// fraction is the value of --recheck: a number from 0 to 1, or "true"
// (the flag alone) for 1.
type fraction struct{ v float64 }

func (f *fraction) Set(s string) error {
	if s == "true" {
		f.v = 1
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0 && v <= 1) {
		return fmt.Errorf("want a fraction from 0 to 1, got %q", s)
	}
	f.v = v
	return nil
}

func (f *fraction) String() string   { return strconv.FormatFloat(f.v, 'g', -1, 64) }
func (f *fraction) Get() any         { return f.v }
func (f *fraction) IsBoolFlag() bool { return true }

func recheckFraction(cmd *cli.Command) float64 {
	v, _ := cmd.Value("recheck").(float64)
	return v
}

// terminalWidth is w's width in columns, 0 if w is no terminal.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return cols
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

func printSummary(w io.Writer, rec *build.Record) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	// TIME is the stage's wall-clock time; NODE TIME adds up its nodes' run
	// times, which exceeds TIME when nodes ran side by side.
	fmt.Fprintln(tw, "STAGE\tKIND\tNODES\tRAN\tCACHED\tFAILED\tITEMS\tTIME\tNODE TIME\tDETAILS")
	for _, s := range rec.Stages {
		details := detailText(s)
		if s.SkipReason != "" {
			details = "skipped: " + s.SkipReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.1fs\t%.1fs\t%s\n", s.Stage, s.Kind, s.Nodes, s.Ran, s.Cached, s.Failed, s.Items, s.WallSeconds, s.Seconds, details)
	}
	tw.Flush()
	if rec.Rechecked > 0 {
		fmt.Fprintf(w, "recheck: %d cache hits ran again and matched\n", rec.Rechecked)
	}
	fmt.Fprintf(w, "build %s: %s in %.2fs", rec.Recipe, rec.Status, rec.Seconds)
	for _, p := range rec.Published {
		fmt.Fprintf(w, "; output in %s", p)
	}
	fmt.Fprintln(w)
}

func detailText(s build.StageSummary) string {
	var parts []string
	keys := make([]string, 0, len(s.Counts))
	for k := range s.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := s.Counts[k]
		if strings.HasPrefix(k, "llm.") {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%s", k, trimFloat(v)))
	}
	if s.Counts["llm.calls"] > 0 {
		parts = append(parts, fmt.Sprintf("llm calls=%s (this build %s, cache hits %s) tokens=%s $%.4f",
			trimFloat(s.Counts["llm.calls"]), trimFloat(s.Spent["llm.calls"]), trimFloat(s.Spent["llm.cache_hits"]),
			trimFloat(s.Spent["llm.prompt_tokens"]+s.Spent["llm.completion_tokens"]), s.Spent["llm.dollars"]))
	}
	if n := s.Spent["llm.retries"]; n > 0 {
		var causes []string
		for _, k := range keys {
			if cause, ok := strings.CutPrefix(k, "llm.retries:"); ok && s.Spent[k] > 0 {
				causes = append(causes, fmt.Sprintf("%s: %s", cause, trimFloat(s.Spent[k])))
			}
		}
		parts = append(parts, fmt.Sprintf("llm retries=%s (%s)", trimFloat(n), strings.Join(causes, ", ")))
	}
	return strings.Join(parts, " ")
}

func trimFloat(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}

func runPlan(cmd *cli.Command, stdout io.Writer) error {
	if cmd.Args().Len() != 1 {
		return usageError{"usage: dsbuild plan RECIPE.yaml"}
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
	plan, err := build.Plan(r, store)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, e := range plan {
		counts[e.Status]++
		line := fmt.Sprintf("%-9s %s", e.Status, e.Node)
		if len(e.Reasons) > 0 {
			line += ": " + strings.Join(e.Reasons, "; ")
		}
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "%d cached, %d will run, %d waiting on others\n", counts[build.PlanCached], counts[build.PlanWillRun], counts[build.PlanWaits])
	return nil
}

func runExplain(cmd *cli.Command, stdout io.Writer) error {
	if cmd.Args().Len() != 2 {
		return usageError{"usage: dsbuild explain RECIPE.yaml NODE (a node id like stage[item], or a stage id)"}
	}
	r, err := loadRecipe(cmd, cmd.Args().Get(0))
	if err != nil {
		return err
	}
	store, err := openStore(cmd)
	if err != nil {
		return err
	}
	defer store.Close()
	return build.Explain(stdout, r, store, cmd.Args().Get(1))
}

func runKinds(stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVERSION\tPOOL\tDESCRIPTION")
	for _, k := range build.Kinds() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Name, k.Version, k.Pool, k.Doc)
	}
	return tw.Flush()
}

func runVerify(ctx context.Context, cmd *cli.Command, stdout io.Writer) error {
	if cmd.Args().Len() != 0 {
		return usageError{"usage: dsbuild cache verify [--repair]"}
	}
	repair := cmd.Bool("repair")
	var store *cache.Store
	var err error
	if repair {
		// Repairs move and remove files: no build may be using the store.
		if store, err = openStoreExclusive(cmd); err != nil {
			return fmt.Errorf("cache verify --repair needs the store to itself (a build or another command has it open; run verify without --repair to check it meanwhile): %w", err)
		}
	} else if store, err = openStore(cmd); err != nil {
		return err
	}
	defer store.Close()
	var rep *cache.VerifyReport
	if repair {
		rep, err = store.Repair(ctx, runtime.NumCPU())
	} else {
		rep, err = store.Verify(ctx, runtime.NumCPU())
	}
	if err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, p)
	}
	fmt.Fprintf(stdout, "checked %d blobs, %d memo entries, %d build records: %d problems\n", rep.Blobs, rep.MemoEntries, rep.Records, len(rep.Problems))
	problems := len(rep.Problems) + printRemoteVerify(stdout, rep.Remote, store.Remote())
	if repair {
		fmt.Fprintf(stdout, "repaired: moved %d blobs to quarantine/, removed %d memo entries; %d problems left\n", rep.Quarantined, rep.MemoRemoved, rep.Unrepaired())
		if n := rep.Unrepaired(); n > 0 {
			return fmt.Errorf("store %s has %d problems that --repair leaves alone (see above)", store.Root(), n)
		}
		return nil
	}
	if problems > 0 {
		return fmt.Errorf("store %s has %d problems; nothing was changed (dsbuild cache verify --repair moves corrupt blobs aside and drops the memo entries that reach them, so the next build redoes that work)", store.Root(), problems)
	}
	return nil
}

func runGC(cmd *cli.Command, stdout io.Writer) error {
	store, err := openStoreExclusive(cmd)
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := store.GC(int(cmd.Int("keep")))
	if err != nil {
		return err
	}
	roots, err := sandbox.Prune(store, sandbox.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %d build records, %d memo entries, %d blobs (%s), %d unpacked images\n",
		rep.RecordsRemoved, rep.MemoRemoved, rep.BlobsRemoved, humanBytes(rep.BytesFreed), roots)
	printRemoteGC(stdout, rep.Remote, store.Remote())
	return nil
}

func runStats(cmd *cli.Command, stdout io.Writer) error {
	store, err := openStore(cmd)
	if err != nil {
		return err
	}
	defer store.Close()
	st, err := store.Stats()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "store       %s\nblobs       %d (%s on disk)\nmemo        %d entries\nrecords     %d\nquarantine  %d blobs\n",
		st.Root, st.Blobs, humanBytes(st.BlobBytes), st.MemoEntries, st.Records, st.QuarantinedBlobs)
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
