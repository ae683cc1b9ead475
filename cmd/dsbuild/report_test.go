package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/parquet-go/parquet-go"
)

// reportRecipe is the quickstart on two of its projects, from the test
// Debian layout: bug and stub tasks, oracle rollouts, an export with a
// test split.
const reportRecipe = `name: reporttest
environments:
  python: {layout: %q}
sandbox: {timeout: 120s}
stages:
  repos:
    uses: repo
    with: {paths: [%q, %q], allow_outside: true}
  checked: {uses: validate, foreach: repos, with: {runs: 1}}
  bugs:
    uses: inject_bugs
    foreach: checked
    with: {per_repo: 3, candidates: 10, combine: 1, seed: 3, test_timeout: 10s}
  stubs:
    uses: stub_tasks
    foreach: checked
    with: {group: module, test_timeout: 10s}
  fix_demos: {uses: rollout, foreach: bugs, with: {policy: oracle}}
  implement_demos: {uses: rollout, foreach: stubs, with: {policy: oracle}}
  dataset:
    uses: export
    from: [bugs, stubs, fix_demos, implement_demos]
    with: {name: report test, test_fraction: 0.4}
`

// reportFixture is the quickstart-like build shared by the report tests.
type reportFixture struct {
	dir, cache, out, page string
	rec                   *build.Record
}

var (
	reportOnce sync.Once
	reportFix  *reportFixture
	reportErr  string
)

func buildReportFixture(t *testing.T) *reportFixture {
	t.Helper()
	reportOnce.Do(func() {
		base := evalBaseLayout(t)
		dir := filepath.Join(filepath.Dir(binary), "report")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			reportErr = err.Error()
			return
		}
		os.Chmod(filepath.Dir(binary), 0o755)
		var projects []string
		for _, p := range []string{"mathx", "textkit"} {
			abs, err := filepath.Abs("../../recipes/quickstart/projects/" + p)
			if err != nil {
				reportErr = err.Error()
				return
			}
			projects = append(projects, abs)
		}
		if err := os.WriteFile(filepath.Join(dir, "recipe.yaml"), []byte(fmt.Sprintf(reportRecipe, base, projects[0], projects[1])), 0o644); err != nil {
			reportErr = err.Error()
			return
		}
		fx := &reportFixture{dir: dir, cache: filepath.Join(dir, "cache"), out: filepath.Join(dir, "out"), page: filepath.Join(dir, "out.report.html")}
		r := dsbuild(t, dir, "--cache", fx.cache, "--out", "out", "recipe.yaml")
		if r.code != 0 {
			reportErr = fmt.Sprintf("build: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			return
		}
		if !strings.Contains(r.stdout, "report: "+fx.page+"\n") {
			reportErr = fmt.Sprintf("the build does not name its report %s:\n%s", fx.page, r.stdout)
			return
		}
		store, err := cache.Open(fx.cache)
		if err != nil {
			reportErr = err.Error()
			return
		}
		defer store.Close()
		body, ok, err := store.LatestRecord("reporttest")
		if err != nil || !ok {
			reportErr = fmt.Sprintf("no build record: %v", err)
			return
		}
		fx.rec = &build.Record{}
		if err := json.Unmarshal(body, fx.rec); err != nil {
			reportErr = err.Error()
			return
		}
		reportFix = fx
	})
	if reportFix == nil {
		t.Fatalf("report build: %s", reportErr)
	}
	return reportFix
}

// artifactDir is where tests leave files for a person to look at:
// $DSBUILD_TEST_ARTIFACTS, else testdata/artifacts (ignored by git).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DSBUILD_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium runs headless Chromium (Debian's chromium) with args and a
// profile of its own, returning stdout and stderr.
func chromium(t *testing.T, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr", "--v=0",
		"--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, "chromium", all...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, se.String())
	}
	return so.String(), se.String()
}

