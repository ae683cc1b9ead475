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
	"sync"
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
	// OutDir receives published outputs (default out/<recipe name>). A
	// folder that holds files dsbuild did not write is refused (see
	// CheckOutDir) unless Force is set.
	OutDir string
	Force  bool
	// Observer receives progress events (may be nil).
	Observer Observer
	// Recheck is the fraction (0 to 1) of cache hits that run again and
	// must give the memoised output (like Go's GODEBUG=gocacheverify). Which
	// hits is a function of their keys. Effects see it in Session.Recheck.
	Recheck float64
	// Executor runs the nodes of non-volatile kinds somewhere else (nil:
	// in this process); see Executor.
	Executor Executor
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
	// Assets holds the content digest of each asset the kind declares.
	Assets map[string]cache.Key `json:"assets,omitempty"`
}

// nodeResult is the memoised value of a node key.
type nodeResult struct {
	Output Output             `json:"output"`
	Memo   []cache.Key        `json:"memo,omitempty"`
	Counts map[string]float64 `json:"counts,omitempty"`
	// Provisional holds why the result may differ in a later build (see
	// cache.MarkProvisional); such a result is used but not memoised.
	Provisional []string `json:"provisional,omitempty"`
	// Flat says no output blob refers to another blob, so a cache hit is
	// checked by the presence of the outputs alone.
	Flat bool `json:"flat,omitempty"`
}

