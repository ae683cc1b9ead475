package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// editorLoop is a loop over a small tree, with no sandbox: the editor works
// on the tree in Go.
func editorLoop(t *testing.T) *loop {
	t.Helper()
	st, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tree, err := st.PutFiles(map[string]cache.File{
		"a.py":              {Data: []byte("one\ntwo\nthree\ntwo\n")},
		"run.sh":            {Data: []byte("echo hi\n"), Exec: true},
		"pkg/mod.py":        {Data: []byte("x = 1\n")},
		"pkg/sub/deep.py":   {Data: []byte("deep\n")},
		"pkg/sub/more/d.py": {Data: []byte("deeper\n")},
		".git/HEAD":         {Data: []byte("ref\n")},
		"bin.dat":           {Data: []byte("a\x00b")},
		"noeol.txt":         {Data: []byte("last")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &loop{env: Env{Store: st}, limits: DefaultLimits(), tree: tree, undo: map[string][]*cache.TreeEntry{}}
}

func (l *loop) ed(t *testing.T, args map[string]any) result {
	t.Helper()
	c := Call(ToolEditor, args)
	res, err := l.execute(context.Background(), c)
	if err != nil {
		t.Fatalf("editor %v: %v", args, err)
	}
	return res
}

func (l *loop) read(t *testing.T, p string) string {
	t.Helper()
	b, err := l.env.Store.ReadFile(l.tree, p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	return string(b)
}

func expect(t *testing.T, res result, prefix string, invalidWant bool) {
	t.Helper()
	if !strings.HasPrefix(res.text, prefix) || res.invalid != invalidWant {
		t.Fatalf("got %q (invalid=%v), want prefix %q (invalid=%v)", res.text, res.invalid, prefix, invalidWant)
	}
}

func TestEditorView(t *testing.T) {
	l := editorLoop(t)
	res := l.ed(t, map[string]any{"command": "view", "path": "/testbed/a.py"})
	expect(t, res, "Here's the result of running `cat -n` on /testbed/a.py:\n     1\tone\n     2\ttwo\n     3\tthree\n     4\ttwo\n", false)
	res = l.ed(t, map[string]any{"command": "view", "path": "/testbed/a.py", "view_range": []int{2, 3}})
	if !strings.HasSuffix(res.text, ":\n     2\ttwo\n     3\tthree\n") {
		t.Fatalf("view_range: %q", res.text)
	}
	res = l.ed(t, map[string]any{"command": "view", "path": "/testbed/a.py", "view_range": []int{3, -1}})
	if !strings.HasSuffix(res.text, ":\n     3\tthree\n     4\ttwo\n") {
		t.Fatalf("view_range to -1: %q", res.text)
	}
	expect(t, l.ed(t, map[string]any{"command": "view", "path": "/testbed/a.py", "view_range": []int{0, 2}}), "ERROR: view_range start 0 is outside the file's lines [1, 4]", false)
	expect(t, l.ed(t, map[string]any{"command": "view", "path": "/testbed/a.py", "view_range": []int{3, 9}}), "ERROR: view_range end 9", false)
	expect(t, l.ed(t, map[string]any{"command": "view", "path": "/testbed/noeol.txt"}), "Here's the result of running `cat -n` on /testbed/noeol.txt:\n     1\tlast\n", false)

	dir := l.ed(t, map[string]any{"command": "view", "path": "/testbed"}).text
	want := "Here's the files and directories up to 2 levels deep in /testbed, excluding hidden items:\n/testbed\n" +
		"/testbed/a.py\n/testbed/bin.dat\n/testbed/noeol.txt\n/testbed/pkg/\n/testbed/pkg/mod.py\n/testbed/pkg/sub/\n/testbed/run.sh\n"
	if dir != want {
		t.Fatalf("directory view:\n%s\nwant:\n%s", dir, want)
	}
	expect(t, l.ed(t, map[string]any{"command": "view", "path": "/testbed/pkg/"}), "Here's the files and directories up to 2 levels deep in /testbed/pkg, excluding hidden items:\n/testbed/pkg\n/testbed/pkg/mod.py\n/testbed/pkg/sub/\n/testbed/pkg/sub/deep.py\n/testbed/pkg/sub/more/\n", false)
	expect(t, l.ed(t, map[string]any{"command": "view", "path": "/testbed/nope.py"}), "ERROR: the path /testbed/nope.py does not exist", false)
	expect(t, l.ed(t, map[string]any{"command": "view", "path": "/testbed/bin.dat"}), "ERROR: /testbed/bin.dat is a binary file", false)
	expect(t, l.ed(t, map[string]any{"command": "view", "path": "/etc/passwd"}), "ERROR: the path /etc/passwd is outside /testbed", false)
	expect(t, l.ed(t, map[string]any{"command": "view", "path": "/testbed/../etc"}), "ERROR: the path /testbed/../etc is outside /testbed", false)
	expect(t, l.ed(t, map[string]any{"command": "view", "path": "a.py"}), `ERROR: the path "a.py" is not absolute; give a path under /testbed, e.g. /testbed/a.py`, false)
}

func TestEditorStrReplace(t *testing.T) {
	l := editorLoop(t)
	start := l.tree
	// Multiple matches: nothing changes, lines named.
	expect(t, l.ed(t, map[string]any{"command": "str_replace", "path": "/testbed/a.py", "old_str": "two", "new_str": "2"}),
		"ERROR: No replacement was performed: old_str occurs 2 times in /testbed/a.py (starting at lines 2, 4).", false)
	// No match.
	expect(t, l.ed(t, map[string]any{"command": "str_replace", "path": "/testbed/a.py", "old_str": "four", "new_str": "4"}),
		"ERROR: No replacement was performed: old_str did not appear verbatim in /testbed/a.py.", false)
	if l.tree != start {
		t.Fatal("a failed str_replace changed the tree")
	}
	// Unique match (made unique by context).
	res := l.ed(t, map[string]any{"command": "str_replace", "path": "/testbed/a.py", "old_str": "three\ntwo", "new_str": "three\n2"})
	expect(t, res, "The file /testbed/a.py has been edited. Here's the result of running `cat -n` on a snippet of /testbed/a.py:\n     1\tone\n     2\ttwo\n     3\tthree\n     4\t2\n", false)
	if got := l.read(t, "a.py"); got != "one\ntwo\nthree\n2\n" {
		t.Fatalf("a.py = %q", got)
	}
	// Deleting text with an empty (or absent) new_str; exec bit kept.
	l.ed(t, map[string]any{"command": "str_replace", "path": "/testbed/run.sh", "old_str": " hi"})
	files, _ := l.env.Store.Files(l.tree)
	if got := l.read(t, "run.sh"); got != "echo\n" || !files["run.sh"].Exec {
		t.Fatalf("run.sh = %q exec=%v", got, files["run.sh"].Exec)
	}
	expect(t, l.ed(t, map[string]any{"command": "str_replace", "path": "/testbed/a.py", "old_str": ""}), "ERROR: old_str must not be empty", false)
	expect(t, l.ed(t, map[string]any{"command": "str_replace", "path": "/testbed/a.py"}), `ERROR: str_replace needs the parameter "old_str"`, true)
	expect(t, l.ed(t, map[string]any{"command": "str_replace", "path": "/testbed/pkg", "old_str": "x"}), "ERROR: /testbed/pkg is a directory", false)
}

func TestEditorInsert(t *testing.T) {
	l := editorLoop(t)
	l.ed(t, map[string]any{"command": "insert", "path": "/testbed/a.py", "insert_line": 0, "new_str": "zero"})
	l.ed(t, map[string]any{"command": "insert", "path": "/testbed/a.py", "insert_line": 2, "new_str": "one and a half\n"})
	res := l.ed(t, map[string]any{"command": "insert", "path": "/testbed/a.py", "insert_line": 6, "new_str": "end1\nend2"})
	if got := l.read(t, "a.py"); got != "zero\none\none and a half\ntwo\nthree\ntwo\nend1\nend2\n" {
		t.Fatalf("a.py = %q", got)
	}
	if !strings.Contains(res.text, "     7\tend1\n     8\tend2\n") {
		t.Fatalf("insert snippet: %q", res.text)
	}
	expect(t, l.ed(t, map[string]any{"command": "insert", "path": "/testbed/a.py", "insert_line": 9, "new_str": "x"}), "ERROR: insert_line 9 is outside [0, 8]", false)
	expect(t, l.ed(t, map[string]any{"command": "insert", "path": "/testbed/a.py", "insert_line": -1, "new_str": "x"}), "ERROR: insert_line -1 is outside", false)
	expect(t, l.ed(t, map[string]any{"command": "insert", "path": "/testbed/a.py", "new_str": "x"}), `ERROR: insert needs the parameter "insert_line"`, true)
	// After a last line with no newline.
	l.ed(t, map[string]any{"command": "insert", "path": "/testbed/noeol.txt", "insert_line": 1, "new_str": "more"})
	if got := l.read(t, "noeol.txt"); got != "last\nmore\n" {
		t.Fatalf("noeol.txt = %q", got)
	}
}

func TestEditorCreateAndUndo(t *testing.T) {
	l := editorLoop(t)
	start := l.tree
	expect(t, l.ed(t, map[string]any{"command": "create", "path": "/testbed/a.py", "file_text": "x"}), "ERROR: the file /testbed/a.py already exists", false)
	expect(t, l.ed(t, map[string]any{"command": "create", "path": "/testbed/a.py/x", "file_text": "x"}), "ERROR: cannot create /testbed/a.py/x: /testbed/a.py is not a directory", false)
	expect(t, l.ed(t, map[string]any{"command": "create", "path": "/testbed/run.sh/x", "file_text": "x"}), "ERROR: cannot create /testbed/run.sh/x: /testbed/run.sh is not a directory", false)
	expect(t, l.ed(t, map[string]any{"command": "create", "path": "/testbed/new/dir/f.py", "file_text": "print(1)\n"}), "File created successfully at: /testbed/new/dir/f.py", false)
	if got := l.read(t, "new/dir/f.py"); got != "print(1)\n" {
		t.Fatalf("f.py = %q", got)
	}
	expect(t, l.ed(t, map[string]any{"command": "create", "path": "/testbed/new/x.py"}), `ERROR: create needs the parameter "file_text"`, true)

	afterCreate := l.tree
	l.ed(t, map[string]any{"command": "str_replace", "path": "/testbed/a.py", "old_str": "one", "new_str": "1"})
	l.ed(t, map[string]any{"command": "str_replace", "path": "/testbed/a.py", "old_str": "three", "new_str": "3"})
	res := l.ed(t, map[string]any{"command": "undo_edit", "path": "/testbed/a.py"})
	expect(t, res, "Last edit to /testbed/a.py undone successfully. Here's the result of running `cat -n` on /testbed/a.py:\n     1\t1\n     2\ttwo\n     3\tthree\n", false)
	l.ed(t, map[string]any{"command": "undo_edit", "path": "/testbed/a.py"})
	if l.tree != afterCreate {
		t.Fatal("two undos did not restore a.py")
	}
	expect(t, l.ed(t, map[string]any{"command": "undo_edit", "path": "/testbed/a.py"}), "ERROR: no edit history for /testbed/a.py", false)
	expect(t, l.ed(t, map[string]any{"command": "undo_edit", "path": "/testbed/new/dir/f.py"}), "Last edit to /testbed/new/dir/f.py undone successfully: the file created by it was removed.", false)
	if l.tree != start {
		files, _ := l.env.Store.Files(l.tree)
		t.Fatalf("undoing the create did not give the start tree back: %v", files)
	}
}

func TestEditorBadArguments(t *testing.T) {
	l := editorLoop(t)
	for _, c := range []struct {
		args, want string
	}{
		{`{"path": "/testbed/a.py"}`, `ERROR: str_replace_editor needs a "command"`},
		{`{"command": "view"}`, `ERROR: str_replace_editor needs a "path"`},
		{`{"command": "view", "path": "/testbed/a.py", "view_range": "1-2"}`, `ERROR: parameter "view_range" of str_replace_editor has the wrong type: got a JSON string, want []int`},
		{`{"command": "view", "path": "/testbed/a.py", "colour": "red"}`, `ERROR: str_replace_editor has no parameter "colour"`},
		{`{"command": "view", "path": "/testbed/a.py"} {}`, `ERROR: the arguments of str_replace_editor have trailing data`},
		{`[1]`, `ERROR: parameter "" of str_replace_editor has the wrong type: got a JSON array`},
	} {
		res, err := l.execute(context.Background(), schema.ToolCall{ID: "x", Type: "function", Function: schema.FunctionCall{Name: ToolEditor, Arguments: c.args}})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, res, c.want, true)
	}
}

func BenchmarkEditorStrReplace(b *testing.B) {
	st, err := cache.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	files := map[string]cache.File{}
	for i := 0; i < 500; i++ {
		files["pkg/mod"+string(rune('a'+i%26))+"/f"+strings.Repeat("x", i%7)+string(rune('0'+i%10))+".py"] = cache.File{Data: []byte(strings.Repeat("line\n", 200) + "target\n")}
	}
	files["pkg/hot.py"] = cache.File{Data: []byte(strings.Repeat("line\n", 2000) + "value = 0\n")}
	tree, err := st.PutFiles(files)
	if err != nil {
		b.Fatal(err)
	}
	l := &loop{env: Env{Store: st}, limits: DefaultLimits(), tree: tree, undo: map[string][]*cache.TreeEntry{}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		old, new := "value = 0", "value = 1"
		if i%2 == 1 {
			old, new = new, old
		}
		res, err := l.execute(context.Background(), Call(ToolEditor, map[string]any{"command": "str_replace", "path": "/testbed/pkg/hot.py", "old_str": old, "new_str": new}))
		if err != nil || strings.HasPrefix(res.text, "ERROR") {
			b.Fatal(err, res.text)
		}
	}
}
