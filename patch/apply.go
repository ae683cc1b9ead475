package patch

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
)

// section is one `diff --git` part of a patch.
type section struct {
	path             string
	line             int // 1-based line of the "diff --git" header
	newMode, delMode string
	oldMode, modeTo  string
	oldPath, newPath string // from ---/+++ ("" when absent)
	binary           bool   // "Binary files ... differ": no content
	literal          []byte // the new content of a "GIT binary patch"
	hasLiteral       bool
	oldHash          string // the old side's blob hash from the index line
	hunks            []hunk
}

type hunk struct {
	header           string
	line             int
	oldStart, oldLen int
	newStart, newLen int
	old, new         []string // lines with their "\n" (none on a last line without one)
}

// Apply applies a patch in the format Diff writes to tree and returns the
// new tree. It is exact: every hunk's context and deleted lines must match
// the file at the stated line numbers (no fuzz, no offsets), a new file must
// not exist yet, and a deleted file must be deleted entirely. Errors name the
// file and the hunk. A binary patch (literal form) replaces the whole file;
// "Binary files ... differ" sections, which carry no content, and rename
// sections are refused.
func Apply(store *cache.Store, tree cache.Digest, diff string) (cache.Digest, error) {
	secs, err := parse(diff)
	if err != nil {
		return cache.Digest{}, err
	}
	if len(secs) == 0 {
		if tree.IsZero() {
			return store.EmptyTree()
		}
		return tree, nil
	}
	files, err := listFiles(store, tree)
	if err != nil {
		return cache.Digest{}, fmt.Errorf("apply: reading tree %s: %w", tree.Short(), err)
	}
	// state holds each touched path's current content; nil means absent.
	state := map[string]*fileState{}
	get := func(p string) (*fileState, error) {
		if s, ok := state[p]; ok {
			return s, nil
		}
		e, ok := files[p]
		if !ok {
			return nil, nil
		}
		return load(store, e)
	}
	for _, s := range secs {
		if s.binary {
			return cache.Digest{}, fmt.Errorf("apply: %s (patch line %d): binary files cannot be patched", s.path, s.line)
		}
		cur, err := get(s.path)
		if err != nil {
			return cache.Digest{}, fmt.Errorf("apply: %s: %w", s.path, err)
		}
		if s.hasLiteral {
			if len(s.hunks) > 0 {
				return cache.Digest{}, fmt.Errorf("apply: %s (patch line %d): a binary patch cannot also have text hunks", s.path, s.line)
			}
			if cur != nil && s.oldHash != "" && s.oldHash != gitBlobHash(cur.data) {
				return cache.Digest{}, fmt.Errorf("apply: %s (patch line %d): binary patch is for blob %s, the file is blob %s", s.path, s.line, s.oldHash, gitBlobHash(cur.data))
			}
		}
		switch {
		case s.newMode != "":
			if cur != nil {
				return cache.Digest{}, fmt.Errorf("apply: %s (patch line %d): new file already exists", s.path, s.line)
			}
			data, err := applyHunks(s, nil)
			if err != nil {
				return cache.Digest{}, err
			}
			state[s.path] = &fileState{mode: s.newMode, data: data}
		case s.delMode != "":
			if cur == nil {
				return cache.Digest{}, fmt.Errorf("apply: %s (patch line %d): file to delete does not exist", s.path, s.line)
			}
			data, err := applyHunks(s, cur.data)
			if err != nil {
				return cache.Digest{}, err
			}
			if len(data) != 0 {
				return cache.Digest{}, fmt.Errorf("apply: %s (patch line %d): deletion does not remove the whole file (%d bytes would remain)", s.path, s.line, len(data))
			}
			state[s.path] = nil
		default:
			if cur == nil {
				return cache.Digest{}, fmt.Errorf("apply: %s (patch line %d): file to patch does not exist", s.path, s.line)
			}
			mode := cur.mode
			if s.oldMode != "" {
				if s.oldMode != cur.mode {
					return cache.Digest{}, fmt.Errorf("apply: %s (patch line %d): old mode %s does not match the file's mode %s", s.path, s.line, s.oldMode, cur.mode)
				}
				mode = s.modeTo
			}
			data, err := applyHunks(s, cur.data)
			if err != nil {
				return cache.Digest{}, err
			}
			state[s.path] = &fileState{mode: mode, data: data}
		}
	}
	changes := map[string]*cache.TreeEntry{}
	for p, s := range state {
		if s == nil {
			changes[p] = nil
			continue
		}
		if s.mode == ModeSymlink {
			changes[p] = &cache.TreeEntry{Type: cache.TypeSymlink, Target: string(s.data)}
			continue
		}
		d, err := store.Put(s.data)
		if err != nil {
			return cache.Digest{}, fmt.Errorf("apply: storing %s: %w", p, err)
		}
		changes[p] = &cache.TreeEntry{Type: cache.TypeFile, Exec: s.mode == ModeExec, Size: int64(len(s.data)), Digest: d}
	}
	return Edit(store, tree, changes)
}

