package build

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/dsbuild/dsbuild/cache"
)

// Executor runs nodes somewhere other than the build's own process: on a
// Slurm cluster, say, where a worker (`dsbuild worker`) runs each node
// against the same store. Options.Executor nil means every node runs in the
// build's process, as it always has.
//
// The engine keeps everything else: keys, memo lookups, pools, recheck,
// repairs, records and publishing. It hands an executor only nodes that
// missed the memo (or run again for --recheck), one Exec call per node,
// after the node holds its pool slot, so pool limits bound the nodes in
// flight on the executor as they bound local ones. Volatile kinds (sources
// that read local files) always run in the build's process.
//
// Everything a node needs is addressed in the store: the recipe text, the
// items of its inputs, the spec itself; and everything it produces reaches
// the store before Exec returns.
type Executor interface {
	// Exec runs one node and returns its outcome once the node has finished
	// (Outcome.Error set if the node itself failed). An error is the
	// executor's own failure (it could not run the node at all, or ctx was
	// cancelled); the engine reports it as the node's failure.
	Exec(ctx context.Context, job *RemoteNode) (*NodeOutcome, error)
}

// RemoteNode is one node handed to an Executor.
type RemoteNode struct {
	// Spec says what to run; the executor stores it (PutJSON) after setting
	// Spec.Attempt and hands its digest to a worker.
	Spec NodeSpec
	// Node is the node's id ("stage" or "stage[item]"), Pool its kind's
	// resource pool.
	Node, Pool string
	// Started is called when the node starts running (a queued Slurm job
	// started); the engine then shows it as running. It may be called more
	// than once (a job re-submitted); calls after the first do nothing.
	Started func()
}

// NodeSpec is everything a worker needs to run one node, stored as a blob
// whose digest is the worker's argument.
type NodeSpec struct {
	// Recipe is the recipe's absolute path (relative paths in it resolve
	// against its folder, on a filesystem the workers share) and
	// RecipeText the digest of the text the build parsed, kept in the store,
	// so a recipe edited during the build does not change what runs.
	Recipe     string       `json:"recipe"`
	RecipeText cache.Digest `json:"recipe_text"`
	Stage      string       `json:"stage"`
	Item       *Item        `json:"item,omitempty"`
	// From holds, per `from:` stage, the digest of a blob listing its items
	// (JSON []Item).
	From map[string]cache.Digest `json:"from,omitempty"`
	// Key is the node key the build computed; a worker whose own key
	// differs (the recipe, an environment variable it interpolates, or a
	// file a section pins changed) refuses to run.
	Key cache.Key `json:"key"`
	// Offline, Recheck and Jobs are the build's options (Jobs: slots of
	// the worker's own sandbox pool, the CPUs it was given).
	Offline bool    `json:"offline,omitempty"`
	Recheck float64 `json:"recheck,omitempty"`
	// Rerun makes the worker run the node even if its key is memoised (a
	// --recheck of a cache hit).
	Rerun bool `json:"rerun,omitempty"`
	// Attempt makes each submission's spec, and so its outcome key, unique
	// (the executor sets it: a build nonce and an attempt number).
	Attempt string `json:"attempt,omitempty"`
}

// NodeOutcome is what running a node gave: its stored result, or its
// failure with the counters and memo keys of the work it finished.
type NodeOutcome struct {
	// Result is the stored node result this run produced (or found
	// memoised); Memoised what the key's memo entry holds afterwards (the
	// first writer's result; zero for a provisional result).
	Result   cache.Digest `json:"result,omitzero"`
	Memoised cache.Digest `json:"memoised,omitzero"`
	// Error is the node's failure, BlobLoss set when it failed because an
	// input's blob was missing or corrupt (the build repairs the input and
	// runs the node again).
	Error    string             `json:"error,omitempty"`
	BlobLoss bool               `json:"blob_loss,omitempty"`
	Counts   map[string]float64 `json:"counts,omitempty"`
	Memo     []cache.Key        `json:"memo,omitempty"`
	// Worker says where it ran (host, job), for messages.
	Worker string `json:"worker,omitempty"`
}

// OutcomeKey is the memo key under which a worker stores the outcome of
// the spec d (a blob holding a NodeOutcome), for the executor to find.
func OutcomeKey(spec cache.Digest) cache.Key {
	k, err := cache.KeyOf(struct {
		Outcome cache.Digest `json:"outcome_of"`
	}{spec})
	if err != nil {
		panic(err)
	}
	return k
}

// PutOutcome stores oc as the outcome of the spec d, where ReadOutcome
// finds it: a worker's last write.
func PutOutcome(store *cache.Store, spec cache.Digest, oc *NodeOutcome) error {
	d, err := PutJSON(store, oc)
	if err == nil {
		err = store.MemoPut(context.Background(), OutcomeKey(spec), d)
	}
	if err != nil {
		return fmt.Errorf("storing the outcome of node spec %s: %w", spec, err)
	}
	return nil
}

