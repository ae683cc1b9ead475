#!/usr/bin/env python3
"""Procedural bug injection and Commit0-style stubbing for Python repositories.

This program owns one job: given a source tree, enumerate small, local,
deterministic modifications of its functions and print them as JSON. It never
writes to the tree, runs tests or decides which candidates are kept; the
caller (dsbuild's Go stages) applies a candidate's new_source in a sandbox,
runs the tests and keeps or drops it.

Usage:
    python3 mutate.py bugs ROOT --seed N [--max K] [--include GLOB ...] [--transforms a,b]
    python3 mutate.py stub ROOT --seed N [--max K] [--include GLOB ...]

Both print one JSON object {"candidates": [...]} on stdout. The same ROOT and
arguments give byte-identical output: files and sites are enumerated in a
fixed order and the only randomness is random.Random(seed).shuffle.

A candidate changes exactly one function (or method). The change is spliced
into the original text at the smallest enclosing piece that re-parses to the
intended tree: the mutated expression, else the enclosing statement, else the
whole function re-emitted with ast.unparse. Every splice is verified by
re-parsing the new file and comparing its AST with the intended one.

Standard library only; Python 3.11.
"""

import argparse
import ast
import io
import json
import os
import random
import re
import sys
import tokenize

# ---------------------------------------------------------------------------
# Files


def _glob_to_regex(pattern):
    """Translate a glob with ** (any number of directories) into a regex."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


_SKIP_DIRS = {"tests", "test", "__pycache__", "build", "dist", "node_modules"}


def is_test_path(relpath):
    """Report whether relpath (slash-separated) is test code that must not be modified."""
    parts = relpath.split("/")
    if any(p in ("tests", "test") for p in parts[:-1]):
        return True
    name = parts[-1]
    return name.startswith("test_") or name.endswith("_test.py") or name in ("conftest.py", "setup.py")


def source_files(root, includes):
    """Return the sorted slash-separated paths of the Python sources under root to modify."""
    patterns = [_glob_to_regex(p) for p in includes]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                continue
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if is_test_path(rel):
                continue
            if patterns and not any(p.match(rel) for p in patterns):
                continue
            found.append(rel)
    return sorted(found)


def module_name(relpath):
    """Return the dotted module name of relpath, dropping a leading src/ and __init__."""
    parts = relpath[: -len(".py")].split("/")
    if len(parts) > 1 and parts[0] == "src":
        parts = parts[1:]
    if len(parts) > 1 and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


# ---------------------------------------------------------------------------
# Source text positions (ast columns are UTF-8 byte offsets)


class SourceText:
    """The text of one file with conversions from ast positions to string offsets."""

    def __init__(self, text):
        self.text = text
        self.lines = re.split(r"(?<=\r\n)|(?<=\n)|(?<=\r)(?!\n)", text)
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.starts = []
        pos = 0
        for line in self.lines:
            self.starts.append(pos)
            pos += len(line)
        self.starts.append(pos)

    def offset(self, lineno, col_byte):
        """Return the string offset of (1-based line, UTF-8 byte column)."""
        line = self.lines[lineno - 1]
        col = len(line.encode("utf-8")[:col_byte].decode("utf-8", errors="replace"))
        return self.starts[lineno - 1] + col

    def line_start(self, lineno):
        """Return the string offset where line lineno starts."""
        return self.starts[lineno - 1]

    def line_end(self, lineno):
        """Return the string offset just past line lineno's newline."""
        return self.starts[lineno]

    def newline(self, lineno):
        """Return the newline sequence ending line lineno ("\\n" if none)."""
        line = self.lines[lineno - 1]
        stripped = line.rstrip("\r\n")
        return line[len(stripped):] or "\n"

    def whole_lines(self, node):
        """Return (start, end, indent) if node alone fills its lines, else None.

        Text after the node may be whitespace or a comment.
        """
        start = self.offset(node.lineno, node.col_offset)
        end = self.offset(node.end_lineno, node.end_col_offset)
        head = self.text[self.line_start(node.lineno): start]
        if head.strip() != "":
            return None
        tail = self.text[end: self.line_end(node.end_lineno)].strip()
        if tail and not tail.startswith("#"):
            return None
        return self.line_start(node.lineno), self.line_end(node.end_lineno), head