func applyHunks(s section, data []byte) ([]byte, error) {
	if s.hasLiteral {
		return s.literal, nil
	}
	lines := splitLines(data)
	var out []string
	pos := 0
	for i, h := range s.hunks {
		at := h.oldStart - 1
		if h.oldLen == 0 {
			at = h.oldStart
		}
		if at < pos || at+h.oldLen > len(lines) {
			return nil, fmt.Errorf("apply: %s: hunk %d %s (patch line %d) does not apply: it needs lines %d-%d but the file has %d lines%s",
				s.path, i+1, h.header, h.line, at+1, at+h.oldLen, len(lines), overlapNote(at < pos))
		}
		for j, want := range h.old {
			if got := lines[at+j]; got != want {
				return nil, fmt.Errorf("apply: %s: hunk %d %s (patch line %d) does not apply: line %d is %q, the patch expects %q",
					s.path, i+1, h.header, h.line, at+j+1, got, want)
			}
		}
		out = append(out, lines[pos:at]...)
		out = append(out, h.new...)
		pos = at + h.oldLen
	}
	out = append(out, lines[pos:]...)
	return []byte(strings.Join(out, "")), nil
}

func overlapNote(overlap bool) string {
	if overlap {
		return " (hunks overlap or are out of order)"
	}
	return ""
}

func parse(diff string) ([]section, error) {
	lines := strings.Split(diff, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var secs []section
	var cur *section
	bad := func(i int, format string, args ...any) error {
		return fmt.Errorf("apply: patch line %d: %s", i+1, fmt.Sprintf(format, args...))
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "diff --git ") {
			p, err := gitHeaderPath(strings.TrimPrefix(l, "diff --git "))
			if err != nil {
				return nil, bad(i, "%v", err)
			}
			secs = append(secs, section{path: p, line: i + 1})
			cur = &secs[len(secs)-1]
			continue
		}
		if cur == nil {
			if strings.TrimSpace(l) == "" {
				continue
			}
			return nil, bad(i, "expected a \"diff --git\" header, got %q", l)
		}
		switch {
		case strings.HasPrefix(l, "new file mode "):
			cur.newMode = strings.TrimPrefix(l, "new file mode ")
			if err := checkMode(cur.newMode); err != nil {
				return nil, bad(i, "%v", err)
			}
		case strings.HasPrefix(l, "deleted file mode "):
			cur.delMode = strings.TrimPrefix(l, "deleted file mode ")
			if err := checkMode(cur.delMode); err != nil {
				return nil, bad(i, "%v", err)
			}
		case strings.HasPrefix(l, "old mode "):
			cur.oldMode = strings.TrimPrefix(l, "old mode ")
			if err := checkMode(cur.oldMode); err != nil {
				return nil, bad(i, "%v", err)
			}
		case strings.HasPrefix(l, "new mode "):
			cur.modeTo = strings.TrimPrefix(l, "new mode ")
			if err := checkMode(cur.modeTo); err != nil {
				return nil, bad(i, "%v", err)
			}
		case strings.HasPrefix(l, "index "):
			if h, _, ok := strings.Cut(strings.TrimPrefix(l, "index "), ".."); ok && len(h) == len(nullHash) && h != nullHash {
				cur.oldHash = h
			}
		case strings.HasPrefix(l, "similarity index"), strings.HasPrefix(l, "rename "), strings.HasPrefix(l, "copy "):
			return nil, bad(i, "%s: renames and copies are not supported", cur.path)
		case strings.HasPrefix(l, "Binary files "):
			cur.binary = true
		case l == "GIT binary patch":
			data, next, err := parseBinary(lines, i+1)
			if err != nil {
				return nil, fmt.Errorf("apply: %s: %w", cur.path, err)
			}
			cur.literal, cur.hasLiteral = data, true
			i = next - 1
		case strings.HasPrefix(l, "--- "):
			cur.oldPath = strings.TrimPrefix(l, "--- ")
		case strings.HasPrefix(l, "+++ "):
			cur.newPath = strings.TrimPrefix(l, "+++ ")
			if err := checkPaths(cur); err != nil {
				return nil, bad(i, "%v", err)
			}
		case strings.HasPrefix(l, "@@ "):
			h, next, err := parseHunk(lines, i)
			if err != nil {
				return nil, fmt.Errorf("apply: %s: %w", cur.path, err)
			}
			cur.hunks = append(cur.hunks, h)
			i = next - 1
		default:
			return nil, bad(i, "%s: unexpected line %q", cur.path, l)
		}
	}
	for _, s := range secs {
		if (s.oldMode == "") != (s.modeTo == "") {
			return nil, fmt.Errorf("apply: %s (patch line %d): \"old mode\" and \"new mode\" must come together", s.path, s.line)
		}
		if s.newMode != "" && s.delMode != "" {
			return nil, fmt.Errorf("apply: %s (patch line %d): a section cannot both create and delete a file", s.path, s.line)
		}
	}
	return secs, nil
}

