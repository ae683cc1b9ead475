package lang

import (
	"fmt"
	"strconv"
	"strings"
)

// tsRules are what one grammar tells the shared bug transforms: operator
// tables and predicates over its node kinds. All three grammars name binary
// expressions "binary_expression" with an "operator" field, which the
// transforms below rely on.
type tsRules struct {
	// comparison maps a comparison operator to its variants, the boundary
	// change first, then the direction flip.
	comparison map[string][]string
	// inverse maps a comparison operator to its negation (invert_if).
	inverse map[string]string
	// arith maps an arithmetic operator to the one swap_arith puts instead.
	arith map[string]string
	// augmented is the kind of augmented assignment (x += 1) nodes; their
	// operator is the "operator" child.
	augmented string
	// stringish reports whether an expression is probably a string, so
	// `+` on it is concatenation swap_arith must not touch.
	stringish func(f *tsFile, u *tsUnit, n *tsNode) bool
	// intLiteral parses an integer literal node: its value and the suffix
	// kept after it (Rust's 1u8); ok is false for anything else (floats,
	// hexadecimal, octal).
	intLiteral func(f *tsFile, n *tsNode) (value int64, suffix string, ok bool)
	// unsigned: literals must not go below zero, nor past 2^k-1 (Go and
	// Rust literals have types; -1 or 256 may not compile).
	unsigned bool
	// boundContext reports whether n (an integer literal or a +/- around
	// one) is a slice or range bound or an argument of a slicing call.
	boundContext func(f *tsFile, n *tsNode) bool
	// indexContext reports whether n is the index of an index expression.
	indexContext func(n *tsNode) bool
	// ifParts returns, for an if node, the condition to negate (nil when
	// it may not be: Rust's `if let`) and the then and else branches when
	// the else is a plain block (nil, nil otherwise).
	ifParts func(n *tsNode) (cond, then, els *tsNode)
	// ifKind is the node kind of ifs.
	ifKind string
	// returnedBool reports whether n is a boolean literal a function returns.
	returnedBool func(f *tsFile, u *tsUnit, n *tsNode) bool
	// call returns a call's callee text and argument list, ok false for
	// other nodes.
	call func(f *tsFile, n *tsNode) (callee string, args []*tsNode, ok bool)
	// commutativeCalls are callees whose argument order does not matter.
	commutativeCalls map[string]bool
	// swappable reports whether two adjacent arguments may change places
	// and still compile.
	swappable func(f *tsFile, u *tsUnit, a, b *tsNode) bool
	// removable reports whether the statement n may be deleted.
	removable func(f *tsFile, u *tsUnit, n *tsNode) bool
	// primary reports whether an expression needs no parentheses after a
	// prefix `!`.
	primary func(n *tsNode) bool
}

// The transform names, in enumeration order (a subset of mutate.py's plus
// swap_if_else).
const (
	tInvertIf        = "invert_if"
	tSwapComparison  = "swap_comparison"
	tSwapArith       = "swap_arith"
	tOffByOne        = "off_by_one"
	tRemoveStatement = "remove_statement"
	tSwapIfElse      = "swap_if_else"
	tSwapArgs        = "swap_args"
	tChangeReturn    = "change_return"
	tSwapBoolOp      = "swap_bool_op"
)

// transforms builds the named transforms from r.
func (r *tsRules) transforms() []tsTransform {
	return []tsTransform{
		{tInvertIf, r.invertIf},
		{tSwapComparison, r.swapComparison},
		{tSwapArith, r.swapArith},
		{tOffByOne, r.offByOne},
		{tRemoveStatement, r.removeStatement},
		{tSwapIfElse, r.swapIfElse},
		{tSwapArgs, r.swapArgs},
		{tChangeReturn, r.changeReturn},
		{tSwapBoolOp, r.swapBoolOp},
	}
}

// sites returns the nodes of u's body in source order.
func sites(u *tsUnit) []*tsNode {
	var out []*tsNode
	if u.body == nil {
		return nil
	}
	u.body.walk(func(n *tsNode) bool {
		out = append(out, n)
		return true
	})
	return out
}

