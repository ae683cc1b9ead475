package build

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Recipe is a parsed and validated recipe.
type Recipe struct {
	// Path is the file the recipe was read from; Dir its directory, against
	// which relative paths in params are resolved.
	Path, Dir string
	// Name identifies the recipe's build records and default output folder.
	Name        string
	Description string
	// Pools are resource-pool limits given in the recipe.
	Pools map[string]int
	// Stages in file order (which is also a valid dependency order after
	// validation sorts them).
	Stages []*Stage
	// Digest is the digest of the recipe text as written (before
	// interpolation; node keys carry the interpolated values).
	Digest      cache.Digest
	text        []byte
	sections    map[string]any
	sectionKeys map[string]cache.Key
}

// Section returns the decoded value of a registered top-level section, or
// nil if the recipe does not have it.
func (r *Recipe) Section(name string) any { return r.sections[name] }

// Stage returns the stage called id, or nil.
func (r *Recipe) Stage(id string) *Stage {
	for _, s := range r.Stages {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// RecipeChecker is an optional interface of a kind's params (see
// Kind.Params) for what they name elsewhere in the recipe: a model or an
// environment of a section, the stage a foreach takes its items from.
// CheckRecipe runs once every section and stage is decoded and the graph
// is checked, after Resolve and Validate, so that such a mistake is bad
// input found when the recipe is loaded, located, before anything runs or
// is written. An error that names a param as "param: ..." is located at
// that param's value.
type RecipeChecker interface {
	CheckRecipe(r *Recipe, st *Stage) error
}

// Limits on a recipe's text, so that no recipe can exhaust memory while it
// is read: its size, the nesting depth of its collections, and the number
// of nodes its aliases (*name) may add in all when they are expanded.
const (
	MaxRecipeBytes      = 1 << 20
	MaxRecipeDepth      = 64
	MaxRecipeAliasNodes = 100_000
)

// Stage is one stage of a recipe.
type Stage struct {
	ID      string
	Kind    *Kind
	Params  any
	Foreach string
	From    []string
	// Pos is where the stage is declared, "file:line:col".
	Pos string
	// params is Params in canonical JSON, as it enters keys.
	params []byte
	// decl (the id), body (the stage's mapping), with and defaults locate
	// errors found after decoding.
	decl, body, with, defaults ast.Node
}

// RecipeError is a problem in a recipe, located at file:line:col.
type RecipeError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *RecipeError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// RecipeErrors is every problem found in one recipe.
type RecipeErrors []*RecipeError

func (es RecipeErrors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// IsBadInput reports whether err comes from bad input (a recipe, a param,
// a missing file) rather than from a failure while building; the CLI exits
// with status 2 for those.
func IsBadInput(err error) bool {
	var re RecipeErrors
	var one *RecipeError
	var bad *BadInputError
	return errors.As(err, &re) || errors.As(err, &one) || errors.As(err, &bad)
}

// BadInputError marks an error a stage found in its inputs (for example a
// path that does not exist) as bad input rather than a failure.
type BadInputError struct{ Err error }

func (e *BadInputError) Error() string { return e.Err.Error() }
func (e *BadInputError) Unwrap() error { return e.Err }

// BadInput wraps err as bad input.
func BadInput(format string, args ...any) error {
	return &BadInputError{Err: fmt.Errorf(format, args...)}
}

var reservedKeys = map[string]bool{"name": true, "description": true, "defaults": true, "pools": true, "stages": true}

var (
	stageID  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)
	interpRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)
)

// LoadRecipe reads, interpolates, parses and validates the recipe at path.
// getenv looks up environment variables (os.Getenv if nil).
func LoadRecipe(path string, getenv func(string) string) (*Recipe, error) {
	raw, err := readLimited(path)
	if err != nil {
		return nil, &RecipeError{File: path, Msg: fmt.Sprintf("cannot read recipe: %v", errors.Unwrap(err))}
	}
	return ParseRecipe(path, raw, getenv)
}

// readLimited reads the file at path, but no more than one byte past
// MaxRecipeBytes (enough for ParseRecipe to refuse it).
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, &os.PathError{Op: "read", Path: path, Err: errors.New("is a directory")}
	}
	raw, err := io.ReadAll(io.LimitReader(f, MaxRecipeBytes+1))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return raw, nil
}

