package build

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
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
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &RecipeError{File: path, Msg: fmt.Sprintf("cannot read recipe: %v", errors.Unwrap(err))}
	}
	return ParseRecipe(path, raw, getenv)
}

// ParseRecipe parses and validates recipe text; path is used for messages
// and to resolve relative paths.
func ParseRecipe(path string, raw []byte, getenv func(string) string) (*Recipe, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	p := &recipeParser{file: path, dir: dirOf(path)}
	text := p.interpolate(string(raw), getenv)
	if len(p.errs) > 0 {
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
		}
		p.errs = append(p.errs, e)
		return
	}
	p.errAt(fallback, "%s%v", context, err)
}

// interpolate replaces ${VAR} and ${VAR:-default}; $$ is a literal $.
// Comments (whole lines, and from an unquoted " #" on) are left alone. A
// value that would change the recipe's structure rather than fill in a
// scalar (a newline, a quote, a flow-collection character, ": " or " #") is
// an error: interpolation fills in values, it does not write YAML.
func (p *recipeParser) interpolate(src string, getenv func(string) string) string {
	lines := strings.SplitAfter(src, "\n")
	for i, line := range lines {
		code, comment := splitComment(line)
		lines[i] = interpRE.ReplaceAllStringFunc(code, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := interpRE.FindStringSubmatch(m)
			name, def := sub[1], sub[2]
			col := strings.Index(code, m) + 1
			v := getenv(name)
			if v == "" {
				if !strings.Contains(m, ":-") {
					p.errs = append(p.errs, &RecipeError{File: p.file, Line: i + 1, Col: col,
						Msg: fmt.Sprintf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)})
					return ""
				}
				v = def
			}
			if strings.ContainsAny(v, "\n\"'{}[],") || strings.Contains(v, ": ") || strings.Contains(v, " #") {
				p.errs = append(p.errs, &RecipeError{File: p.file, Line: i + 1, Col: col,
					Msg: fmt.Sprintf("the value of %s holds characters that would change the recipe's structure (newline, quote, one of {}[], or \": \" / \" #\"); interpolation only fills in plain values", name)})
				return ""
			}
			return v
		}) + comment
	}
	return strings.Join(lines, "")
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
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		p.errs = append(p.errs, &RecipeError{File: p.file, Msg: "a recipe is one YAML document with name: and stages:"})
		return r
	}
	top, ok := entries(f.Docs[0].Body)
	if !ok {
		p.errAt(f.Docs[0].Body, "a recipe must be a mapping with name: and stages:")
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
			if err := yaml.NodeToValue(mv.Value, v, yaml.Strict()); err != nil {
				p.yamlErr(err, k+": ", mv.Value)
				continue
			}
			if res, ok := v.(interface{ Resolve(recipeDir string) error }); ok {
				if err := res.Resolve(p.dir); err != nil {
					p.errAt(mv.Value, "%s: %v", k, err)
					continue
				}
			}
			if val, ok := v.(interface{ Validate() error }); ok {
				if err := val.Validate(); err != nil {
					p.errAt(mv.Value, "%s: %v", k, err)
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
	return r
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
		st := &Stage{ID: id, Pos: pos}
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
	if st.Kind.Params == nil {
		if with != nil {
			p.errAt(with, "stage %q: kind %q takes no params", st.ID, st.Kind.Name)
		}
		st.params = []byte("null")
		return
	}
	v := st.Kind.Params()
	for _, n := range []ast.Node{defaults, with} {
		if n == nil {
			continue
		}
		if _, isNull := n.(*ast.NullNode); isNull {
			continue
		}
		if err := yaml.NodeToValue(n, v, yaml.Strict()); err != nil {
			p.yamlErr(err, fmt.Sprintf("stage %q (%s): ", st.ID, st.Kind.Name), n)
			return
		}
	}
	if res, ok := v.(interface{ Resolve(recipeDir string) error }); ok {
		if err := res.Resolve(p.dir); err != nil {
			where := with
			if where == nil {
				where = at
			}
			p.errAt(where, "stage %q (%s): %v", st.ID, st.Kind.Name, err)
			return
		}
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			where := with
			if where == nil {
				where = at
			}
			p.errAt(where, "stage %q (%s): %v", st.ID, st.Kind.Name, err)
			return
		}
	}
	b, err := cache.Canonical(v)
	if err != nil {
		p.errAt(with, "stage %q: params cannot be encoded: %v", st.ID, err)
		return
	}
	st.Params, st.params = v, b
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