def indent_code(code, indent, newline):
    """Indent every line of code by indent, except lines inside multi-line strings."""
    lines = code.split("\n")
    inside = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code + "\n").readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0] + 1, tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        pass
    out = []
    for number, line in enumerate(lines, start=1):
        if number in inside or line == "":
            out.append(line)
        else:
            out.append(indent + line)
    return newline.join(out) + newline


# ---------------------------------------------------------------------------
# Functions and sites


class Unit:
    """A module-level function or a method: the granularity of one modification."""

    def __init__(self, node, container, index, qualname):
        self.node = node
        self.container = container
        self.index = index
        self.qualname = qualname
        self.sites = []  # (node, parent, field, index, enclosing statements, innermost last)
        self._walk(node, [])

    def _walk(self, node, stmts):
        for field, value in ast.iter_fields(node):
            if field in ("decorator_list", "returns", "annotation", "type_comment", "type_params"):
                continue
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST):
                        self._visit(child, node, field, i, stmts)
            elif isinstance(value, ast.AST):
                self._visit(value, node, field, None, stmts)

    def _visit(self, child, parent, field, index, stmts):
        if isinstance(child, (ast.expr_context, ast.operator, ast.boolop, ast.cmpop, ast.unaryop)):
            return
        if index == 0 and field == "body" and is_docstring_stmt(child) and isinstance(
            parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        ):
            return
        self.sites.append((child, parent, field, index, tuple(stmts)))
        if isinstance(child, ast.JoinedStr):
            return  # positions inside f-strings are unreliable; leave them alone
        if isinstance(child, ast.stmt):
            self._walk(child, stmts + [child])
        else:
            self._walk(child, stmts)


def is_docstring_stmt(node):
    """Report whether node is a bare string expression statement."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def collect_units(tree):
    """Return the functions and methods of a module in source order."""
    units = []

    def visit(body, prefix):
        for i, node in enumerate(body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                units.append(Unit(node, body, i, prefix + node.name))
            elif isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")

    visit(tree.body, "")
    return units


class Mutation:
    """One intended change at one site.

    kind is "expr" (replace the node in slot parent.field[index]), "list"
    (replace statement parent.field[index] by the list make() returns) or
    "field" (replace the whole value of parent.field).
    """

    def __init__(self, transform, kind, site, make, description):
        self.transform = transform
        self.kind = kind
        self.node, self.parent, self.field, self.index, self.stmts = site
        self.make = make
        self.description = description


def snippet(node, limit=70):
    """Return a one-line rendering of node for a description."""
    text = ast.unparse(node).split("\n")[0]
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


# ---------------------------------------------------------------------------
# Transforms. Each takes a Unit and returns Mutations in site order.

_INVERSE_CMP = {
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.LtE: ast.Gt,
    ast.Gt: ast.LtE,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}

# For each comparison: the boundary change first, then the direction flip.
_CMP_VARIANTS = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
}

_ARITH_SWAP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitOr,
}

_NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift)
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_OP_TEXT = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
}
_COMMUTATIVE_CALLS = {"min", "max", "print", "set", "frozenset", "gcd", "lcm", "hypot"}


def _is_str_constant(node):
    return isinstance(node, (ast.JoinedStr,)) or (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))


def _negate(test):
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return test.operand
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        return ast.Compare(left=test.left, ops=[_INVERSE_CMP[type(test.ops[0])]()], comparators=test.comparators)
    return ast.UnaryOp(op=ast.Not(), operand=test)


def t_invert_if(unit, where):
    """Negate the condition of an if, while or conditional expression."""
    out = []
    for site in unit.sites:
        node, parent, field = site[0], site[1], site[2]
        if field == "test" and isinstance(parent, (ast.If, ast.While, ast.IfExp)):
            kind = {ast.If: "an if statement", ast.While: "a while loop", ast.IfExp: "a conditional expression"}[type(parent)]
            new = _negate(node)
            desc = "inverted the condition `%s` of %s to `%s` in %s" % (snippet(node), kind, snippet(new), where)
            out.append(Mutation("invert_if", "expr", site, _negate, desc))
    return out


def t_swap_comparison(unit, where):
    """Change a comparison operator: boundary (< to <=) or direction (< to >)."""
    out = []
    for site in unit.sites:
        node = site[0]
        if not isinstance(node, ast.Compare):
            continue
        for k, op in enumerate(node.ops):
            for repl in _CMP_VARIANTS[type(op)]:

                def make(n, k=k, repl=repl):
                    ops = list(n.ops)
                    ops[k] = repl()
                    return ast.Compare(left=n.left, ops=ops, comparators=n.comparators)

                desc = "changed the comparison `%s` to `%s` in %s" % (snippet(node), snippet(make(node)), where)
                out.append(Mutation("swap_comparison", "expr", site, make, desc))
    return out


def t_swap_arith(unit, where):
    """Replace an arithmetic or bitwise operator by its counterpart (+ and -, * and //, ...)."""
    out = []
    for site in unit.sites:
        node = site[0]
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH_SWAP:
            if _is_str_constant(node.left) or _is_str_constant(node.right):
                continue

            def make(n):
                return ast.BinOp(left=n.left, op=_ARITH_SWAP[type(n.op)](), right=n.right)

            desc = "replaced `%s` with `%s` in %s" % (snippet(node), snippet(make(node)), where)
            out.append(Mutation("swap_arith", "expr", site, make, desc))
        elif isinstance(node, ast.AugAssign) and type(node.op) in _ARITH_SWAP:
            if _is_str_constant(node.value):
                continue

            def make(n):
                return ast.AugAssign(target=n.target, op=_ARITH_SWAP[type(n.op)](), value=n.value)

            desc = "replaced `%s` with `%s` in %s" % (snippet(node), snippet(make(node)), where)
            out.append(Mutation("swap_arith", "expr", site, make, desc))
    return out


def t_swap_operands(unit, where):
    """Swap the operands of a non-commutative operator or of a single ordering comparison."""
    out = []
    for site in unit.sites:
        node = site[0]
        if isinstance(node, ast.BinOp) and isinstance(node.op, _NON_COMMUTATIVE):
            if _is_str_constant(node.left) or ast.dump(node.left) == ast.dump(node.right):
                continue

            def make(n):
                return ast.BinOp(left=n.right, op=n.op, right=n.left)

        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], _ORDERING):
            if ast.dump(node.left) == ast.dump(node.comparators[0]):
                continue

            def make(n):
                return ast.Compare(left=n.comparators[0], ops=n.ops, comparators=[n.left])

        else:
            continue
        desc = "swapped the operands of `%s` giving `%s` in %s" % (snippet(node), snippet(make(node)), where)
        out.append(Mutation("swap_operands", "expr", site, make, desc))
    return out


