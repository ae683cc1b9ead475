package lang

import (
	"bytes"
	"go/build/constraint"
	"path"
	"slices"
	"strconv"
	"strings"

	sitter "github.com/tree-sitter/go-tree-sitter"
	tsgo "github.com/tree-sitter/tree-sitter-go/bindings/go"
)

// Go's half of the tree-sitter transforms. Go's compiler rejects unused
// variables and imports and type errors, and nothing here knows types, so
// the rules are conservative: no `+` on anything that looks like a string,
// no statement removed if a name it mentions would be left unused, no
// arguments swapped unless both are parameters of the same type or
// literals of the same kind.

var goIdentKinds = map[string]bool{"identifier": true, "package_identifier": true}

func goGrammar() *tsGrammar {
	r := &tsRules{
		comparison: cComparison,
		inverse:    cInverse,
		// & | ^ are left alone: & binds like *, | and ^ like +.
		arith:      cArith,
		augmented:  "assignment_statement",
		stringish:  goStringish,
		intLiteral: goIntLiteral,
		unsigned:   true,
		boundContext: func(f *tsFile, n *tsNode) bool {
			return n.parent != nil && n.parent.kind == "slice_expression" && (n.field == "start" || n.field == "end" || n.field == "capacity")
		},
		indexContext: func(n *tsNode) bool {
			return n.parent != nil && n.parent.kind == "index_expression" && n.field == "index"
		},
		ifKind: "if_statement",
		ifParts: func(n *tsNode) (cond, then, els *tsNode) {
			cond, then, els = n.child("condition"), n.child("consequence"), n.child("alternative")
			if els != nil && els.kind != "block" {
				els = nil
			}
			return cond, then, els
		},
		returnedBool: func(f *tsFile, u *tsUnit, n *tsNode) bool {
			return n.parent != nil && n.parent.kind == "expression_list" && n.parent.parent != nil && n.parent.parent.kind == "return_statement"
		},
		call: func(f *tsFile, n *tsNode) (string, []*tsNode, bool) {
			if n.kind != "call_expression" || n.child("arguments") == nil {
				return "", nil, false
			}
			args := n.child("arguments")
			for _, c := range args.children {
				if c.kind == "..." {
					return "", nil, false // f(a, b...): leave variadic spreads alone
				}
			}
			return n.child("function").text(f.src), args.namedChildren(), true
		},
		commutativeCalls: map[string]bool{"min": true, "max": true, "append": true, "make": true, "new": true, "delete": true, "complex": true, "print": true, "println": true, "math.Max": true, "math.Min": true, "math.Hypot": true},
		swappable:        goSwappable,
		removable:        goRemovable,
		primary: func(n *tsNode) bool {
			switch n.kind {
			case "identifier", "call_expression", "selector_expression", "parenthesized_expression", "index_expression", "true", "false":
				return true
			}
			return false
		},
	}
	return &tsGrammar{
		language: sitter.NewLanguage(tsgo.Language()),
		isSource: func(p string) bool {
			return goAnyFile(p) && !strings.HasSuffix(p, "_test.go")
		},
		isAny:      goAnyFile,
		transforms: r.transforms(),
		units:      goUnits,
		loadTime:   goLoadTime,
		stub:       goStub,
		stubText:   `panic("not implemented")`,
		wrapPrefix: "package p\n",
	}
}

// goAnyFile: a .go file the go tool builds (not under vendor/, testdata/
// or a directory starting with "_" or "."), and not generated.
func goAnyFile(p string) bool {
	if !strings.HasSuffix(p, ".go") || pathHasDir(p, "vendor", "testdata") {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, "_") {
			return false
		}
	}
	return true
}

// goGenerated reports whether the file carries the standard "Code
// generated ... DO NOT EDIT." line.
func goGenerated(src []byte) bool {
	for _, line := range bytes.Split(src, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if bytes.HasPrefix(l, []byte("// Code generated ")) && bytes.HasSuffix(l, []byte(" DO NOT EDIT.")) {
			return true
		}
		if bytes.HasPrefix(l, []byte("package ")) {
			return false
		}
	}
	return false
}