func checkMode(m string) error {
	switch m {
	case ModeFile, ModeExec, ModeSymlink:
		return nil
	}
	return fmt.Errorf("unsupported file mode %q (want 100644, 100755 or 120000)", m)
}

func checkPaths(s *section) error {
	want := func(name, got, prefix string, devNull bool) error {
		if devNull {
			if got != "/dev/null" {
				return fmt.Errorf("%s: %s line is %q, want /dev/null", s.path, name, got)
			}
			return nil
		}
		if got != prefix+s.path {
			return fmt.Errorf("%s: %s line names %q, want %q (renames are not supported)", s.path, name, got, prefix+s.path)
		}
		return nil
	}
	if err := want("---", s.oldPath, "a/", s.newMode != ""); err != nil {
		return err
	}
	return want("+++", s.newPath, "b/", s.delMode != "")
}

// gitHeaderPath extracts p from "a/p b/p".
func gitHeaderPath(rest string) (string, error) {
	if len(rest) < 7 || (len(rest)-5)%2 != 0 {
		return "", fmt.Errorf("cannot read the paths of \"diff --git %s\"", rest)
	}
	n := (len(rest) - 5) / 2
	a, b := rest[:2+n], rest[3+n:]
	if !strings.HasPrefix(a, "a/") || !strings.HasPrefix(b, "b/") || a[2:] != b[2:] || rest[2+n] != ' ' {
		return "", fmt.Errorf("cannot read the paths of \"diff --git %s\" (renames and quoted names are not supported)", rest)
	}
	return a[2:], nil
}

func parseHunk(lines []string, i int) (hunk, int, error) {
	h := hunk{header: lines[i], line: i + 1}
	rest, ok := strings.CutPrefix(lines[i], "@@ -")
	var oldR, newR string
	if ok {
		oldR, rest, ok = strings.Cut(rest, " +")
	}
	if ok {
		newR, _, ok = strings.Cut(rest, " @@")
	}
	var err error
	if ok {
		h.oldStart, h.oldLen, err = parseRange(oldR)
		if err == nil {
			h.newStart, h.newLen, err = parseRange(newR)
		}
	}
	if !ok || err != nil {
		return h, 0, fmt.Errorf("patch line %d: malformed hunk header %q", i+1, lines[i])
	}
	oldLeft, newLeft := h.oldLen, h.newLen
	j := i + 1
	for oldLeft > 0 || newLeft > 0 {
		if j >= len(lines) {
			return h, 0, fmt.Errorf("hunk %s (patch line %d) ends early: %d old and %d new lines missing", h.header, h.line, oldLeft, newLeft)
		}
		l := lines[j]
		kind, text := byte(' '), ""
		if l != "" { // an empty line is an empty context line whose space was stripped
			kind, text = l[0], l[1:]
		}
		noEOL := j+1 < len(lines) && strings.HasPrefix(lines[j+1], "\\ ")
		if !noEOL {
			text += "\n"
		}
		switch kind {
		case ' ':
			h.old = append(h.old, text)
			h.new = append(h.new, text)
			oldLeft--
			newLeft--
		case '-':
			h.old = append(h.old, text)
			oldLeft--
		case '+':
			h.new = append(h.new, text)
			newLeft--
		default:
			return h, 0, fmt.Errorf("patch line %d: unexpected line %q in hunk %s", j+1, l, h.header)
		}
		if oldLeft < 0 || newLeft < 0 {
			return h, 0, fmt.Errorf("hunk %s (patch line %d) has more lines than its header says", h.header, h.line)
		}
		j++
		if noEOL {
			j++
		}
	}
	return h, j, nil
}

func parseRange(s string) (start, n int, err error) {
	a, b, hasLen := strings.Cut(s, ",")
	start, err = strconv.Atoi(a)
	if err != nil || start < 0 {
		return 0, 0, errors.New("bad range")
	}
	n = 1
	if hasLen {
		n, err = strconv.Atoi(b)
		if err != nil || n < 0 {
			return 0, 0, errors.New("bad range")
		}
	}
	return start, n, nil
}

// Paths returns the paths a patch touches, sorted, without applying it.
func Paths(diff string) ([]string, error) {
	secs, err := parse(diff)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range secs {
		if !seen[s.path] {
			seen[s.path] = true
			out = append(out, s.path)
		}
	}
	sort.Strings(out)
	return out, nil
}
