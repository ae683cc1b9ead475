// Package patch owns dsbuild's unified diffs between workspace trees: Diff
// writes a git-style patch from one tree to another, Apply applies such a
// patch to a tree exactly, and Edit rewrites single paths of a tree. The diff
// is a small line-based Myers implementation of its own, deterministic: the
// same two trees always give the same bytes.
//
// Format: `diff --git a/p b/p` sections in sorted path order, with
// `new file mode`, `deleted file mode` and `old mode`/`new mode` headers,
// `--- a/p` / `+++ b/p` lines (/dev/null for a missing side), and hunks
// `@@ -l,n +l,n @@` with three lines of context, as git prints them
// ("\ No newline at end of file" included), so `git apply` accepts them.
// Symlinks are shown as git shows them: mode 120000, the target as content.
//
// Binary files (a NUL byte in the first 8000 bytes of either side, git's
// test) are written as git binary patches in literal form, which `git
// apply` and Apply both take (see binary.go); Apply refuses the
// content-less `Binary files a/p and b/p differ` form with an error naming
// the file. Renames are never detected (a rename is a deletion and an
// addition) and Apply rejects rename sections.
//
// The package imports only cache. It knows nothing of agents or tasks.
package patch

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
)

// Context is the number of unchanged lines shown around each change.
const Context = 3

// Git file modes as written in diff headers.
const (
	ModeFile    = "100644"
	ModeExec    = "100755"
	ModeSymlink = "120000"
)

// fileState is one path's content on one side of a diff.
type fileState struct {
	mode string // ModeFile, ModeExec or ModeSymlink
	data []byte
	dig  cache.Digest // blob digest of a file; zero for a symlink
}

func modeOf(e cache.TreeEntry) string {
	switch {
	case e.Type == cache.TypeSymlink:
		return ModeSymlink
	case e.Exec:
		return ModeExec
	default:
		return ModeFile
	}
}

// Diff returns the patch turning tree from into tree to, restricted to the
// given paths when any are given: a path ending in "/" selects everything
// under it, any other path selects that file and everything under it as a
// directory. Zero digests mean the empty tree. Identical trees give "".
func Diff(store *cache.Store, from, to cache.Digest, paths ...string) (string, error) {
	if from == to {
		return "", nil
	}
	a, err := listFiles(store, from)
	if err != nil {
		return "", fmt.Errorf("diff: reading tree %s: %w", from.Short(), err)
	}
	b, err := listFiles(store, to)
	if err != nil {
		return "", fmt.Errorf("diff: reading tree %s: %w", to.Short(), err)
	}
	names := map[string]bool{}
	for p := range a {
		names[p] = true
	}
	for p := range b {
		names[p] = true
	}
	sorted := make([]string, 0, len(names))
	for p := range names {
		if Selected(p, paths) {
			sorted = append(sorted, p)
		}
	}
	sort.Strings(sorted)
	var out strings.Builder
	for _, p := range sorted {
		ea, inA := a[p]
		eb, inB := b[p]
		if inA && inB && ea.Type == eb.Type && ea.Exec == eb.Exec && ea.Digest == eb.Digest && ea.Target == eb.Target {
			continue
		}
		var sa, sb *fileState
		if inA {
			if sa, err = load(store, ea); err != nil {
				return "", fmt.Errorf("diff: %s: %w", p, err)
			}
		}
		if inB {
			if sb, err = load(store, eb); err != nil {
				return "", fmt.Errorf("diff: %s: %w", p, err)
			}
		}
		if sa != nil && sb != nil && (sa.mode == ModeSymlink) != (sb.mode == ModeSymlink) {
			// A type change is a deletion followed by an addition, as in git.
			writeSection(&out, p, sa, nil)
			writeSection(&out, p, nil, sb)
			continue
		}
		writeSection(&out, p, sa, sb)
	}
	return out.String(), nil
}

func listFiles(store *cache.Store, d cache.Digest) (map[string]cache.TreeEntry, error) {
	if d.IsZero() {
		return map[string]cache.TreeEntry{}, nil
	}
	return store.Files(d)
}

