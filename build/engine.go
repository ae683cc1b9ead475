package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/cache"
)

// Options control one build.
type Options struct {
	// Jobs bounds the "cpu" and "sandbox" pools (default: number of CPUs).
	Jobs int
	// KeepGoing builds everything that does not depend on a failure instead
	// of stopping at the first one.
	KeepGoing bool
	// Offline forbids network effects; a cache miss that needs one fails.
	Offline bool
	// OutDir receives published outputs (default out/<recipe name>).
	OutDir string
	// Observer receives progress events (may be nil).
	Observer Observer
}

// Node states.
const (
	StateCached  = "cached"
	StateRan     = "ran"
	StateFailed  = "failed"
	StateSkipped = "skipped"
	StateRunning = "running"
	StateQueued  = "queued"
)

// KeyInputs is everything a node's key is made of.
type KeyInputs struct {
	Kind    string               `json:"kind"`
	Version string               `json:"version"`
	Params  json.RawMessage      `json:"params"`
	Item    *Item                `json:"item,omitempty"`
	Inputs  map[string]cache.Key `json:"inputs,omitempty"`
	// Sections holds the digest of each recipe section the kind reads.
	Sections map[string]cache.Key `json:"sections,omitempty"`
}

// nodeResult is the memoised value of a node key.
type nodeResult struct {
	Output Output             `json:"output"`
	Memo   []cache.Key        `json:"memo,omitempty"`
	Counts map[string]float64 `json:"counts,omitempty"`
}

type node struct {
	id     string
	stage  *stageRun
	item   *Item
	path   []int
	key    cache.Key
	inputs KeyInputs
	from   map[string][]Item

	state    string
	resultD  cache.Digest
	result   *nodeResult
	err      error
	duration time.Duration
}

type pathItem struct {
	path []int
	item Item
}

type stageRun struct {
	st       *Stage
	nodes    []*node
	items    []pathItem
	consumed int // foreach: upstream items turned into nodes
	open     int // nodes created and not finished
	failed   bool
	complete bool
	skipped  string // reason, when a dependency failed
}

type engine struct {
	sess     *Session
	opts     Options
	stages   []*stageRun
	byID     map[string]*stageRun
	pools    map[string]chan struct{}
	ioSlots  chan struct{}
	done     chan *node
	running  int
	ctx      context.Context
	cancel   context.CancelFunc
	firstErr error
	obs      Observer
}

// Build runs the recipe against store and returns the build's record. The
// error is non-nil if any node failed (a *BuildError), the build was
// interrupted, or the record could not be written.
func Build(ctx context.Context, r *Recipe, store *cache.Store, opts Options) (*Record, error) {
	if opts.Jobs < 1 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.OutDir == "" {
		opts.OutDir = "out/" + r.Name
	}
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := &engine{
		sess:    &Session{Recipe: r, Store: store, Offline: opts.Offline, OutDir: opts.OutDir, observer: obs},
		opts:    opts,
		byID:    map[string]*stageRun{},
		pools:   map[string]chan struct{}{},
		ioSlots: make(chan struct{}, 32),
		done:    make(chan *node, 64),
		ctx:     ctx,
		cancel:  cancel,
		obs:     obs,
	}
	limits := map[string]int{"cpu": opts.Jobs, "sandbox": opts.Jobs, "llm": 64}
	for name, n := range r.Pools {
		limits[name] = n
	}
	for _, st := range r.Stages {
		sr := &stageRun{st: st}
		e.stages = append(e.stages, sr)
		e.byID[st.ID] = sr
		if _, ok := limits[st.Kind.Pool]; !ok {
			limits[st.Kind.Pool] = opts.Jobs
		}
	}
	for name, n := range limits {
		e.pools[name] = make(chan struct{}, n)
	}
	// The record names the recipe by digest; keep its text with it.
	if _, err := store.Put(r.text); err != nil {
		return nil, err
	}
	start := time.Now()
	obs.Event(Event{Type: EventStart, Recipe: r.Name, Stages: stageIDs(r)})

	e.advance()
	for e.running > 0 {
		n := <-e.done
		e.running--
		e.finish(n)
		e.advance()
	}

	rec := e.record(start)
	published, perr := e.publish()
	rec.Published = published
	keep := rec.keepKeys()
	body, err := json.Marshal(rec)
	if err == nil {
		err = store.PutRecord(r.Name, body, keep, rec.Status == "ok")
	}
	obs.Event(Event{Type: EventDone, Recipe: r.Name, Seconds: rec.Seconds, Status: rec.Status, Published: published})
	switch {
	case parent.Err() != nil:
		return rec, ErrInterrupted
	case e.firstErr != nil:
		return rec, e.firstErr
	case perr != nil:
		return rec, perr
	case err != nil:
		return rec, fmt.Errorf("writing build record: %w", err)
	}
	return rec, nil
}

