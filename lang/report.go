package lang

import (
	"sort"
	"strings"
)

// sandboxWorkdir is where the sandbox mounts a repository; runners that
// print absolute paths print them below it, and report parsers strip it.
const sandboxWorkdir = "/testbed"

// statusRank orders statuses so that the worst report of a test wins when a
// runner reports it twice (a Rust doc test id shared by two examples, a
// test that passed and then crashed its process).
var statusRank = map[string]int{StatusPassed: 1, StatusSkipped: 2, StatusFailed: 3, StatusError: 4}

// reportBuilder collects a Report's statuses and collection errors.
type reportBuilder struct {
	status  map[string]string
	errors  map[string]bool
	started map[string]bool
}

func newReportBuilder() *reportBuilder {
	return &reportBuilder{status: map[string]string{}, errors: map[string]bool{}, started: map[string]bool{}}
}

// set records st for id unless a worse status is already recorded.
func (b *reportBuilder) set(id, st string) {
	if old, ok := b.status[id]; !ok || statusRank[st] > statusRank[old] {
		b.status[id] = st
	}
}

// start records that id began running.
func (b *reportBuilder) start(id string) { b.started[id] = true }

// collectionError records that name's tests could not be loaded.
func (b *reportBuilder) collectionError(name string) { b.errors[name] = true }

// unfinishedFailed marks every test that started and has no result as
// failed: its process died under it (a crash, an abort, a timeout).
func (b *reportBuilder) unfinishedFailed() {
	for id := range b.started {
		if _, ok := b.status[id]; !ok {
			b.status[id] = StatusFailed
		}
	}
}

func (b *reportBuilder) report() Report {
	errs := make([]string, 0, len(b.errors))
	for e := range b.errors {
		errs = append(errs, e)
	}
	sort.Strings(errs)
	if len(errs) == 0 {
		errs = nil
	}
	return Report{Status: b.status, CollectionErrors: errs}
}

// quoteSh quotes s for sh so that it reads as one word.
func quoteSh(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// joinSh quotes each word and joins them with spaces.
func joinSh(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = quoteSh(w)
	}
	return strings.Join(q, " ")
}

// relToWorkdir returns p relative to sandboxWorkdir when it is below it, else p
// without a leading "./".
func relToWorkdir(p string) string {
	if r, ok := strings.CutPrefix(p, sandboxWorkdir+"/"); ok {
		return r
	}
	return strings.TrimPrefix(p, "./")
}

// splitID splits a test id "<unit>::<name>" at its first "::".
func splitID(id string) (unit, name string, ok bool) {
	return strings.Cut(id, "::")
}

// sortedUnique sorts xs and drops repeats.
func sortedUnique(xs []string) []string {
	sort.Strings(xs)
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// hasFile reports whether files (sorted or not) contains p.
func hasFile(files []string, p string) bool {
	for _, f := range files {
		if f == p {
			return true
		}
	}
	return false
}
