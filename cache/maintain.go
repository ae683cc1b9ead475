package cache

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
)

// A build record is the root of everything a build needs: gc keeps the
// blobs whose digests appear (as "sha256:<hex>" strings) in a kept record or
// in anything such a blob references, and the memo entries the record names.

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
	return s.writeAtomic(filepath.Join(s.root, recordsDir, group, name), raw)
}

// LatestRecord returns the body of the newest record in group, or ok=false.
func (s *Store) LatestRecord(group string) (body []byte, ok bool, err error) {
	if !validGroup(group) {
		return nil, false, fmt.Errorf("cache: invalid record group %q", group)
	}
	names, err := s.recordNames(group)
	if err != nil || len(names) == 0 {
		return nil, false, err
	}
	rf, err := s.readRecord(group, names[len(names)-1])
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

func (s *Store) readRecord(group, name string) (*recordFile, error) {
	raw, err := os.ReadFile(filepath.Join(s.root, recordsDir, group, name))
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
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

var refPattern = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// refs returns the digests mentioned in the blob d when it is JSON (trees,
// results, manifests); other blobs (file contents, layers) reference
// nothing.
func (s *Store) refs(d Digest) (certain, possible []Digest, err error) {
	r, err := s.Open(d)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	br := bufio.NewReader(r)
	first, err := br.Peek(1)
	if err == io.EOF {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if first[0] != '{' && first[0] != '[' {
		return nil, nil, nil
	}
	data, err := io.ReadAll(br)
	if err != nil {
		return nil, nil, err
	}
	if t, ok := asTree(data); ok {
		for _, e := range t.Entries {
			if !e.Digest.IsZero() {
				certain = append(certain, e.Digest)
			}
		}
		return certain, nil, nil
	}
	return nil, scanRefs(data), nil
}

// asTree parses data as a Tree blob: exactly one key, "entries", whose
// entries all have a name and a known type.
func asTree(data []byte) (*Tree, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil || len(top) != 1 || top["entries"] == nil {
		return nil, false
	}
	var t Tree
	if json.Unmarshal(data, &t) != nil {
		return nil, false
	}
	for _, e := range t.Entries {
		if e.Name == "" || (e.Type != TypeFile && e.Type != TypeDir && e.Type != TypeSymlink) {
			return nil, false
		}
	}
	return &t, true
}

func scanRefs(data []byte) []Digest {
	var out []Digest
	for _, m := range refPattern.FindAll(data, -1) {
		if d, err := ParseDigest(string(m)); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// reach marks every blob reachable from roots (which are certain
// references). It returns the missing blobs reached through certain
// references only: records, memo entries and trees name blobs for sure,
// while a "sha256:..." string inside other JSON (a model's reply, a
// lockfile) may be mere text. Everything reached is marked, so gc keeps
// too much rather than too little.
func (s *Store) reach(roots []Digest) (seen map[Digest]bool, missing []Digest) {
	seen = map[Digest]bool{}
	missing, _ = s.walkRefs(roots, seen, nil)
	return seen, missing
}

// walkRefs visits every blob reachable from roots that is in neither seen
// nor known, adding it to seen. It returns the blobs it could not read that
// were reached through certain references, and those reached only through
// possible ones.
func (s *Store) walkRefs(roots []Digest, seen, known map[Digest]bool) (certainMissing, possibleMissing []Digest) {
	type ref struct {
		d       Digest
		certain bool
	}
	stack := make([]ref, 0, len(roots))
	for _, d := range roots {
		stack = append(stack, ref{d, true})
	}
	missing := map[Digest]bool{} // digest -> reached through a certain reference
	for len(stack) > 0 {
		r := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c, ok := missing[r.d]; ok {
			missing[r.d] = c || r.certain
			continue
		}
		if seen[r.d] || known[r.d] {
			continue
		}
		seen[r.d] = true
		certain, possible, err := s.refs(r.d)
		if err != nil {
			missing[r.d] = r.certain
			continue
		}
		for _, d := range certain {
			stack = append(stack, ref{d, r.certain})
		}
		for _, d := range possible {
			stack = append(stack, ref{d, false})
		}
	}
	for d, c := range missing {
		if c {
			certainMissing = append(certainMissing, d)
		} else {
			possibleMissing = append(possibleMissing, d)
		}
	}
	sortDigests(certainMissing)
	sortDigests(possibleMissing)
	return certainMissing, possibleMissing
}

func sortDigests(ds []Digest) {
	sort.Slice(ds, func(i, j int) bool { return string(ds[i][:]) < string(ds[j][:]) })
}

// reachFrom walks from d, skipping blobs already known good in ok, and
// returns the missing blobs it reached (through certain references, then
// possible ones); when nothing was missing, every blob visited is added to
// ok.
func (s *Store) reachFrom(d Digest, ok map[Digest]bool) (certainMissing, possibleMissing []Digest) {
	seen := map[Digest]bool{}
	certainMissing, possibleMissing = s.walkRefs([]Digest{d}, seen, ok)
	if len(certainMissing) == 0 && len(possibleMissing) == 0 {
		for k := range seen {
			ok[k] = true
		}
	}
	return certainMissing, possibleMissing
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

// Problem is one thing Verify found wrong.
type Problem struct {
	What   string // "corrupt blob", "missing blob", "bad memo entry", "bad record"
	Name   string // the digest, key or record path
	Detail string
}

func (p Problem) String() string { return fmt.Sprintf("%s %s: %s", p.What, p.Name, p.Detail) }

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Blobs, MemoEntries, Records int
	Problems                    []Problem
}

// Verify reads every blob and checks it against its digest (moving corrupt
// ones aside), checks that every memo entry is well formed and names a
// present blob, and that everything a build record reaches is present.
func (s *Store) Verify(ctx context.Context, workers int) (*VerifyReport, error) {
	if workers < 1 {
		workers = 1
	}
	rep := &VerifyReport{}
	var mu sync.Mutex
	add := func(p Problem) { mu.Lock(); rep.Problems = append(rep.Problems, p); mu.Unlock() }

	jobs := make(chan Digest)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range jobs {
				r, err := s.Open(d)
				if err != nil {
					add(Problem{"corrupt blob", d.String(), err.Error()})
					continue
				}
				_, err = io.Copy(io.Discard, r)
				r.Close()
				if err != nil {
					var ce *CorruptError
					if errors.As(err, &ce) {
						err = errors.New(ce.Reason + "; moved to quarantine/")
					}
					add(Problem{"corrupt blob", d.String(), err.Error()})
				}
			}
		}()
	}
	err := s.forEachBlob(func(d Digest, _ string, _ int64) {
		rep.Blobs++
		select {
		case jobs <- d:
		case <-ctx.Done():
		}
	})
	close(jobs)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// A memo entry whose result is missing, or reaches a blob found corrupt
	// (now in quarantine/), would make a build trust work it cannot read
	// back: such entries are removed, so the next build redoes that work and
	// repairs the store. Other digests a JSON blob mentions but the store
	// lacks are left alone: "sha256:..." in a model's reply or a lockfile is
	// text, not a reference.
	quarantined := s.quarantined()
	reachable := map[Digest]bool{}
	err = s.forEachMemo(func(k Key, path string) {
		rep.MemoEntries++
		raw, err := os.ReadFile(path)
		if err != nil {
			add(Problem{"bad memo entry", k.String(), err.Error()})
			return
		}
		d, err := parseMemo(raw)
		if err != nil {
			add(Problem{"bad memo entry", k.String(), err.Error() + "; removed"})
			os.Remove(path)
			return
		}
		certain, possible := s.reachFrom(d, reachable)
		for _, m := range append(certain, possible...) {
			if slices.Contains(certain, m) || quarantined[m] {
				add(Problem{"bad memo entry", k.String(), "result " + d.String() + " reaches missing blob " + m.String() + "; removed, the next build redoes it"})
				os.Remove(path)
				break
			}
		}
	})
	if err != nil {
		return nil, err
	}

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
				add(Problem{"bad record", g + "/" + n, err.Error()})
				continue
			}
			certain, possible := s.walkRefs(scanRefs(rf.Body), map[Digest]bool{}, nil)
			for _, d := range append(certain, possible...) {
				if slices.Contains(certain, d) || quarantined[d] {
					add(Problem{"missing blob", d.String(), "reached from record " + g + "/" + n})
				}
			}
		}
	}
	sort.Slice(rep.Problems, func(i, j int) bool { return rep.Problems[i].String() < rep.Problems[j].String() })
	return rep, nil
}

