"""Turn expression text into tokens."""
from dataclasses import dataclass

from minicalc.errors import CalcError

OPERATOR_CHARS = "+-*/%^(),="


@dataclass(frozen=True)
class Token:
    """One lexical token: kind is 'num', 'name' or 'op'; pos is its offset."""

    kind: str
    value: object
    pos: int


def _read_number(text, start):
    i = start
    n = len(text)
    dots = 0
    while i < n and (text[i].isdigit() or text[i] == "."):
        if text[i] == ".":
            dots += 1
            if dots > 1:
                raise CalcError("malformed number", start)
        i += 1
    literal = text[start:i]
    if literal == ".":
        raise CalcError("malformed number", start)
    if dots == 0:
        return int(literal), i
    return float(literal), i


def tokenize(text):
    """Return the list of Tokens of text; '**' is read as '^'."""
    tokens = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch.isdigit() or ch == ".":
            value, end = _read_number(text, i)
            tokens.append(Token("num", value, i))
            i = end
        elif ch.isalpha() or ch == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            tokens.append(Token("name", text[i:j], i))
            i = j
        elif ch == "*" and i + 1 < n and text[i + 1] == "*":
            tokens.append(Token("op", "^", i))
            i += 2
        elif ch in OPERATOR_CHARS:
            tokens.append(Token("op", ch, i))
            i += 1
        else:
            raise CalcError("unexpected character %r" % ch, i)
    return tokens
