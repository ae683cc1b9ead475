// Package build owns dsbuild's engine: recipe parsing and validation, the
// DAG of stage nodes with their keys, the scheduler with its resource pools,
// progress events, and build records (plan, explain, the roots of gc).
//
// It knows no particular stage kind and no effect: kinds and recipe
// sections register themselves (see Register and RegisterSection), and
// stages reach effects through the Session they are given.
//
// What the engine promises about results:
//
//   - Keys are complete by construction. A node's key holds its kind's name
//     and version, its canonical params, the output digests of its inputs,
//     the key view of every recipe section the kind declares and the content
//     digest of every asset (compiled-in script or prompt) it declares. A
//     kind cannot read an undeclared section (Call.Section) or asset
//     (Asset.ReadFile) inside a node: the read fails. Only a change to a
//     kind's Go code needs a Version bump.
//   - Nothing that depends on machine load is memoised as final. Work that
//     used such a result (a sandbox run stopped by its wall-clock timeout)
//     marks itself with cache.MarkProvisional; the node's output is used in
//     this build but not memoised, so the next build runs it again (its
//     final effects replay from their own memo entries).
//   - A cache hit is trusted only if everything below its output is in the
//     store (cache.Store.Missing: trees, JSON references, down to the
//     files). A node whose output lost a blob runs again. A node that finds
//     an input's blob gone or corrupt while running has the input's
//     producer run again in the same build, then tries once more; publish
//     does the same for the published tree.
//   - Results reach the memo in batches, one durability barrier per batch:
//     a crash loses only memo entries whose work the next build redoes.
//   - A build is recorded as complete ("ok") only if every node succeeded
//     and every published folder was written; a published folder changed by
//     hand since (a file deleted, added or edited) is written again.
//   - Options.Recheck runs a sample of cache hits again and fails on any
//     whose output differs from the memoised one.
package build

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"sync"

	"github.com/dsbuild/dsbuild/cache"
)

// Kind is a stage kind: a pure function of (params, inputs, effects) that
// produces a value or a collection. Its Name and Version are part of every
// node key, and so is the content of every asset it declares: bump Version
// when a change to the kind's Go code would give different output for the
// same inputs.
type Kind struct {
	// Name is what recipes write after `uses:`.
	Name string
	// Version is part of every key; change it when the kind's code changes
	// what it outputs (asset edits need no bump).
	Version string
	// Doc is a one-line description shown by `dsbuild kinds`.
	Doc string
	// Params returns a pointer to a new params value holding the defaults.
	// The recipe's `with:` is decoded into it strictly (unknown keys and
	// wrong types are errors). If the value has a `Resolve(recipeDir string)
	// error` method it is called to resolve and check paths (keep resolved
	// paths out of the JSON encoding: keys must not depend on where the
	// recipe lives), then `Validate() error` if it has one. A nil Params
	// means the kind takes no params.
	Params func() any
	// Pool is the resource pool a running node holds a slot of: "cpu" (the
	// default), "sandbox", "llm" or any name a recipe gives a limit to.
	Pool string
	// Sections names the recipe sections (see RegisterSection) the kind
	// reads, such as "models" or "environments": their canonical contents
	// are part of its node keys, so editing a model profile re-runs the
	// stages that use models (their model calls stay cached). Call.Section
	// refuses a section the kind does not name here.
	Sections []string
	// Assets are the compiled-in files (scripts, prompt templates) the kind
	// reads: their content is part of its node keys. Asset.ReadFile refuses
	// an asset the kind does not name here.
	Assets []*Asset
	// Volatile marks kinds whose output depends on more than their key
	// inputs (sources reading local files): they run in every build, and
	// early cutoff keeps their dependents cached when the output is the same.
	Volatile bool
	// Publish marks kinds whose output is a tree to be written to the
	// build's output directory.
	Publish bool
	// Run does the work of one node.
	Run func(ctx context.Context, c *Call) (Output, error)
}

// Item is one named element of a collection.
type Item struct {
	Name  string       `json:"name"`
	Value cache.Digest `json:"value"`
}

// Output is what a node produces: a single value, or a collection of items
// that downstream `foreach` stages fan out over.
type Output struct {
	Value        cache.Digest `json:"value,omitzero"`
	Items        []Item       `json:"items,omitempty"`
	IsCollection bool         `json:"collection,omitempty"`
}

// Value returns a single-value output.
func Value(d cache.Digest) Output { return Output{Value: d} }

// Collection returns a collection output. Item names must be unique and
// made of letters, digits, '.', '_' and '-'.
func Collection(items []Item) Output {
	if items == nil {
		items = []Item{}
	}
	return Output{Items: items, IsCollection: true}
}

var itemName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

func (o Output) validate() error {
	if !o.IsCollection {
		if o.Value.IsZero() {
			return fmt.Errorf("stage produced no output")
		}
		return nil
	}
	seen := map[string]bool{}
	for _, it := range o.Items {
		if !itemName.MatchString(it.Name) {
			return fmt.Errorf("stage produced an item with invalid name %q (letters, digits, '.', '_', '-' only)", it.Name)
		}
		if seen[it.Name] {
			return fmt.Errorf("stage produced two items named %q", it.Name)
		}
		seen[it.Name] = true
		if it.Value.IsZero() {
			return fmt.Errorf("stage produced item %q with no value", it.Name)
		}
	}
	return nil
}

