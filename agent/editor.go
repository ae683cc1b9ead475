package agent

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/patch"
)

// editorArgs are str_replace_editor's parameters.
type editorArgs struct {
	Command    *string `json:"command"`
	Path       *string `json:"path"`
	FileText   *string `json:"file_text"`
	OldStr     *string `json:"old_str"`
	NewStr     *string `json:"new_str"`
	InsertLine *int    `json:"insert_line"`
	ViewRange  []int   `json:"view_range"`
}

// snippetContext is how many lines around an edit the editor shows.
const snippetContext = 4

// fail is an editor error the model should see: a normal observation, not
// an invalid call.
func fail(format string, args ...any) result {
	return result{text: "ERROR: " + fmt.Sprintf(format, args...)}
}

func (l *loop) edit(a editorArgs) (result, error) {
	if a.Command == nil {
		return invalid("str_replace_editor needs a \"command\": one of view, create, str_replace, insert, undo_edit"), nil
	}
	if a.Path == nil || *a.Path == "" {
		return invalid("str_replace_editor needs a \"path\" (an absolute path under %s)", Workdir), nil
	}
	abs := *a.Path
	if !strings.HasPrefix(abs, "/") {
		return fail("the path %q is not absolute; give a path under %s, e.g. %s", abs, Workdir, path.Join(Workdir, abs)), nil
	}
	clean := path.Clean(abs)
	if clean != Workdir && !strings.HasPrefix(clean, Workdir+"/") {
		return fail("the path %s is outside %s; the editor only works on the repository under %s", abs, Workdir, Workdir), nil
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(clean, Workdir), "/")
	cmd := *a.Command
	need := func(name string, ok bool) *result {
		if ok {
			return nil
		}
		r := invalid("%s needs the parameter %q", cmd, name)
		return &r
	}
	switch cmd {
	case EditorView:
		return l.view(clean, rel, a.ViewRange)
	case EditorCreate:
		if r := need("file_text", a.FileText != nil); r != nil {
			return *r, nil
		}
		return l.create(clean, rel, *a.FileText)
	case EditorStrReplace:
		if r := need("old_str", a.OldStr != nil); r != nil {
			return *r, nil
		}
		newStr := ""
		if a.NewStr != nil {
			newStr = *a.NewStr
		}
		return l.strReplace(clean, rel, *a.OldStr, newStr)
	case EditorInsert:
		if r := need("insert_line", a.InsertLine != nil); r != nil {
			return *r, nil
		}
		if r := need("new_str", a.NewStr != nil); r != nil {
			return *r, nil
		}
		return l.insert(clean, rel, *a.InsertLine, *a.NewStr)
	case EditorUndo:
		return l.undoEdit(clean, rel)
	default:
		return invalid("unknown str_replace_editor command %q: use one of view, create, str_replace, insert, undo_edit", cmd), nil
	}
}

// lookup finds rel in the current tree. A missing path gives ok=false;
// rel "" is the root directory.
func (l *loop) lookup(rel string) (e cache.TreeEntry, ok bool, err error) {
	e = cache.TreeEntry{Type: cache.TypeDir, Digest: l.tree}
	if rel == "" {
		return e, true, nil
	}
	for _, part := range strings.Split(rel, "/") {
		if e.Type != cache.TypeDir {
			return cache.TreeEntry{}, false, nil
		}
		t, err := l.env.Store.GetTree(e.Digest)
		if err != nil {
			return cache.TreeEntry{}, false, err
		}
		i := sort.Search(len(t.Entries), func(i int) bool { return t.Entries[i].Name >= part })
		if i == len(t.Entries) || t.Entries[i].Name != part {
			return cache.TreeEntry{}, false, nil
		}
		e = t.Entries[i]
	}
	return e, true, nil
}

// readText returns the content of the text file rel, or an editor error.
func (l *loop) readText(abs, rel string) (cache.TreeEntry, string, *result, error) {
	e, ok, err := l.lookup(rel)
	if err != nil {
		return e, "", nil, err
	}
	switch {
	case !ok:
		r := fail("the path %s does not exist", abs)
		return e, "", &r, nil
	case e.Type == cache.TypeDir:
		r := fail("%s is a directory; this command needs a file", abs)
		return e, "", &r, nil
	case e.Type == cache.TypeSymlink:
		r := fail("%s is a symbolic link (to %s); edit its target instead", abs, e.Target)
		return e, "", &r, nil
	}
	data, err := l.env.Store.Get(e.Digest)
	if err != nil {
		return e, "", nil, err
	}
	if bytes.IndexByte(data, 0) >= 0 {
		r := fail("%s is a binary file; the editor works on text files only", abs)
		return e, "", &r, nil
	}
	return e, string(data), nil, nil
}