type node struct {
	id     string
	stage  *stageRun
	item   *Item
	path   []int
	key    cache.Key
	inputs KeyInputs
	from   map[string][]Item

	state     string
	rechecked bool       // a cache hit that ran again and gave the same output
	repairMu  sync.Mutex // one repair of the node's output at a time
	resultD   cache.Digest
	result    *nodeResult
	err       error
	duration  time.Duration
	began     time.Time // when the node started running (zero for a cache hit)
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
	// from holds the items of every `from:` stage and fromKeys their
	// digests, computed once when the last of those stages completes.
	from     map[string][]Item
	fromKeys map[string]cache.Key
	// fromBlobs holds the stored item list of each from-input, for an
	// executor's node specs (made once, by the first remote node).
	fromBlobsOnce sync.Once
	fromBlobs     map[string]cache.Digest
	fromBlobsErr  error
	open          int // nodes created and not finished
	failed        bool
	complete      bool
	skipped       string // reason, when a dependency failed
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
	memo     *memoWriter
	// producers maps each item value of a finished node to the node, for
	// repairs (see repairItem).
	producers sync.Map
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
	if !opts.Force {
		if err := CheckOutDir(opts.OutDir); err != nil {
			return nil, err
		}
	}
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := &engine{
		sess:    &Session{Recipe: r, Store: store, Offline: opts.Offline, OutDir: opts.OutDir, Recheck: opts.Recheck, Jobs: opts.Jobs, observer: obs},
		opts:    opts,
		byID:    map[string]*stageRun{},
		pools:   map[string]chan struct{}{},
		ioSlots: make(chan struct{}, 32),
		done:    make(chan *node, 64),
		ctx:     ctx,
		cancel:  cancel,
		obs:     obs,
		memo:    newMemoWriter(store),
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
		e.memo.close()
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

	merr := e.memo.close()
	rec := e.record(start)
	var published []string
	var perr error
	if merr == nil {
		published, perr = e.publish()
	}
	rec.Published = published
	if merr != nil || perr != nil {
		// Outputs that did not reach the store or the output folder intact
		// make the build incomplete: gc must not prefer it to the last
		// build that was complete.
		rec.Status = "failed"
	}
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
	case merr != nil:
		return rec, fmt.Errorf("storing node results: %w", merr)
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
	if sr.from == nil {
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
		sr.from, sr.fromKeys = from, fromKeys(from)
	}
	from := sr.from
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
	n.inputs, n.key = nodeKey(e.sess.Recipe, sr.st, item, sr.fromKeys)
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

// fromKeys returns the digest of each from-input's items. A stage computes
// them once, not once per node.
func fromKeys(from map[string][]Item) map[string]cache.Key {
	if len(from) == 0 {
		return nil
	}
	keys := make(map[string]cache.Key, len(from))
	for dep, items := range from {
		k, err := cache.KeyOf(items)
		if err != nil {
			panic(err) // items are plain data
		}
		keys[dep] = k
	}
	return keys
}

// nodeKey returns the key inputs and key of a node: kind name and version,
// canonical params, the foreach item, the digest of each from-input, of each
// recipe section the kind reads and of each asset it declares.
func nodeKey(r *Recipe, st *Stage, item *Item, from map[string]cache.Key) (KeyInputs, cache.Key) {
	in := KeyInputs{Kind: st.Kind.Name, Version: st.Kind.Version, Params: st.params, Item: item, Inputs: from}
	for _, name := range st.Kind.Sections {
		if in.Sections == nil {
			in.Sections = map[string]cache.Key{}
		}
		in.Sections[name] = r.sectionKeys[name]
	}
	for _, a := range st.Kind.Assets {
		if in.Assets == nil {
			in.Assets = map[string]cache.Key{}
		}
		in.Assets[a.Name()] = a.Key()
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
	var cached *nodeResult // a hit chosen to be rechecked
	if hit {
		var res nodeResult
		if err = GetJSON(store, d, &res); err == nil && outputIntact(store, &res) {
			if !cache.Sampled(n.key, e.opts.Recheck) {
				<-e.ioSlots
				n.state, n.resultD, n.result = StateCached, d, &res
				n.duration = time.Since(start)
				return
			}
			cached = &res
		}
		// An unreadable result, or one whose output lost a blob, is a miss:
		// the node runs again and so writes the lost blobs again.
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
	remote := e.remote(n)
	if !remote {
		e.nowRunning(n) // a remote node runs when its executor says so
	}

	res, rd, err := e.runNode(n, remote, cached != nil)
	if err != nil && isBlobLoss(err) && e.repairInputs(n) {
		// An input lost a blob (deleted, or found corrupt and moved
		// aside) and its producer wrote it again: try once more.
		res, rd, err = e.runNode(n, remote, cached != nil)
	}
	n.duration = time.Since(n.began)
	if err != nil {
		n.state, n.err = StateFailed, err
		// The model calls and sandbox runs it finished stay memoised (and
		// kept by gc): a re-run resumes from them.
		n.result = &nodeResult{Counts: res.Counts, Memo: res.Memo}
		if !e.opts.KeepGoing && !e.stopped() {
			// Stop here, before this node's slot is released, so that no
			// other node starts in the time the engine takes to notice.
			e.cancel()
		}
		return
	}
	if cached != nil {
		e.compareRecheck(n, d, cached, res)
		return
	}
	if remote {
		// The worker stored the result and memoised it (first writer wins).
		n.state, n.resultD, n.result = StateRan, rd, res
		return
	}
	d, err = PutJSON(store, res)
	if err == nil && len(res.Provisional) == 0 {
		err = e.memo.put(n.key, d)
	}
	if err != nil {
		n.state, n.err = StateFailed, fmt.Errorf("storing result: %w", err)
		return
	}
	n.state, n.resultD, n.result = StateRan, d, res
}

// nowRunning marks n as running from now (once: a node run again after a
// repair keeps its start).
func (e *engine) nowRunning(n *node) {
	if !n.began.IsZero() {
		return
	}
	n.began = time.Now()
	e.obs.Event(Event{Type: EventNode, Stage: n.stage.st.ID, Item: nodeItemName(n), Node: n.id, Key: n.key.String(), Status: StateRunning})
}

// runNode runs n once, on the build's executor if remote (the result comes
// back stored, under the returned digest) or else in this process. The
// result is never nil: a failed node's holds its counters and memo keys.
func (e *engine) runNode(n *node, remote, rerun bool) (*nodeResult, cache.Digest, error) {
	if remote {
		return e.runRemote(n, rerun)
	}
	out, rec, cnt, err := e.run(n)
	if err != nil {
		return &nodeResult{Counts: cnt.snapshot(), Memo: rec.Keys()}, cache.Digest{}, err
	}
	return &nodeResult{Output: out, Memo: rec.Keys(), Counts: cnt.snapshot(), Provisional: rec.Provisional(),
		Flat: flat(e.sess.Store, out)}, cache.Digest{}, nil
}

// run runs n's kind once in this process, with a recorder and counters of
// its own.
func (e *engine) run(n *node) (Output, *cache.Recorder, *counters, error) {
	return runStage(e.ctx, e.sess, n.stage.st, n.item, n.from, n.key)
}

// isBlobLoss reports whether err says a blob is gone from the store or was
// found corrupt (and so moved aside).
func isBlobLoss(err error) bool {
	var ce *cache.CorruptError
	return errors.Is(err, cache.ErrMissing) || errors.As(err, &ce)
}

// repairInputs re-runs, bypassing their memo entries, the nodes that
// produced n's inputs whose blobs are no longer all in the store, so that
// they write them again. It reports whether it repaired anything: every
// such producer ran and gave the same output as before.
func (e *engine) repairInputs(n *node) bool {
	var roots []cache.Digest
	if n.item != nil {
		roots = append(roots, n.item.Value)
	}
	for _, dep := range n.stage.st.From {
		for _, it := range n.from[dep] {
			roots = append(roots, it.Value)
		}
	}
	repaired := false
	for _, d := range roots {
		if missing, err := e.sess.Store.Missing(d); err == nil && len(missing) == 0 {
			continue
		}
		if !e.repairItem(d) {
			return false
		}
		repaired = true
	}
	return repaired
}

// repairItem re-runs the node that produced the item value d and reports
// whether that restored every blob below d.
func (e *engine) repairItem(d cache.Digest) bool {
	v, ok := e.producers.Load(d)
	if !ok {
		return false
	}
	p := v.(*node)
	p.repairMu.Lock()
	defer p.repairMu.Unlock()
	if missing, err := e.sess.Store.Missing(d); err == nil && len(missing) == 0 {
		return true // another repair got here first
	}
	e.sess.Logf(p.stage.st.ID, "%s: a blob below its cached output was lost; running it again to restore it", p.id)
	out, _, _, err := e.run(p)
	if err != nil && isBlobLoss(err) && e.repairInputs(p) {
		out, _, _, err = e.run(p)
	}
	if err != nil || p.result == nil {
		return false
	}
	if outputKey(p.result.Output) != outputKey(out) {
		return false
	}
	missing, err := e.sess.Store.Missing(d)
	return err == nil && len(missing) == 0
}

// outputRoots returns the digests an output names.
func outputRoots(out Output) []cache.Digest {
	if !out.IsCollection {
		return []cache.Digest{out.Value}
	}
	roots := make([]cache.Digest, len(out.Items))
	for i, it := range out.Items {
		roots[i] = it.Value
	}
	return roots
}

// flat reports whether no blob of out refers to another blob.
func flat(store *cache.Store, out Output) bool {
	for _, d := range outputRoots(out) {
		if refs, err := store.HasReferences(d); err != nil || refs {
			return false
		}
	}
	return true
}

// outputIntact reports whether every blob a cached result's output reaches
// is still in the store: for a flat output, that its blobs are present;
// else that nothing below them is missing or corrupt (cache.Store.Missing;
// blobs found complete are not checked again by this process).
func outputIntact(store *cache.Store, res *nodeResult) bool {
	roots := outputRoots(res.Output)
	if res.Flat {
		for _, d := range roots {
			if !store.Has(d) {
				return false
			}
		}
		return true
	}
	missing, err := store.Missing(roots...)
	return err == nil && len(missing) == 0
}

// RecheckError reports a node that, run again for --recheck, gave an output
// other than the one memoised for its key: the kind (or an effect it
// trusts) is not a pure function of its key. Cached and Rerun are the
// digests of the two outputs.
type RecheckError struct {
	Key           cache.Key
	Cached, Rerun cache.Key
}

func (e *RecheckError) Error() string {
	return fmt.Sprintf("recheck: running the node again gave output %s, but its key %s has %s memoised: the stage is not deterministic for this key",
		e.Rerun.Short(), e.Key, e.Cached.Short())
}

// compareRecheck finishes a node that ran only to recheck its memoised
// result d: the same output counts as a cache hit (the memo entry stays),
// another output is the node's failure.
func (e *engine) compareRecheck(n *node, d cache.Digest, cached, res *nodeResult) {
	if ck, rk := outputKey(cached.Output), outputKey(res.Output); ck != rk {
		n.state, n.err = StateFailed, &RecheckError{Key: n.key, Cached: ck, Rerun: rk}
		n.result = res
		return
	}
	n.state, n.resultD, n.result = StateCached, d, cached
	n.rechecked = true
}

// outputKey is the digest of an output's canonical encoding.
func outputKey(o Output) cache.Key {
	k, err := cache.KeyOf(o)
	if err != nil {
		panic(err) // an Output is plain data
	}
	return k
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
		items := outputItems(sr.st, n.item, n.path, n.result.Output)
		for _, pi := range items {
			e.producers.LoadOrStore(pi.item.Value, n)
		}
		sr.items = append(sr.items, items...)
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
			err := Publish(e.sess.Store, pi.item.Value, dir)
			if err != nil && isBlobLoss(err) && e.repairItem(pi.item.Value) {
				err = Publish(e.sess.Store, pi.item.Value, dir)
			}
			if err != nil {
				return paths, fmt.Errorf("publishing stage %s to %s: %w", sr.st.ID, dir, err)
			}
			paths = append(paths, dir)
		}
	}
	return paths, nil
}
