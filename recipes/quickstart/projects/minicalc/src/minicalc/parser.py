"""Shunting-yard conversion of infix tokens to reverse Polish notation."""
from minicalc.errors import CalcError
from minicalc.lexer import Token

# precedence, right-associative
BINARY = {
    "+": (1, False),
    "-": (1, False),
    "*": (2, False),
    "/": (2, False),
    "%": (2, False),
    "^": (4, True),
}
UNARY_PRECEDENCE = 3
NEG = "neg"


def to_rpn(tokens):
    """Convert infix tokens to an RPN list.

    The output holds Tokens of kind 'num' and 'name', operator Tokens whose
    value is a binary operator or 'neg' (unary minus), and ('call', name,
    argc) Tokens for function calls. Raises CalcError on unbalanced
    parentheses or misplaced operators.
    """
    output = []
    stack = []
    arg_counts = []
    expect_operand = True
    for index, tok in enumerate(tokens):
        if tok.kind == "num":
            if not expect_operand:
                raise CalcError("missing operator", tok.pos)
            output.append(tok)
            expect_operand = False
        elif tok.kind == "name":
            if not expect_operand:
                raise CalcError("missing operator", tok.pos)
            nxt = tokens[index + 1] if index + 1 < len(tokens) else None
            if nxt is not None and nxt.kind == "op" and nxt.value == "(":
                stack.append(Token("func", tok.value, tok.pos))
            else:
                output.append(tok)
                expect_operand = False
        elif tok.value == "(":
            if not expect_operand:
                raise CalcError("missing operator", tok.pos)
            stack.append(tok)
            arg_counts.append(0)
        elif tok.value == ",":
            if expect_operand or not arg_counts:
                raise CalcError("misplaced comma", tok.pos)
            while stack and stack[-1].value != "(":
                output.append(stack.pop())
            arg_counts[-1] += 1
            expect_operand = True
        elif tok.value == ")":
            if not arg_counts:
                raise CalcError("unbalanced ')'", tok.pos)
            argc = arg_counts.pop()
            if expect_operand:
                if argc > 0 or not (stack and stack[-1].value == "(" and len(stack) >= 2 and stack[-2].kind == "func"):
                    raise CalcError("missing operand", tok.pos)
            else:
                argc += 1
            while stack[-1].value != "(":
                output.append(stack.pop())
            stack.pop()
            if stack and stack[-1].kind == "func":
                func = stack.pop()
                output.append(Token("call", (func.value, argc), func.pos))
            elif argc != 1:
                raise CalcError("parenthesised list outside a call", tok.pos)
            expect_operand = False
        elif tok.value in BINARY:
            if expect_operand:
                if tok.value == "-":
                    stack.append(Token("op", NEG, tok.pos))
                    continue
                if tok.value == "+":
                    continue
                raise CalcError("missing operand before %r" % tok.value, tok.pos)
            prec, right = BINARY[tok.value]
            while stack and stack[-1].kind == "op" and stack[-1].value != "(":
                top = stack[-1].value
                top_prec = UNARY_PRECEDENCE if top == NEG else BINARY[top][0]
                if top_prec > prec or (top_prec == prec and not right):
                    output.append(stack.pop())
                else:
                    break
            stack.append(tok)
            expect_operand = True
        else:
            raise CalcError("unexpected %r" % tok.value, tok.pos)
    if expect_operand:
        raise CalcError("unexpected end of expression", len(tokens))
    while stack:
        top = stack.pop()
        if top.value == "(":
            raise CalcError("unbalanced '('", top.pos)
        output.append(top)
    return output