// The report of a quickstart-like build renders in a real browser: the
// page loads without console errors or failed loads, the DOM has the
// funnel and the plots, and a screenshot is kept as a test artifact.
func TestReportRendersInChromium(t *testing.T) {
	fx := buildReportFixture(t)
	page, err := os.ReadFile(fx.page)
	if err != nil {
		t.Fatal(err)
	}
	// Self-contained: nothing is loaded from elsewhere.
	if m := regexp.MustCompile(`(?i)<(script|link|img|iframe)\b|\b(src|href)=`).Find(page); m != nil {
		t.Errorf("the page refers to something outside it: %s", m)
	}

	// `dsbuild report` makes the same page from the stored record.
	again := filepath.Join(t.TempDir(), "again.html")
	if r := dsbuild(t, fx.dir, "--cache", fx.cache, "report", "recipe.yaml", "-o", again); r.code != 0 || !strings.Contains(r.stdout, again) {
		t.Fatalf("dsbuild report: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if b, err := os.ReadFile(again); err != nil || !bytes.Equal(b, page) {
		t.Errorf("dsbuild report gives another page than the build wrote (%v)", err)
	}

	url := "file://" + fx.page
	dom, logs := chromium(t, "--dump-dom", url)
	for _, bad := range []string{"CONSOLE", "Failed to load resource", "Uncaught"} {
		if strings.Contains(logs, bad) {
			t.Errorf("chromium logged %q loading the page:\n%s", bad, logs)
		}
	}
	if !strings.Contains(dom, "<title>dsbuild report: reporttest</title>") {
		t.Fatalf("chromium's DOM is not the report:\n%.2000s", dom)
	}
	if !strings.Contains(dom, `id="funnel-table"`) || !strings.Contains(dom, `data-plot="funnel"`) {
		t.Errorf("no funnel in the DOM")
	}
	plots := regexp.MustCompile(`<svg class="plot" data-plot="([^"]+)"`).FindAllStringSubmatch(dom, -1)
	names := map[string]bool{}
	for _, m := range plots {
		names[m[1]] = true
	}
	for _, want := range []string{"funnel", "timeline", "dataset/task_types", "dataset/difficulty", "dataset/projects",
		"dataset/fail_to_pass", "dataset/pass_to_pass", "dataset/messages", "dataset/tool_calls", "dataset/tokens", "dataset/resolved"} {
		if !names[want] {
			t.Errorf("plot %s missing from the DOM (plots: %v)", want, names)
		}
	}
	if len(plots) < 3 {
		t.Errorf("%d plots in the DOM, want at least 3", len(plots))
	}

	shot := filepath.Join(artifactDir(t), "report-quickstart.png")
	os.Remove(shot)
	chromium(t, "--screenshot="+shot, "--window-size=1280,2400", "--hide-scrollbars", url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	// Non-trivial: many colours (bars of the palette, text), not a blank
	// or error page.
	colours := map[uint32]bool{}
	bnd := img.Bounds()
	for y := bnd.Min.Y; y < bnd.Max.Y; y += 3 {
		for x := bnd.Min.X; x < bnd.Max.X; x += 3 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|b>>8] = true
		}
	}
	if bnd.Dx() != 1280 || len(colours) < 50 {
		t.Errorf("screenshot %s is %dx%d with %d colours: not the report", shot, bnd.Dx(), bnd.Dy(), len(colours))
	}
	t.Logf("screenshot of the report: %s", shot)
}

// pageNumbers returns the numbers the page labels with data-k, by label.
func pageNumbers(t *testing.T, page []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`data-k="([^"]+)"[^>]*>([^<]*)<`).FindAllSubmatch(page, -1) {
		out[string(m[1])] = string(m[2])
	}
	return out
}

