package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
)

// Plan statuses.
const (
	PlanCached  = "cached"
	PlanWillRun = "will run"
	PlanWaits   = "waits"
)

// PlanEntry says what a build would do with one node, and why.
type PlanEntry struct {
	Node    string    `json:"node"`
	Stage   string    `json:"stage"`
	Item    string    `json:"item,omitempty"`
	Key     cache.Key `json:"key,omitzero"`
	Inputs  KeyInputs `json:"inputs"`
	Status  string    `json:"status"`
	Reasons []string  `json:"reasons,omitempty"`
	// Previous is the node as the last build recorded it (nil if absent).
	Previous *NodeRecord `json:"previous,omitempty"`
}

// Plan works out, from the store alone, which nodes a build of r would find
// cached and which it would run, with the reason (what changed since the
// last build). Nodes downstream of work that has not run yet cannot be known
// exactly; they are reported as waiting.
func Plan(r *Recipe, store *cache.Store) ([]PlanEntry, error) {
	last, err := lastRecord(store, r.Name, 0)
	if err != nil {
		return nil, err
	}
	prev := map[string]*NodeRecord{}
	if last != nil {
		for i := range last.Nodes {
			prev[last.Nodes[i].ID] = &last.Nodes[i]
		}
	}
	var plan []PlanEntry
	items := map[string][]pathItem{}
	complete := map[string]bool{}
	for _, st := range r.Stages {
		from := map[string][]Item{}
		var waitsOn []string
		for _, dep := range st.From {
			if !complete[dep] {
				waitsOn = append(waitsOn, dep)
				continue
			}
			its := make([]Item, len(items[dep]))
			for i, pi := range items[dep] {
				its[i] = pi.item
			}
			from[dep] = its
		}
		if len(waitsOn) > 0 {
			plan = append(plan, PlanEntry{Node: st.ID, Stage: st.ID, Status: PlanWaits,
				Reasons: []string{"runs once " + strings.Join(waitsOn, ", ") + " has run"}})
			continue
		}
		type target struct {
			item *Item
			path []int
		}
		var targets []target
		allKnown := true
		if st.Foreach == "" {
			targets = []target{{}}
		} else {
			for _, pi := range items[st.Foreach] {
				it := pi.item
				targets = append(targets, target{&it, pi.path})
			}
			allKnown = complete[st.Foreach]
		}
		allCached := allKnown
		fk := fromKeys(from)
		for _, t := range targets {
			in, key := nodeKey(r, st, t.item, fk)
			id := nodeID(st, t.item)
			e := PlanEntry{Node: id, Stage: st.ID, Key: key, Inputs: in, Previous: prev[id]}
			if t.item != nil {
				e.Item = t.item.Name
			}
			d, hit, err := store.MemoGet(noRecord, key)
			var res nodeResult
			if err == nil && hit && GetJSON(store, d, &res) == nil {
				e.Status = PlanCached
				if st.Kind.Volatile {
					e.Status = PlanWillRun
					e.Reasons = []string{"re-reads its sources in every build (what follows assumes they are unchanged)"}
				}
				if !outputIntact(store, &res) {
					e.Status = PlanWillRun
					e.Reasons = []string{"its cached output lost a blob (deleted or corrupt); running it again restores it"}
				}
				items[st.ID] = append(items[st.ID], outputItems(st, t.item, t.path, res.Output)...)
			} else {
				e.Status = PlanWillRun
				e.Reasons = whyRun(prev[id], in, key, last != nil)
				allCached = false
			}
			plan = append(plan, e)
		}
		if !allKnown {
			plan = append(plan, PlanEntry{Node: st.ID + "[…]", Stage: st.ID, Status: PlanWaits,
				Reasons: []string{"more items once " + st.Foreach + " has run"}})
		}
		sort.SliceStable(items[st.ID], func(i, j int) bool {
			return slices.Compare(items[st.ID][i].path, items[st.ID][j].path) < 0
		})
		complete[st.ID] = allCached
	}
	return plan, nil
}

// lastRecord returns the newest build record of group, skipping skip
// newer ones; nil if there is none.
func lastRecord(store *cache.Store, group string, skip int) (*Record, error) {
	bodies, err := store.Records(group, skip+1)
	if err != nil {
		return nil, err
	}
	if len(bodies) <= skip {
		return nil, nil
	}
	var rec Record
	if err := json.Unmarshal(bodies[skip], &rec); err != nil {
		return nil, fmt.Errorf("build record of %s is damaged: %w", group, err)
	}
	return &rec, nil
}

// whyRun explains why a node with these key inputs is not cached.
func whyRun(prev *NodeRecord, in KeyInputs, key cache.Key, haveRecord bool) []string {
	switch {
	case !haveRecord:
		return []string{"never built"}
	case prev == nil:
		if in.Item != nil {
			return []string{"new item"}
		}
		return []string{"new stage"}
	case prev.Key == key && prev.State == StateFailed:
		return []string{"failed last time: " + firstLine(prev.Error)}
	case prev.Key == key:
		return []string{"same inputs as the last build, but the result is no longer in the store (gc, or a damaged blob)"}
	}
	return diffInputs(prev.Inputs, in)
}

