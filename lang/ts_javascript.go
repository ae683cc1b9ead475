package lang

import (
	"strings"

	sitter "github.com/tree-sitter/go-tree-sitter"
	tsjs "github.com/tree-sitter/tree-sitter-javascript/bindings/go"
)

// JavaScript's half of the tree-sitter transforms (.js, .mjs, .cjs).
// JavaScript has no compile step, so a change that parses is one that
// loads; the rules only keep `+` on strings (concatenation) out of
// swap_arith, as mutate.py does for string formatting.

var jsMember = map[string]string{"member_expression": "property"}

func javascriptGrammar() *tsGrammar {
	r := &tsRules{
		comparison: map[string][]string{
			"<": {"<=", ">"}, "<=": {"<", ">="}, ">": {">=", "<"}, ">=": {">", "<="},
			"==": {"!="}, "!=": {"=="}, "===": {"!=="}, "!==": {"==="},
		},
		inverse: map[string]string{"<": ">=", ">=": "<", "<=": ">", ">": "<=", "==": "!=", "!=": "==", "===": "!==", "!==": "==="},
		arith:   map[string]string{"+": "-", "-": "+", "*": "/", "/": "*", "%": "/", "**": "*", "<<": ">>", ">>": "<<", ">>>": "<<"},
		// x += 1 and friends.
		augmented: "augmented_assignment_expression",
		stringish: func(f *tsFile, u *tsUnit, n *tsNode) bool { return jsStringish(f, n) },
		intLiteral: func(f *tsFile, n *tsNode) (int64, string, bool) {
			if n.kind != "number" {
				return 0, "", false
			}
			v, suffix, ok := parseDecimal(n.text(f.src))
			return v, "", ok && suffix == ""
		},
		boundContext: func(f *tsFile, n *tsNode) bool {
			if n.parent == nil || n.parent.kind != "arguments" || n.parent.parent == nil {
				return false
			}
			switch simpleCallName(f, n.parent.parent.child("function"), jsMember) {
			case "slice", "substring", "substr", "splice", "at":
				return true
			}
			return false
		},
		indexContext: func(n *tsNode) bool {
			return n.parent != nil && n.parent.kind == "subscript_expression" && n.field == "index"
		},
		ifKind: "if_statement",
		ifParts: func(n *tsNode) (cond, then, els *tsNode) {
			if c := n.child("condition"); c != nil && c.kind == "parenthesized_expression" && len(c.namedChildren()) == 1 {
				cond = c.namedChildren()[0]
			}
			then = n.child("consequence")
			if e := n.child("alternative"); e != nil && e.kind == "else_clause" {
				if kids := e.namedChildren(); len(kids) == 1 && kids[0].kind != "if_statement" {
					els = kids[0]
				}
			}
			if els == nil {
				then = nil
			}
			return cond, then, els
		},
		returnedBool: func(f *tsFile, u *tsUnit, n *tsNode) bool {
			return n.parent != nil && n.parent.kind == "return_statement"
		},
		call: func(f *tsFile, n *tsNode) (string, []*tsNode, bool) {
			args := n.child("arguments")
			if n.kind != "call_expression" || args == nil || args.kind != "arguments" {
				return "", nil, false
			}
			return n.child("function").text(f.src), args.namedChildren(), true
		},
		commutativeCalls: map[string]bool{
			"Math.max": true, "Math.min": true, "Math.hypot": true, "console.log": true, "console.error": true,
			"console.warn": true, "console.info": true, "console.debug": true,
		},
		swappable: func(f *tsFile, u *tsUnit, a, b *tsNode) bool {
			return a.kind != "spread_element" && b.kind != "spread_element"
		},
		removable: jsRemovable,
		primary: func(n *tsNode) bool {
			switch n.kind {
			case "identifier", "call_expression", "member_expression", "subscript_expression", "parenthesized_expression", "true", "false", "this":
				return true
			}
			return false
		},
	}
	return &tsGrammar{
		language:   sitter.NewLanguage(tsjs.Language()),
		isSource:   jsSourceFile,
		isAny:      jsAnyFile,
		transforms: r.transforms(),
		units:      jsUnits,
		loadTime:   jsLoadTime,
		stub:       jsStub,
		stubText:   `throw new Error("not implemented");`,
	}
}