def int_node(value):
    """Return the expression node for an int as the parser builds it (-1 is a unary minus)."""
    if value < 0:
        return ast.UnaryOp(op=ast.USub(), operand=ast.Constant(-value))
    return ast.Constant(value)


def _shift(expr, delta):
    """Return expr + delta, folding into a trailing integer constant when there is one."""
    if isinstance(expr, ast.Constant) and type(expr.value) is int:
        return int_node(expr.value + delta)
    if (
        isinstance(expr, ast.BinOp)
        and isinstance(expr.op, (ast.Add, ast.Sub))
        and isinstance(expr.right, ast.Constant)
        and type(expr.right.value) is int
    ):
        k = expr.right.value if isinstance(expr.op, ast.Add) else -expr.right.value
        k += delta
        if k == 0:
            return expr.left
        return ast.BinOp(left=expr.left, op=ast.Add() if k > 0 else ast.Sub(), right=ast.Constant(abs(k)))
    return ast.BinOp(left=expr, op=ast.Add() if delta > 0 else ast.Sub(), right=ast.Constant(abs(delta)))


def t_off_by_one(unit, where):
    """Shift an integer constant, a range() bound or a slice bound by one."""
    out = []
    for site in unit.sites:
        node, parent, field = site[0], site[1], site[2]
        bound = False
        if isinstance(parent, ast.Call) and field == "args" and isinstance(parent.func, ast.Name):
            if parent.func.id == "range" and len(parent.args) <= 3 and site[3] < 2 and not isinstance(node, ast.Starred):
                bound = True
        if isinstance(parent, ast.Slice) and field in ("lower", "upper"):
            bound = True
        is_int = isinstance(node, ast.Constant) and type(node.value) is int
        if not is_int and not bound:
            continue
        if bound and not is_int and (
            isinstance(node, ast.BinOp) and isinstance(node.right, ast.Constant) and type(node.right.value) is int
        ):
            continue  # the constant inside is already a site of its own
        for delta in (1, -1):

            def make(n, delta=delta):
                return _shift(n, delta)

            what = "the bound" if bound else "the constant"
            desc = "changed %s `%s` to `%s` in %s" % (what, snippet(node), snippet(make(node)), where)
            out.append(Mutation("off_by_one", "expr", site, make, desc))
    return out


_REMOVABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise, ast.Break, ast.Continue, ast.Delete, ast.Assert)


def t_remove_statement(unit, where):
    """Delete one simple statement (assignment, call, return, raise, break, ...)."""
    out = []
    last = unit.node.body[-1]
    for site in unit.sites:
        node, parent, field, index = site[0], site[1], site[2], site[3]
        if not isinstance(node, _REMOVABLE) or index is None:
            continue
        if node is last and isinstance(node, ast.Return):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.AnnAssign) and node.value is None:
            continue
        desc = "removed the statement `%s` from %s" % (snippet(node), where)
        out.append(Mutation("remove_statement", "list", site, lambda n: [], desc))
    return out


def t_remove_branch(unit, where):
    """Drop an elif or else branch, or the body of an if (keeping any else)."""
    out = []
    for site in unit.sites:
        node, index = site[0], site[3]
        if not isinstance(node, ast.If):
            continue
        head = "if %s:" % snippet(node.test)
        if node.orelse:
            if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
                elif_node = node.orelse[0]
                desc = "removed the branch `elif %s:` after `%s` in %s" % (snippet(elif_node.test), head, where)
                make = lambda orelse: list(orelse[0].orelse)
            else:
                desc = "removed the else branch of `%s` in %s" % (head, where)
                make = lambda orelse: []
            field_site = (node.orelse[0], node, "orelse", None, site[4] + (node,))
            out.append(Mutation("remove_branch", "field", field_site, make, desc))
        if index is not None:
            if node.orelse:
                desc = "removed the body of `%s` so only its else part remains in %s" % (head, where)
            else:
                desc = "removed the branch `%s` in %s" % (head, where)
            out.append(Mutation("remove_branch", "list", site, lambda n: list(n.orelse), desc))
    return out


def t_remove_loop(unit, where):
    """Delete a whole for or while loop."""
    out = []
    for site in unit.sites:
        node, index = site[0], site[3]
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)) and index is not None:
            if isinstance(node, ast.While):
                head = "while %s:" % snippet(node.test)
            else:
                head = "for %s in %s:" % (snippet(node.target), snippet(node.iter))
            desc = "removed the loop `%s` from %s" % (head, where)
            out.append(Mutation("remove_loop", "list", site, lambda n: [], desc))
    return out


def t_swap_args(unit, where):
    """Swap two adjacent positional arguments of a call."""
    out = []
    for site in unit.sites:
        node = site[0]
        if not isinstance(node, ast.Call) or len(node.args) < 2:
            continue
        if isinstance(node.func, ast.Name) and node.func.id in _COMMUTATIVE_CALLS:
            continue
        for k in range(len(node.args) - 1):
            a, b = node.args[k], node.args[k + 1]
            if isinstance(a, ast.Starred) or isinstance(b, ast.Starred) or ast.dump(a) == ast.dump(b):
                continue

            def make(n, k=k):
                args = list(n.args)
                args[k], args[k + 1] = args[k + 1], args[k]
                return ast.Call(func=n.func, args=args, keywords=n.keywords)

            desc = "swapped the arguments `%s` and `%s` of the call `%s` in %s" % (snippet(a, 30), snippet(b, 30), snippet(node), where)
            out.append(Mutation("swap_args", "expr", site, make, desc))
    return out


def t_change_return(unit, where):
    """Change a returned value: True and False, 0 and 1, or None for anything else."""
    out = []
    for site in unit.sites:
        node, parent, field = site[0], site[1], site[2]
        if not (isinstance(parent, ast.Return) and field == "value"):
            continue
        if isinstance(node, ast.Constant):
            v = node.value
            if v is True or v is False:
                new_value = not v
            elif type(v) is int and v in (0, 1):
                new_value = 1 - v
            elif v is None:
                continue
            else:
                new_value = None
        else:
            new_value = None
        desc = "made `return %s` return `%r` instead in %s" % (snippet(node), new_value, where)
        out.append(Mutation("change_return", "expr", site, lambda n, v=new_value: ast.Constant(v), desc))
    return out