// goKnownOS and goKnownArch are the values of GOOS and GOARCH that file
// names and build tags select on (go/build's lists).
var (
	goKnownOS   = strings.Fields("aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris wasip1 windows zos")
	goKnownArch = strings.Fields("386 amd64 amd64p32 arm armbe arm64 arm64be loong64 mips mipsle mips64 mips64le mips64p32 mips64p32le ppc ppc64 ppc64le riscv riscv64 s390 s390x sparc sparc64 wasm")
)

// goBuilt reports whether the go tool builds the file in the sandbox
// (linux/amd64, cgo off: the profile's TestEnv), by its name (x_windows.go,
// x_arm64.go, x_linux_386_test.go) and its //go:build line (or its
// // +build lines): a bug or stub in a file left out of the build (a
// "//go:build ignore" generator, a "!go1.18" fallback of a generic
// implementation) changes nothing the tests see. Release tags (go1.N)
// count as satisfied, so a file for a newer toolchain than the
// environment's is kept (its candidates then fail to build or change
// nothing, and are rejected for it).
func goBuilt(p string, src []byte) bool {
	name := strings.TrimSuffix(strings.TrimSuffix(path.Base(p), ".go"), "_test")
	parts := strings.Split(name, "_")
	if n := len(parts); n >= 2 {
		last, prev := parts[n-1], parts[n-2]
		isOS := func(s string) bool { return slices.Contains(goKnownOS, s) }
		isArch := func(s string) bool { return slices.Contains(goKnownArch, s) }
		switch {
		case n >= 3 && isOS(prev) && isArch(last):
			if !goTag(prev) || !goTag(last) {
				return false
			}
		case isOS(last) || isArch(last):
			if !goTag(last) {
				return false
			}
		}
	}
	var plusLines []string
	for _, line := range bytes.Split(src, []byte("\n")) {
		l := strings.TrimSpace(string(line))
		switch {
		case l == "" || strings.HasPrefix(l, "//") && !constraint.IsGoBuild(l) && !constraint.IsPlusBuild(l):
			continue
		case constraint.IsGoBuild(l):
			expr, err := constraint.Parse(l)
			return err != nil || expr.Eval(goTag)
		case constraint.IsPlusBuild(l):
			plusLines = append(plusLines, l)
			continue
		}
		break // the package clause, or a /* */ comment: constraints end
	}
	for _, l := range plusLines {
		if expr, err := constraint.Parse(l); err == nil && !expr.Eval(goTag) {
			return false
		}
	}
	return true
}

// goTag is the build tags' truth in the sandbox: linux (and unix) on
// amd64, gc without cgo, every release tag; "ignore" and custom tags
// are unset.
func goTag(tag string) bool {
	switch tag {
	case "linux", "unix", "amd64", "gc":
		return true
	}
	if rest, ok := strings.CutPrefix(tag, "go1."); ok {
		_, err := strconv.Atoi(rest)
		return err == nil
	}
	return false
}

func goUnits(f *tsFile) []*tsUnit {
	if goGenerated(f.src) || !goBuilt(f.path, f.src) {
		return nil
	}
	var out []*tsUnit
	for _, d := range f.root.children {
		body := d.child("body")
		name := d.child("name")
		if name == nil || body == nil {
			continue
		}
		simple := name.text(f.src)
		switch d.kind {
		case "function_declaration":
			out = append(out, &tsUnit{name: simple, simple: simple, decl: d, body: body})
		case "method_declaration":
			recv := ""
			if r := d.child("receiver"); r != nil {
				r.walk(func(n *tsNode) bool {
					if recv == "" && n.kind == "type_identifier" {
						recv = n.text(f.src)
					}
					return recv == ""
				})
			}
			out = append(out, &tsUnit{name: recv + "." + simple, simple: simple, decl: d, body: body})
		}
	}
	return out
}