// The numbers in the report are those of the build record and of the
// exported files.
func TestReportNumbersMatchRecordAndExport(t *testing.T) {
	fx := buildReportFixture(t)
	page, err := os.ReadFile(fx.page)
	if err != nil {
		t.Fatal(err)
	}
	got := pageNumbers(t, page)
	check := func(key string, want any) {
		t.Helper()
		if w := fmt.Sprint(want); got[key] != w {
			t.Errorf("report %s = %q, want %q", key, got[key], w)
		}
	}
	rec := fx.rec
	check("build/status", rec.Status)
	check("build/stages", len(rec.Stages))
	timed := 0
	for _, s := range rec.Stages {
		k := "stage/" + s.Stage + "/"
		check(k+"nodes", s.Nodes)
		check(k+"ran", s.Ran)
		check(k+"cached", s.Cached)
		check(k+"failed", s.Failed)
		check(k+"skipped", s.Skipped)
		check(k+"items_out", s.Items)
		for name, v := range s.Counts {
			switch {
			case name == "in" || name == "kept":
				check(k+name, v)
			case strings.HasPrefix(name, "rejected:"):
				check(k+"rejected/"+strings.TrimPrefix(name, "rejected:"), v)
			}
		}
		timed += s.Ran + s.Failed
	}
	if got["stage/bugs/kept"] == "" || !strings.Contains(string(page), `data-k="stage/bugs/rejected/`) {
		t.Errorf("the bugs stage shows no kept count or no rejection: %v", got)
	}
	// One bar on the timeline per node that ran, from the record's start times.
	if n := strings.Count(string(page), `<rect class="node"`); n != timed || timed == 0 {
		t.Errorf("timeline has %d node bars, the record %d nodes that ran", n, timed)
	}

	// The exported files, read here on their own.
	var manifest schema.DatasetManifest
	body, err := os.ReadFile(filepath.Join(fx.out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &manifest); err != nil {
		t.Fatal(err)
	}
	jsonl, err := os.ReadFile(filepath.Join(fx.out, "tasks", "instances.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	tasks := strings.Count(string(jsonl), "\n")
	if tasks == 0 || int64(tasks) != manifest.Tasks {
		t.Fatalf("instances.jsonl has %d lines, manifest %d tasks", tasks, manifest.Tasks)
	}
	check("dataset/dataset/tasks", tasks)
	check("dataset/dataset/trajectories", manifest.Trajectories)
	check("dataset/dataset/resolved", manifest.Resolved)
	for split, n := range manifest.TasksPerSplit {
		check("dataset/dataset/split/"+split+"/tasks", n)
	}
	for split, n := range manifest.TrajectoriesPerSplit {
		check("dataset/dataset/split/"+split+"/trajectories", n)
	}
	if len(manifest.TasksPerSplit) != 2 {
		t.Errorf("want a train and a test split, manifest has %v", manifest.TasksPerSplit)
	}
	shards, _ := filepath.Glob(filepath.Join(fx.out, "data", "*.parquet"))
	var messages, toolCalls int
	for _, p := range shards {
		rows, err := parquet.ReadFile[schema.TrajectoryRow](p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			messages += len(r.Messages)
			for _, m := range r.Messages {
				var msg map[string]any
				if err := json.Unmarshal([]byte(m), &msg); err != nil {
					t.Fatal(err)
				}
				if calls, ok := msg["tool_calls"].([]any); ok {
					toolCalls += len(calls)
				}
			}
		}
	}
	if toolCalls == 0 {
		t.Fatalf("the oracle trajectories call no tools")
	}
	check("dataset/dataset/messages", messages)
	check("dataset/dataset/tool_calls", toolCalls)
	// The task type bars are the counts of instances.jsonl per type.
	perType := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(jsonl)), "\n") {
		inst, err := schema.ParseSWEBenchJSON([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		perType[string(inst.TaskType)]++
	}
	for typ, n := range perType {
		if want := fmt.Sprintf("<title>%s: %s</title>", typ, strconv.Itoa(n)); !strings.Contains(string(page), want) {
			t.Errorf("task type bar %q missing", want)
		}
	}
}