// ErrInterrupted is returned when the build's context was cancelled.
var ErrInterrupted = errors.New("build interrupted; run again to resume where it stopped")

func stageIDs(r *Recipe) []string {
	var ids []string
	for _, s := range r.Stages {
		ids = append(ids, s.ID)
	}
	return ids
}

// BuildError reports a node that failed.
type BuildError struct {
	Stage, Item string
	Key         cache.Key
	Err         error
}

func (e *BuildError) Error() string {
	where := "stage " + e.Stage
	if e.Item != "" {
		where += " item " + e.Item
	}
	return fmt.Sprintf("%s (key %s): %v", where, e.Key.Short(), e.Err)
}

func (e *BuildError) Unwrap() error { return e.Err }

// advance creates every node whose inputs are ready and marks stages
// complete. It runs on the engine's goroutine only.
func (e *engine) advance() {
	for changed := true; changed; {
		changed = false
		for _, sr := range e.stages {
			if sr.complete {
				continue
			}
			if e.progressStage(sr) {
				changed = true
			}
		}
	}
}

func (e *engine) stopped() bool { return e.ctx.Err() != nil }

// progressStage creates nodes for sr and completes it when it can. It
// reports whether anything changed.
func (e *engine) progressStage(sr *stageRun) bool {
	st := sr.st
	from := map[string][]Item{}
	for _, dep := range st.From {
		d := e.byID[dep]
		if !d.complete {
			return false
		}
		if d.failed || d.skipped != "" {
			return e.skipStage(sr, fmt.Sprintf("input stage %s failed", dep))
		}
		from[dep] = itemsOf(d)
	}
	if e.stopped() {
		if sr.open == 0 {
			if len(sr.nodes) == 0 {
				return e.skipStage(sr, "build stopped")
			}
			sr.complete = true
			sr.failed = true
			return true
		}
		return false
	}
	changed := false
	if st.Foreach == "" {
		if len(sr.nodes) == 0 {
			e.startNode(sr, nil, nil, from)
			return true
		}
	} else {
		up := e.byID[st.Foreach]
		if up.skipped != "" && sr.open == 0 && len(sr.nodes) == 0 {
			return e.skipStage(sr, fmt.Sprintf("foreach stage %s was skipped", st.Foreach))
		}
		for sr.consumed < len(up.items) {
			pi := up.items[sr.consumed]
			sr.consumed++
			it := pi.item
			e.startNode(sr, &it, pi.path, from)
			changed = true
		}
		if !up.complete {
			return changed
		}
		if up.failed {
			sr.failed = true
		}
	}
	if sr.open == 0 {
		sr.complete = true
		e.obs.Event(e.stageEvent(sr))
		return true
	}
	return changed
}

func (e *engine) skipStage(sr *stageRun, why string) bool {
	sr.complete = true
	sr.skipped = why
	e.obs.Event(Event{Type: EventStage, Stage: sr.st.ID, Status: StateSkipped, Message: why})
	return true
}

// itemsOf returns a complete stage's items in their deterministic order
// (by position in the fan-out, not by completion time). sr.items itself
// stays in arrival order: foreach consumers index into it.
func itemsOf(sr *stageRun) []Item {
	sorted := sortedItems(sr.items)
	out := make([]Item, len(sorted))
	for i, pi := range sorted {
		out[i] = pi.item
	}
	return out
}

