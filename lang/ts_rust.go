package lang

import (
	"strings"

	sitter "github.com/tree-sitter/go-tree-sitter"
	tsrust "github.com/tree-sitter/tree-sitter-rust/bindings/go"
)

// Rust's half of the tree-sitter transforms. Type inference and the borrow
// checker cannot be consulted here, so the rules stay with operators and
// literals where they can: statements are only removed when they are
// compound assignments (x += 1) or assignments to a field or element,
// arguments only swapped when both are parameters of the same type or
// literals of the same kind, and literals never go negative.

func rustGrammar() *tsGrammar {
	r := &tsRules{
		comparison: cComparison,
		inverse:    cInverse,
		arith:      cArith,
		augmented:  "compound_assignment_expr",
		stringish:  rustStringish,
		intLiteral: rustIntLiteral,
		unsigned:   true,
		boundContext: func(f *tsFile, n *tsNode) bool {
			return n.parent != nil && n.parent.kind == "range_expression"
		},
		indexContext: func(n *tsNode) bool {
			if n.parent == nil || n.parent.kind != "index_expression" {
				return false
			}
			kids := n.parent.namedChildren()
			return len(kids) == 2 && kids[1] == n
		},
		ifKind: "if_expression",
		ifParts: func(n *tsNode) (cond, then, els *tsNode) {
			cond = n.child("condition")
			if cond != nil && (cond.kind == "let_condition" || cond.kind == "let_chain") {
				return nil, nil, nil
			}
			then = n.child("consequence")
			if e := n.child("alternative"); e != nil {
				els = e.firstChildOfKind("block")
			}
			if els == nil {
				then = nil
			}
			return cond, then, els
		},
		returnedBool: func(f *tsFile, u *tsUnit, n *tsNode) bool {
			if n.kind != "boolean_literal" || n.parent == nil {
				return false
			}
			if n.parent.kind == "return_expression" {
				return true
			}
			kids := u.body.namedChildren()
			return n.parent == u.body && len(kids) > 0 && kids[len(kids)-1] == n
		},
		call: func(f *tsFile, n *tsNode) (string, []*tsNode, bool) {
			args := n.child("arguments")
			if n.kind != "call_expression" || args == nil {
				return "", nil, false
			}
			return n.child("function").text(f.src), args.namedChildren(), true
		},
		commutativeCalls: map[string]bool{"max": true, "min": true, "std::cmp::max": true, "std::cmp::min": true, "cmp::max": true, "cmp::min": true},
		swappable:        rustSwappable,
		removable: func(f *tsFile, u *tsUnit, n *tsNode) bool {
			if n.kind != "expression_statement" || n.parent == nil || n.parent.kind != "block" {
				return false
			}
			kids := n.namedChildren()
			if len(kids) != 1 {
				return false
			}
			switch kids[0].kind {
			case "compound_assignment_expr":
				return true
			case "assignment_expression":
				// x = ...; may be a deferred initialisation (let x;).
				l := kids[0].child("left")
				return l != nil && (l.kind == "field_expression" || l.kind == "index_expression")
			}
			return false
		},
		primary: func(n *tsNode) bool {
			switch n.kind {
			case "identifier", "call_expression", "field_expression", "index_expression", "parenthesized_expression", "boolean_literal", "self":
				return true
			}
			return false
		},
	}
	return &tsGrammar{
		language:   sitter.NewLanguage(tsrust.Language()),
		isSource:   rustSourceFile,
		isAny:      rustSourceFile,
		transforms: r.transforms(),
		units:      rustUnits,
		loadTime:   func([]*tsFile) map[string]bool { return nil },
		stub:       rustStub,
		stubText:   "unimplemented!()",
	}
}

// rustSourceFile: a .rs file under a src/ directory, not under tests/,
// benches/, examples/ or target/.
func rustSourceFile(p string) bool {
	if !strings.HasSuffix(p, ".rs") || pathHasDir(p, "tests", "benches", "examples", "target") {
		return false
	}
	return strings.HasPrefix(p, "src/") || strings.Contains(p, "/src/")
}

// rustTestOnly reports whether item carries #[test], #[cfg(test)] or a
// #[...::test] attribute (the attribute items right before it).
func rustTestOnly(f *tsFile, parent, item *tsNode) bool {
	idx := -1
	for i, c := range parent.children {
		if c == item {
			idx = i
		}
	}
	for i := idx - 1; i >= 0; i-- {
		c := parent.children[i]
		if isComment(c) {
			continue
		}
		if c.kind != "attribute_item" {
			break
		}
		t := strings.Join(strings.Fields(c.text(f.src)), "")
		if t == "#[test]" || strings.Contains(t, "cfg(test)") || strings.HasSuffix(t, "::test]") {
			return true
		}
	}
	return false
}

func rustUnits(f *tsFile) []*tsUnit {
	var out []*tsUnit
	var items func(list *tsNode, prefix string)
	items = func(list *tsNode, prefix string) {
		for _, d := range list.children {
			if rustTestOnly(f, list, d) {
				continue
			}
			switch d.kind {
			case "function_item":
				if name, body := d.child("name"), d.child("body"); name != nil && body != nil {
					out = append(out, &tsUnit{name: prefix + name.text(f.src), simple: name.text(f.src), decl: d, body: body})
				}
			case "impl_item", "trait_item":
				body := d.child("body")
				typ := d.child("type")
				if d.kind == "trait_item" {
					typ = d.child("name")
				}
				if body == nil || typ == nil {
					continue
				}
				tname := typ.text(f.src)
				typ.walk(func(n *tsNode) bool {
					if n.kind == "type_identifier" {
						tname = n.text(f.src)
						return false
					}
					return true
				})
				items(body, prefix+tname+".")
			case "mod_item":
				if body, name := d.child("body"), d.child("name"); body != nil && name != nil {
					items(body, prefix+name.text(f.src)+".")
				}
			}
		}
	}
	items(f.root, "")
	return out
}