def t_swap_bool_op(unit, where):
    """Turn `and` into `or` and back."""
    out = []
    for site in unit.sites:
        node = site[0]
        if isinstance(node, ast.BoolOp):

            def make(n):
                return ast.BoolOp(op=ast.Or() if isinstance(n.op, ast.And) else ast.And(), values=n.values)

            desc = "replaced `%s` with `%s` in %s" % (snippet(node), snippet(make(node)), where)
            out.append(Mutation("swap_bool_op", "expr", site, make, desc))
    return out


def t_break_chained_comparison(unit, where):
    """Drop the last (or first) link of a chained comparison: a < b < c becomes a < b."""
    out = []
    for site in unit.sites:
        node = site[0]
        if not isinstance(node, ast.Compare) or len(node.ops) < 2:
            continue
        variants = (
            lambda n: ast.Compare(left=n.left, ops=n.ops[:-1], comparators=n.comparators[:-1]),
            lambda n: ast.Compare(left=n.comparators[0], ops=n.ops[1:], comparators=n.comparators[1:]),
        )
        for make in variants:
            desc = "reduced the chained comparison `%s` to `%s` in %s" % (snippet(node), snippet(make(node)), where)
            out.append(Mutation("break_chained_comparison", "expr", site, make, desc))
    return out


TRANSFORMS = [
    ("invert_if", t_invert_if),
    ("swap_comparison", t_swap_comparison),
    ("swap_arith", t_swap_arith),
    ("swap_operands", t_swap_operands),
    ("off_by_one", t_off_by_one),
    ("remove_statement", t_remove_statement),
    ("remove_branch", t_remove_branch),
    ("remove_loop", t_remove_loop),
    ("swap_args", t_swap_args),
    ("change_return", t_change_return),
    ("swap_bool_op", t_swap_bool_op),
    ("break_chained_comparison", t_break_chained_comparison),
]

# ---------------------------------------------------------------------------
# Applying a mutation and splicing it into the text


class FileContext:
    """A parsed source file."""

    def __init__(self, relpath, text):
        self.relpath = relpath
        self.text = text
        self.src = SourceText(text)
        self.tree = ast.parse(text, filename=relpath)
        self.module = module_name(relpath)

    def units(self):
        """Return the units whose text (decorators included) fills whole lines, with their spans set."""
        out = []
        for unit in collect_units(self.tree):
            node = unit.node
            first = node.decorator_list[0] if node.decorator_list else node
            start = self.src.line_start(first.lineno)
            head = self.text[start: self.src.offset(first.lineno, first.col_offset)]
            if head.strip() != ("@" if node.decorator_list else ""):
                continue
            tail = self.text[self.src.offset(node.end_lineno, node.end_col_offset): self.src.line_end(node.end_lineno)].strip()
            if tail and not tail.startswith("#"):
                continue
            unit.span = (start, self.src.line_end(node.end_lineno))
            unit.indent = head[: len(head) - len(head.lstrip())]
            unit.dump = ast.dump(node)
            out.append(unit)
        return out


def clone_tree(node, mapping):
    """Return a deep copy of an AST; mapping gets id(original) -> copy for every node."""
    new = node.__class__()
    for field in node._fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            value = [clone_tree(v, mapping) if isinstance(v, ast.AST) else v for v in value]
        elif isinstance(value, ast.AST):
            value = clone_tree(value, mapping)
        setattr(new, field, value)
    for attr in node._attributes:
        if hasattr(node, attr):
            setattr(new, attr, getattr(node, attr))
    mapping[id(node)] = new
    return new


def apply_mutation(unit, mutation):
    """Return (mutated copy of the unit's node, id map, what was placed in the slot)."""
    mapping = {}
    clone = clone_tree(unit.node, mapping)
    parent = mapping[id(mutation.parent)]
    value = getattr(parent, mutation.field)
    if mutation.kind == "expr":
        old = value[mutation.index] if mutation.index is not None else value
        new = mutation.make(old)
        if mutation.index is not None:
            value[mutation.index] = new
        else:
            setattr(parent, mutation.field, new)
        placed = new
    elif mutation.kind == "list":
        items = mutation.make(value[mutation.index])
        value[mutation.index: mutation.index + 1] = items
        placed = list(items)
        if not value:
            value.append(ast.Pass())
            placed = [value[0]]
    else:
        new = mutation.make(value)
        setattr(parent, mutation.field, new)
        placed = new
    return clone, mapping, placed


