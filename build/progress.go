package build

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Event types.
const (
	EventStart = "start" // a build begins
	EventNode  = "node"  // a node starts running or finishes
	EventStage = "stage" // a stage completes (or is skipped)
	EventLog   = "log"   // a stage says something
	EventDone  = "done"  // the build ends
)

// Event is one progress event. With --json, each is one line on stdout.
type Event struct {
	Type      string             `json:"type"`
	Recipe    string             `json:"recipe,omitempty"`
	Stages    []string           `json:"stages,omitempty"`
	Stage     string             `json:"stage,omitempty"`
	Item      string             `json:"item,omitempty"`
	Node      string             `json:"node,omitempty"`
	Key       string             `json:"key,omitempty"`
	Status    string             `json:"status,omitempty"`
	Seconds   float64            `json:"seconds,omitempty"`
	Error     string             `json:"error,omitempty"`
	Message   string             `json:"message,omitempty"`
	Counts    map[string]float64 `json:"counts,omitempty"`
	Summary   *StageSummary      `json:"summary,omitempty"`
	Published []string           `json:"published,omitempty"`
}

// Observer receives a build's events. Event may be called from many
// goroutines at once.
type Observer interface{ Event(Event) }

type nopObserver struct{}

func (nopObserver) Event(Event) {}

// JSONObserver writes each event as one JSON line.
type JSONObserver struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSONObserver returns an observer writing JSON lines to w.
func NewJSONObserver(w io.Writer) *JSONObserver { return &JSONObserver{enc: json.NewEncoder(w)} }

// Event implements Observer.
func (o *JSONObserver) Event(e Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.enc.Encode(e)
}

// PlainObserver writes one line per node that runs or fails, one per
// finished stage, and the stages' log lines: for logs and CI.
type PlainObserver struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPlainObserver returns an observer writing plain lines to w.
func NewPlainObserver(w io.Writer) *PlainObserver { return &PlainObserver{w: w} }

// Event implements Observer.
func (o *PlainObserver) Event(e Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch e.Type {
	case EventNode:
		switch e.Status {
		case StateRan:
			fmt.Fprintf(o.w, "ran     %s (%.2fs)\n", e.Node, e.Seconds)
		case StateFailed:
			fmt.Fprintf(o.w, "FAILED  %s: %s\n", e.Node, e.Error)
		}
	case EventStage:
		if e.Summary != nil {
			s := e.Summary
			fmt.Fprintf(o.w, "stage   %s: %d nodes (%d ran, %d cached, %d failed), %d items%s\n",
				e.Stage, s.Nodes, s.Ran, s.Cached, s.Failed, s.Items, countsText(s.Counts))
		} else {
			fmt.Fprintf(o.w, "stage   %s: %s (%s)\n", e.Stage, e.Status, e.Message)
		}
	case EventLog:
		fmt.Fprintf(o.w, "%-7s %s\n", e.Stage, e.Message)
	}
}

func countsText(c map[string]float64) string {
	if len(c) == 0 {
		return ""
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, ", %s %s", k, formatCount(k, c[k]))
	}
	return b.String()
}

func formatCount(name string, v float64) string {
	if strings.Contains(name, "dollars") {
		return fmt.Sprintf("$%.4f", v)
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}

// TTYObserver redraws a live table, one row per stage (done, cached,
// queued, running, failed, ETA, tokens, dollars, state) under a line with the
// elapsed time, on a terminal. Every line of the table is cut to the
// terminal's width, read again at each redraw, so that no line wraps and
// each redraw replaces the last one exactly; log lines are printed above
// the table once and scroll away.
type TTYObserver struct {
	mu     sync.Mutex
	w      io.Writer
	width  func() int
	order  []string
	rows   map[string]*ttyRow
	logs   []string
	start  time.Time
	lines  int
	stop   chan struct{}
	closed sync.WaitGroup
}

type ttyRow struct {
	queued                       int // nodes created (StateQueued events)
	ran, cached, running, failed int
	skipped                      int
	status                       string
	runSeconds                   float64
	tokens, dollars              float64
}

// NewTTYObserver starts redrawing on w ten times a second until Close.
// width returns the terminal's width in columns (0 if unknown: 80 is
// assumed).
func NewTTYObserver(w io.Writer, width func() int) *TTYObserver {
	o := &TTYObserver{w: w, width: width, rows: map[string]*ttyRow{}, start: time.Now(), stop: make(chan struct{})}
	o.closed.Add(1)
	go func() {
		defer o.closed.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				o.mu.Lock()
				o.draw()
				o.mu.Unlock()
			case <-o.stop:
				return
			}
		}
	}()
	return o
}