func jsAnyFile(p string) bool {
	if !(strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".mjs") || strings.HasSuffix(p, ".cjs")) {
		return false
	}
	return !pathHasDir(p, "node_modules") && !strings.HasSuffix(p, ".min.js")
}

// jsSourceFile: a JavaScript file that is not test code (test/, tests/,
// __tests__/, *.test.js, *.spec.js) nor built output (dist/, build/,
// coverage/).
func jsSourceFile(p string) bool {
	if !jsAnyFile(p) || pathHasDir(p, "test", "tests", "__tests__", "dist", "build", "coverage") {
		return false
	}
	base := p[strings.LastIndexByte(p, '/')+1:]
	return !strings.Contains(base, ".test.") && !strings.Contains(base, ".spec.")
}

func jsStringish(f *tsFile, n *tsNode) bool {
	switch n.kind {
	case "string", "template_string":
		return true
	case "parenthesized_expression":
		kids := n.namedChildren()
		return len(kids) == 1 && jsStringish(f, kids[0])
	case "binary_expression":
		if op := n.child("operator"); op != nil && op.text(f.src) == "+" {
			l, r := n.child("left"), n.child("right")
			return l != nil && r != nil && (jsStringish(f, l) || jsStringish(f, r))
		}
	}
	return false
}

func jsIsFunction(n *tsNode) bool {
	switch n.kind {
	case "function_expression", "function", "arrow_function", "generator_function":
		return true
	}
	return false
}

// jsUnits: top-level functions (declared, exported, or a const/let/var
// bound to a function or arrow), functions assigned to exports.x or
// module.exports.x, and the methods of top-level classes.
func jsUnits(f *tsFile) []*tsUnit {
	var out []*tsUnit
	var top func(d *tsNode)
	top = func(d *tsNode) {
		switch d.kind {
		case "export_statement":
			if decl := d.child("declaration"); decl != nil {
				top(decl)
			}
		case "function_declaration", "generator_function_declaration":
			if name, body := d.child("name"), d.child("body"); name != nil && body != nil {
				out = append(out, &tsUnit{name: name.text(f.src), simple: name.text(f.src), decl: d, body: body})
			}
		case "lexical_declaration", "variable_declaration":
			for _, v := range d.namedChildren() {
				name, value := v.child("name"), v.child("value")
				if v.kind == "variable_declarator" && name != nil && name.kind == "identifier" && value != nil && jsIsFunction(value) {
					out = append(out, &tsUnit{name: name.text(f.src), simple: name.text(f.src), decl: d, body: value.child("body")})
				}
			}
		case "expression_statement":
			a := d.firstChildOfKind("assignment_expression")
			if a == nil {
				return
			}
			left, right := a.child("left"), a.child("right")
			if left == nil || right == nil || left.kind != "member_expression" || !jsIsFunction(right) {
				return
			}
			name := strings.TrimPrefix(strings.TrimPrefix(left.text(f.src), "module."), "exports.")
			if prop := left.child("property"); prop != nil {
				out = append(out, &tsUnit{name: name, simple: prop.text(f.src), decl: d, body: right.child("body")})
			}
		case "class_declaration":
			cname, body := d.child("name"), d.child("body")
			if cname == nil || body == nil {
				return
			}
			for _, m := range body.namedChildren() {
				name, mbody := m.child("name"), m.child("body")
				if m.kind == "method_definition" && name != nil && mbody != nil {
					out = append(out, &tsUnit{name: cname.text(f.src) + "." + name.text(f.src), simple: name.text(f.src), decl: m, body: mbody})
				}
			}
		}
	}
	for _, d := range f.root.children {
		top(d)
	}
	return out
}

func jsRemovable(f *tsFile, u *tsUnit, n *tsNode) bool {
	if n.parent == nil {
		return false
	}
	switch n.parent.kind {
	case "statement_block", "switch_case", "switch_default":
	default:
		return false
	}
	switch n.kind {
	case "expression_statement":
		kids := n.namedChildren()
		if len(kids) != 1 || kids[0].kind == "string" {
			return false // a directive ("use strict")
		}
		if kids[0].kind == "call_expression" {
			if fn := kids[0].child("function"); fn != nil && fn.kind == "super" {
				return false // this is unusable without super()
			}
		}
		return true
	case "return_statement":
		kids := u.body.namedChildren()
		return len(kids) == 0 || kids[len(kids)-1] != n
	case "break_statement", "continue_statement":
		return true
	}
	return false
}

