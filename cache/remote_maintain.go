package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"
)

// remoteInspect reads the remote blob d and returns its references, as
// inspect does for a local one, leaving it where it is: a blob that does
// not match d is a *blobDamage, an absent one wraps ErrMissing.
func (s *Store) remoteInspect(ctx context.Context, d Digest, whole bool) (blobRefs, error) {
	name := blobObject(d)
	o, err := s.remote.r.Stat(ctx, name)
	if err == nil {
		rc, gerr := s.remote.r.Get(ctx, name)
		if gerr == nil {
			defer rc.Close()
			return inspectReader(d, rc, o.Size, whole, func(reason string) error {
				return &blobDamage{Digest: d, Reason: reason}
			})
		}
		err = gerr
	}
	if errors.Is(err, fs.ErrNotExist) {
		return blobRefs{}, fmt.Errorf("cache: %s: %w", d, ErrMissing)
	}
	return blobRefs{}, s.remoteErr("reading blob "+d.String(), err)
}

// listRemote lists the remote objects under prefix (which ends in "/") by
// their names below it.
func (s *Store) listRemote(ctx context.Context, prefix string) ([]RemoteObject, error) {
	var out []RemoteObject
	err := s.remote.r.List(ctx, prefix, func(o RemoteObject) error {
		o.Name = strings.TrimPrefix(o.Name, prefix)
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, s.remoteErr("listing "+prefix, err)
	}
	return out, nil
}

// checkRemote is Verify for the remote: every blob read whole and checked
// against its digest, every memo entry well formed and reaching only
// intact blobs, every record's kept entries likewise. It changes nothing.
func (s *Store) checkRemote(ctx context.Context, workers int) (*VerifyReport, error) {
	if workers < 1 {
		workers = 1
	}
	rep := &VerifyReport{}
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }
	where := " (on " + s.remote.r.String() + ")"

	objs, err := s.listRemote(ctx, "blobs/")
	if err != nil {
		return nil, err
	}
	var listed []Digest
	for _, o := range objs {
		if d, err := ParseDigest("sha256:" + o.Name); err == nil {
			listed = append(listed, d)
		}
	}
	rep.Blobs = len(listed)
	results, err := inspectAll(ctx, workers, listed, func(d Digest) (blobRefs, error) { return s.remoteInspect(ctx, d, true) })
	if err != nil {
		return nil, err
	}
	c := &checker{
		inspect: func(d Digest, whole bool) (blobRefs, error) { return s.remoteInspect(ctx, d, whole) },
		blobs:   make(map[Digest]*blobCheck, len(listed)), below: map[Digest][]Digest{},
	}
	for i, d := range listed {
		r := &results[i]
		c.blobs[d] = r
		var bd *blobDamage
		switch {
		case r.err == nil, errors.Is(r.err, ErrMissing):
		case errors.As(r.err, &bd):
			add(Problem{What: "corrupt blob", Name: d.String(), Detail: bd.Reason + where})
		default:
			return nil, r.err // the remote cannot be read: no report is better than a wrong one
		}
	}

	memo := map[Key]memoResult{}
	readMemo := func(k Key) memoResult {
		raw, err := s.readRemote(ctx, memoObject(k))
		if err != nil {
			return memoResult{bad: !errors.Is(err, fs.ErrNotExist)}
		}
		d, err := parseMemo(raw)
		if err != nil {
			return memoResult{bad: true}
		}
		return memoResult{d: d}
	}
	objs, err = s.listRemote(ctx, "memo/")
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		k, err := ParseKey(o.Name)
		if err != nil {
			continue
		}
		rep.MemoEntries++
		m := readMemo(k)
		memo[k] = m
		if m.bad {
			add(Problem{What: "bad memo entry", Name: k.String(), Detail: "malformed or unreadable" + where})
			continue
		}
		if m.d.IsZero() {
			continue // removed since it was listed
		}
		if missing := c.node(m.d); len(missing) > 0 {
			add(Problem{What: "bad memo entry", Name: k.String(), Detail: "result " + m.d.String() + " reaches " + describeMissing(missing) + where})
		}
	}

	recs, err := s.remoteRecords(ctx, "")
	if err != nil {
		return nil, err
	}
	for g, names := range recs {
		for _, o := range names {
			rep.Records++
			rf, err := s.readRemoteRecord(g, o.Name)
			if err != nil {
				add(Problem{What: "bad record", Name: g + "/" + o.Name, Detail: err.Error()})
				continue
			}
			for _, k := range rf.Keep {
				m, ok := memo[k]
				if !ok {
					m = readMemo(k)
				}
				if m.bad || m.d.IsZero() {
					continue
				}
				for _, d := range c.node(m.d) {
					add(Problem{What: "missing blob", Name: d.String(), Detail: "reached from record " + g + "/" + o.Name + " through memo entry " + k.String() + where})
				}
			}
		}
	}
	sort.Slice(rep.Problems, func(i, j int) bool { return rep.Problems[i].String() < rep.Problems[j].String() })
	return rep, nil
}

