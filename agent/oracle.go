package agent

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/patch"
	"github.com/dsbuild/dsbuild/schema"
)

// OracleCalls returns a script of tool calls that turns the workspace from
// into to, for a ScriptedPolicy such as the oracle replaying a known
// solution: str_replace_editor create for new files, one str_replace per
// diff hunk (with three lines of context, so it matches once), and
// execute_bash for deletions, mode changes and the rare hunk whose text is
// not unique (the file is then removed and created whole). Symlinks and
// binary files cannot be scripted and are an error naming the file.
func OracleCalls(store *cache.Store, from, to cache.Digest) ([]schema.ToolCall, error) {
	a, err := store.Files(from)
	if err != nil {
		return nil, fmt.Errorf("agent: oracle: reading tree %s: %w", from.Short(), err)
	}
	b, err := store.Files(to)
	if err != nil {
		return nil, fmt.Errorf("agent: oracle: reading tree %s: %w", to.Short(), err)
	}
	paths := map[string]bool{}
	for p := range a {
		paths[p] = true
	}
	for p := range b {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	var calls []schema.ToolCall
	read := func(e cache.TreeEntry, p string) (string, error) {
		if e.Type != cache.TypeFile {
			return "", fmt.Errorf("agent: oracle: %s is a %s; only regular files can be scripted", p, e.Type)
		}
		data, err := store.Get(e.Digest)
		if err != nil {
			return "", fmt.Errorf("agent: oracle: %s: %w", p, err)
		}
		if bytes.IndexByte(data, 0) >= 0 {
			return "", fmt.Errorf("agent: oracle: %s is a binary file; it cannot be written with the editor", p)
		}
		return string(data), nil
	}
	for _, p := range sorted {
		ea, inA := a[p]
		eb, inB := b[p]
		abs := Workdir + "/" + p
		if inA && inB && ea == eb {
			continue
		}
		switch {
		case !inB:
			calls = append(calls, Call(ToolBash, map[string]any{"command": "rm -f -- " + shellQuote(abs)}))
			continue
		case !inA:
			text, err := read(eb, p)
			if err != nil {
				return nil, err
			}
			calls = append(calls, Call(ToolEditor, map[string]any{"command": EditorCreate, "path": abs, "file_text": text}))
		default:
			if ea.Type != cache.TypeFile || eb.Type != cache.TypeFile {
				return nil, fmt.Errorf("agent: oracle: %s changes type (%s to %s); only regular files can be scripted", p, ea.Type, eb.Type)
			}
			if ea.Digest != eb.Digest {
				oldText, err := read(ea, p)
				if err != nil {
					return nil, err
				}
				newText, err := read(eb, p)
				if err != nil {
					return nil, err
				}
				calls = append(calls, editCalls(abs, oldText, newText)...)
			}
		}
		if eb.Exec != (inA && ea.Exec) {
			mode := "-x"
			if eb.Exec {
				mode = "+x"
			}
			calls = append(calls, Call(ToolBash, map[string]any{"command": "chmod " + mode + " " + shellQuote(abs)}))
		}
	}
	return calls, nil
}

// editCalls turns oldText into newText with str_replace calls, or with a
// remove-and-create when a hunk's text is not unique.
func editCalls(abs, oldText, newText string) []schema.ToolCall {
	var calls []schema.ToolCall
	cur := oldText
	for _, h := range patch.Hunks([]byte(oldText), []byte(newText), 3) {
		if h.Old == "" || strings.Count(cur, h.Old) != 1 {
			return []schema.ToolCall{
				Call(ToolBash, map[string]any{"command": "rm -- " + shellQuote(abs)}),
				Call(ToolEditor, map[string]any{"command": EditorCreate, "path": abs, "file_text": newText}),
			}
		}
		calls = append(calls, Call(ToolEditor, map[string]any{"command": EditorStrReplace, "path": abs, "old_str": h.Old, "new_str": h.New}))
		cur = strings.Replace(cur, h.Old, h.New, 1)
	}
	return calls
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