// ParseRecipe parses and validates recipe text; path is used for messages
// and to resolve relative paths.
func ParseRecipe(path string, raw []byte, getenv func(string) string) (*Recipe, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	p := &recipeParser{file: path, dir: dirOf(path)}
	if len(raw) > MaxRecipeBytes {
		line, col := posAt(raw, MaxRecipeBytes)
		return nil, &RecipeError{File: path, Line: line, Col: col,
			Msg: fmt.Sprintf("the recipe is larger than %d bytes; a recipe holds settings, not data (point a stage at data files instead)", MaxRecipeBytes)}
	}
	text := p.interpolate(string(raw), getenv)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if p.checkDepth(text); len(p.errs) > 0 {
		return nil, p.errs
	}
	r := p.parse(text)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	r.Path = path
	r.Dir = dirOf(path)
	// The store keeps the recipe as written: an interpolated value (which
	// might be a secret a user put in the environment) never reaches it.
	r.text = raw
	r.sectionKeys = map[string]cache.Key{}
	for _, name := range sectionNames() {
		v, ok := r.sections[name]
		if !ok {
			v = nil // an absent section has a key too
		}
		if kv, ok := v.(interface{ KeyView() any }); ok {
			v = kv.KeyView() // only what can change results
		}
		k, err := cache.KeyOf(v)
		if err != nil {
			return nil, &RecipeError{File: path, Msg: fmt.Sprintf("section %s cannot be encoded: %v", name, err)}
		}
		r.sectionKeys[name] = k
	}
	r.Digest = cache.DigestOf(r.text)
	return r, nil
}

// posAt returns the line and column (in bytes, from 1) of offset in b.
func posAt(b []byte, offset int) (line, col int) {
	line, col = 1, 1
	for _, c := range b[:min(offset, len(b))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	return "."
}

type recipeParser struct {
	file string
	dir  string
	errs RecipeErrors
	// anchors holds the value of every anchor (&name), by name.
	anchors map[string]ast.Node
}

func (p *recipeParser) errAt(n ast.Node, format string, args ...any) {
	e := &RecipeError{File: p.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Col = tk.Position.Line, tk.Position.Column
		}
	}
	p.errs = append(p.errs, e)
}

// yamlErr turns a go-yaml error into a located RecipeError.
func (p *recipeParser) yamlErr(err error, context string, fallback ast.Node) {
	p.yamlErrFrom(err, context, fallback, nil)
}

// yamlErrFrom is yamlErr for an error whose position counts from base (the
// first token of a node whose text a value decoded by itself), not from
// the start of the file: go-yaml hands such a value the node's text less
// the indentation of its first token. An error with no position is located
// at the key of fallback it names (see locateIn), or at fallback.
func (p *recipeParser) yamlErrFrom(err error, context string, fallback ast.Node, base *token.Position) {
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg := ye.GetMessage()
		var te *yaml.TypeError
		if errors.As(err, &te) && te.StructFieldName != nil {
			msg = fmt.Sprintf("%s: want %s, got %s", yamlFieldName(*te.StructFieldName), typeWord(te.DstType.Kind().String()), typeWord(te.SrcType.Kind().String()))
		}
		e := &RecipeError{File: p.file, Msg: context + msg}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Col = tk.Position.Line, tk.Position.Column
			if base != nil {
				e.Line, e.Col = base.Line+e.Line-1, base.Column+e.Col-1
			}
		}
		p.errs = append(p.errs, e)
		return
	}
	if fallback != nil {
		fallback = locateIn(p.resolve(fallback), err.Error(), p.resolve)
	}
	p.errAt(fallback, "%s%v", context, err)
}

// interpolate replaces ${VAR} and ${VAR:-default}; $$ is a literal $.
// Comments (whole lines, and from an unquoted " #" on) are left alone.
// Interpolation fills in values, it does not write YAML: a value that would
// not stay the plain text it is wherever it lands (in a plain, a quoted or
// a flow scalar) is an error located at the ${...}; see plainValueProblem.
func (p *recipeParser) interpolate(src string, getenv func(string) string) string {
	lines := strings.SplitAfter(src, "\n")
	for i, line := range lines {
		code, comment := splitComment(line)
		var b strings.Builder
		last := 0
		for _, m := range interpRE.FindAllStringSubmatchIndex(code, -1) {
			b.WriteString(code[last:m[0]])
			last = m[1]
			if code[m[0]:m[1]] == "$$" {
				b.WriteByte('$')
				continue
			}
			name := code[m[2]:m[3]]
			col := utf8.RuneCountInString(code[:m[0]]) + 1
			v := getenv(name)
			if v == "" {
				if m[4] < 0 {
					p.errs = append(p.errs, &RecipeError{File: p.file, Line: i + 1, Col: col,
						Msg: fmt.Sprintf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)})
					continue
				}
				v = code[m[4]:m[5]]
			}
			if why := plainValueProblem(v); why != "" {
				p.errs = append(p.errs, &RecipeError{File: p.file, Line: i + 1, Col: col,
					Msg: fmt.Sprintf("the value of %s holds characters that would change the recipe's structure (%s); interpolation only fills in plain values", name, why)})
				continue
			}
			b.WriteString(v)
		}
		b.WriteString(code[last:])
		lines[i] = b.String() + comment
	}
	return strings.Join(lines, "")
}

