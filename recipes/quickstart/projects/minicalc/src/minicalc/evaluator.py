"""Evaluation of RPN and a calculator with variables and functions."""
import math

from minicalc.errors import CalcError
from minicalc.lexer import tokenize
from minicalc.parser import NEG, to_rpn


def _apply(op, a, b, pos):
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            raise CalcError("division by zero", pos)
        if isinstance(a, int) and isinstance(b, int) and a % b == 0:
            return a // b
        return a / b
    if op == "%":
        if b == 0:
            raise CalcError("modulo by zero", pos)
        return a % b
    if op == "^":
        if isinstance(b, int) and b < 0 and a == 0:
            raise CalcError("zero to a negative power", pos)
        return a ** b
    raise CalcError("unknown operator %r" % op, pos)


def _fn_min(*args):
    if not args:
        raise ValueError("min needs at least one argument")
    best = args[0]
    for x in args[1:]:
        if x < best:
            best = x
    return best


def _fn_max(*args):
    if not args:
        raise ValueError("max needs at least one argument")
    best = args[0]
    for x in args[1:]:
        if x > best:
            best = x
    return best


def _fn_sqrt(x):
    if x < 0:
        raise ValueError("sqrt of a negative number")
    root = math.isqrt(x) if isinstance(x, int) else None
    if root is not None and root * root == x:
        return root
    return math.sqrt(x)


def _fn_abs(x):
    return -x if x < 0 else x


FUNCTIONS = {"min": _fn_min, "max": _fn_max, "sqrt": _fn_sqrt, "abs": _fn_abs}


def evaluate_rpn(rpn, variables=None, functions=None):
    """Evaluate an RPN token list; names are looked up in variables."""
    variables = variables or {}
    functions = functions if functions is not None else FUNCTIONS
    stack = []
    for tok in rpn:
        if tok.kind == "num":
            stack.append(tok.value)
        elif tok.kind == "name":
            if tok.value not in variables:
                raise CalcError("unknown variable %r" % tok.value, tok.pos)
            stack.append(variables[tok.value])
        elif tok.kind == "call":
            name, argc = tok.value
            if name not in functions:
                raise CalcError("unknown function %r" % name, tok.pos)
            if argc > len(stack):
                raise CalcError("not enough arguments", tok.pos)
            args = stack[len(stack) - argc:]
            del stack[len(stack) - argc:]
            try:
                stack.append(functions[name](*args))
            except (TypeError, ValueError) as err:
                raise CalcError("%s: %s" % (name, err), tok.pos) from None
        elif tok.value == NEG:
            if not stack:
                raise CalcError("missing operand", tok.pos)
            stack.append(-stack.pop())
        else:
            if len(stack) < 2:
                raise CalcError("missing operand", tok.pos)
            b = stack.pop()
            a = stack.pop()
            stack.append(_apply(tok.value, a, b, tok.pos))
    if len(stack) != 1:
        raise CalcError("malformed expression")
    return stack[0]


class Calculator:
    """Evaluates lines like 'x = 2 * (3 + 4)' and remembers variables.

    The result of the last expression is stored in the variable 'ans'.
    """

    def __init__(self):
        self.variables = {}
        self.history = []

    def evaluate(self, line):
        """Evaluate one line (an expression or an assignment) and return its value."""
        tokens = tokenize(line)
        target = None
        if len(tokens) >= 2 and tokens[0].kind == "name" and tokens[1].value == "=":
            target = tokens[0].value
            if target in FUNCTIONS:
                raise CalcError("cannot assign to function %r" % target, tokens[0].pos)
            tokens = tokens[2:]
        if not tokens:
            raise CalcError("empty expression")
        for tok in tokens:
            if tok.value == "=":
                raise CalcError("unexpected '='", tok.pos)
        value = evaluate_rpn(to_rpn(tokens), self.variables)
        if target is not None:
            self.variables[target] = value
        self.variables["ans"] = value
        self.history.append((line, value))
        return value

    def run(self, lines):
        """Evaluate each non-blank line in order and return the list of results."""
        results = []
        for line in lines:
            if line.strip() == "" or line.lstrip().startswith("#"):
                continue
            results.append(self.evaluate(line))
        return results