// ReadOutcome returns the outcome stored for the spec d, if any.
func ReadOutcome(store *cache.Store, spec cache.Digest) (*NodeOutcome, bool, error) {
	d, ok, err := store.MemoGet(context.Background(), OutcomeKey(spec))
	if err != nil || !ok {
		return nil, false, err
	}
	var oc NodeOutcome
	if err := GetJSON(store, d, &oc); err != nil {
		return nil, false, fmt.Errorf("reading the outcome of node spec %s: %w", spec, err)
	}
	return &oc, true, nil
}

// WorkerOptions are a worker's own settings.
type WorkerOptions struct {
	// Jobs bounds the worker's sandbox runs (Session.Jobs); default 1.
	Jobs int
	// Worker names where it runs, for NodeOutcome.Worker.
	Worker string
	// Observer receives the node's log lines (may be nil).
	Observer Observer
}

// SpecError is a spec a worker cannot run: unreadable, naming what the
// recipe does not have, or whose key the recipe no longer gives. Running it
// again cannot help.
type SpecError struct{ Msg string }

func (e *SpecError) Error() string { return e.Msg }

// RunSpec runs the node spec names against store, as `dsbuild worker`
// does: it parses the recipe the spec names (the text the build parsed,
// read from the store), recomputes the node key and refuses a mismatch,
// reports a memoised result without running (unless the spec is a rerun),
// else runs the kind, stores the result and, unless it is provisional,
// memoises it first-writer-wins. A failure of the node is the outcome's
// Error; a *SpecError says the spec cannot be run here at all.
func RunSpec(ctx context.Context, store *cache.Store, specD cache.Digest, opts WorkerOptions) (*NodeOutcome, error) {
	var spec NodeSpec
	if err := GetJSON(store, specD, &spec); err != nil {
		return nil, &SpecError{fmt.Sprintf("node spec %s: %v", specD, err)}
	}
	if spec.Key.IsZero() || spec.Stage == "" || !filepath.IsAbs(spec.Recipe) {
		return nil, &SpecError{fmt.Sprintf("node spec %s is not a node spec (it needs recipe, stage and key)", specD)}
	}
	text, err := store.Get(spec.RecipeText)
	if err != nil {
		return nil, &SpecError{fmt.Sprintf("node spec %s: recipe text: %v", specD, err)}
	}
	r, err := ParseRecipe(spec.Recipe, text, nil)
	if err != nil {
		return nil, &SpecError{fmt.Sprintf("node spec %s: recipe %s: %v", specD, spec.Recipe, err)}
	}
	st := r.Stage(spec.Stage)
	if st == nil {
		return nil, &SpecError{fmt.Sprintf("node spec %s: recipe %s has no stage %q", specD, spec.Recipe, spec.Stage)}
	}
	from := map[string][]Item{}
	for _, dep := range st.From {
		d, ok := spec.From[dep]
		if !ok {
			return nil, &SpecError{fmt.Sprintf("node spec %s: no items for input stage %s", specD, dep)}
		}
		var items []Item
		if err := GetJSON(store, d, &items); err != nil {
			return nil, &SpecError{fmt.Sprintf("node spec %s: items of %s: %v", specD, dep, err)}
		}
		from[dep] = items
	}
	if (st.Foreach == "") != (spec.Item == nil) {
		return nil, &SpecError{fmt.Sprintf("node spec %s: stage %s foreach %q does not match the spec's item", specD, st.ID, st.Foreach)}
	}
	_, key := nodeKey(r, st, spec.Item, fromKeys(from))
	if key != spec.Key {
		return nil, &SpecError{fmt.Sprintf("node %s: this worker computes key %s but the build asked for %s: the recipe (or an environment variable or file it reads) differs between the build and this worker",
			nodeID(st, spec.Item), key.Short(), spec.Key.Short())}
	}
	if st.Kind.Volatile {
		return nil, &SpecError{fmt.Sprintf("node %s: kind %s is volatile and runs only in the build's own process", nodeID(st, spec.Item), st.Kind.Name)}
	}
	out := &NodeOutcome{Worker: opts.Worker}
	if !spec.Rerun {
		if d, hit, err := store.MemoGet(ctx, key); err == nil && hit {
			var res nodeResult
			if GetJSON(store, d, &res) == nil && outputIntact(store, &res) {
				out.Result, out.Memoised = d, d
				return out, nil
			}
		}
	}
	if opts.Jobs < 1 {
		opts.Jobs = 1
	}
	sess := &Session{Recipe: r, Store: store, Offline: spec.Offline, Recheck: spec.Recheck, Jobs: opts.Jobs, observer: opts.Observer}
	o, rec, cnt, err := runStage(ctx, sess, st, spec.Item, from, key)
	if err != nil {
		out.Error, out.BlobLoss = err.Error(), isBlobLoss(err)
		out.Counts, out.Memo = cnt.snapshot(), rec.Keys()
		return out, nil
	}
	res := &nodeResult{Output: o, Memo: rec.Keys(), Counts: cnt.snapshot(), Provisional: rec.Provisional(), Flat: flat(store, o)}
	d, err := PutJSON(store, res)
	if err != nil {
		return nil, fmt.Errorf("storing result: %w", err)
	}
	out.Result = d
	if len(res.Provisional) == 0 {
		if out.Memoised, err = store.MemoPutFirst(context.Background(), key, d); err != nil {
			return nil, fmt.Errorf("storing result: %w", err)
		}
	}
	return out, nil
}