// plainValueProblem says why v would not stay the text it is when written
// into a recipe in place of a ${...}, or "" if it would. A value is safe
// anywhere (a plain scalar, inside quotes, in a flow collection) when it
// holds no control character or line break, no quote or backslash (quoted
// scalars), none of {}[], (flow collections), no ": " and no " #" (a
// mapping, a comment), has no leading or trailing space (dropped), and does
// not start with a character that starts other YAML (| > * & ! % @ `, or
// "- ", "? ", ": ").
func plainValueProblem(v string) string {
	for _, r := range v {
		switch {
		case r == '\t':
			return "a tab"
		case r == '\n' || r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029:
			return "a line break"
		case r < 0x20 || r == 0x7f || r == 0xfeff || r == utf8.RuneError:
			return "a control character"
		case r == '"' || r == '\'':
			return "a quote"
		case r == '\\':
			return "a backslash"
		case strings.ContainsRune("{}[],", r):
			return "one of {}[],"
		}
	}
	switch {
	case v == "":
		return ""
	case strings.Contains(v, ": ") || strings.HasSuffix(v, ":"):
		return `": " or a final ":", which make a mapping`
	case strings.Contains(v, " #") || v[0] == '#':
		return `"#" at the start or after a space, which starts a comment`
	case v[0] == ' ' || v[len(v)-1] == ' ':
		return "a leading or trailing space"
	case strings.ContainsRune("|>*&!%@`", rune(v[0])):
		return fmt.Sprintf("a leading %q, which starts YAML syntax", v[:1])
	case v == "-" || v == "?" || strings.HasPrefix(v, "- ") || strings.HasPrefix(v, "? "):
		return fmt.Sprintf("a leading %q, which starts YAML syntax", v[:1])
	}
	return ""
}

// splitComment splits a line before its comment: a '#' at the start of
// the line or after white space, outside quotes.
func splitComment(line string) (code, comment string) {
	var quote byte
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, ""
}

// checkDepth refuses text whose collections nest deeper than
// MaxRecipeDepth, before the parser sees it (its cost grows with the
// square of the depth). It counts on the tokens: flow collections by their
// brackets, block collections by the columns of their "- " entries and
// keys (a deeper column opens a collection, a shallower one closes those
// to its right). A list at its key's column counts with the key's mapping,
// so the count may fall short of the true depth, never by more than half.
func (p *recipeParser) checkDepth(text string) {
	var (
		flow  int
		block []int
		prev  *token.Token
	)
	for _, tk := range lexer.Tokenize(text) {
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			flow = max(flow-1, 0)
		case token.SequenceEntryType, token.MappingValueType:
			if flow > 0 || tk.Position == nil {
				break
			}
			col := tk.Position.Column
			if tk.Type == token.MappingValueType && prev != nil && prev.Position != nil && prev.Position.Line == tk.Position.Line {
				col = prev.Position.Column // the key's column
			}
			for len(block) > 0 && block[len(block)-1] > col {
				block = block[:len(block)-1]
			}
			if len(block) == 0 || block[len(block)-1] < col {
				block = append(block, col)
			}
		}
		if flow+len(block) > MaxRecipeDepth {
			e := &RecipeError{File: p.file, Msg: fmt.Sprintf("collections nest deeper than %d levels", MaxRecipeDepth)}
			if tk.Position != nil {
				e.Line, e.Col = tk.Position.Line, tk.Position.Column
			}
			p.errs = append(p.errs, e)
			return
		}
		if tk.Type != token.SpaceType && tk.Type != token.CommentType {
			prev = tk
		}
	}
}

// checkAliases records every anchor's value and refuses a document whose
// aliases would add more than MaxRecipeAliasNodes nodes in all when
// expanded (an alias of an alias multiplies: a few lines can stand for
// billions of nodes). The error is located at the alias that crosses the
// limit.
func (p *recipeParser) checkAliases(doc ast.Node) {
	const ceiling = 1 << 40 // sizes saturate here rather than overflow
	p.anchors = map[string]ast.Node{}
	sizes := map[string]int{}
	added := 0
	var size func(n ast.Node) int
	size = func(n ast.Node) int {
		if n == nil || added > MaxRecipeAliasNodes {
			return 0
		}
		sum := func(ns ...ast.Node) int {
			t := 1
			for _, c := range ns {
				t = min(t+size(c), ceiling)
			}
			return t
		}
		switch n := n.(type) {
		case *ast.DocumentNode:
			return size(n.Body)
		case *ast.AnchorNode:
			s := size(n.Value)
			name := anchorName(n.Name)
			sizes[name] = s
			p.anchors[name] = n.Value
			return s
		case *ast.AliasNode:
			s := sizes[anchorName(n.Value)]
			added = min(added+s, ceiling)
			if added > MaxRecipeAliasNodes {
				p.errAt(n, "aliases expand to more than %d nodes; write the values out, or use fewer aliases of aliases", MaxRecipeAliasNodes)
			}
			return s
		case *ast.TagNode:
			return size(n.Value)
		case *ast.MappingKeyNode:
			return size(n.Value)
		case *ast.MappingValueNode:
			return sum(n.Key, n.Value)
		case *ast.MappingNode:
			ns := make([]ast.Node, len(n.Values))
			for i, v := range n.Values {
				ns[i] = v
			}
			return sum(ns...)
		case *ast.SequenceNode:
			return sum(n.Values...)
		}
		return 1
	}
	size(doc)
}

