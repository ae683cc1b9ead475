package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dsbuild/dsbuild/internal/reap"
)

// A build record is the root of everything a build needs: gc keeps the
// memo entries a kept record names, and the blobs that their results or the
// record's body refer to (see "What a reference is" in the package doc),
// with everything those blobs refer to in turn.

type recordFile struct {
	Keep []Key           `json:"keep"`
	Body json.RawMessage `json:"body"`
	// Complete is false for a build that failed or was interrupted: gc
	// keeps the newest complete record besides the newest ones, so an
	// interrupted build never costs the last good build its cache.
	Complete bool `json:"complete"`
}

var groupName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// validGroup reports whether group can name a directory under records/.
func validGroup(group string) bool {
	return groupName.MatchString(group) && group != "." && group != ".."
}

// PutRecord stores a build record in group (for example a recipe's name).
// body must be JSON; keep lists the memo keys the build depended on;
// complete says whether the build finished without failures.
func (s *Store) PutRecord(group string, body []byte, keep []Key, complete bool) error {
	if !validGroup(group) {
		return fmt.Errorf("cache: invalid record group %q", group)
	}
	raw, err := json.Marshal(recordFile{Keep: keep, Body: body, Complete: complete})
	if err != nil {
		return fmt.Errorf("cache: record: %w", err)
	}
	// Records sort by name, so the stamp must grow even if the clock was
	// stepped back or did not advance since the group's newest record.
	stamp := time.Now().UnixNano()
	names, err := s.recordNames(group)
	if err == nil && s.remote != nil {
		names, err = s.remoteRecordNames(group)
	}
	if err != nil {
		return err
	}
	if n := len(names); n > 0 {
		newest, _, _ := strings.Cut(names[n-1], "-")
		if last, err := strconv.ParseInt(newest, 10, 64); err == nil && last >= stamp {
			stamp = last + 1
		}
	}
	var nonce [4]byte
	rand.Read(nonce[:])
	name := fmt.Sprintf("%020d-%s.json", stamp, hex.EncodeToString(nonce[:]))
	if err := s.writeAtomic(filepath.Join(s.root, recordsDir, group, name), raw); err != nil {
		return err
	}
	if s.remote != nil {
		return s.putRecordRemote(group, name, raw)
	}
	return nil
}

// LatestRecord returns the body of the newest record in group, or ok=false.
// With a remote, records are the remote's.
func (s *Store) LatestRecord(group string) (body []byte, ok bool, err error) {
	if !validGroup(group) {
		return nil, false, fmt.Errorf("cache: invalid record group %q", group)
	}
	names, err := s.sharedRecordNames(group)
	if err != nil || len(names) == 0 {
		return nil, false, err
	}
	rf, err := s.readSharedRecord(group, names[len(names)-1])
	if err != nil {
		return nil, false, err
	}
	return rf.Body, true, nil
}

func (s *Store) recordNames(group string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(s.root, recordsDir, group))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var names []string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".json") && !strings.HasPrefix(de.Name(), ".") {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// sharedRecordNames lists group's records where every machine sees them:
// on the remote if there is one, else in the store's directory.
func (s *Store) sharedRecordNames(group string) ([]string, error) {
	if s.remote != nil {
		return s.remoteRecordNames(group)
	}
	return s.recordNames(group)
}

// readSharedRecord reads a record sharedRecordNames listed.
func (s *Store) readSharedRecord(group, name string) (*recordFile, error) {
	if s.remote != nil {
		return s.readRemoteRecord(group, name)
	}
	return s.readRecord(group, name)
}

func (s *Store) readRecord(group, name string) (*recordFile, error) {
	raw, err := os.ReadFile(filepath.Join(s.root, recordsDir, group, name))
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return parseRecord(group, name, raw)
}

func parseRecord(group, name string, raw []byte) (*recordFile, error) {
	var rf recordFile
	if err := json.Unmarshal(raw, &rf); err != nil {
		return nil, fmt.Errorf("cache: record %s/%s is damaged: %v", group, name, err)
	}
	return &rf, nil
}

func (s *Store) groups() ([]string, error) {
	des, err := os.ReadDir(filepath.Join(s.root, recordsDir))
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var gs []string
	for _, de := range des {
		if de.IsDir() {
			gs = append(gs, de.Name())
		}
	}
	return gs, nil
}

// forEachBlob calls fn for every blob file in the store.
func (s *Store) forEachBlob(fn func(d Digest, path string, size int64)) error {
	return s.forEachEntry(blobsDir, func(name, path string, size int64) {
		if d, err := ParseDigest("sha256:" + name); err == nil {
			fn(d, path, size)
		}
	})
}

func (s *Store) forEachMemo(fn func(k Key, path string)) error {
	return s.forEachEntry(memoDir, func(name, path string, _ int64) {
		if k, err := ParseKey(name); err == nil {
			fn(k, path)
		}
	})
}

func (s *Store) forEachEntry(sub string, fn func(name, path string, size int64)) error {
	base := filepath.Join(s.root, sub)
	shards, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() {
			continue
		}
		des, err := os.ReadDir(filepath.Join(base, sh.Name()))
		if err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		for _, de := range des {
			var size int64
			if fi, err := de.Info(); err == nil {
				size = fi.Size()
			}
			fn(de.Name(), filepath.Join(base, sh.Name(), de.Name()), size)
		}
	}
	return nil
}