// runStage runs st's kind once for one node, with a recorder and counters
// of its own: the in-process executor.
func runStage(ctx context.Context, sess *Session, st *Stage, item *Item, from map[string][]Item, key cache.Key) (Output, *cache.Recorder, *counters, error) {
	kind := st.Kind
	rec := &cache.Recorder{}
	cnt := &counters{}
	ctx = context.WithValue(context.WithValue(ctx, countersKey{}, cnt), kindKey{}, kind)
	ctx = cache.WithRecorder(ctx, rec)
	call := &Call{Stage: st.ID, Params: st.Params, Input: item, Inputs: from,
		Key: key, Seed: seedOf(key), Session: sess, kind: kind}
	if item != nil {
		call.Item = item.Name
	}
	out, err := runKind(ctx, kind, call)
	if err == nil {
		err = out.validate()
	}
	return out, rec, cnt, err
}

// remote reports whether n runs on the build's executor.
func (e *engine) remote(n *node) bool {
	return e.opts.Executor != nil && !n.stage.st.Kind.Volatile
}

// remoteSpec returns the spec of n for the executor, storing the item lists
// of its stage's `from:` inputs once per stage.
func (e *engine) remoteSpec(n *node, rerun bool) (NodeSpec, error) {
	sr := n.stage
	sr.fromBlobsOnce.Do(func() {
		sr.fromBlobs = map[string]cache.Digest{}
		for dep, items := range sr.from {
			d, err := PutJSON(e.sess.Store, items)
			if err != nil {
				sr.fromBlobsErr = err
				return
			}
			sr.fromBlobs[dep] = d
		}
	})
	if sr.fromBlobsErr != nil {
		return NodeSpec{}, sr.fromBlobsErr
	}
	path, err := filepath.Abs(e.sess.Recipe.Path)
	if err != nil {
		return NodeSpec{}, err
	}
	return NodeSpec{Recipe: path, RecipeText: e.sess.Recipe.Digest, Stage: sr.st.ID, Item: n.item, From: sr.fromBlobs,
		Key: n.key, Offline: e.opts.Offline, Recheck: e.opts.Recheck, Rerun: rerun}, nil
}

// runRemote runs n on the executor and returns its result and the digest
// it is stored under. The running event is sent when the executor says the
// node started.
func (e *engine) runRemote(n *node, rerun bool) (*nodeResult, cache.Digest, error) {
	spec, err := e.remoteSpec(n, rerun)
	if err != nil {
		return &nodeResult{}, cache.Digest{}, fmt.Errorf("storing the node's spec: %w", err)
	}
	var once sync.Once
	job := &RemoteNode{Spec: spec, Node: n.id, Pool: n.stage.st.Kind.Pool, Started: func() {
		once.Do(func() { e.nowRunning(n) })
	}}
	// A node that finished before the executor saw it start was running too.
	defer once.Do(func() { e.nowRunning(n) })
	oc, err := e.opts.Executor.Exec(e.ctx, job)
	if err != nil {
		return &nodeResult{}, cache.Digest{}, err
	}
	if oc.Error != "" {
		err = errors.New(oc.Error)
		if oc.BlobLoss {
			err = fmt.Errorf("%w (%s)", cache.ErrMissing, oc.Error)
		}
		return &nodeResult{Counts: oc.Counts, Memo: oc.Memo}, cache.Digest{}, err
	}
	d := oc.Memoised
	if d.IsZero() || rerun {
		d = oc.Result // provisional, or a recheck comparing its own run
	}
	var res nodeResult
	if err := GetJSON(e.sess.Store, d, &res); err != nil {
		return &nodeResult{}, cache.Digest{}, fmt.Errorf("reading the result of %s: %w", oc.Worker, err)
	}
	return &res, d, nil
}