// replaced is n's text with child c replaced by text.
func replaced(f *tsFile, n, c *tsNode, text string) string {
	return string(f.src[n.start:c.start]) + text + string(f.src[c.end:n.end])
}

func (r *tsRules) binaryOp(f *tsFile, n *tsNode) (*tsNode, string) {
	if n.kind != "binary_expression" {
		return nil, ""
	}
	op := n.child("operator")
	if op == nil {
		return nil, ""
	}
	return op, op.text(f.src)
}

func (r *tsRules) swapComparison(f *tsFile, u *tsUnit) []tsChange {
	var out []tsChange
	for _, n := range sites(u) {
		op, text := r.binaryOp(f, n)
		for _, repl := range r.comparison[text] {
			out = append(out, tsChange{
				start: op.start, end: op.end, text: repl, line: op.line,
				description: fmt.Sprintf("changed the comparison `%s` to `%s`", snippet(n.text(f.src)), snippet(replaced(f, n, op, repl))),
			})
		}
	}
	return out
}

func (r *tsRules) swapArith(f *tsFile, u *tsUnit) []tsChange {
	var out []tsChange
	for _, n := range sites(u) {
		var op *tsNode
		var repl string
		switch {
		case n.kind == "binary_expression":
			o, text := r.binaryOp(f, n)
			if r.arith[text] == "" {
				continue
			}
			op, repl = o, r.arith[text]
		case n.kind == r.augmented:
			o := n.child("operator")
			if o == nil {
				continue
			}
			text := strings.TrimSuffix(o.text(f.src), "=")
			if r.arith[text] == "" {
				continue
			}
			op, repl = o, r.arith[text]+"="
		default:
			continue
		}
		text := op.text(f.src)
		if text == "+" || text == "+=" {
			if l, rt := n.child("left"), n.child("right"); l == nil || rt == nil || r.stringish(f, u, l) || r.stringish(f, u, rt) {
				continue
			}
		}
		if (repl == "/" || repl == "/=" || repl == "%") && isZeroLiteral(f, n.child("right")) {
			continue
		}
		out = append(out, tsChange{
			start: op.start, end: op.end, text: repl, line: op.line,
			description: fmt.Sprintf("replaced `%s` with `%s`", snippet(n.text(f.src)), snippet(replaced(f, n, op, repl))),
		})
	}
	return out
}

func isZeroLiteral(f *tsFile, n *tsNode) bool {
	return n != nil && strings.Trim(n.text(f.src), "0_") == ""
}

func (r *tsRules) swapBoolOp(f *tsFile, u *tsUnit) []tsChange {
	var out []tsChange
	for _, n := range sites(u) {
		op, text := r.binaryOp(f, n)
		repl := map[string]string{"&&": "||", "||": "&&"}[text]
		if repl == "" {
			continue
		}
		out = append(out, tsChange{
			start: op.start, end: op.end, text: repl, line: op.line,
			description: fmt.Sprintf("replaced `%s` with `%s`", snippet(n.text(f.src)), snippet(replaced(f, n, op, repl))),
		})
	}
	return out
}

// offByOne shifts integer literals by one where they are compared, index,
// or bound a slice or range (also inside a +/- there: `n - 1`).
func (r *tsRules) offByOne(f *tsFile, u *tsUnit) []tsChange {
	var out []tsChange
	for _, n := range sites(u) {
		value, suffix, ok := r.intLiteral(f, n)
		if !ok {
			continue
		}
		// Climb through +/- to the expression whose context counts.
		ctx := n
		for ctx.parent != nil && ctx.parent.kind == "binary_expression" {
			if _, op := r.binaryOp(f, ctx.parent); op != "+" && op != "-" {
				break
			}
			ctx = ctx.parent
		}
		var what string
		index := false
		switch {
		case r.indexContext(ctx):
			what, index = "the index", true
		case r.boundContext(f, ctx):
			what = "the bound"
		case ctx.parent != nil && r.comparison[opText(r, f, ctx.parent)] != nil:
			what = "the constant"
		default:
			continue
		}
		deltas := []int64{1, -1}
		if r.unsigned && index {
			// A constant index past an array's length does not compile; one
			// before it always does.
			deltas = []int64{-1}
			if value == 0 {
				deltas = []int64{1}
			}
		}
		for _, d := range deltas {
			v := value + d
			if r.unsigned && (v < 0 || isAllOnes(value) && d > 0) {
				continue
			}
			repl := strconv.FormatInt(v, 10) + suffix
			out = append(out, tsChange{
				start: n.start, end: n.end, text: repl, line: n.line,
				description: fmt.Sprintf("changed %s `%s` to `%s`", what, snippet(ctx.text(f.src)), snippet(replaced(f, ctx, n, repl))),
			})
		}
	}
	return out
}

