package lang

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"regexp"
	"sort"
	"strings"

	sitter "github.com/tree-sitter/go-tree-sitter"
)

// This file is the language-independent half of the tree-sitter transforms:
// file selection, parsing into a plain Go tree, splicing a change into a
// file, re-parsing it to drop changes that break the syntax, ids, the
// seeded shuffle. The grammar-specific halves (which nodes are functions,
// which sites each transform changes and how) are ts_go.go,
// ts_javascript.go and ts_rust.go. The rules mirror stages/py/mutate.py.

// tsGrammar is one language's half of the transforms.
type tsGrammar struct {
	// language is the tree-sitter grammar.
	language *sitter.Language
	// isSource reports whether a path (relative to the root) is source the
	// transforms may change: never test code, vendored or generated code.
	isSource func(path string) bool
	// isAny reports whether a path is any file of the language, test code
	// included (what the load-time analysis reads).
	isAny func(path string) bool
	// transforms are the bug transforms in enumeration order.
	transforms []tsTransform
	// units returns the functions of a parsed file that may be changed, in
	// source order.
	units func(f *tsFile) []*tsUnit
	// loadTime returns the simple names of the functions that run while
	// the program or its tests are loading (package initialisation,
	// top-level module code), transitively; files are all files of the
	// language, parsed. Stubbing one of them breaks loading instead of
	// making tests fail.
	loadTime func(files []*tsFile) map[string]bool
	// stub returns the change that replaces u's body by the language's
	// "not implemented" and whether u may be stubbed at all.
	stub func(f *tsFile, u *tsUnit) (tsChange, bool)
	// stubText is what stubs put in the body, for descriptions.
	stubText string
	// wrapPrefix makes one top-level declaration a file that parses
	// ("package p\n" for Go).
	wrapPrefix string
}

// tsTransform is one named bug transform.
type tsTransform struct {
	name string
	// sites returns the changes it makes in one function, in source order.
	sites func(f *tsFile, u *tsUnit) []tsChange
}

// tsChange is one intended change: bytes start..end of the file become text.
type tsChange struct {
	start, end int
	text       string
	// line is the 1-based line of the changed site.
	line int
	// description says what changed, without the "in <function>" suffix.
	description string
}

// tsNode is a syntax node copied out of tree-sitter's C tree, so the
// transforms walk plain Go values instead of crossing cgo per node.
type tsNode struct {
	kind       string
	field      string // the field name in the parent, "" if none
	named      bool
	start, end int // byte offsets
	line       int // 1-based line of start
	parent     *tsNode
	children   []*tsNode
}

// tsFile is one parsed source file.
type tsFile struct {
	path string
	src  []byte
	root *tsNode
}

// tsUnit is a function or method: the granularity of one change.
type tsUnit struct {
	// name is the qualified name ("Calc.Add", "Stack.push", "parse").
	name string
	// simple is the name calls use ("Add", "push", "parse").
	simple string
	// decl is the whole declaration, body the function body (nil if none).
	decl, body *tsNode
}

func (n *tsNode) text(src []byte) string { return string(src[n.start:n.end]) }

// child returns the first child in field, or nil.
func (n *tsNode) child(field string) *tsNode {
	for _, c := range n.children {
		if c.field == field {
			return c
		}
	}
	return nil
}

// namedChildren returns the named children, comments excluded.
func (n *tsNode) namedChildren() []*tsNode {
	var out []*tsNode
	for _, c := range n.children {
		if c.named && !isComment(c) {
			out = append(out, c)
		}
	}
	return out
}

// firstChildOfKind returns the first child of one of kinds, or nil.
func (n *tsNode) firstChildOfKind(kinds ...string) *tsNode {
	for _, c := range n.children {
		for _, k := range kinds {
			if c.kind == k {
				return c
			}
		}
	}
	return nil
}

// walk calls fn on n and its descendants in source order; fn returning
// false skips a node's children.
func (n *tsNode) walk(fn func(*tsNode) bool) {
	if !fn(n) {
		return
	}
	for _, c := range n.children {
		c.walk(fn)
	}
}

// within reports whether n is inside (or is) anc.
func (n *tsNode) within(anc *tsNode) bool {
	for p := n; p != nil; p = p.parent {
		if p == anc {
			return true
		}
	}
	return false
}

func isComment(n *tsNode) bool {
	return n.kind == "comment" || n.kind == "line_comment" || n.kind == "block_comment"
}