// jsCalls records the names every call and `new` in n goes to.
func jsCalls(f *tsFile, n *tsNode, into map[string]bool) {
	n.walk(func(c *tsNode) bool {
		switch c.kind {
		case "call_expression":
			if name := simpleCallName(f, c.child("function"), jsMember); name != "" {
				into[name] = true
			}
		case "new_expression":
			if name := simpleCallName(f, c.child("constructor"), jsMember); name != "" {
				into[name] = true
			}
		}
		return true
	})
}

// jsLoadTime: the functions a module's top-level code runs while it loads
// (test files included; callbacks of describe/suite run then too), and a
// class's constructor and field initialisers under the class's name,
// transitively by simple name.
func jsLoadTime(files []*tsFile) map[string]bool {
	top := map[string]bool{}
	callees := map[string]map[string]bool{}
	into := func(name string) map[string]bool {
		if callees[name] == nil {
			callees[name] = map[string]bool{}
		}
		return callees[name]
	}
	for _, f := range files {
		var visit func(n *tsNode)
		visit = func(n *tsNode) {
			switch n.kind {
			case "function_declaration", "generator_function_declaration":
				if name, body := n.child("name"), n.child("body"); name != nil && body != nil {
					jsCalls(f, body, into(name.text(f.src)))
				}
				return
			case "variable_declarator":
				name, value := n.child("name"), n.child("value")
				if name != nil && value != nil && jsIsFunction(value) {
					jsCalls(f, value, into(name.text(f.src)))
					return
				}
			case "class_declaration", "class":
				cname := ""
				if name := n.child("name"); name != nil {
					cname = name.text(f.src)
				}
				if body := n.child("body"); body != nil {
					for _, m := range body.namedChildren() {
						mname := m.child("name")
						switch {
						case m.kind == "method_definition" && mname != nil && mname.text(f.src) == "constructor":
							jsCalls(f, m, into(cname))
						case m.kind == "method_definition" && mname != nil:
							jsCalls(f, m, into(mname.text(f.src)))
						case m.kind == "class_static_block":
							jsCalls(f, m, top)
						default:
							jsCalls(f, m, into(cname))
						}
					}
				}
				return
			case "arrow_function", "function_expression", "function", "generator_function":
				// Not run while loading, unless handed to describe().
				if n.parent != nil && n.parent.kind == "arguments" {
					switch simpleCallName(f, n.parent.parent.child("function"), jsMember) {
					case "describe", "suite", "context":
						break
					default:
						return
					}
				} else {
					return
				}
			case "call_expression":
				if name := simpleCallName(f, n.child("function"), jsMember); name != "" {
					top[name] = true
				}
			case "new_expression":
				if name := simpleCallName(f, n.child("constructor"), jsMember); name != "" {
					top[name] = true
				}
			}
			for _, c := range n.children {
				visit(c)
			}
		}
		visit(f.root)
	}
	return closeOver(top, callees)
}

func jsTrivialExpr(n *tsNode) bool {
	switch n.kind {
	case "identifier", "this", "true", "false", "null", "undefined", "number", "string":
		return true
	case "member_expression":
		o := n.child("object")
		return o != nil && (o.kind == "this" || o.kind == "identifier")
	}
	return false
}

func jsStub(f *tsFile, u *tsUnit) (tsChange, bool) {
	if u.body == nil || u.body.kind != "statement_block" {
		return tsChange{}, false
	}
	if u.decl.kind == "method_definition" {
		if u.simple == "constructor" {
			return tsChange{}, false
		}
		for _, c := range u.decl.children {
			if !c.named && (c.kind == "get" || c.kind == "set") {
				return tsChange{}, false
			}
		}
	}
	stmts := u.body.namedChildren()
	if len(stmts) == 0 {
		return tsChange{}, false
	}
	if len(stmts) == 1 {
		s := stmts[0]
		kids := s.namedChildren()
		if s.kind == "return_statement" && (len(kids) == 0 || jsTrivialExpr(kids[0])) {
			return tsChange{}, false
		}
		if s.kind == "throw_statement" {
			return tsChange{}, false
		}
	}
	return tsChange{
		start: u.body.start, end: u.body.end, line: u.decl.line,
		text: stubBody(f, u, stmts[0], `throw new Error("not implemented");`, "  "),
	}, true
}