func sortedItems(items []pathItem) []pathItem {
	sorted := slices.Clone(items)
	sort.SliceStable(sorted, func(i, j int) bool { return slices.Compare(sorted[i].path, sorted[j].path) < 0 })
	return sorted
}

func (e *engine) startNode(sr *stageRun, item *Item, path []int, from map[string][]Item) {
	n := &node{stage: sr, item: item, path: path, from: from, id: nodeID(sr.st, item)}
	n.inputs, n.key = nodeKey(e.sess.Recipe, sr.st, item, from)
	sr.nodes = append(sr.nodes, n)
	sr.open++
	e.running++
	e.obs.Event(Event{Type: EventNode, Stage: sr.st.ID, Item: nodeItemName(n), Node: n.id, Status: StateQueued})
	go e.exec(n)
}

func nodeID(st *Stage, item *Item) string {
	if item == nil {
		return st.ID
	}
	return st.ID + "[" + item.Name + "]"
}

// nodeKey returns the key inputs and key of a node: kind name and version,
// canonical params, the foreach item and a digest of each from-input.
func nodeKey(r *Recipe, st *Stage, item *Item, from map[string][]Item) (KeyInputs, cache.Key) {
	in := KeyInputs{Kind: st.Kind.Name, Version: st.Kind.Version, Params: st.params, Item: item}
	for _, name := range st.Kind.Sections {
		if in.Sections == nil {
			in.Sections = map[string]cache.Key{}
		}
		in.Sections[name] = r.sectionKeys[name]
	}
	if len(from) > 0 {
		in.Inputs = map[string]cache.Key{}
		for dep, items := range from {
			k, err := cache.KeyOf(items)
			if err != nil {
				panic(err) // items are plain data
			}
			in.Inputs[dep] = k
		}
	}
	k, err := cache.KeyOf(in)
	if err != nil {
		panic(err)
	}
	return in, k
}

// exec resolves one node from the memo table or by running it.
func (e *engine) exec(n *node) {
	defer func() { e.done <- n }()
	start := time.Now()
	store := e.sess.Store
	kind := n.stage.st.Kind
	e.ioSlots <- struct{}{}
	var d cache.Digest
	var hit bool
	var err error
	if !kind.Volatile {
		d, hit, err = store.MemoGet(e.ctx, n.key)
	}
	if hit {
		var res nodeResult
		if err = GetJSON(store, d, &res); err == nil && outputsPresent(store, res.Output) {
			<-e.ioSlots
			n.state, n.resultD, n.result = StateCached, d, &res
			n.duration = time.Since(start)
			return
		}
		// An unreadable result is a miss: the node runs again.
	}
	<-e.ioSlots

	pool := e.pools[kind.Pool]
	select {
	case pool <- struct{}{}:
	case <-e.ctx.Done():
		n.state, n.err = StateSkipped, e.ctx.Err()
		return
	}
	defer func() { <-pool }()
	if e.stopped() {
		n.state, n.err = StateSkipped, e.ctx.Err()
		return
	}
	e.obs.Event(Event{Type: EventNode, Stage: n.stage.st.ID, Item: nodeItemName(n), Node: n.id, Key: n.key.String(), Status: StateRunning})
	start = time.Now()

	rec := &cache.Recorder{}
	cnt := &counters{}
	ctx := cache.WithRecorder(context.WithValue(e.ctx, countersKey{}, cnt), rec)
	call := &Call{Stage: n.stage.st.ID, Params: n.stage.st.Params, Input: n.item, Inputs: n.from,
		Key: n.key, Seed: seedOf(n.key), Session: e.sess}
	if n.item != nil {
		call.Item = n.item.Name
	}
	out, err := runKind(ctx, kind, call)
	n.duration = time.Since(start)
	if err == nil {
		err = out.validate()
	}
	if err != nil {
		n.state, n.err = StateFailed, err
		// The model calls and sandbox runs it finished stay memoised (and
		// kept by gc): a re-run resumes from them.
		n.result = &nodeResult{Counts: cnt.snapshot(), Memo: rec.Keys()}
		if !e.opts.KeepGoing && !e.stopped() {
			// Stop here, before this node's slot is released, so that no
			// other node starts in the time the engine takes to notice.
			e.cancel()
		}
		return
	}
	res := &nodeResult{Output: out, Memo: rec.Keys(), Counts: cnt.snapshot()}
	d, err = PutJSON(store, res)
	if err == nil {
		err = store.MemoPut(e.ctx, n.key, d)
	}
	if err != nil {
		n.state, n.err = StateFailed, fmt.Errorf("storing result: %w", err)
		return
	}
	n.state, n.resultD, n.result = StateRan, d, res
}