// Problem is one thing Verify or Repair found wrong.
type Problem struct {
	// What is "corrupt blob", "unreadable blob", "bad memo entry", "missing
	// blob" (reached from a build record) or "bad record".
	What   string
	Name   string // the digest, key or record path
	Detail string
	// Action says what Repair did about it; empty from Verify, and for a
	// problem Repair leaves alone.
	Action string
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s %s: %s", p.What, p.Name, p.Detail)
	if p.Action != "" {
		s += " [" + p.Action + "]"
	}
	return s
}

// VerifyReport is the outcome of Verify or Repair.
type VerifyReport struct {
	Blobs, MemoEntries, Records int
	Problems                    []Problem
	// What Repair did: blobs moved to quarantine/ and memo entries removed.
	Quarantined, MemoRemoved int
	// Remote is the check of the store's remote (nil without one). Repair
	// leaves the remote as it is: a corrupt remote blob is moved aside by
	// the first build that reads it.
	Remote *VerifyReport
}

// Unrepaired counts the problems nothing was done about (all of them, after
// Verify).
func (r *VerifyReport) Unrepaired() int {
	n := 0
	if r.Remote != nil {
		n = r.Remote.Unrepaired()
	}
	for _, p := range r.Problems {
		if p.Action == "" {
			n++
		}
	}
	return n
}

// Verify checks the whole store and changes nothing in it: it reads every
// blob and checks it against its digest, checks that every memo entry is
// well formed and that its result reaches (see "What a reference is") only
// blobs that are present and intact, and that the memo entries every build
// record keeps do too. A record's body is not searched for digests: its
// roots are its kept memo entries. Verify needs only the shared lock, so it
// may run beside builds.
func (s *Store) Verify(ctx context.Context, workers int) (*VerifyReport, error) {
	return s.checkTiers(ctx, workers, false)
}

// checkTiers checks the store's directory and then its remote, if any.
func (s *Store) checkTiers(ctx context.Context, workers int, repair bool) (*VerifyReport, error) {
	rep, err := s.check(ctx, workers, repair)
	if err != nil || s.remote == nil {
		return rep, err
	}
	rep.Remote, err = s.checkRemote(ctx, workers)
	return rep, err
}

// Repair does what Verify does and then repairs what it can: it moves
// corrupt blobs to quarantine/ (so they read as missing and the next write
// of the same content restores them) and removes malformed memo entries and
// those whose result no longer reaches every blob (so the next build redoes
// that work). Build records that reach missing blobs are reported, not
// removed. It needs a store opened with OpenExclusive.
func (s *Store) Repair(ctx context.Context, workers int) (*VerifyReport, error) {
	if !s.exclusive {
		return nil, fmt.Errorf("cache verify --repair: store %s was opened without the exclusive lock; open it with OpenExclusive", s.root)
	}
	defer s.forgetComplete()
	return s.checkTiers(ctx, workers, true)
}

// blobCheck is what the first pass of check learnt about one blob.
type blobCheck struct {
	err  error // nil if present and intact
	refs blobRefs
}

// checker walks references over what check's first pass read, reading (and
// checking, without moving) only blobs that appeared since.
type checker struct {
	inspect func(d Digest, whole bool) (blobRefs, error) // reads without moving
	blobs   map[Digest]*blobCheck
	below   map[Digest][]Digest // node -> missing or corrupt blobs it reaches
}