func opText(r *tsRules, f *tsFile, n *tsNode) string {
	_, t := r.binaryOp(f, n)
	return t
}

// isAllOnes reports whether v is 2^k-1 for a common integer width, the
// largest value of some unsigned type: one more may overflow it.
func isAllOnes(v int64) bool {
	for _, k := range []uint{7, 8, 15, 16, 31, 32, 63} {
		if v == int64(1)<<k-1 {
			return true
		}
	}
	return false
}

// negate returns the text of the negation of cond.
func (r *tsRules) negate(f *tsFile, cond *tsNode) string {
	if op, text := r.binaryOp(f, cond); op != nil && r.inverse[text] != "" {
		return replaced(f, cond, op, r.inverse[text])
	}
	if cond.kind == "unary_expression" && len(cond.children) == 2 && cond.children[0].text(f.src) == "!" {
		inner := cond.children[1]
		if inner.kind == "parenthesized_expression" && len(inner.namedChildren()) == 1 {
			inner = inner.namedChildren()[0]
		}
		return inner.text(f.src)
	}
	if r.primary(cond) {
		return "!" + cond.text(f.src)
	}
	return "!(" + cond.text(f.src) + ")"
}

func (r *tsRules) invertIf(f *tsFile, u *tsUnit) []tsChange {
	var out []tsChange
	for _, n := range sites(u) {
		if n.kind != r.ifKind {
			continue
		}
		cond, _, _ := r.ifParts(n)
		if cond == nil {
			continue
		}
		repl := r.negate(f, cond)
		out = append(out, tsChange{
			start: cond.start, end: cond.end, text: repl, line: cond.line,
			description: fmt.Sprintf("inverted the condition `%s` of an if statement to `%s`", snippet(cond.text(f.src)), snippet(repl)),
		})
	}
	return out
}

func (r *tsRules) swapIfElse(f *tsFile, u *tsUnit) []tsChange {
	var out []tsChange
	for _, n := range sites(u) {
		if n.kind != r.ifKind {
			continue
		}
		cond, then, els := r.ifParts(n)
		if cond == nil || then == nil || els == nil {
			continue
		}
		a, b := then.text(f.src), els.text(f.src)
		if a == b {
			continue
		}
		text := b + string(f.src[then.end:els.start]) + a
		out = append(out, tsChange{
			start: then.start, end: els.end, text: text, line: n.line,
			description: fmt.Sprintf("swapped the then and else branches of the if statement on `%s`", snippet(cond.text(f.src))),
		})
	}
	return out
}

func (r *tsRules) changeReturn(f *tsFile, u *tsUnit) []tsChange {
	var out []tsChange
	for _, n := range sites(u) {
		text := n.text(f.src)
		if (text != "true" && text != "false") || !n.named || !r.returnedBool(f, u, n) {
			continue
		}
		repl := map[string]string{"true": "false", "false": "true"}[text]
		out = append(out, tsChange{
			start: n.start, end: n.end, text: repl, line: n.line,
			description: fmt.Sprintf("made a `return %s` return `%s` instead", text, repl),
		})
	}
	return out
}