// Call is everything one node's Run gets.
type Call struct {
	// Stage is the stage id; Item the item name for a foreach node ("" else).
	Stage, Item string
	// Params is the pointer Kind.Params returned, filled from the recipe.
	Params any
	// Input is the foreach item (nil for a stage without foreach).
	Input *Item
	// Inputs holds the items of every stage named in `from:`, in a
	// deterministic order.
	Inputs map[string][]Item
	// Key is the node's key; Seed a number derived from it, the only
	// randomness a stage may use.
	Key  cache.Key
	Seed int64
	// Session is the build-wide context: recipe, store, options, services.
	Session *Session

	kind *Kind
}

// Section returns the recipe's decoded section name (nil if the recipe
// has none). It fails if the node's kind does not list the section in
// Kind.Sections: a section a kind reads must be part of its node keys.
func (c *Call) Section(name string) (any, error) {
	if c.kind != nil && !slices.Contains(c.kind.Sections, name) {
		return nil, fmt.Errorf("stage kind %s reads recipe section %q but does not list it in Kind.Sections, so the section is not part of its node keys", c.kind.Name, name)
	}
	return c.Session.Recipe.Section(name), nil
}

// Store is a shorthand for c.Session.Store.
func (c *Call) Store() *cache.Store { return c.Session.Store }

// PutJSON stores v as canonical JSON and returns its digest.
func (c *Call) PutJSON(v any) (cache.Digest, error) { return PutJSON(c.Session.Store, v) }

// GetJSON reads the blob d into v.
func (c *Call) GetJSON(d cache.Digest, v any) error { return GetJSON(c.Session.Store, d, v) }

// Count adds delta to the node's counter name (for example "kept" or
// "rejected:no failing test"). Counters are summed per stage in the
// summary and stored with the node's result.
func (c *Call) Count(ctx context.Context, name string, delta float64) { Count(ctx, name, delta) }

// PutJSON stores v as canonical JSON in store and returns its digest.
func PutJSON(store *cache.Store, v any) (cache.Digest, error) {
	b, err := cache.Canonical(v)
	if err != nil {
		return cache.Digest{}, err
	}
	return store.Put(b)
}

// GetJSON reads the JSON blob d from store into v.
func GetJSON(store *cache.Store, d cache.Digest, v any) error {
	b, err := store.Get(d)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	return nil
}

func seedOf(k cache.Key) int64 { return int64(binary.BigEndian.Uint64(k[:8]) >> 1) }

var (
	registryMu sync.RWMutex
	kinds      = map[string]*Kind{}
	sections   = map[string]func() any{}
)

// Register makes a stage kind available to recipes. It panics on a
// duplicate name or an incomplete kind, which are programming errors.
func Register(k *Kind) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if k.Name == "" || k.Version == "" || k.Run == nil {
		panic("build.Register: kind needs Name, Version and Run")
	}
	if _, dup := kinds[k.Name]; dup {
		panic("build.Register: duplicate kind " + k.Name)
	}
	if k.Pool == "" {
		k.Pool = "cpu"
	}
	kinds[k.Name] = k
}

// LookupKind returns the registered kind called name.
func LookupKind(name string) (*Kind, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// Kinds returns every registered kind, sorted by name.
func Kinds() []*Kind {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]*Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RegisterSection lets a recipe carry a top-level section (for example
// "models" or "environments"): newValue returns a pointer the section is
// decoded into strictly; if the value has a `Resolve(recipeDir string)
// error` method it is called to resolve paths relative to the recipe (and
// may pin them to content), then `Validate() error` if it has one. Stages
// read it with Call.Section. The section
// enters the keys of the kinds that read it; if its value has a
// `KeyView() any` method, only what that returns does (so settings that
// cannot change results, such as an endpoint or a rate limit, re-run
// nothing).
func RegisterSection(name string, newValue func() any) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := sections[name]; dup || reservedKeys[name] {
		panic("build.RegisterSection: duplicate section " + name)
	}
	sections[name] = newValue
}

func lookupSection(name string) (func() any, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := sections[name]
	return f, ok
}

func sectionNames() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var out []string
	for n := range sections {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Count adds delta to the counter name of the node running under ctx. Effect
// wiring (for example LLM token accounting) calls it; outside a node it does
// nothing.
func Count(ctx context.Context, name string, delta float64) {
	if c, ok := ctx.Value(countersKey{}).(*counters); ok {
		c.add(name, delta)
	}
}

type countersKey struct{}

type counters struct {
	mu sync.Mutex
	m  map[string][]float64
}

func (c *counters) add(name string, delta float64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string][]float64{}
	}
	c.m[name] = append(c.m[name], delta)
	c.mu.Unlock()
}

// snapshot sums each counter's additions in sorted order: floating-point
// addition is not associative, and additions from concurrent goroutines
// arrive in any order, but the stored result must not depend on it.
func (c *counters) snapshot() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return nil
	}
	out := make(map[string]float64, len(c.m))
	for k, vs := range c.m {
		sorted := slices.Clone(vs)
		slices.Sort(sorted)
		var sum float64
		for _, v := range sorted {
			sum += v
		}
		out[k] = sum
	}
	return out
}