// goImportNames are the names the file's imports bind (the last path
// element, or the alias; "_" and "." bind nothing usable).
func goImportNames(f *tsFile) map[string]bool {
	out := map[string]bool{}
	f.root.walk(func(n *tsNode) bool {
		if n.kind != "import_spec" {
			return n.kind == "source_file" || n.kind == "import_declaration" || n.kind == "import_spec_list"
		}
		if alias := n.child("name"); alias != nil {
			out[alias.text(f.src)] = true
			return false
		}
		if p := n.child("path"); p != nil {
			s, err := strconv.Unquote(p.text(f.src))
			if err == nil {
				base := path.Base(s)
				// gopkg.in/yaml.v3 and example.com/x/v2 name their package
				// differently; a version element counts both ways.
				out[base] = true
				if i := strings.IndexByte(base, '.'); i > 0 {
					out[base[:i]] = true
				}
				out[strings.TrimPrefix(base, "go-")] = true
				if len(base) > 1 && base[0] == 'v' && base[1] >= '0' && base[1] <= '9' {
					out[path.Base(path.Dir(s))] = true
				}
			}
		}
		return false
	})
	return out
}

func goRemovable(f *tsFile, u *tsUnit, n *tsNode) bool {
	if n.parent == nil || n.parent.kind != "statement_list" {
		return false
	}
	switch n.kind {
	case "assignment_statement", "inc_statement", "dec_statement":
	case "expression_statement":
		call := n.firstChildOfKind("call_expression")
		if call == nil {
			return false
		}
		// A panic may be what makes the function end (Go's "missing
		// return" rule).
		if fn := call.child("function"); fn != nil && fn.text(f.src) == "panic" {
			return false
		}
	default:
		return false
	}
	return goUsesSurvive(f, u, n)
}

// goUsesSurvive reports whether deleting gone leaves every local variable
// and import it mentions used elsewhere. Go rejects a variable that is
// declared and never read (assigning it, x += 1 and x++ are no reads) and
// an import never used. Parameters, results and package-level names may
// go unused. A check by name, conservative about shadowing.
func goUsesSurvive(f *tsFile, u *tsUnit, gone *tsNode) bool {
	imports := goImportNames(f)
	declared := map[string]bool{}
	reads := map[string]int{}
	u.decl.walk(func(n *tsNode) bool {
		if n.kind != "identifier" {
			return n != gone
		}
		name := n.text(f.src)
		switch goIdentRole(n) {
		case "declare":
			declared[name] = true
		case "read":
			reads[name]++
		}
		return true
	})
	ok := true
	gone.walk(func(n *tsNode) bool {
		if !ok || n.kind != "identifier" {
			return ok
		}
		name := n.text(f.src)
		if declared[name] && reads[name] == 0 {
			ok = false
		}
		if imports[name] && countIdents(f, f.root, gone, name, goIdentKinds) == 0 {
			ok = false
		}
		return ok
	})
	return ok
}

// goIdentRole says what an identifier does: "declare" a local variable,
// "write" it (assignment, x += 1, x++), or "read" it.
func goIdentRole(n *tsNode) string {
	p := n.parent
	if p == nil {
		return "read"
	}
	switch p.kind {
	case "var_spec":
		if n.field == "name" {
			return "declare"
		}
	case "inc_statement", "dec_statement":
		return "write"
	case "expression_list":
		gp := p.parent
		if gp == nil || p.field != "left" {
			break
		}
		switch gp.kind {
		case "short_var_declaration", "range_clause", "receive_statement":
			return "declare"
		case "assignment_statement":
			return "write"
		}
	case "range_clause", "type_switch_statement":
		if n.field == "left" || n.field == "alias" {
			return "declare"
		}
	case "parameter_declaration", "variadic_parameter_declaration":
		if n.field == "name" {
			return "param"
		}
	}
	return "read"
}