// Close stops redrawing and leaves the final table on screen.
func (o *TTYObserver) Close() {
	close(o.stop)
	o.closed.Wait()
	o.mu.Lock()
	o.draw()
	o.mu.Unlock()
}

// Event implements Observer.
func (o *TTYObserver) Event(e Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	row := func(id string) *ttyRow {
		r, ok := o.rows[id]
		if !ok {
			r = &ttyRow{}
			o.rows[id] = r
			o.order = append(o.order, id)
		}
		return r
	}
	switch e.Type {
	case EventStart:
		for _, s := range e.Stages {
			row(s)
		}
	case EventNode:
		r := row(e.Stage)
		switch e.Status {
		case StateQueued:
			r.queued++
		case StateRunning:
			r.running++
		case StateRan:
			r.running--
			r.ran++
			r.runSeconds += e.Seconds
		case StateCached:
			r.cached++
		case StateFailed:
			r.running--
			r.failed++
			o.logs = append(o.logs, "FAILED "+e.Node+": "+firstLine(e.Error))
		case StateSkipped:
			r.skipped++
			if r.running > 0 {
				r.running--
			}
		}
		if e.Status == StateRan || e.Status == StateFailed {
			r.tokens += e.Counts["llm.prompt_tokens"] + e.Counts["llm.completion_tokens"]
			r.dollars += e.Counts["llm.dollars"]
		}
	case EventStage:
		r := row(e.Stage)
		r.status = e.Status
		if e.Message != "" {
			r.status += ": " + e.Message
		}
	case EventLog:
		o.logs = append(o.logs, e.Stage+": "+e.Message)
	}
}

// waiting counts the stage's nodes created and neither running nor
// finished: waiting for a pool slot or, on an executor, in its queue (a
// Slurm job pending).
func (r *ttyRow) waiting() int {
	return max(0, r.queued-r.ran-r.cached-r.failed-r.skipped-r.running)
}

// eta estimates the time left for the nodes of the stage known so far: the
// mean run time of its finished nodes, times the nodes left, spread over the
// nodes running at once.
func (r *ttyRow) eta() string {
	left := r.queued - r.ran - r.cached - r.failed
	if left <= 0 || r.status != "" {
		return "-"
	}
	if r.ran == 0 {
		return "?"
	}
	mean := r.runSeconds / float64(r.ran)
	d := time.Duration(mean * float64(left) / float64(max(1, r.running)) * float64(time.Second))
	return d.Round(time.Second).String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// ttyMinWidth is the narrowest table drawn in full; narrower terminals
// get each line cut.
const ttyMinWidth = 80

func (o *TTYObserver) draw() {
	width := o.width()
	if width <= 0 {
		width = ttyMinWidth
	}
	// A line exactly as wide as the terminal leaves some terminals' cursor
	// in the last column and others' on the next line; one column less is
	// the same everywhere.
	fit := func(line string) string { return truncate(line, width-1) + "\n" }
	var b strings.Builder
	if o.lines > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA\x1b[J", o.lines)
	}
	for _, l := range o.logs {
		b.WriteString(l + "\n")
	}
	o.logs = o.logs[:0]
	b.WriteString(fit(fmt.Sprintf("elapsed %s", time.Since(o.start).Round(time.Second))))
	b.WriteString(fit(fmt.Sprintf("%-16s %6s %6s %5s %4s %4s %6s %8s %7s  %s", "STAGE", "DONE", "CACHED", "QUEUE", "RUN", "FAIL", "ETA", "TOKENS", "COST", "STATE")))
	lines := 2
	for _, id := range o.order {
		r := o.rows[id]
		state := ""
		switch {
		case r.status != "":
			state = r.status
		case r.running > 0:
			state = "running"
		default:
			state = "waiting"
		}
		b.WriteString(fit(fmt.Sprintf("%-16s %6d %6d %5d %4d %4d %6s %8s %7s  %s", truncate(id, 16), r.ran, r.cached, r.waiting(), r.running, r.failed,
			r.eta(), shortCount(r.tokens), fmt.Sprintf("$%.2f", r.dollars), state)))
		lines++
	}
	o.lines = lines
	io.WriteString(o.w, b.String())
}

// shortCount writes n in at most 8 characters: 1234567 is "1.23M".
func shortCount(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", n/1e6)
	}
	return fmt.Sprintf("%.0f", n)
}

// truncate cuts s to at most n characters (runes), marking a cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// MultiObserver fans events out to several observers.
type MultiObserver []Observer

// Event implements Observer.
func (m MultiObserver) Event(e Event) {
	for _, o := range m {
		o.Event(e)
	}
}