func (c *checker) blob(d Digest) *blobCheck {
	if b, ok := c.blobs[d]; ok {
		return b
	}
	refs, err := c.inspect(d, true)
	b := &blobCheck{err: err, refs: refs}
	c.blobs[d] = b
	return b
}

// node returns the blobs reachable from d, d included, that are absent,
// corrupt or unreadable.
func (c *checker) node(d Digest) []Digest {
	if m, ok := c.below[d]; ok {
		return m
	}
	c.below[d] = nil // content addressing rules out cycles; this guards anyway
	b := c.blob(d)
	if b.err != nil {
		c.below[d] = []Digest{d}
		return c.below[d]
	}
	var out []Digest
	fresh := false // out is this node's own list, not a child's
	for _, l := range b.refs.leaves {
		if c.blob(l).err != nil {
			out = append(out, l)
			fresh = true
		}
	}
	for _, n := range b.refs.nodes {
		m := c.node(n)
		switch {
		case len(m) == 0:
		case out == nil:
			out = m
		default:
			if !fresh {
				out, fresh = slices.Clone(out), true
			}
			out = append(out, m...)
		}
	}
	if fresh {
		sortDigests(out)
		out = slices.Compact(out)
	}
	// Clipped, so that a caller appending to a shared list copies it.
	c.below[d] = slices.Clip(out)
	return c.below[d]
}

func sortDigests(ds []Digest) {
	slices.SortFunc(ds, func(a, b Digest) int { return bytes.Compare(a[:], b[:]) })
}

// describeMissing names a few of the blobs in missing.
func describeMissing(missing []Digest) string {
	if len(missing) == 1 {
		return "missing or corrupt blob " + missing[0].String()
	}
	var names []string
	for _, d := range missing[:min(3, len(missing))] {
		names = append(names, d.String())
	}
	s := fmt.Sprintf("%d missing or corrupt blobs: %s", len(missing), strings.Join(names, ", "))
	if len(missing) > 3 {
		s += ", ..."
	}
	return s
}

// memoResult is what check found in one memo entry.
type memoResult struct {
	d   Digest
	bad bool // unreadable or malformed
}