func anchorName(n ast.Node) string {
	if n == nil {
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return n.String()
}

// resolve follows anchors, tags and aliases to the node holding the value.
func (p *recipeParser) resolve(n ast.Node) ast.Node {
	for range 100 {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			n = p.anchors[anchorName(v.Value)]
		default:
			return n
		}
	}
	return n
}

// entries returns the key/value pairs of a mapping node.
func entries(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, true
	}
	return nil, false
}

func keyText(mv *ast.MappingValueNode) string {
	if tk := mv.Key.GetToken(); tk != nil {
		return tk.Value
	}
	return mv.Key.String()
}

func (p *recipeParser) str(n ast.Node, what string) (string, bool) {
	var s string
	if _, isStr := n.(*ast.StringNode); !isStr {
		if _, isLit := n.(*ast.LiteralNode); !isLit {
			p.errAt(n, "%s must be a string", what)
			return "", false
		}
	}
	if err := yaml.NodeToValue(n, &s); err != nil {
		p.yamlErr(err, what+": ", n)
		return "", false
	}
	return s, true
}

func (p *recipeParser) parse(text string) *Recipe {
	r := &Recipe{sections: map[string]any{}, Pools: map[string]int{}}
	f, err := parser.ParseBytes([]byte(text), 0)
	if err != nil {
		p.yamlErr(err, "", nil)
		return r
	}
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d.Body != nil || d.Start != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) > 1 {
		e := &RecipeError{File: p.file, Msg: "a second YAML document: a recipe is one document with name: and stages: (remove this --- and what follows, or make it a recipe of its own)"}
		at := firstPos(docs[1].Body)
		if docs[1].Start != nil && docs[1].Start.Position != nil {
			at = docs[1].Start.Position
		}
		if at != nil {
			e.Line, e.Col = at.Line, at.Column
		}
		p.errs = append(p.errs, e)
		return r
	}
	if len(docs) == 0 || docs[0].Body == nil || isComment(docs[0].Body) {
		p.errs = append(p.errs, &RecipeError{File: p.file, Line: 1, Col: 1, Msg: "the recipe is empty: a recipe is a YAML mapping with name: and stages:"})
		return r
	}
	if p.checkAliases(docs[0]); len(p.errs) > 0 {
		return r
	}
	top, ok := entries(docs[0].Body)
	if !ok {
		p.errAt(docs[0].Body, "a recipe must be a mapping with name: and stages:")
		return r
	}
	var stagesNode ast.Node
	defaults := map[string]ast.Node{}
	seen := map[string]bool{}
	for _, mv := range top {
		k := keyText(mv)
		if seen[k] {
			p.errAt(mv.Key, "duplicate key %q", k)
			continue
		}
		seen[k] = true
		switch k {
		case "name":
			if s, ok := p.str(mv.Value, "name"); ok {
				if !stageID.MatchString(s) {
					p.errAt(mv.Value, "name %q must start with a letter and hold only letters, digits, '_' and '-'", s)
				}
				r.Name = s
			}
		case "description":
			r.Description, _ = p.str(mv.Value, "description")
		case "pools":
			var pools map[string]int
			if !p.checkTypes(mv.Value, reflect.TypeOf(pools), "pools: ") {
				continue
			}
			if err := yaml.NodeToValue(mv.Value, &pools, yaml.Strict()); err != nil {
				p.yamlErr(err, "pools: ", mv.Value)
			}
			for name, n := range pools {
				if n < 1 {
					p.errAt(mv.Value, "pool %q needs a limit of at least 1, not %d", name, n)
				}
			}
			r.Pools = pools
		case "defaults":
			des, ok := entries(mv.Value)
			if !ok {
				p.errAt(mv.Value, "defaults must map stage kinds to params, e.g. defaults: {validate: {runs: 3}}")
				continue
			}
			for _, d := range des {
				kn := keyText(d)
				if _, ok := LookupKind(kn); !ok {
					p.errAt(d.Key, "defaults for unknown stage kind %q (known kinds: %s)", kn, strings.Join(kindNames(), ", "))
					continue
				}
				defaults[kn] = d.Value
			}
		case "stages":
			stagesNode = mv.Value
		default:
			newValue, ok := lookupSection(k)
			if !ok {
				known := append([]string{"name", "description", "defaults", "pools", "stages"}, sectionNames()...)
				p.errAt(mv.Key, "unknown key %q (known: %s)", k, strings.Join(known, ", "))
				continue
			}
			v := newValue()
			if !p.checkTypes(mv.Value, reflect.TypeOf(v), k+": ") {
				continue
			}
			if err := yaml.NodeToValue(mv.Value, v, yaml.Strict()); err != nil {
				// A value that reads itself from YAML text is handed a copy
				// of its node's text, so positions in its errors count from
				// where the node starts.
				if customYAML(reflect.TypeOf(v)) {
					p.yamlErrFrom(err, k+": ", mv.Value, firstPos(mv.Value))
				} else {
					p.yamlErr(err, k+": ", mv.Value)
				}
				continue
			}
			if res, ok := v.(interface{ Resolve(recipeDir string) error }); ok {
				if err := res.Resolve(p.dir); err != nil {
					p.errAt(locateIn(p.resolve(mv.Value), err.Error(), p.resolve), "%s: %v", k, err)
					continue
				}
			}
			if val, ok := v.(interface{ Validate() error }); ok {
				if err := val.Validate(); err != nil {
					p.errAt(locateIn(p.resolve(mv.Value), err.Error(), p.resolve), "%s: %v", k, err)
				}
			}
			r.sections[k] = v
		}
	}
	if !seen["name"] {
		p.errs = append(p.errs, &RecipeError{File: p.file, Line: 1, Col: 1, Msg: "missing required key name:"})
	}
	if stagesNode == nil {
		p.errs = append(p.errs, &RecipeError{File: p.file, Line: 1, Col: 1, Msg: "missing required key stages:"})
		return r
	}
	p.parseStages(r, stagesNode, defaults)
	if len(p.errs) == 0 {
		p.checkGraph(r)
	}
	if len(p.errs) == 0 {
		p.checkRecipe(r)
	}
	return r
}