def _splice_attempts(ctx, unit, mutation, clone, mapping, placed):
    """Yield (start, end, replacement) text splices inside the unit, the most local first."""
    src = ctx.src
    if mutation.kind == "expr":
        node = mutation.node
        if isinstance(placed, ast.stmt):
            lines = src.whole_lines(node)
            if lines:
                s, e, indent = lines
                yield s, e, indent_code(ast.unparse(placed), indent, src.newline(node.end_lineno))
        else:
            start = src.offset(node.lineno, node.col_offset)
            end = src.offset(node.end_lineno, node.end_col_offset)
            rendered = ast.unparse(placed)
            yield start, end, rendered
            yield start, end, "(" + rendered + ")"
    elif mutation.kind == "list":
        lines = src.whole_lines(mutation.node)
        if lines:
            s, e, indent = lines
            nl = src.newline(mutation.node.end_lineno)
            yield s, e, "".join(indent_code(ast.unparse(stmt), indent, nl) for stmt in placed)
    for stmt in reversed(mutation.stmts):
        lines = src.whole_lines(stmt)
        if lines:
            s, e, indent = lines
            yield s, e, indent_code(ast.unparse(mapping[id(stmt)]), indent, src.newline(stmt.end_lineno))
    yield _whole_function(ctx, unit, clone)


def _whole_function(ctx, unit, clone):
    """Return the splice replacing the unit (decorators included) by ast.unparse(clone)."""
    start, end = unit.span
    return start, end, indent_code(ast.unparse(clone), unit.indent, ctx.src.newline(unit.node.end_lineno))


def render(ctx, unit, clone, attempts):
    """Return the new file text of the first splice that yields exactly clone, or None.

    Only the unit's own text changes, and the unit is a complete statement on
    whole lines, so it is enough to check that the new unit text parses, on
    its own, to one statement equal to clone and compiles.
    """
    expected = ast.dump(clone)
    if expected == unit.dump:
        return None
    text = ctx.text
    fs, fe = unit.span
    for s, e, replacement in attempts:
        segment = text[fs:s] + replacement + text[e:fe]
        wrapped = "if 1:\n" + segment if unit.indent else segment
        try:
            tree = ast.parse(wrapped, filename=ctx.relpath)
        except (SyntaxError, ValueError):
            continue
        body = tree.body[0].body if unit.indent else tree.body
        if len(tree.body) != 1 or len(body) != 1 or ast.dump(body[0]) != expected:
            continue
        try:
            compile(tree, ctx.relpath, "exec")
        except (SyntaxError, ValueError):
            continue
        new_text = text[:fs] + segment + text[fe:]
        if new_text != text:
            return new_text
    return None


# ---------------------------------------------------------------------------
# Modes


def load(root, relpath):
    """Read and parse one file; return a FileContext or None (with a warning) if it cannot be parsed."""
    path = os.path.join(root, relpath)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        return FileContext(relpath, text)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as err:
        sys.stderr.write("mutate.py: skipping %s: %s\n" % (relpath, err))
        return None


def bug_candidates(root, includes, transforms):
    """Return every applicable (transform, site) candidate under root in enumeration order."""
    candidates = []
    seen_sources = set()
    for relpath in source_files(root, includes):
        ctx = load(root, relpath)
        if ctx is None:
            continue
        for unit in ctx.units():
            where = "%s.%s" % (ctx.module, unit.qualname)
            counters = {}
            for name, transform in TRANSFORMS:
                if name not in transforms:
                    continue
                for mutation in transform(unit, where):
                    line = mutation.node.lineno
                    key = (name, line)
                    n = counters.get(key, 0)
                    counters[key] = n + 1
                    clone, mapping, placed = apply_mutation(unit, mutation)
                    new_source = render(ctx, unit, clone, _splice_attempts(ctx, unit, mutation, clone, mapping, placed))
                    if new_source is None or new_source in seen_sources:
                        continue
                    seen_sources.add(new_source)
                    candidates.append(
                        {
                            "id": "%s-%s-%s-%d-%d" % (name, relpath, unit.qualname, line, n),
                            "transform": name,
                            "file": relpath,
                            "function": unit.qualname,
                            "line": line,
                            "description": mutation.description,
                            "new_source": new_source,
                        }
                    )
    return candidates


_SKIP_DECORATORS = {"property", "setter", "getter", "deleter", "abstractmethod", "overload"}