// convertTree copies tree-sitter's tree into tsNodes.
func convertTree(tree *sitter.Tree) *tsNode {
	c := tree.Walk()
	defer c.Close()
	var build func(parent *tsNode) *tsNode
	build = func(parent *tsNode) *tsNode {
		n := c.Node()
		t := &tsNode{
			kind:   n.Kind(),
			field:  c.FieldName(),
			named:  n.IsNamed(),
			start:  int(n.StartByte()),
			end:    int(n.EndByte()),
			line:   int(n.StartPosition().Row) + 1,
			parent: parent,
		}
		if c.GotoFirstChild() {
			for {
				t.children = append(t.children, build(t))
				if !c.GotoNextSibling() {
					break
				}
			}
			c.GotoParent()
		}
		return t
	}
	return build(nil)
}

// tsParser parses files of one grammar and checks edited ones.
type tsParser struct {
	p *sitter.Parser
}

func newTSParser(g *tsGrammar) (*tsParser, error) {
	p := sitter.NewParser()
	if err := p.SetLanguage(g.language); err != nil {
		p.Close()
		return nil, fmt.Errorf("lang: tree-sitter grammar: %w", err)
	}
	return &tsParser{p: p}, nil
}

func (tp *tsParser) close() { tp.p.Close() }

// parseChunk is how many bytes the parser is handed per read. The
// binding copies each chunk it is handed into C memory; handing it the
// whole rest of the file at every read (what Parser.Parse does) made
// incremental re-parsing quadratic in the file's size.
const parseChunk = 4096

// parseText parses src, reusing old (already edited to match) if not nil.
// Callers check ctx between parses; a single parse takes milliseconds.
func (tp *tsParser) parseText(src []byte, old *sitter.Tree) *sitter.Tree {
	return tp.p.ParseWithOptions(func(i int, _ sitter.Point) []byte {
		if i >= len(src) {
			return nil
		}
		return src[i:min(i+parseChunk, len(src))]
	}, old, nil)
}

// parse returns the file's tree, or nil when it has syntax errors.
func (tp *tsParser) parse(ctx context.Context, src []byte) *sitter.Tree {
	if ctx.Err() != nil {
		return nil
	}
	tree := tp.parseText(src, nil)
	if tree == nil {
		return nil
	}
	if tree.RootNode().HasError() {
		tree.Close()
		return nil
	}
	return tree
}

// parsesAfter reports whether f with bytes start..end replaced by text
// still parses without errors. Only the top-level declaration holding the
// change is re-parsed (after prefix, which makes it a file of its own):
// whole-file re-parses made a 3000-line file take seconds per hundred
// candidates, and a change inside one declaration cannot alter how the
// others parse unless it leaves that declaration unbalanced, which its own
// parse reports.
func (tp *tsParser) parsesAfter(ctx context.Context, f *tsFile, prefix string, start, end int, text string) bool {
	if ctx.Err() != nil {
		return false
	}
	lo, hi := 0, len(f.src)
	for _, d := range f.root.children {
		if d.start <= start && end <= d.end {
			lo, hi = d.start, d.end
			break
		}
	}
	if lo == 0 && hi == len(f.src) {
		prefix = ""
	}
	piece := make([]byte, 0, len(prefix)+hi-lo-(end-start)+len(text))
	piece = append(piece, prefix...)
	piece = append(piece, f.src[lo:start]...)
	piece = append(piece, text...)
	piece = append(piece, f.src[end:hi]...)
	tree := tp.parseText(piece, nil)
	if tree == nil {
		return false
	}
	defer tree.Close()
	return !tree.RootNode().HasError()
}

// lineEditOf is editOf(src, src with bytes start..end replaced by text),
// computed on the lines the change touches instead of copies of the file.
func lineEditOf(src []byte, start, end int, text string) Edit {
	ls := bytes.LastIndexByte(src[:start], '\n') + 1
	le := len(src)
	if end > 0 && src[end-1] == '\n' {
		le = end
	} else if nl := bytes.IndexByte(src[end:], '\n'); nl != -1 {
		le = end + nl + 1
	}
	e := editOf(src[ls:le], splice(src[ls:le], start-ls, end-ls, text))
	e.Start += ls
	e.End += ls
	return e
}