func (s *Store) check(ctx context.Context, workers int, repair bool) (*VerifyReport, error) {
	if workers < 1 {
		workers = 1
	}
	rep := &VerifyReport{}
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }

	// Pass 1: read and check every blob, noting its references.
	var listed []Digest
	if err := s.forEachBlob(func(d Digest, _ string, _ int64) { listed = append(listed, d) }); err != nil {
		return nil, err
	}
	rep.Blobs = len(listed)
	results, err := inspectAll(ctx, workers, listed, func(d Digest) (blobRefs, error) { return s.inspect(d, true, false) })
	if err != nil {
		return nil, err
	}
	c := &checker{
		inspect: func(d Digest, whole bool) (blobRefs, error) {
			refs, err := s.inspect(d, whole, false)
			if s.remote != nil && errors.Is(err, ErrMissing) {
				// The directory is a cache of the remote: what it lacks
				// is fine if the remote has it intact.
				return s.remoteInspect(ctx, d, whole)
			}
			return refs, err
		},
		blobs: make(map[Digest]*blobCheck, len(listed)), below: map[Digest][]Digest{},
	}
	for i, d := range listed {
		r := &results[i]
		c.blobs[d] = r
		var bd *blobDamage
		switch {
		case r.err == nil, errors.Is(r.err, ErrMissing):
			// Gone since it was listed (a build moved it aside): it reads
			// as missing wherever it is reached.
		case errors.As(r.err, &bd):
			p := Problem{What: "corrupt blob", Name: d.String(), Detail: bd.Reason}
			if repair {
				if err := os.Rename(s.blobPath(d), filepath.Join(s.root, quarantineDir, d.Hex())); err == nil {
					p.Action = "moved to quarantine/"
					rep.Quarantined++
				} else {
					p.Detail += "; could not move it: " + err.Error()
				}
			}
			add(p)
		default:
			add(Problem{What: "unreadable blob", Name: d.String(), Detail: r.err.Error()})
		}
	}

	// Pass 2: memo entries must be well formed, and their results must
	// reach only blobs that are present and intact.
	memo := map[Key]memoResult{}
	err = s.forEachMemo(func(k Key, path string) {
		rep.MemoEntries++
		raw, err := os.ReadFile(path)
		if err != nil {
			memo[k] = memoResult{bad: true}
			add(Problem{What: "bad memo entry", Name: k.String(), Detail: err.Error()})
			return
		}
		d, err := parseMemo(raw)
		if err != nil {
			memo[k] = memoResult{bad: true}
			p := Problem{What: "bad memo entry", Name: k.String(), Detail: err.Error()}
			if repair {
				p.Action = s.removeMemo(path, rep)
			}
			add(p)
			return
		}
		memo[k] = memoResult{d: d}
		if missing := c.node(d); len(missing) > 0 {
			detail := "result " + d.String() + " reaches " + describeMissing(missing)
			if len(missing) == 1 && missing[0] == d {
				detail = "result " + d.String() + " is missing or corrupt"
			}
			p := Problem{What: "bad memo entry", Name: k.String(), Detail: detail}
			if repair {
				p.Action = s.removeMemo(path, rep)
			}
			add(p)
		}
	})
	if err != nil {
		return nil, err
	}

	// Pass 3: every record's kept memo entries (their results and what
	// those reach). Entries removed above are reported here as well, as
	// they were found.
	groups, err := s.groups()
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		names, err := s.recordNames(g)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			rep.Records++
			rf, err := s.readRecord(g, n)
			if err != nil {
				add(Problem{What: "bad record", Name: g + "/" + n, Detail: err.Error()})
				continue
			}
			via := map[Digest]Key{}
			var order []Digest
			for _, k := range rf.Keep {
				m, ok := memo[k]
				if !ok {
					m = s.readMemoResult(k) // written since pass 2, or absent
				}
				if m.bad || m.d.IsZero() {
					continue // a kept key without a usable entry is redone by the next build
				}
				for _, d := range c.node(m.d) {
					if _, seen := via[d]; !seen {
						via[d] = k
						order = append(order, d)
					}
				}
			}
			sortDigests(order)
			for _, d := range order {
				p := Problem{What: "missing blob", Name: d.String(), Detail: "reached from record " + g + "/" + n + " through memo entry " + via[d].String()}
				if repair {
					p.Action = "its memo entries were removed; the next build redoes that work"
				}
				add(p)
			}
		}
	}
	sort.Slice(rep.Problems, func(i, j int) bool { return rep.Problems[i].String() < rep.Problems[j].String() })
	return rep, nil
}

// readMemoResult reads k's memo entry; a zero digest means there is none.
func (s *Store) readMemoResult(k Key) memoResult {
	raw, err := os.ReadFile(s.memoPath(k))
	if errors.Is(err, fs.ErrNotExist) {
		return memoResult{}
	}
	if err != nil {
		return memoResult{bad: true}
	}
	d, err := parseMemo(raw)
	if err != nil {
		return memoResult{bad: true}
	}
	return memoResult{d: d}
}

func (s *Store) removeMemo(path string, rep *VerifyReport) string {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	rep.MemoRemoved++
	return "removed; the next build redoes that work"
}

// GCReport is the outcome of GC.
type GCReport struct {
	RecordsRemoved, MemoRemoved, BlobsRemoved int
	BytesFreed                                int64
	// Remote is what GC removed from the store's remote; nil without one.
	Remote *GCReport
}

// keptRecords applies gc's rule to one group's records, names sorted
// oldest first: the newest keep records stay, and so does the newest
// complete one if they are all failed or interrupted builds. It calls
// remove for each of the others and returns the kept ones.
func keptRecords(names []string, keep int, read func(string) (*recordFile, error), remove func(string)) ([]*recordFile, error) {
	var kept []*recordFile
	haveComplete := false
	for i := len(names) - 1; i >= 0; i-- {
		n := names[i]
		newest := i >= len(names)-keep
		if !newest && haveComplete {
			remove(n)
			continue
		}
		rf, err := read(n)
		if err != nil {
			return nil, fmt.Errorf("cache gc: %w (fix or delete the record, then run gc again)", err)
		}
		if !newest && !rf.Complete {
			remove(n)
			continue
		}
		haveComplete = haveComplete || rf.Complete
		kept = append(kept, rf)
	}
	return kept, nil
}