def _decorator_name(node):
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_trivial(body):
    if not body:
        return True
    if len(body) > 1:
        return False
    stmt = body[0]
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True
    if isinstance(stmt, ast.Return) and (stmt.value is None or isinstance(stmt.value, (ast.Constant, ast.Name, ast.Attribute))):
        return True
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
            return True
    return False


# Methods Python calls while a module is being imported (class creation,
# module attribute look-up) or that dicts and sets built at import time use.
_IMPORT_TIME_METHODS = {"__init__", "__new__", "__init_subclass__", "__set_name__", "__class_getitem__", "__getattr__", "__hash__", "__eq__", "__post_init__"}


def _call_name(func):
    """Return the simple name a call goes to (f(...), x.f(...)) or ""."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


class _ImportTimeCalls(ast.NodeVisitor):
    """Collects the names called by a module's top-level code (decorators,
    default values, class bodies included; function bodies excluded) and,
    per function name, the names its body calls."""

    def __init__(self):
        self.top = set()
        self.callees = {}
        self._in = []  # names of the enclosing functions

    def _record(self, name):
        if not name:
            return
        if self._in:
            self.callees.setdefault(self._in[-1], set()).add(name)
        else:
            self.top.add(name)

    def visit_Call(self, node):
        self._record(_call_name(node.func))
        self.generic_visit(node)

    def _function(self, node):
        for d in node.decorator_list:
            self._record(_call_name(d))
            self.visit(d)
        for d in node.args.defaults + [x for x in node.args.kw_defaults if x is not None]:
            self.visit(d)
        self._in.append(node.name)
        for stmt in node.body:
            self.visit(stmt)
        self._in.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node):
        for d in node.decorator_list:
            self._record(_call_name(d))
        # Creating a class at import time runs its metaclass and the
        # __init_subclass__ of its bases; instantiating it runs __init__.
        self.callees.setdefault(node.name, set()).update(_IMPORT_TIME_METHODS)
        self.generic_visit(node)

    def visit_Lambda(self, node):
        self._in.append("<lambda>")
        self.generic_visit(node)
        self._in.pop()


def import_time_names(root):
    """Return the simple names of the functions that may run while any module
    under root (tests included) is imported: those its top-level code calls,
    the functions used as decorators, and, transitively, what they call.

    Stubbing one of them would break the import of a module, and with it the
    collection of every test that imports it, so stub mode leaves them alone.
    Names are matched without regard to modules or classes: a conservative
    over-approximation that costs a few stubs and needs no type inference.
    """
    calls = _ImportTimeCalls()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("__pycache__", "build", "dist", "node_modules"))
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if not name.endswith(".py") or os.path.islink(full):
                continue
            try:
                with open(full, "rb") as f:
                    tree = ast.parse(f.read(), filename=full)
            except (OSError, SyntaxError, ValueError):
                continue
            calls.visit(tree)
    seen = set()
    todo = list(calls.top)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(calls.callees.get(n, ()))
    return seen


def stub_candidates(root, includes):
    """Return a candidate per non-trivial function whose body becomes `raise NotImplementedError`.

    Functions that may run at import time (import_time_names) and the
    methods Python calls implicitly then are skipped: their stubs would
    break test collection rather than make tests fail.
    """
    candidates = []
    at_import = import_time_names(root)
    skipped = 0
    for relpath in source_files(root, includes):
        ctx = load(root, relpath)
        if ctx is None:
            continue
        for unit in ctx.units():
            node = unit.node
            if node.name in _IMPORT_TIME_METHODS:
                continue
            if node.name in at_import:
                skipped += 1
                continue
            if any(_decorator_name(d) in _SKIP_DECORATORS for d in node.decorator_list):
                continue
            has_doc = bool(node.body) and is_docstring_stmt(node.body[0])
            rest = node.body[1:] if has_doc else node.body
            if _is_trivial(rest):
                continue
            clone = clone_tree(node, {})
            raise_stmt = ast.Raise(exc=ast.Name(id="NotImplementedError", ctx=ast.Load()), cause=None)
            clone.body = (clone.body[:1] if has_doc else []) + [raise_stmt]
            attempts = []
            src = ctx.src
            first, last = rest[0], rest[-1]
            head = src.whole_lines(first)
            tail = src.whole_lines(last)
            if head and tail:
                attempts.append((head[0], tail[1], head[2] + "raise NotImplementedError" + src.newline(last.end_lineno)))
            attempts.append(_whole_function(ctx, unit, clone))
            new_source = render(ctx, unit, clone, attempts)
            if new_source is None:
                continue
            where = "%s.%s" % (ctx.module, unit.qualname)
            candidates.append(
                {
                    "id": "stub-%s-%s" % (relpath, unit.qualname),
                    "transform": "stub",
                    "file": relpath,
                    "function": unit.qualname,
                    "line": node.lineno,
                    "description": "replaced the body of %s with `raise NotImplementedError`" % where,
                    "new_source": new_source,
                }
            )
    if skipped:
        sys.stderr.write("mutate.py: %d functions not stubbed: they may run at import time\n" % skipped)
    return candidates


def edit_of(old, new):
    """Return the edit that turns the bytes old into new as {"start", "end",
    "replacement"}: old[start:end] (byte offsets) is replaced by the UTF-8
    text replacement. The span covers whole lines (it starts after a newline
    and ends after one, or at an end of the file), so it never splits a
    character, and is the smallest such span."""
    n = min(len(old), len(new))
    pre = 0
    while pre < n and old[pre] == new[pre]:
        pre += 1
    suf = 0
    while suf < n - pre and old[len(old) - 1 - suf] == new[len(new) - 1 - suf]:
        suf += 1
    start = old.rfind(b"\n", 0, pre) + 1
    end = len(old) - suf
    if end > 0 and old[end - 1:end] != b"\n":
        nl = old.find(b"\n", end)
        end = len(old) if nl == -1 else nl + 1
    tail = len(old) - end
    return {"start": start, "end": end, "replacement": new[start: len(new) - tail].decode("utf-8")}


def as_edits(root, candidates):
    """Replace every candidate's new_source by its edit (edit_of) of the file."""
    originals = {}
    for c in candidates:
        f = c["file"]
        if f not in originals:
            with open(os.path.join(root, f), "rb") as fh:
                originals[f] = fh.read()
        c["edit"] = edit_of(originals[f], c.pop("new_source").encode("utf-8"))
    return candidates