// write stores content at rel (keeping the exec bit of prev) and records
// the previous entry for undo.
func (l *loop) write(rel string, prev *cache.TreeEntry, content string) error {
	d, err := l.env.Store.Put([]byte(content))
	if err != nil {
		return err
	}
	ne := &cache.TreeEntry{Type: cache.TypeFile, Digest: d, Size: int64(len(content))}
	if prev != nil {
		ne.Exec = prev.Exec
	}
	nt, err := patch.Edit(l.env.Store, l.tree, map[string]*cache.TreeEntry{rel: ne})
	if err != nil {
		return err
	}
	l.undo[rel] = append(l.undo[rel], prev)
	l.tree = nt
	return nil
}

func (l *loop) view(abs, rel string, viewRange []int) (result, error) {
	e, ok, err := l.lookup(rel)
	if err != nil {
		return result{}, err
	}
	if !ok {
		return fail("the path %s does not exist", abs), nil
	}
	if e.Type == cache.TypeDir {
		if viewRange != nil {
			return fail("view_range cannot be used when viewing a directory"), nil
		}
		return l.listDir(abs, e.Digest)
	}
	_, text, r, err := l.readText(abs, rel)
	if r != nil || err != nil {
		return derefResult(r), err
	}
	lines := strings.Split(text, "\n")
	if strings.HasSuffix(text, "\n") {
		lines = lines[:len(lines)-1]
	}
	start, end := 1, len(lines)
	if viewRange != nil {
		if len(viewRange) != 2 {
			return fail("view_range must be two integers [start, end], got %d", len(viewRange)), nil
		}
		start, end = viewRange[0], viewRange[1]
		if end == -1 {
			end = len(lines)
		}
		if start < 1 || start > len(lines) {
			return fail("view_range start %d is outside the file's lines [1, %d]", start, len(lines)), nil
		}
		if end < start || end > len(lines) {
			return fail("view_range end %d must be between start %d and the file's last line %d (or -1)", end, start, len(lines)), nil
		}
	}
	return result{text: fmt.Sprintf("Here's the result of running `cat -n` on %s:\n%s", abs, numbered(lines[min(start, len(lines)+1)-1:end], start))}, nil
}

func derefResult(r *result) result {
	if r == nil {
		return result{}
	}
	return *r
}

// numbered formats lines like `cat -n`, the first numbered first.
func numbered(lines []string, first int) string {
	var b strings.Builder
	for i, s := range lines {
		fmt.Fprintf(&b, "%6d\t%s\n", first+i, s)
	}
	return b.String()
}

// listDir lists the directory two levels deep, without hidden entries.
func (l *loop) listDir(abs string, d cache.Digest) (result, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "Here's the files and directories up to 2 levels deep in %s, excluding hidden items:\n%s\n", abs, abs)
	err := l.env.Store.Walk(d, func(p string, e cache.TreeEntry) error {
		parts := strings.Split(p, "/")
		if len(parts) > 2 {
			return nil
		}
		for _, part := range parts {
			if strings.HasPrefix(part, ".") {
				return nil
			}
		}
		suffix := ""
		if e.Type == cache.TypeDir {
			suffix = "/"
		}
		fmt.Fprintf(&b, "%s/%s%s\n", abs, p, suffix)
		return nil
	})
	if err != nil {
		return result{}, err
	}
	return result{text: b.String()}, nil
}

// firstNonDir returns the first proper parent of rel that exists and is not
// a directory.
func (l *loop) firstNonDir(rel string) (string, bool, error) {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		e, ok, err := l.lookup(p)
		if err != nil || !ok {
			return "", false, err
		}
		if e.Type != cache.TypeDir {
			return p, true, nil
		}
	}
	return "", false, nil
}

func (l *loop) create(abs, rel, text string) (result, error) {
	if rel == "" {
		return fail("%s is the repository root; give a file path", abs), nil
	}
	_, ok, err := l.lookup(rel)
	if err != nil {
		return result{}, err
	}
	if ok {
		return fail("the file %s already exists; create cannot overwrite files (use str_replace to edit it)", abs), nil
	}
	if parent, ok, err := l.firstNonDir(rel); err != nil {
		return result{}, err
	} else if ok {
		return fail("cannot create %s: %s/%s is not a directory", abs, Workdir, parent), nil
	}
	if err := l.write(rel, nil, text); err != nil {
		return result{}, err
	}
	return result{text: fmt.Sprintf("File created successfully at: %s", abs)}, nil
}