// checkRecipe runs every stage's RecipeChecker.
func (p *recipeParser) checkRecipe(r *Recipe) {
	for _, st := range r.Stages {
		c, ok := st.Params.(RecipeChecker)
		if !ok {
			continue
		}
		if err := c.CheckRecipe(r, st); err != nil {
			p.errAt(p.paramNode(st, err.Error()), "stage %q (%s): %v", st.ID, st.Kind.Name, err)
		}
	}
}

// paramNode returns the node an error about stage st's params is located
// at: the value of the param the message names (see locateIn) in with:,
// else in the kind's defaults, else the stage key it names (foreach:,
// from:), else with:, else the stage's declaration.
func (p *recipeParser) paramNode(st *Stage, msg string) ast.Node {
	for _, n := range []ast.Node{st.with, st.defaults, st.body} {
		if n == nil {
			continue
		}
		if at := locateIn(p.resolve(n), msg, p.resolve); at != p.resolve(n) {
			return at
		}
	}
	if st.with != nil {
		return st.with
	}
	return st.decl
}

func isComment(n ast.Node) bool {
	switch n.(type) {
	case *ast.CommentGroupNode, *ast.CommentNode:
		return true
	}
	return false
}

func kindNames() []string {
	var names []string
	for _, k := range Kinds() {
		names = append(names, k.Name)
	}
	return names
}

