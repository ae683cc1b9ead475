import pytest

from minicalc import CalcError, to_rpn, tokenize


def rpn(text):
    out = []
    for t in to_rpn(tokenize(text)):
        if t.kind == "call":
            out.append("%s/%d" % t.value)
        else:
            out.append(str(t.value))
    return " ".join(out)


def test_precedence():
    assert rpn("1 + 2 * 3") == "1 2 3 * +"
    assert rpn("1 * 2 + 3") == "1 2 * 3 +"
    assert rpn("(1 + 2) * 3") == "1 2 + 3 *"
    assert rpn("8 % 3 * 2") == "8 3 % 2 *"


def test_left_associative():
    assert rpn("1 - 2 - 3") == "1 2 - 3 -"
    assert rpn("8 / 4 / 2") == "8 4 / 2 /"


def test_power_right_associative():
    assert rpn("2 ^ 3 ^ 2") == "2 3 2 ^ ^"
    assert rpn("2 ^ 3 * 4") == "2 3 ^ 4 *"


def test_unary_minus():
    assert rpn("-2 ^ 2") == "2 2 ^ neg"
    assert rpn("-2 * 3") == "2 neg 3 *"
    assert rpn("2 * -3") == "2 3 neg *"
    assert rpn("--4") == "4 neg neg"
    assert rpn("+4 - +1") == "4 1 -"


def test_function_calls():
    assert rpn("max(1, 2 + 3)") == "1 2 3 + max/2"
    assert rpn("sqrt(16)") == "16 sqrt/1"
    assert rpn("f()") == "f/0"
    assert rpn("min(a, max(b, c), 1)") == "a b c max/2 1 min/3"
    assert rpn("-abs(x)") == "x abs/1 neg"


def test_parse_errors():
    for text in ["1 +", "(1 + 2", "1 + 2)", "1 2", "* 3", "(,1)", "1 , 2", "(1, 2)", "()", "x y", "2 (3)", "f(1,)", ")"]:
        with pytest.raises(CalcError):
            to_rpn(tokenize(text))


def test_parse_error_positions():
    with pytest.raises(CalcError) as info:
        to_rpn(tokenize("(1 + 2"))
    assert info.value.position == 0
    with pytest.raises(CalcError) as info:
        to_rpn(tokenize("1 + 2)"))
    assert info.value.position == 5