func (r *tsRules) swapArgs(f *tsFile, u *tsUnit) []tsChange {
	var out []tsChange
	for _, n := range sites(u) {
		callee, args, ok := r.call(f, n)
		if !ok || len(args) < 2 || r.commutativeCalls[callee] {
			continue
		}
		for k := 0; k+1 < len(args); k++ {
			a, b := args[k], args[k+1]
			ta, tb := a.text(f.src), b.text(f.src)
			if ta == tb || !r.swappable(f, u, a, b) {
				continue
			}
			out = append(out, tsChange{
				start: a.start, end: b.end, text: tb + string(f.src[a.end:b.start]) + ta, line: a.line,
				description: fmt.Sprintf("swapped the arguments `%s` and `%s` of the call `%s`", snippet(ta), snippet(tb), snippet(n.text(f.src))),
			})
		}
	}
	return out
}

// removeStatement deletes one statement with its whole lines when it has
// them to itself (else just its text).
func (r *tsRules) removeStatement(f *tsFile, u *tsUnit) []tsChange {
	var out []tsChange
	for _, n := range sites(u) {
		if !r.removable(f, u, n) {
			continue
		}
		start, end := n.start, n.end
		ls := strings.LastIndexByte(string(f.src[:start]), '\n') + 1
		le := end
		for le < len(f.src) && (f.src[le] == ' ' || f.src[le] == '\t') {
			le++
		}
		if strings.TrimSpace(string(f.src[ls:start])) == "" && (le == len(f.src) || f.src[le] == '\n') {
			start = ls
			end = min(le+1, len(f.src))
		}
		out = append(out, tsChange{
			start: start, end: end, text: "", line: n.line,
			description: fmt.Sprintf("removed the statement `%s`", snippet(n.text(f.src))),
		})
	}
	return out
}

// countIdents counts identifiers called name in scope outside gone.
func countIdents(f *tsFile, scope, gone *tsNode, name string, identKinds map[string]bool) int {
	c := 0
	scope.walk(func(n *tsNode) bool {
		if n == gone {
			return false
		}
		if identKinds[n.kind] && n.end-n.start == len(name) && n.text(f.src) == name {
			c++
		}
		return true
	})
	return c
}

// parseDecimal parses a decimal integer literal with optional underscores
// and an alphabetic suffix; ok is false for other literals.
func parseDecimal(text string) (value int64, suffix string, ok bool) {
	i := 0
	for i < len(text) && (text[i] >= '0' && text[i] <= '9' || text[i] == '_') {
		i++
	}
	digits := strings.ReplaceAll(text[:i], "_", "")
	if digits == "" || len(digits) > 1 && digits[0] == '0' {
		return 0, "", false
	}
	suffix = text[i:]
	for _, c := range suffix {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return 0, "", false
		}
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || v >= 1<<62 {
		return 0, "", false
	}
	return v, suffix, true
}

// simpleCallName is the name a call goes to: f(...) or x.f(...).
func simpleCallName(f *tsFile, fn *tsNode, memberKinds map[string]string) string {
	if fn == nil {
		return ""
	}
	if fn.kind == "identifier" {
		return fn.text(f.src)
	}
	if field, ok := memberKinds[fn.kind]; ok {
		if c := fn.child(field); c != nil {
			return c.text(f.src)
		}
	}
	return ""
}

// closeOver returns the names reachable from top through callees.
func closeOver(top map[string]bool, callees map[string]map[string]bool) map[string]bool {
	seen := map[string]bool{}
	var todo []string
	for n := range top {
		todo = append(todo, n)
	}
	for len(todo) > 0 {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		for c := range callees[n] {
			todo = append(todo, c)
		}
	}
	return seen
}

// The operator tables Go and Rust share (read only): the comparisons a
// comparison may become, each comparison's negation, and the arithmetic
// swaps.
var (
	cComparison = map[string][]string{
		"<": {"<=", ">"}, "<=": {"<", ">="}, ">": {">=", "<"}, ">=": {">", "<="},
		"==": {"!="}, "!=": {"=="},
	}
	cInverse = map[string]string{"<": ">=", ">=": "<", "<=": ">", ">": "<=", "==": "!=", "!=": "=="}
	cArith   = map[string]string{"+": "-", "-": "+", "*": "/", "/": "*", "%": "/", "<<": ">>", ">>": "<<"}
)