// GC keeps the newest keep records of every group and removes older
// records, memo entries no kept record names, and blobs nothing kept
// reaches. It needs a store opened with OpenExclusive. With a remote it
// then does the same on the remote, by the remote's records, sparing what
// is younger than the grace period (see DefaultRemoteGrace).
func (s *Store) GC(keep int) (*GCReport, error) {
	if !s.exclusive {
		return nil, fmt.Errorf("cache gc: store %s was opened without the exclusive lock; open it with OpenExclusive", s.root)
	}
	if keep < 1 {
		keep = 1
	}
	rep := &GCReport{}
	keys := map[Key]bool{}
	var roots, leaves []Digest
	groups, err := s.groups()
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		names, err := s.recordNames(g)
		if err != nil {
			return nil, err
		}
		kept, err := keptRecords(names, keep,
			func(n string) (*recordFile, error) { return s.readRecord(g, n) },
			func(n string) {
				if err := os.Remove(filepath.Join(s.root, recordsDir, g, n)); err == nil {
					rep.RecordsRemoved++
				}
			})
		if err != nil {
			return nil, err
		}
		for _, rf := range kept {
			for _, k := range rf.Keep {
				keys[k] = true
			}
			// The body is JSON: the digests it refers to by the one rule
			// (the recipe's text, results of work not memoised) stay too.
			body := refsOf(rf.Body)
			roots = append(roots, body.nodes...)
			leaves = append(leaves, body.leaves...)
		}
	}
	err = s.forEachMemo(func(k Key, path string) {
		if !keys[k] {
			if os.Remove(path) == nil {
				rep.MemoRemoved++
			}
			return
		}
		if raw, err := os.ReadFile(path); err == nil {
			if d, err := parseMemo(raw); err == nil {
				roots = append(roots, d)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer s.forgetComplete()
	live := reachable(func(d Digest) (blobRefs, error) { return s.inspect(d, false, false) }, roots, leaves)
	err = s.forEachBlob(func(d Digest, path string, size int64) {
		if !live[d] && os.Remove(path) == nil {
			rep.BlobsRemoved++
			rep.BytesFreed += size
		}
	})
	if err != nil {
		return nil, err
	}
	// Leftovers of killed processes: no other process has the store open.
	// A killed mmdebstrap's work directory may hold a chroot with proc,
	// sysfs or bind mounts of the host's /dev below it: reap.RemoveAll
	// detaches them first and never removes anything through a mount.
	tmps, _ := os.ReadDir(filepath.Join(s.root, tmpDir))
	for _, t := range tmps {
		reap.RemoveAll(filepath.Join(s.root, tmpDir, t.Name()))
	}
	if s.remote != nil {
		if rep.Remote, err = s.gcRemote(context.Background(), keep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// Stats describes the store's contents.
type Stats struct {
	Root             string
	Blobs            int
	BlobBytes        int64 // compressed, on disk
	MemoEntries      int
	Records          int
	QuarantinedBlobs int
}

// Stats counts what the store holds.
func (s *Store) Stats() (*Stats, error) {
	st := &Stats{Root: s.root}
	if err := s.forEachBlob(func(_ Digest, _ string, size int64) { st.Blobs++; st.BlobBytes += size }); err != nil {
		return nil, err
	}
	if err := s.forEachMemo(func(Key, string) { st.MemoEntries++ }); err != nil {
		return nil, err
	}
	groups, err := s.groups()
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		names, _ := s.recordNames(g)
		st.Records += len(names)
	}
	q, _ := os.ReadDir(filepath.Join(s.root, quarantineDir))
	st.QuarantinedBlobs = len(q)
	return st, nil
}

// Records returns the bodies of up to n newest records of group, newest
// first. With a remote, records are the remote's.
func (s *Store) Records(group string, n int) ([][]byte, error) {
	if !validGroup(group) {
		return nil, fmt.Errorf("cache: invalid record group %q", group)
	}
	names, err := s.sharedRecordNames(group)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for i := len(names) - 1; i >= 0 && len(out) < n; i-- {
		rf, err := s.readSharedRecord(group, names[i])
		if err != nil {
			return nil, err
		}
		out = append(out, rf.Body)
	}
	return out, nil
}

// inspectAll runs inspect on every digest of listed, workers at a time, and
// returns the results in listed's order; it stops early, with ctx's error,
// when ctx is done.
func inspectAll(ctx context.Context, workers int, listed []Digest, inspect func(Digest) (blobRefs, error)) ([]blobCheck, error) {
	results := make([]blobCheck, len(listed))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				results[i].refs, results[i].err = inspect(listed[i])
			}
		}()
	}
feed:
	for i := range listed {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return results, ctx.Err()
}