def main(argv=None):
    """Parse arguments, print the JSON result; exit status 2 on bad input."""
    parser = argparse.ArgumentParser(prog="mutate.py", description="Procedural bug injection and stubbing for Python sources.")
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode, help_text in (("bugs", "enumerate single-site bug candidates"), ("stub", "replace function bodies by raise NotImplementedError")):
        p = sub.add_parser(mode, help=help_text)
        p.add_argument("root", metavar="ROOT", help="repository root to read (never written)")
        p.add_argument("--seed", type=int, default=0, help="seed of the deterministic shuffle (default 0)")
        p.add_argument("--max", type=int, default=0, dest="max_count", help="keep at most this many candidates (0: all)")
        p.add_argument("--include", action="append", default=[], help="glob of files to consider, relative to ROOT, ** for any directories (repeatable)")
        p.add_argument("--edits", action="store_true", help="give each candidate's change as an edit of its file instead of the whole new file")
        if mode == "bugs":
            p.add_argument("--transforms", default="", help="comma-separated transform names (default: all)")
    args = parser.parse_args(argv)

    if not os.path.isdir(args.root):
        sys.stderr.write("mutate.py: ROOT %r is not a directory\n" % args.root)
        return 2
    if args.max_count < 0:
        sys.stderr.write("mutate.py: --max must be >= 0, got %d\n" % args.max_count)
        return 2
    if args.mode == "bugs":
        known = [name for name, _ in TRANSFORMS]
        wanted = [t.strip() for t in args.transforms.split(",") if t.strip()] or known
        unknown = [t for t in wanted if t not in known]
        if unknown:
            sys.stderr.write("mutate.py: unknown transform(s) %s; known: %s\n" % (", ".join(unknown), ", ".join(known)))
            return 2
        candidates = bug_candidates(args.root, args.include, set(wanted))
    else:
        candidates = stub_candidates(args.root, args.include)
    random.Random(args.seed).shuffle(candidates)
    if args.max_count:
        candidates = candidates[: args.max_count]
    if args.edits:
        candidates = as_edits(args.root, candidates)
    out = json.dumps({"candidates": candidates}, ensure_ascii=False) + "\n"
    sys.stdout.buffer.write(out.encode("utf-8"))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