// treeSitterCandidates enumerates bug or stub candidates of src's files in
// language ("go", "javascript", "rust"), parsed with tree-sitter. It is
// deterministic for the same sources and options: files in path order,
// functions and sites in source order, then a shuffle seeded by
// opts.Seed, then the first opts.Max.
func treeSitterCandidates(ctx context.Context, language string, src Source, mode Mode, opts CandidateOptions) ([]Candidate, error) {
	g, err := tsGrammarFor(language)
	if err != nil {
		return nil, err
	}
	if opts.Max < 0 {
		return nil, fmt.Errorf("lang: %s candidates: max must be >= 0, got %d", language, opts.Max)
	}
	if mode != ModeBugs && mode != ModeStub {
		return nil, fmt.Errorf("lang: %s candidates: unknown mode %q (known: %s, %s)", language, mode, ModeBugs, ModeStub)
	}
	transforms := g.transforms
	if mode == ModeBugs && len(opts.Transforms) > 0 {
		transforms, err = selectTransforms(language, g.transforms, opts.Transforms)
		if err != nil {
			return nil, err
		}
	}
	var includes []*regexp.Regexp
	for _, p := range opts.Include {
		includes = append(includes, globRegexp(p))
	}
	tp, err := newTSParser(g)
	if err != nil {
		return nil, err
	}
	defer tp.close()

	var loadTime map[string]bool
	if mode == ModeStub {
		var all []*tsFile
		for _, path := range src.Files {
			if !g.isAny(path) {
				continue
			}
			f, tree, err := readAndParse(ctx, tp, src, path)
			if err != nil {
				return nil, err
			}
			if tree != nil {
				tree.Close()
				all = append(all, f)
			}
		}
		loadTime = g.loadTime(all)
	}
	keep := map[string]bool{}
	for _, k := range opts.Keep {
		keep[k] = true
	}

	var out []Candidate
	seen := map[string]bool{} // file + "\x00" + new text: identical results once
	for _, path := range src.Files {
		if !g.isSource(path) || !matchesAny(includes, path) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, tree, err := readAndParse(ctx, tp, src, path)
		if err != nil {
			return nil, err
		}
		if tree == nil {
			continue // does not parse: skipped, as mutate.py does
		}
		add := func(transform string, u *tsUnit, ch tsChange, id string) {
			edit := lineEditOf(f.src, ch.start, ch.end, ch.text)
			// The minimal whole-line edit is a function of the new file, so
			// equal edits are equal files.
			key := fmt.Sprintf("%s\x00%d\x00%d\x00%s", path, edit.Start, edit.End, edit.Replacement)
			if string(f.src[edit.Start:edit.End]) == edit.Replacement || seen[key] {
				return
			}
			if !tp.parsesAfter(ctx, f, g.wrapPrefix, ch.start, ch.end, ch.text) {
				return
			}
			seen[key] = true
			line := ch.line
			if transform == "stub" {
				line = u.decl.line
			}
			out = append(out, Candidate{
				ID:          id,
				Transform:   transform,
				File:        path,
				Function:    u.name,
				Line:        line,
				Description: ch.description + " in " + where(f, u),
				Edit:        edit,
			})
		}
		for _, u := range g.units(f) {
			if mode == ModeStub {
				if keep[path+"::"+u.name] || loadTime[u.simple] {
					continue
				}
				ch, ok := g.stub(f, u)
				if !ok {
					continue
				}
				ch.description = "replaced the body with `" + g.stubText + "`"
				add("stub", u, ch, fmt.Sprintf("stub-%s-%s", path, u.name))
				continue
			}
			counters := map[string]int{}
			for _, t := range transforms {
				for _, ch := range t.sites(f, u) {
					key := fmt.Sprintf("%s-%d", t.name, ch.line)
					n := counters[key]
					counters[key] = n + 1
					add(t.name, u, ch, fmt.Sprintf("%s-%s-%s-%d-%d", t.name, path, u.name, ch.line, n))
				}
			}
		}
		tree.Close()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rand.New(rand.NewSource(opts.Seed)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if opts.Max > 0 && len(out) > opts.Max {
		out = out[:opts.Max]
	}
	return out, nil
}

// where names a function for descriptions: "Calc.Add (calc/calc.go)".
func where(f *tsFile, u *tsUnit) string {
	return u.name + " (" + f.path + ")"
}

func tsGrammarFor(language string) (*tsGrammar, error) {
	switch language {
	case "go":
		return goGrammar(), nil
	case "javascript":
		return javascriptGrammar(), nil
	case "rust":
		return rustGrammar(), nil
	}
	return nil, fmt.Errorf("lang: no tree-sitter transforms for language %q (known: go, javascript, rust)", language)
}

// TransformNames lists the bug transforms of a tree-sitter language in
// enumeration order, for error messages and documentation.
func treeSitterTransformNames(language string) []string {
	g, err := tsGrammarFor(language)
	if err != nil {
		return nil
	}
	var names []string
	for _, t := range g.transforms {
		names = append(names, t.name)
	}
	return names
}

func selectTransforms(language string, all []tsTransform, names []string) ([]tsTransform, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[strings.TrimSpace(n)] = true
	}
	var out []tsTransform
	for _, t := range all {
		if want[t.name] {
			out = append(out, t)
			delete(want, t.name)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("lang: unknown %s transform(s) %s; known: %s", language, strings.Join(unknown, ", "), strings.Join(treeSitterTransformNames(language), ", "))
	}
	return out, nil
}

// readAndParse reads and parses one file; the tree is nil (and the error
// too) when the file has syntax errors.
func readAndParse(ctx context.Context, tp *tsParser, src Source, path string) (*tsFile, *sitter.Tree, error) {
	data, err := src.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("lang: reading %s: %w", path, err)
	}
	tree := tp.parse(ctx, data)
	if err := ctx.Err(); err != nil {
		if tree != nil {
			tree.Close()
		}
		return nil, nil, err
	}
	if tree == nil {
		return nil, nil, nil
	}
	return &tsFile{path: path, src: data, root: convertTree(tree)}, tree, nil
}

func splice(src []byte, start, end int, text string) []byte {
	out := make([]byte, 0, len(src)-(end-start)+len(text))
	out = append(out, src[:start]...)
	out = append(out, text...)
	return append(out, src[end:]...)
}

// editOf returns the edit that turns old into new: the smallest span of
// whole lines of old (starting after a newline, ending after one or at the
// end of the file) whose replacement gives new, as mutate.py's edit_of.
func editOf(old, new []byte) Edit {
	n := min(len(old), len(new))
	pre := 0
	for pre < n && old[pre] == new[pre] {
		pre++
	}
	suf := 0
	for suf < n-pre && old[len(old)-1-suf] == new[len(new)-1-suf] {
		suf++
	}
	start := bytes.LastIndexByte(old[:pre], '\n') + 1
	end := len(old) - suf
	if end > 0 && old[end-1] != '\n' {
		if nl := bytes.IndexByte(old[end:], '\n'); nl == -1 {
			end = len(old)
		} else {
			end += nl + 1
		}
	}
	tail := len(old) - end
	return Edit{Start: start, End: end, Replacement: string(new[start : len(new)-tail])}
}

// globRegexp translates a glob in which "**" spans directories, as
// mutate.py's _glob_to_regex.
func globRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 3
		case strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(".*")
			i += 2
		case pattern[i] == '*':
			b.WriteString("[^/]*")
			i++
		case pattern[i] == '?':
			b.WriteString("[^/]")
			i++
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			i++
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func matchesAny(res []*regexp.Regexp, path string) bool {
	if len(res) == 0 {
		return true
	}
	for _, re := range res {
		if re.MatchString(path) {
			return true
		}
	}
	return false
}

// pathHasDir reports whether a directory component of path (not the file
// name) is one of dirs, or is hidden.
func pathHasDir(path string, dirs ...string) bool {
	parts := strings.Split(path, "/")
	for _, p := range parts[:len(parts)-1] {
		if strings.HasPrefix(p, ".") {
			return true
		}
		for _, d := range dirs {
			if p == d {
				return true
			}
		}
	}
	return false
}

// snippet renders source text on one line for descriptions, shortened.
func snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 70 {
		cut := 67
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// lineIndent is the leading whitespace of the line holding offset.
func lineIndent(src []byte, offset int) string {
	ls := bytes.LastIndexByte(src[:offset], '\n') + 1
	i := ls
	for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
		i++
	}
	return string(src[ls:i])
}

// stubBody is the text of a block holding only stmt, indented like the
// block's first statement first (or the declaration plus unit when that is
// nil or not on a line of its own).
func stubBody(f *tsFile, u *tsUnit, first *tsNode, stmt, unit string) string {
	outer := lineIndent(f.src, u.decl.start)
	inner := outer + unit
	if first != nil {
		if ind := lineIndent(f.src, first.start); len(ind) > len(outer) {
			inner = ind
		}
	}
	closing := lineIndent(f.src, u.body.end-1)
	return "{\n" + inner + stmt + "\n" + closing + "}"
}