// GCReport is the outcome of GC.
type GCReport struct {
	RecordsRemoved, MemoRemoved, BlobsRemoved int
	BytesFreed                                int64
}

// GC keeps the newest keep records of every group and removes older
// records, memo entries no kept record names, and blobs nothing kept
// reaches. It needs a store opened with OpenExclusive.
func (s *Store) GC(keep int) (*GCReport, error) {
	if !s.exclusive {
		return nil, fmt.Errorf("cache gc: store %s was opened without the exclusive lock; open it with OpenExclusive", s.root)
	}
	if keep < 1 {
		keep = 1
	}
	rep := &GCReport{}
	keys := map[Key]bool{}
	var roots []Digest
	groups, err := s.groups()
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		names, err := s.recordNames(g)
		if err != nil {
			return nil, err
		}
		// Newest first: the newest keep records stay, and so does the newest
		// complete one if they are all failed or interrupted builds.
		haveComplete := false
		for i := len(names) - 1; i >= 0; i-- {
			n := names[i]
			newest := i >= len(names)-keep
			if !newest && haveComplete {
				if err := os.Remove(filepath.Join(s.root, recordsDir, g, n)); err == nil {
					rep.RecordsRemoved++
				}
				continue
			}
			rf, err := s.readRecord(g, n)
			if err != nil {
				return nil, fmt.Errorf("cache gc: %w (fix or delete the record, then run gc again)", err)
			}
			if !newest && !rf.Complete {
				if err := os.Remove(filepath.Join(s.root, recordsDir, g, n)); err == nil {
					rep.RecordsRemoved++
				}
				continue
			}
			haveComplete = haveComplete || rf.Complete
			for _, k := range rf.Keep {
				keys[k] = true
			}
			roots = append(roots, scanRefs(rf.Body)...)
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
	live, _ := s.reach(roots)
	err = s.forEachBlob(func(d Digest, path string, size int64) {
		if !live[d] && os.Remove(path) == nil {
			rep.BlobsRemoved++
			rep.BytesFreed += size
		}
	})
	if err != nil {
		return nil, err
	}
	// Leftovers of killed processes.
	tmps, _ := os.ReadDir(filepath.Join(s.root, tmpDir))
	for _, t := range tmps {
		os.RemoveAll(filepath.Join(s.root, tmpDir, t.Name()))
	}
	return rep, nil
}

// quarantined returns the digests of the blobs moved to quarantine/.
func (s *Store) quarantined() map[Digest]bool {
	out := map[Digest]bool{}
	des, _ := os.ReadDir(filepath.Join(s.root, quarantineDir))
	for _, de := range des {
		if d, err := ParseDigest("sha256:" + de.Name()); err == nil {
			out[d] = true
		}
	}
	return out
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
// first.
func (s *Store) Records(group string, n int) ([][]byte, error) {
	if !validGroup(group) {
		return nil, fmt.Errorf("cache: invalid record group %q", group)
	}
	names, err := s.recordNames(group)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for i := len(names) - 1; i >= 0 && len(out) < n; i-- {
		rf, err := s.readRecord(group, names[i])
		if err != nil {
			return nil, err
		}
		out = append(out, rf.Body)
	}
	return out, nil
}