func (l *loop) strReplace(abs, rel, oldStr, newStr string) (result, error) {
	if oldStr == "" {
		return fail("old_str must not be empty; to add text use insert, to write a whole file use create"), nil
	}
	e, text, r, err := l.readText(abs, rel)
	if r != nil || err != nil {
		return derefResult(r), err
	}
	switch n := strings.Count(text, oldStr); n {
	case 0:
		return fail("No replacement was performed: old_str did not appear verbatim in %s. Check whitespace and indentation, or view the file first.", abs), nil
	case 1:
	default:
		var at []string
		off := 0
		for {
			i := strings.Index(text[off:], oldStr)
			if i < 0 {
				break
			}
			at = append(at, fmt.Sprint(strings.Count(text[:off+i], "\n")+1))
			off += i + 1
		}
		return fail("No replacement was performed: old_str occurs %d times in %s (starting at lines %s). Include more surrounding lines so that it is unique.", n, abs, strings.Join(at, ", ")), nil
	}
	i := strings.Index(text, oldStr)
	updated := text[:i] + newStr + text[i+len(oldStr):]
	if err := l.write(rel, &e, updated); err != nil {
		return result{}, err
	}
	startLine := strings.Count(text[:i], "\n") + 1
	return result{text: fmt.Sprintf("The file %s has been edited. Here's the result of running `cat -n` on a snippet of %s:\n%s"+
		"Review the changes and make sure they are as expected. Edit the file again if necessary.",
		abs, abs, snippet(updated, startLine, startLine+strings.Count(newStr, "\n")))}, nil
}

func (l *loop) insert(abs, rel string, after int, newStr string) (result, error) {
	e, text, r, err := l.readText(abs, rel)
	if r != nil || err != nil {
		return derefResult(r), err
	}
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if after < 0 || after > len(lines) {
		return fail("insert_line %d is outside [0, %d], the lines of %s", after, len(lines), abs), nil
	}
	ins := newStr
	if !strings.HasSuffix(ins, "\n") {
		ins += "\n"
	}
	if after > 0 && !strings.HasSuffix(lines[after-1], "\n") {
		lines[after-1] += "\n"
	}
	updated := strings.Join(lines[:after], "") + ins + strings.Join(lines[after:], "")
	if err := l.write(rel, &e, updated); err != nil {
		return result{}, err
	}
	return result{text: fmt.Sprintf("The file %s has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n%s"+
		"Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
		abs, snippet(updated, after+1, after+strings.Count(ins, "\n")))}, nil
}

// snippet shows lines from..to of text (1-based) with snippetContext lines
// around them, numbered.
func snippet(text string, from, to int) string {
	lines := strings.Split(text, "\n")
	if strings.HasSuffix(text, "\n") {
		lines = lines[:len(lines)-1]
	}
	start := max(1, from-snippetContext)
	end := min(len(lines), to+snippetContext)
	if start > end {
		return ""
	}
	return numbered(lines[start-1:end], start)
}

func (l *loop) undoEdit(abs, rel string) (result, error) {
	hist := l.undo[rel]
	if len(hist) == 0 {
		return fail("no edit history for %s: only edits made with str_replace_editor can be undone", abs), nil
	}
	prev := hist[len(hist)-1]
	nt, err := patch.Edit(l.env.Store, l.tree, map[string]*cache.TreeEntry{rel: prev})
	if err != nil {
		return result{}, err
	}
	l.undo[rel] = hist[:len(hist)-1]
	l.tree = nt
	if prev == nil {
		return result{text: fmt.Sprintf("Last edit to %s undone successfully: the file created by it was removed.", abs)}, nil
	}
	data, err := l.env.Store.Get(prev.Digest)
	if err != nil {
		return result{}, err
	}
	lines := strings.Split(string(data), "\n")
	if strings.HasSuffix(string(data), "\n") {
		lines = lines[:len(lines)-1]
	}
	return result{text: fmt.Sprintf("Last edit to %s undone successfully. Here's the result of running `cat -n` on %s:\n%s", abs, abs, numbered(lines, 1))}, nil
}