// diffInputs lists which key inputs differ between a and b.
func diffInputs(a, b KeyInputs) []string {
	var out []string
	if a.Kind != b.Kind {
		out = append(out, fmt.Sprintf("kind changed: %s -> %s", a.Kind, b.Kind))
	}
	if a.Version != b.Version {
		out = append(out, fmt.Sprintf("kind %s version changed: %s -> %s", b.Kind, a.Version, b.Version))
	}
	out = append(out, diffParams(a.Params, b.Params)...)
	switch {
	case (a.Item == nil) != (b.Item == nil):
		out = append(out, "foreach item changed")
	case a.Item != nil && *a.Item != *b.Item:
		out = append(out, fmt.Sprintf("input item %s changed: %s -> %s", b.Item.Name, a.Item.Value.Short(), b.Item.Value.Short()))
	}
	for _, n := range unionKeys(a.Sections, b.Sections) {
		if a.Sections[n] != b.Sections[n] {
			out = append(out, fmt.Sprintf("recipe section %s changed", n))
		}
	}
	for _, n := range unionKeys(a.Assets, b.Assets) {
		if a.Assets[n] != b.Assets[n] {
			out = append(out, fmt.Sprintf("asset %s changed (its content is part of the key)", n))
		}
	}
	for _, d := range unionKeys(a.Inputs, b.Inputs) {
		if a.Inputs[d] != b.Inputs[d] {
			out = append(out, fmt.Sprintf("input stage %s changed (its items differ)", d))
		}
	}
	if len(out) == 0 {
		out = append(out, "key inputs are identical")
	}
	return out
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys[V any](a, b map[string]V) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, dup := a[k]; !dup {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func diffParams(a, b json.RawMessage) []string {
	if bytes.Equal(a, b) {
		return nil
	}
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return []string{"params changed"}
	}
	names := unionKeys(ma, mb)
	var out []string
	for _, k := range names {
		va, oka := ma[k]
		vb, okb := mb[k]
		switch {
		case !oka:
			out = append(out, fmt.Sprintf("param %s added: %s", k, short(vb)))
		case !okb:
			out = append(out, fmt.Sprintf("param %s removed (was %s)", k, short(va)))
		case !bytes.Equal(va, vb):
			out = append(out, fmt.Sprintf("param %s changed: %s -> %s", k, short(va), short(vb)))
		}
	}
	return out
}

func short(b json.RawMessage) string {
	s := string(b)
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// Explain writes why the node (or every node of the stage) called name
// is cached or would run: its key inputs now, and what changed against the
// last build; for a node that ran in the last build, also what had changed
// against the build before it.
func Explain(w io.Writer, r *Recipe, store *cache.Store, name string) error {
	plan, err := Plan(r, store)
	if err != nil {
		return err
	}
	found := false
	for _, e := range plan {
		if e.Node != name && e.Stage != name {
			continue
		}
		found = true
		fmt.Fprintf(w, "%s: %s\n", e.Node, e.Status)
		if e.Status == PlanWaits {
			for _, r := range e.Reasons {
				fmt.Fprintf(w, "  %s\n", r)
			}
			continue
		}
		fmt.Fprintf(w, "  key      %s\n", e.Key)
		fmt.Fprintf(w, "  kind     %s (version %s)\n", e.Inputs.Kind, e.Inputs.Version)
		fmt.Fprintf(w, "  params   %s\n", e.Inputs.Params)
		if e.Inputs.Item != nil {
			fmt.Fprintf(w, "  item     %s = %s\n", e.Inputs.Item.Name, e.Inputs.Item.Value)
		}
		deps := make([]string, 0, len(e.Inputs.Inputs))
		for d := range e.Inputs.Inputs {
			deps = append(deps, d)
		}
		sort.Strings(deps)
		for _, d := range deps {
			fmt.Fprintf(w, "  input    %s = items %s\n", d, e.Inputs.Inputs[d].Short())
		}
		switch {
		case e.Previous == nil:
			fmt.Fprintf(w, "  last build: no such node\n")
		case e.Previous.Key == e.Key:
			fmt.Fprintf(w, "  since the last build: nothing changed (it was %s there)\n", e.Previous.State)
			if e.Previous.State == StateRan {
				explainEarlier(w, store, r.Name, e)
			}
		default:
			fmt.Fprintf(w, "  since the last build:\n")
			for _, why := range diffInputs(e.Previous.Inputs, e.Inputs) {
				fmt.Fprintf(w, "    %s\n", why)
			}
		}
	}
	if !found {
		return BadInput("no node or stage %q in recipe %s (try `dsbuild plan %s`)", name, r.Path, r.Path)
	}
	return nil
}

// explainEarlier says why a node that ran in the last build ran: what
// differed from the build before that.
func explainEarlier(w io.Writer, store *cache.Store, group string, e PlanEntry) {
	older, err := lastRecord(store, group, 1)
	if err != nil || older == nil {
		fmt.Fprintf(w, "  it ran in the last build because it had never been built\n")
		return
	}
	for _, n := range older.Nodes {
		if n.ID == e.Node {
			fmt.Fprintf(w, "  it ran in the last build because, against the build before:\n")
			for _, why := range whyRun(&n, e.Inputs, e.Key, true) {
				fmt.Fprintf(w, "    %s\n", why)
			}
			return
		}
	}
	fmt.Fprintf(w, "  it ran in the last build because it was new then\n")
}

// noRecord is a context under which memo lookups are not recorded.
var noRecord = context.Background()
