package build

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"golang.org/x/sys/unix"
)

// Record is what a build leaves in the store: every node with its key
// inputs, result and timing, and a summary per stage. `dsbuild explain`
// compares against it, gc keeps what it reaches, and the output manifest is
// made from it.
type Record struct {
	Recipe       string         `json:"recipe"`
	RecipePath   string         `json:"recipe_path"`
	RecipeDigest cache.Digest   `json:"recipe_digest"`
	Started      time.Time      `json:"started"`
	Seconds      float64        `json:"seconds"`
	Status       string         `json:"status"` // ok, failed, interrupted
	Stages       []StageSummary `json:"stages"`
	Nodes        []NodeRecord   `json:"nodes"`
	Published    []string       `json:"published,omitempty"`
	// Rechecked counts the cache hits that ran again for --recheck and
	// gave their memoised output.
	Rechecked int `json:"rechecked,omitempty"`
	memo      []cache.Key
}

// NodeRecord is one node of a build.
type NodeRecord struct {
	ID      string       `json:"id"`
	Stage   string       `json:"stage"`
	Item    string       `json:"item,omitempty"`
	Key     cache.Key    `json:"key"`
	Inputs  KeyInputs    `json:"inputs"`
	Result  cache.Digest `json:"result,omitzero"`
	State   string       `json:"state"`
	Seconds float64      `json:"seconds"`
	// Began is when the node started running in this build (zero for a
	// cache hit or a node that never ran): the build report's timeline.
	Began time.Time `json:"began,omitzero"`
	Error string    `json:"error,omitempty"`
}

// StageSummary totals one stage of a build.
type StageSummary struct {
	Stage   string `json:"stage"`
	Kind    string `json:"kind"`
	Nodes   int    `json:"nodes"`
	Ran     int    `json:"ran"`
	Cached  int    `json:"cached"`
	Failed  int    `json:"failed"`
	Skipped int    `json:"skipped"`
	Items   int    `json:"items"`
	// Counts sums the counters of every node (cached ones included): what
	// the stage's output holds, e.g. kept and rejected items.
	Counts map[string]float64 `json:"counts,omitempty"`
	// Spent sums the counters of nodes that ran in this build: what this
	// build cost, e.g. model tokens and dollars.
	Spent map[string]float64 `json:"spent,omitempty"`
	// Seconds is the summed run time of nodes that ran: more than the
	// stage took when nodes ran side by side.
	Seconds float64 `json:"seconds"`
	// WallSeconds is the wall-clock time the stage's running took: from
	// the first of its nodes that ran starting to the last one ending.
	WallSeconds float64 `json:"wall_seconds"`
	SkipReason  string  `json:"skip_reason,omitempty"`
}

func (e *engine) record(start time.Time) *Record {
	rec := &Record{
		Recipe: e.sess.Recipe.Name, RecipePath: e.sess.Recipe.Path, RecipeDigest: e.sess.Recipe.Digest,
		Started: start.UTC(), Seconds: time.Since(start).Seconds(), Status: "ok",
	}
	for _, sr := range e.stages {
		sum := e.summary(sr)
		rec.Stages = append(rec.Stages, sum)
		if sum.Failed > 0 || sr.failed || sr.skipped != "" {
			rec.Status = "failed"
		}
		for _, n := range sr.nodes {
			nr := NodeRecord{ID: n.id, Stage: sr.st.ID, Item: nodeItemName(n), Key: n.key, Inputs: n.inputs,
				Result: n.resultD, State: n.state, Seconds: n.duration.Seconds()}
			if !n.began.IsZero() {
				nr.Began = n.began.UTC()
			}
			if n.err != nil {
				nr.Error = n.err.Error()
			}
			rec.Nodes = append(rec.Nodes, nr)
			if n.rechecked {
				rec.Rechecked++
			}
			switch {
			case n.state == StateCached || n.state == StateRan:
				rec.memo = append(rec.memo, n.key)
				rec.memo = append(rec.memo, n.result.Memo...)
			case n.result != nil: // failed or stopped: keep what it finished
				rec.memo = append(rec.memo, n.result.Memo...)
			}
		}
	}
	if e.stopped() && e.firstErr == nil {
		rec.Status = "interrupted"
	}
	return rec
}

func (e *engine) summary(sr *stageRun) StageSummary {
	s := StageSummary{Stage: sr.st.ID, Kind: sr.st.Kind.Name, Nodes: len(sr.nodes), Items: len(sr.items), SkipReason: sr.skipped}
	var first, last time.Time
	for _, n := range sr.nodes {
		if (n.state == StateRan || n.state == StateFailed) && !n.began.IsZero() {
			if first.IsZero() || n.began.Before(first) {
				first = n.began
			}
			if end := n.began.Add(n.duration); end.After(last) {
				last = end
			}
		}
		switch n.state {
		case StateRan:
			s.Ran++
			s.Seconds += n.duration.Seconds()
		case StateCached:
			s.Cached++
		case StateFailed:
			s.Failed++
		case StateSkipped:
			s.Skipped++
		}
		if n.result == nil {
			continue
		}
		for k, v := range n.result.Counts {
			if s.Counts == nil {
				s.Counts = map[string]float64{}
			}
			s.Counts[k] += v
			if n.state == StateRan || n.state == StateFailed {
				if s.Spent == nil {
					s.Spent = map[string]float64{}
				}
				s.Spent[k] += v
			}
		}
	}
	if !first.IsZero() {
		s.WallSeconds = last.Sub(first).Seconds()
	}
	return s
}

func (e *engine) stageEvent(sr *stageRun) Event {
	s := e.summary(sr)
	status := "ok"
	if sr.failed {
		status = StateFailed
	}
	return Event{Type: EventStage, Stage: sr.st.ID, Status: status, Counts: s.Counts, Summary: &s}
}

func (r *Record) keepKeys() []cache.Key {
	sort.Slice(r.memo, func(i, j int) bool { return string(r.memo[i][:]) < string(r.memo[j][:]) })
	out := r.memo[:0:0]
	for i, k := range r.memo {
		if i == 0 || k != r.memo[i-1] {
			out = append(out, k)
		}
	}
	return out
}

// syncFS flushes the file system holding dir (one syncfs(2), not an fsync
// per file).
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