func (p *recipeParser) parseStages(r *Recipe, n ast.Node, defaults map[string]ast.Node) {
	sts, ok := entries(n)
	if !ok || len(sts) == 0 {
		p.errAt(n, "stages must map stage ids to stages, e.g. stages: {repos: {uses: repo, with: {...}}}")
		return
	}
	ids := map[string]bool{}
	for _, smv := range sts {
		id := keyText(smv)
		pos := p.pos(smv.Key)
		if ids[id] {
			p.errAt(smv.Key, "duplicate stage id %q", id)
			continue
		}
		ids[id] = true
		if !stageID.MatchString(id) {
			p.errAt(smv.Key, "stage id %q must start with a letter and hold only letters, digits, '_' and '-'", id)
			continue
		}
		fields, ok := entries(smv.Value)
		if !ok {
			p.errAt(smv.Value, "stage %q must be a mapping with uses: and optionally with:, foreach:, from:", id)
			continue
		}
		st := &Stage{ID: id, Pos: pos, body: smv.Value}
		var withNode, usesNode ast.Node
		for _, fmv := range fields {
			switch fk := keyText(fmv); fk {
			case "uses":
				usesNode = fmv.Value
				name, ok := p.str(fmv.Value, "stage "+id+": uses")
				if !ok {
					continue
				}
				k, ok := LookupKind(name)
				if !ok {
					p.errAt(fmv.Value, "stage %q uses unknown kind %q (known kinds: %s)", id, name, strings.Join(kindNames(), ", "))
					continue
				}
				st.Kind = k
			case "with":
				withNode = fmv.Value
			case "foreach":
				st.Foreach, _ = p.str(fmv.Value, "stage "+id+": foreach")
			case "from":
				var from any
				if err := yaml.NodeToValue(fmv.Value, &from); err != nil {
					p.yamlErr(err, "stage "+id+": from: ", fmv.Value)
					continue
				}
				switch v := from.(type) {
				case string:
					st.From = []string{v}
				case []any:
					for _, e := range v {
						s, ok := e.(string)
						if !ok {
							p.errAt(fmv.Value, "stage %q: from: must be a stage id or a list of stage ids", id)
							break
						}
						st.From = append(st.From, s)
					}
				default:
					p.errAt(fmv.Value, "stage %q: from: must be a stage id or a list of stage ids", id)
				}
			default:
				p.errAt(fmv.Key, "stage %q: unknown key %q (known: uses, with, foreach, from)", id, fk)
			}
		}
		if usesNode == nil {
			p.errAt(smv.Key, "stage %q has no uses: (the stage kind to run)", id)
			continue
		}
		if st.Kind == nil {
			continue
		}
		p.decodeParams(st, defaults[st.Kind.Name], withNode, smv.Key)
		r.Stages = append(r.Stages, st)
	}
}

func (p *recipeParser) pos(n ast.Node) string {
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return fmt.Sprintf("%s:%d:%d", p.file, tk.Position.Line, tk.Position.Column)
	}
	return p.file
}

func (p *recipeParser) decodeParams(st *Stage, defaults, with ast.Node, at ast.Node) {
	st.decl, st.with, st.defaults = at, with, defaults
	if st.Kind.Params == nil {
		if with != nil {
			p.errAt(with, "stage %q: kind %q takes no params", st.ID, st.Kind.Name)
		}
		st.params = []byte("null")
		return
	}
	v := st.Kind.Params()
	context := fmt.Sprintf("stage %q (%s): ", st.ID, st.Kind.Name)
	for _, n := range []ast.Node{defaults, with} {
		if n == nil {
			continue
		}
		if _, isNull := n.(*ast.NullNode); isNull {
			continue
		}
		if !p.checkTypes(n, reflect.TypeOf(v), context) {
			return
		}
		if err := yaml.NodeToValue(n, v, yaml.Strict()); err != nil {
			p.yamlErr(err, context, n)
			return
		}
	}
	if res, ok := v.(interface{ Resolve(recipeDir string) error }); ok {
		if err := res.Resolve(p.dir); err != nil {
			p.errAt(p.paramNode(st, err.Error()), "%s%v", context, err)
			return
		}
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			p.errAt(p.paramNode(st, err.Error()), "%s%v", context, err)
			return
		}
	}
	b, err := cache.Canonical(v)
	if err != nil {
		p.errAt(p.paramNode(st, ""), "stage %q: params cannot be encoded: %v", st.ID, err)
		return
	}
	st.Params, st.params = v, b
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
	// Values of these types read their YAML themselves.
	unmarshalers = []reflect.Type{
		reflect.TypeFor[yaml.BytesUnmarshaler](),
		reflect.TypeFor[yaml.BytesUnmarshalerContext](),
		reflect.TypeFor[yaml.InterfaceUnmarshaler](),
		reflect.TypeFor[yaml.InterfaceUnmarshalerContext](),
		reflect.TypeFor[encoding.TextUnmarshaler](),
	}
)

// customYAML reports whether values of t (or *t) decode themselves.
func customYAML(t reflect.Type) bool {
	if t.Kind() != reflect.Pointer {
		t = reflect.PointerTo(t)
	}
	for _, u := range unmarshalers {
		if t.Implements(u) {
			return true
		}
	}
	return false
}

// checkTypes walks the node n along the Go type t it is about to be decoded
// into and refuses, located, what the decoder would silently convert: a
// number with a fraction (or any float, or a string) for an integer, which
// it would truncate. Types that decode themselves are left to themselves.
func (p *recipeParser) checkTypes(n ast.Node, t reflect.Type, context string) bool {
	return p.checkTypesAt(n, t, context, "", 0)
}