// goParamTypes maps the unit's parameter names to their type text.
func goParamTypes(f *tsFile, u *tsUnit) map[string]string {
	out := map[string]string{}
	for _, field := range []string{"receiver", "parameters"} {
		pl := u.decl.child(field)
		if pl == nil {
			continue
		}
		for _, p := range pl.children {
			if p.kind != "parameter_declaration" {
				continue
			}
			t := p.child("type")
			for _, c := range p.children {
				if c.field == "name" && t != nil {
					out[c.text(f.src)] = t.text(f.src)
				}
			}
		}
	}
	return out
}

func goSwappable(f *tsFile, u *tsUnit, a, b *tsNode) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case "int_literal", "float_literal", "interpreted_string_literal", "raw_string_literal":
		return true
	case "identifier":
		types := goParamTypes(f, u)
		ta, tb := types[a.text(f.src)], types[b.text(f.src)]
		// Shadowing would defeat this; a parameter reassigned by := in
		// the body is rare enough.
		return ta != "" && ta == tb
	}
	return false
}

func goIntLiteral(f *tsFile, n *tsNode) (int64, string, bool) {
	if n.kind != "int_literal" {
		return 0, "", false
	}
	v, suffix, ok := parseDecimal(n.text(f.src))
	return v, "", ok && suffix == ""
}

// goStringNames are the unit's names that are probably strings: parameters
// and results of type string, variables declared string or assigned a
// string-looking value.
func goStringNames(f *tsFile, u *tsUnit) map[string]bool {
	out := map[string]bool{}
	u.decl.walk(func(n *tsNode) bool {
		switch n.kind {
		case "parameter_declaration", "var_spec":
			t := n.child("type")
			if t != nil && t.text(f.src) == "string" {
				for _, c := range n.children {
					if c.field == "name" {
						out[c.text(f.src)] = true
					}
				}
			}
			if v := n.child("value"); v != nil && n.kind == "var_spec" && goStringishExpr(f, v, out) {
				for _, c := range n.children {
					if c.field == "name" {
						out[c.text(f.src)] = true
					}
				}
			}
		case "short_var_declaration":
			l, r := n.child("left"), n.child("right")
			if l != nil && r != nil && len(l.namedChildren()) == len(r.namedChildren()) {
				for i, c := range l.namedChildren() {
					if goStringishExpr(f, r.namedChildren()[i], out) {
						out[c.text(f.src)] = true
					}
				}
			}
		}
		return true
	})
	return out
}

var goStringFuncs = map[string]bool{
	"fmt.Sprintf": true, "fmt.Sprint": true, "fmt.Sprintln": true, "strconv.Itoa": true, "strconv.FormatInt": true,
	"strconv.FormatFloat": true, "strconv.Quote": true, "string": true, "strings.Join": true, "strings.Repeat": true,
	"strings.ToUpper": true, "strings.ToLower": true, "strings.TrimSpace": true, "strings.Trim": true,
	"strings.TrimPrefix": true, "strings.TrimSuffix": true, "strings.Replace": true, "strings.ReplaceAll": true,
	"strings.Title": true, "filepath.Join": true, "path.Join": true,
}

func goStringishExpr(f *tsFile, n *tsNode, names map[string]bool) bool {
	switch n.kind {
	case "expression_list":
		kids := n.namedChildren()
		return len(kids) == 1 && goStringishExpr(f, kids[0], names)
	case "interpreted_string_literal", "raw_string_literal", "rune_literal":
		return true
	case "identifier":
		return names[n.text(f.src)]
	case "parenthesized_expression":
		kids := n.namedChildren()
		return len(kids) == 1 && goStringishExpr(f, kids[0], names)
	case "binary_expression":
		l, r := n.child("left"), n.child("right")
		return l != nil && r != nil && (goStringishExpr(f, l, names) || goStringishExpr(f, r, names))
	case "call_expression":
		fn := n.child("function")
		if fn == nil {
			return false
		}
		if goStringFuncs[fn.text(f.src)] {
			return true
		}
		if fn.kind == "selector_expression" {
			if field := fn.child("field"); field != nil {
				name := field.text(f.src)
				return name == "String" || name == "Error"
			}
		}
	case "index_expression", "slice_expression":
		// s[i] is a byte (fine to subtract); s[a:b] of a string is a string.
		if n.kind == "slice_expression" {
			if op := n.child("operand"); op != nil {
				return goStringishExpr(f, op, names)
			}
		}
	}
	return false
}