func rustIntLiteral(f *tsFile, n *tsNode) (int64, string, bool) {
	if n.kind != "integer_literal" {
		return 0, "", false
	}
	return parseDecimal(n.text(f.src))
}

// rustParamTypes maps the unit's parameter names to their type text.
func rustParamTypes(f *tsFile, u *tsUnit) map[string]string {
	out := map[string]string{}
	if ps := u.decl.child("parameters"); ps != nil {
		for _, p := range ps.children {
			pat, t := p.child("pattern"), p.child("type")
			if p.kind == "parameter" && pat != nil && t != nil && pat.kind == "identifier" {
				out[pat.text(f.src)] = t.text(f.src)
			}
		}
	}
	return out
}

func rustSwappable(f *tsFile, u *tsUnit, a, b *tsNode) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case "integer_literal":
		_, sa, oka := parseDecimal(a.text(f.src))
		_, sb, okb := parseDecimal(b.text(f.src))
		return oka && okb && sa == sb
	case "float_literal", "string_literal":
		return true
	case "identifier":
		types := rustParamTypes(f, u)
		ta, tb := types[a.text(f.src)], types[b.text(f.src)]
		return ta != "" && ta == tb
	}
	return false
}

// rustStringTypes are types for which `+` is concatenation.
var rustStringTypes = map[string]bool{"String": true, "&str": true, "&'static str": true, "&String": true, "Cow<str>": true}

func rustStringish(f *tsFile, u *tsUnit, n *tsNode) bool {
	switch n.kind {
	case "string_literal", "raw_string_literal", "reference_expression":
		return true
	case "macro_invocation":
		return strings.HasPrefix(n.text(f.src), "format!")
	case "parenthesized_expression":
		kids := n.namedChildren()
		return len(kids) == 1 && rustStringish(f, u, kids[0])
	case "binary_expression":
		l, r := n.child("left"), n.child("right")
		return l != nil && r != nil && (rustStringish(f, u, l) || rustStringish(f, u, r))
	case "call_expression":
		t := n.child("function")
		if t == nil {
			return false
		}
		s := t.text(f.src)
		return strings.HasSuffix(s, ".to_string") || strings.HasSuffix(s, ".to_owned") || strings.HasPrefix(s, "String::") || strings.HasSuffix(s, ".clone") && rustStringish(f, u, t)
	case "field_expression":
		return false
	case "identifier":
		name := n.text(f.src)
		if rustStringTypes[strings.ReplaceAll(rustParamTypes(f, u)[name], " ", "")] {
			return true
		}
		found := false
		u.body.walk(func(d *tsNode) bool {
			if found || d.kind != "let_declaration" {
				return !found
			}
			pat := d.child("pattern")
			if pat == nil || pat.kind != "identifier" || pat.text(f.src) != name {
				return true
			}
			if t := d.child("type"); t != nil && rustStringTypes[strings.ReplaceAll(t.text(f.src), " ", "")] {
				found = true
			}
			if v := d.child("value"); v != nil && v.kind != "identifier" && rustStringish(f, u, v) {
				found = true
			}
			return true
		})
		return found
	}
	return false
}

func rustTrivial(f *tsFile, n *tsNode) bool {
	switch n.kind {
	case "identifier", "self", "boolean_literal", "integer_literal", "float_literal", "string_literal", "char_literal", "unit_expression":
		return true
	case "field_expression":
		v := n.child("value")
		return v != nil && (v.kind == "self" || v.kind == "identifier")
	case "macro_invocation":
		t := n.text(f.src)
		for _, m := range []string{"unimplemented!", "todo!", "panic!", "unreachable!"} {
			if strings.HasPrefix(t, m) {
				return true
			}
		}
	case "expression_statement":
		kids := n.namedChildren()
		return len(kids) == 1 && rustTrivial(f, kids[0])
	case "return_expression":
		kids := n.namedChildren()
		return len(kids) == 0 || rustTrivial(f, kids[0])
	}
	return false
}

func rustStub(f *tsFile, u *tsUnit) (tsChange, bool) {
	if u.simple == "main" {
		return tsChange{}, false
	}
	for _, c := range u.decl.children {
		if c.kind == "function_modifiers" && strings.Contains(c.text(f.src), "const") {
			return tsChange{}, false
		}
	}
	// `-> impl Trait` needs a body of some concrete type; a bare
	// unimplemented!() has none.
	if rt := u.decl.child("return_type"); rt != nil && strings.Contains(rt.text(f.src), "impl ") {
		return tsChange{}, false
	}
	stmts := u.body.namedChildren()
	if len(stmts) == 0 || len(stmts) == 1 && rustTrivial(f, stmts[0]) {
		return tsChange{}, false
	}
	return tsChange{
		start: u.body.start, end: u.body.end, line: u.decl.line,
		text: stubBody(f, u, stmts[0], "unimplemented!()", "    "),
	}, true
}