func load(store *cache.Store, e cache.TreeEntry) (*fileState, error) {
	if e.Type == cache.TypeSymlink {
		return &fileState{mode: ModeSymlink, data: []byte(e.Target)}, nil
	}
	data, err := store.Get(e.Digest)
	if err != nil {
		return nil, err
	}
	return &fileState{mode: modeOf(e), data: data, dig: e.Digest}, nil
}

// Selected reports whether the slash-separated path p is chosen by
// prefixes: an entry ending in "/" selects everything under it, any other
// entry that path or everything below it, "" or "/" everything; no prefixes
// at all select everything.
func Selected(p string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, pre := range prefixes {
		pre = strings.TrimPrefix(pre, "./")
		switch {
		case pre == "" || pre == "/":
			return true
		case strings.HasSuffix(pre, "/"):
			if strings.HasPrefix(p, pre) {
				return true
			}
		case p == pre || strings.HasPrefix(p, pre+"/"):
			return true
		}
	}
	return false
}

// isBinary applies git's test: a NUL byte in the first 8000 bytes.
func isBinary(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0
}

func writeSection(out *strings.Builder, p string, a, b *fileState) {
	fmt.Fprintf(out, "diff --git a/%s b/%s\n", p, p)
	switch {
	case a == nil:
		fmt.Fprintf(out, "new file mode %s\n", b.mode)
	case b == nil:
		fmt.Fprintf(out, "deleted file mode %s\n", a.mode)
	case a.mode != b.mode:
		fmt.Fprintf(out, "old mode %s\nnew mode %s\n", a.mode, b.mode)
	}
	var da, db []byte
	oldName, newName := "a/"+p, "b/"+p
	if a != nil {
		da = a.data
	} else {
		oldName = "/dev/null"
	}
	if b != nil {
		db = b.data
	} else {
		newName = "/dev/null"
	}
	if bytes.Equal(da, db) {
		return // mode change only, or an empty file added or deleted
	}
	if isBinary(da) || isBinary(db) {
		writeBinary(out, a, b)
		return
	}
	fmt.Fprintf(out, "--- %s\n+++ %s\n", oldName, newName)
	writeHunks(out, diffLines(splitLines(da), splitLines(db)))
}

// splitLines splits b into lines, each keeping its "\n" except perhaps the
// last.
func splitLines(b []byte) []string {
	var lines []string
	s := string(b)
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i+1])
		s = s[i+1:]
	}
	return lines
}

// writeHunks prints the edit script as hunks with Context lines of context,
// joining changes separated by at most 2*Context unchanged lines.
func writeHunks(out *strings.Builder, ops []op) {
	// aPos[i], bPos[i]: lines of a and b before ops[i].
	aPos := make([]int, len(ops)+1)
	bPos := make([]int, len(ops)+1)
	for i, o := range ops {
		aPos[i+1], bPos[i+1] = aPos[i], bPos[i]
		if o.kind != opInsert {
			aPos[i+1]++
		}
		if o.kind != opDelete {
			bPos[i+1]++
		}
	}
	nextChange := func(from int) int {
		for i := from; i < len(ops); i++ {
			if ops[i].kind != opEqual {
				return i
			}
		}
		return -1
	}
	i := 0
	for {
		c := nextChange(i)
		if c < 0 {
			return
		}
		start := max(c-Context, i)
		last := c
		for {
			n := nextChange(last + 1)
			if n < 0 || n-last-1 > 2*Context {
				break
			}
			last = n
		}
		end := min(last+Context+1, len(ops))
		oldN, newN := aPos[end]-aPos[start], bPos[end]-bPos[start]
		fmt.Fprintf(out, "@@ -%s +%s @@\n", rangeText(aPos[start], oldN), rangeText(bPos[start], newN))
		for _, o := range ops[start:end] {
			out.WriteByte(byte(o.kind))
			out.WriteString(o.line)
			if !strings.HasSuffix(o.line, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		i = end
	}
}

// rangeText formats a hunk range the way git does: "l,n", "l" when n is 1,
// and the line before the hunk when n is 0.
func rangeText(before, n int) string {
	switch n {
	case 0:
		return strconv.Itoa(before) + ",0"
	case 1:
		return strconv.Itoa(before + 1)
	default:
		return strconv.Itoa(before+1) + "," + strconv.Itoa(n)
	}
}