func goStringish(f *tsFile, u *tsUnit, n *tsNode) bool {
	return goStringishExpr(f, n, goStringNames(f, u))
}

// goCallName is the name a call goes to: f(...) or x.f(...).
func goCallName(f *tsFile, n *tsNode) string {
	return simpleCallName(f, n.child("function"), map[string]string{"selector_expression": "field"})
}

// goLoadTime: the functions package initialisation runs (calls in
// package-level var and const initialisers and in init functions, test
// files included), transitively by simple name.
func goLoadTime(files []*tsFile) map[string]bool {
	top := map[string]bool{}
	callees := map[string]map[string]bool{}
	record := func(f *tsFile, scope *tsNode, into map[string]bool) {
		scope.walk(func(n *tsNode) bool {
			if n.kind == "call_expression" {
				if name := goCallName(f, n); name != "" {
					into[name] = true
				}
			}
			return true
		})
	}
	for _, f := range files {
		for _, d := range f.root.children {
			switch d.kind {
			case "var_declaration", "const_declaration":
				record(f, d, top)
			case "function_declaration", "method_declaration":
				name := d.child("name")
				body := d.child("body")
				if name == nil || body == nil {
					continue
				}
				n := name.text(f.src)
				if n == "init" && d.kind == "function_declaration" {
					record(f, body, top)
					continue
				}
				if callees[n] == nil {
					callees[n] = map[string]bool{}
				}
				record(f, body, callees[n])
			}
		}
	}
	return closeOver(top, callees)
}

// goStatements are a block's statements.
func goStatements(block *tsNode) []*tsNode {
	if sl := block.firstChildOfKind("statement_list"); sl != nil {
		return sl.namedChildren()
	}
	return nil
}

func goTrivialExpr(n *tsNode) bool {
	switch n.kind {
	case "identifier", "nil", "true", "false", "int_literal", "float_literal", "interpreted_string_literal", "raw_string_literal", "rune_literal", "selector_expression":
		if n.kind == "selector_expression" {
			op := n.child("operand")
			return op != nil && op.kind == "identifier"
		}
		return true
	}
	return false
}

func goStub(f *tsFile, u *tsUnit) (tsChange, bool) {
	if u.simple == "main" || u.simple == "init" {
		return tsChange{}, false
	}
	stmts := goStatements(u.body)
	if len(stmts) == 0 {
		return tsChange{}, false
	}
	if len(stmts) == 1 {
		s := stmts[0]
		if s.kind == "return_statement" {
			el := s.firstChildOfKind("expression_list")
			if el == nil {
				return tsChange{}, false
			}
			trivial := true
			for _, e := range el.namedChildren() {
				trivial = trivial && goTrivialExpr(e)
			}
			if trivial {
				return tsChange{}, false
			}
		}
		if s.kind == "expression_statement" && strings.HasPrefix(s.text(f.src), "panic(") {
			return tsChange{}, false
		}
	}
	// The body must not be the only user of an import: the stub would
	// leave it unused, which Go rejects.
	imports := goImportNames(f)
	ok := true
	u.body.walk(func(n *tsNode) bool {
		if ok && n.kind == "identifier" && imports[n.text(f.src)] && countIdents(f, f.root, u.body, n.text(f.src), goIdentKinds) == 0 {
			ok = false
		}
		return ok
	})
	if !ok {
		return tsChange{}, false
	}
	return tsChange{
		start: u.body.start, end: u.body.end, line: u.decl.line,
		text: stubBody(f, u, stmts[0], `panic("not implemented")`, "\t"),
	}, true
}