// gcRemote is GC for the remote, by the remote's records. Records beyond
// the newest keep of a group go at once (a newer record exists); memo
// entries no kept record names, and blobs nothing kept reaches, go only
// once they are older than the grace period, and a young memo entry's
// result is kept with everything it reaches: another machine may be in
// the middle of a build whose record does not exist yet (see
// DefaultRemoteGrace).
func (s *Store) gcRemote(ctx context.Context, keep int) (*GCReport, error) {
	rep := &GCReport{}
	cutoff := time.Now().Add(-s.remote.grace)
	recs, err := s.remoteRecords(ctx, "")
	if err != nil {
		return nil, err
	}
	keys := map[Key]bool{}
	var roots, leaves []Digest
	for g, objs := range recs {
		names := make([]string, len(objs))
		for i, o := range objs {
			names[i] = o.Name
		}
		kept, err := keptRecords(names, keep,
			func(n string) (*recordFile, error) { return s.readRemoteRecord(g, n) },
			func(n string) {
				if s.remote.r.Delete(ctx, recordObject(g, n)) == nil {
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
			body := refsOf(rf.Body)
			roots = append(roots, body.nodes...)
			leaves = append(leaves, body.leaves...)
		}
	}
	memo, err := s.listRemote(ctx, "memo/")
	if err != nil {
		return nil, err
	}
	for _, o := range memo {
		k, err := ParseKey(o.Name)
		if err != nil {
			continue
		}
		if !keys[k] && o.Modified.Before(cutoff) {
			if s.remote.r.Delete(ctx, memoObject(k)) == nil {
				rep.MemoRemoved++
			}
			continue
		}
		if raw, err := s.readRemote(ctx, memoObject(k)); err == nil {
			if d, err := parseMemo(raw); err == nil {
				roots = append(roots, d)
			}
		}
	}
	// A blob that cannot be read is kept but not followed; if the remote
	// could not be read at all, nothing is deleted.
	var readErr error
	live := reachable(func(d Digest) (blobRefs, error) {
		refs, err := s.remoteInspect(ctx, d, false)
		if err != nil && !unusable(err) && readErr == nil {
			readErr = err
		}
		return refs, err
	}, roots, leaves)
	if readErr != nil {
		return nil, fmt.Errorf("cache gc: %w; no remote blob was removed", readErr)
	}
	blobs, err := s.listRemote(ctx, "blobs/")
	if err != nil {
		return nil, err
	}
	for _, o := range blobs {
		d, err := ParseDigest("sha256:" + o.Name)
		if err != nil || live[d] || !o.Modified.After(time.Time{}) || !o.Modified.Before(cutoff) {
			continue
		}
		if s.remote.r.Delete(ctx, blobObject(d)) == nil {
			s.remote.onRemote.Delete(d)
			rep.BlobsRemoved++
			rep.BytesFreed += o.Size
		}
	}
	return rep, nil
}