// outputsPresent reports whether the blobs a cached output names are still
// in the store (a shallow check: a blob moved to quarantine makes the node
// run again and so repairs the store).
func outputsPresent(store *cache.Store, out Output) bool {
	if !out.IsCollection {
		return store.Has(out.Value)
	}
	for _, it := range out.Items {
		if !store.Has(it.Value) {
			return false
		}
	}
	return true
}

func nodeItemName(n *node) string {
	if n.item == nil {
		return ""
	}
	return n.item.Name
}

// runKind calls the kind's Run, turning a panic into an error so that one
// broken node cannot take the build down.
func runKind(ctx context.Context, k *Kind, c *Call) (out Output, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage kind %s panicked: %v\n%s", k.Name, r, debug.Stack())
		}
	}()
	return k.Run(ctx, c)
}

// finish records a finished node and feeds its items downstream.
func (e *engine) finish(n *node) {
	sr := n.stage
	sr.open--
	ev := Event{Type: EventNode, Stage: sr.st.ID, Item: nodeItemName(n), Node: n.id, Key: n.key.String(),
		Status: n.state, Seconds: n.duration.Seconds()}
	if n.result != nil {
		ev.Counts = n.result.Counts
	}
	if n.state == StateFailed && errors.Is(n.err, context.Canceled) && e.stopped() {
		n.state = StateSkipped // stopped by the build, not a failure of its own
	}
	switch n.state {
	case StateFailed:
		sr.failed = true
		berr := &BuildError{Stage: sr.st.ID, Item: nodeItemName(n), Key: n.key, Err: n.err}
		n.err = berr
		ev.Error = berr.Error()
		if e.firstErr == nil {
			e.firstErr = berr
		}
		if !e.opts.KeepGoing {
			e.cancel()
		}
	case StateSkipped:
		sr.failed = true
	case StateCached, StateRan:
		sr.items = append(sr.items, outputItems(sr.st, n.item, n.path, n.result.Output)...)
	}
	e.obs.Event(ev)
}

// outputItems names a node's output as items of its stage: a value is one
// item named after the foreach item (or the stage), a collection's items are
// prefixed with the foreach item's name.
func outputItems(st *Stage, item *Item, path []int, out Output) []pathItem {
	if !out.IsCollection {
		name := st.ID
		if item != nil {
			name = item.Name
		}
		return []pathItem{{path: path, item: Item{Name: name, Value: out.Value}}}
	}
	items := make([]pathItem, 0, len(out.Items))
	for i, it := range out.Items {
		name := it.Name
		if item != nil {
			name = item.Name + "/" + it.Name
		}
		items = append(items, pathItem{path: append(slices.Clip(path), i), item: Item{Name: name, Value: it.Value}})
	}
	return items
}

// publish writes the outputs of publishing stages into the output folder.
func (e *engine) publish() ([]string, error) {
	var pubs []*stageRun
	for _, sr := range e.stages {
		if sr.st.Kind.Publish && sr.complete && !sr.failed && sr.skipped == "" {
			pubs = append(pubs, sr)
		}
	}
	var paths []string
	for _, sr := range pubs {
		base := strings.TrimRight(e.opts.OutDir, "/")
		if len(pubs) > 1 {
			base += "/" + sr.st.ID
		}
		for _, pi := range sortedItems(sr.items) {
			dir := base
			if sr.st.Foreach != "" || len(sr.items) != 1 || pi.item.Name != sr.st.ID {
				dir = base + "/" + pi.item.Name
			}
			if err := Publish(e.sess.Store, pi.item.Value, dir); err != nil {
				return paths, fmt.Errorf("publishing stage %s to %s: %w", sr.st.ID, dir, err)
			}
			paths = append(paths, dir)
		}
	}
	return paths, nil
}