func (p *recipeParser) checkTypesAt(n ast.Node, t reflect.Type, context, field string, depth int) bool {
	n = p.resolve(n)
	if n == nil || depth > 2*MaxRecipeDepth {
		return true
	}
	if _, isNull := n.(*ast.NullNode); isNull {
		return true
	}
	for t.Kind() == reflect.Pointer {
		if customYAML(t) {
			return true
		}
		t = t.Elem()
	}
	if t == durationType || t == timeType || customYAML(t) {
		return true
	}
	name := func(key string) string {
		if field == "" {
			return key
		}
		return field + "." + key
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, ok := n.(*ast.IntegerNode); ok {
			return true
		}
		what := "a string"
		switch n.(type) {
		case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
			what = n.GetToken().Value
		case *ast.BoolNode:
			what = "true or false"
		case *ast.MappingNode, *ast.MappingValueNode:
			what = "a mapping"
		case *ast.SequenceNode:
			what = "a list"
		}
		label := field
		if label != "" {
			label += ": "
		}
		p.errAt(n, "%s%swant an integer, got %s", context, label, what)
		return false
	case reflect.Slice, reflect.Array:
		if seq, ok := n.(*ast.SequenceNode); ok {
			for i, v := range seq.Values {
				if !p.checkTypesAt(v, t.Elem(), context, fmt.Sprintf("%s[%d]", field, i), depth+1) {
					return false
				}
			}
		}
	case reflect.Map:
		es, _ := entries(n)
		for _, mv := range es {
			if _, merge := mv.Key.(*ast.MergeKeyNode); merge {
				if !p.checkTypesAt(mv.Value, t, context, field, depth+1) {
					return false
				}
				continue
			}
			if !p.checkTypesAt(mv.Value, t.Elem(), context, name(keyText(mv)), depth+1) {
				return false
			}
		}
	case reflect.Struct:
		fields := map[string]reflect.Type{}
		structFields(t, fields)
		es, _ := entries(n)
		for _, mv := range es {
			if _, merge := mv.Key.(*ast.MergeKeyNode); merge {
				if !p.checkTypesAt(mv.Value, t, context, field, depth+1) {
					return false
				}
				continue
			}
			ft, ok := fields[keyText(mv)]
			if !ok {
				continue // the decoder reports unknown fields
			}
			if !p.checkTypesAt(mv.Value, ft, context, name(keyText(mv)), depth+1) {
				return false
			}
		}
	}
	return true
}

// structFields maps the YAML names of t's fields to their types, as
// go-yaml names them (inline structs included).
func structFields(t reflect.Type, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" {
			tag = f.Tag.Get("json")
		}
		opts := strings.Split(tag, ",")
		if opts[0] == "-" {
			continue
		}
		inline := false
		for _, o := range opts[1:] {
			inline = inline || o == "inline"
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if inline && ft.Kind() == reflect.Struct {
			structFields(ft, out)
			continue
		}
		name := strings.ToLower(f.Name)
		if opts[0] != "" {
			name = opts[0]
		}
		out[name] = f.Type
	}
}

// firstPos returns the position of the first token of n.
func firstPos(n ast.Node) *token.Position {
	var first *token.Position
	ast.Walk(visitFunc(func(c ast.Node) {
		if tk := c.GetToken(); tk != nil && tk.Position != nil {
			if first == nil || tk.Position.Line < first.Line || (tk.Position.Line == first.Line && tk.Position.Column < first.Column) {
				first = tk.Position
			}
		}
	}), n)
	return first
}

type visitFunc func(ast.Node)

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if n == nil {
		return nil
	}
	f(n)
	return f
}

// locateIn returns the node an error message is about, within the mapping
// n: the value of the key the message first names as "key:" (or as
// "key[i]:", the i-th element of a list), searched again within that value
// for the rest of the message; n if it names none. resolve follows anchors
// and aliases.
func locateIn(n ast.Node, msg string, resolve func(ast.Node) ast.Node) ast.Node {
	for range MaxRecipeDepth {
		es, ok := entries(n)
		if !ok {
			return n
		}
		start, rest, at := -1, 0, ast.Node(nil)
		for _, mv := range es {
			k := keyText(mv)
			if k == "" {
				continue
			}
			for from := 0; ; {
				i := strings.Index(msg[from:], k)
				if i < 0 {
					break
				}
				i += from
				from = i + 1
				if i > 0 && isNameByte(msg[i-1]) {
					continue
				}
				end, v := i+len(k), resolve(mv.Value)
				if m := indexRE.FindStringSubmatch(msg[end:]); m != nil {
					seq, ok := v.(*ast.SequenceNode)
					idx, err := strconv.Atoi(m[1])
					if !ok || err != nil || idx >= len(seq.Values) {
						continue
					}
					end, v = end+len(m[0])-1, seq.Values[idx]
				}
				if !strings.HasPrefix(msg[end:], ":") {
					continue
				}
				if start < 0 || i < start {
					start, rest, at = i, end+1, v
				}
				break
			}
		}
		if at == nil {
			return n
		}
		n, msg = resolve(at), msg[rest:]
	}
	return n
}

var indexRE = regexp.MustCompile(`^\[([0-9]+)\]:`)

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// checkGraph checks that every foreach/from names an earlier-declared or
// later stage that exists, that there is no cycle, and orders the stages
// so that every stage comes after what it depends on.
func (p *recipeParser) checkGraph(r *Recipe) {
	byID := map[string]*Stage{}
	for _, s := range r.Stages {
		byID[s.ID] = s
	}
	for _, s := range r.Stages {
		for _, dep := range s.deps() {
			if dep == s.ID {
				p.errs = append(p.errs, &RecipeError{File: p.file, Msg: fmt.Sprintf("stage %q depends on itself", s.ID)})
				p.fixPos(s)
			} else if byID[dep] == nil {
				p.errs = append(p.errs, &RecipeError{File: p.file, Msg: fmt.Sprintf("stage %q depends on unknown stage %q", s.ID, dep)})
				p.fixPos(s)
			}
		}
	}
	if len(p.errs) > 0 {
		return
	}
	// Kahn's algorithm, keeping file order among ready stages.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var order []*Stage
	var stack []string
	var visit func(s *Stage) bool
	visit = func(s *Stage) bool {
		color[s.ID] = grey
		stack = append(stack, s.ID)
		for _, dep := range s.deps() {
			switch color[dep] {
			case grey:
				i := len(stack) - 1
				for stack[i] != dep {
					i--
				}
				cycle := append(append([]string{}, stack[i:]...), dep)
				p.errs = append(p.errs, &RecipeError{File: p.file, Msg: "dependency cycle: " + strings.Join(cycle, " -> ")})
				p.fixPos(byID[dep])
				return false
			case white:
				if !visit(byID[dep]) {
					return false
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[s.ID] = black
		order = append(order, s)
		return true
	}
	for _, s := range r.Stages {
		if color[s.ID] == white && !visit(s) {
			return
		}
	}
	r.Stages = order
}

// fixPos locates the last error at the stage's declaration.
func (p *recipeParser) fixPos(s *Stage) {
	e := p.errs[len(p.errs)-1]
	var line, col int
	if _, err := fmt.Sscanf(strings.TrimPrefix(s.Pos, p.file+":"), "%d:%d", &line, &col); err == nil {
		e.Line, e.Col = line, col
	}
}

func (s *Stage) deps() []string {
	var d []string
	if s.Foreach != "" {
		d = append(d, s.Foreach)
	}
	return append(d, s.From...)
}

// yamlFieldName turns go-yaml's "Struct.Field" into the field's lower-case
// name as a recipe writes it (a best effort: tags are snake_case).
func yamlFieldName(structField string) string {
	name := structField[strings.LastIndexByte(structField, '.')+1:]
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func typeWord(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice", kind == "array":
		return "a list"
	case kind == "map", kind == "struct":
		return "a mapping"
	}
	return kind
}

// leftover matches the folders Publish writes beside a published folder
// (<dir>.tmp-<pid>-<random>, <dir>.old-<pid>-<random>), which a killed
// build may leave behind.
var leftover = regexp.MustCompile(`\.(tmp|old)-([0-9]+-)?[0-9a-f]+$`)

// CheckOutDir returns a bad-input error if a build publishing to dir would
// replace files that dsbuild did not write. dir may be missing, empty, or
// hold dsbuild's output: a published folder (with MarkerFile), or folders
// of published folders (several publishing stages or items, two levels at
// most), and what an interrupted publish left behind. Anything else (a
// source tree, a home directory, "." given by mistake) is refused; a build
// would delete it.
func CheckOutDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil || fi.Mode()&os.ModeSymlink != 0 {
		// Nothing there to lose (publishing reports what it cannot do), or
		// a link, which publishing replaces without touching its target.
		return nil
	}
	if !fi.IsDir() {
		return BadInput("output folder %s is not a directory; a build would replace it (give another folder with --out, or --force to replace it anyway)", dir)
	}
	if bad := foreignEntry(dir, 0); bad != "" {
		return BadInput("output folder %s holds %s, which dsbuild did not write; a build replaces the folder, so give an empty or new folder with --out (or --force to replace it anyway)", dir, bad)
	}
	return nil
}

// foreignEntry returns the first path below dir that is not dsbuild
// output, or "".
func foreignEntry(dir string, depth int) string {
	if _, err := os.Lstat(filepath.Join(dir, MarkerFile)); err == nil {
		return ""
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return dir
	}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		switch {
		case de.IsDir() && leftover.MatchString(de.Name()):
		case de.IsDir() && depth < 2:
			if bad := foreignEntry(p, depth+1); bad != "" {
				return bad
			}
		default:
			return p
		}
	}
	return ""
}
