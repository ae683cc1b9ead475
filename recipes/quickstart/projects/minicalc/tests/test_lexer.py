import pytest

from minicalc import CalcError, Token, tokenize


def kinds_values(text):
    return [(t.kind, t.value) for t in tokenize(text)]


def test_tokenize_numbers_and_ops():
    assert kinds_values("1 + 22*3") == [("num", 1), ("op", "+"), ("num", 22), ("op", "*"), ("num", 3)]


def test_tokenize_floats():
    assert kinds_values("3.5 .5 2.") == [("num", 3.5), ("num", 0.5), ("num", 2.0)]
    assert isinstance(tokenize("2.")[0].value, float)
    assert isinstance(tokenize("2")[0].value, int)


def test_tokenize_names_and_power():
    assert kinds_values("x_1**2") == [("name", "x_1"), ("op", "^"), ("num", 2)]
    assert kinds_values("_a=b") == [("name", "_a"), ("op", "="), ("name", "b")]
    assert kinds_values("2*x") == [("num", 2), ("op", "*"), ("name", "x")]


def test_tokenize_positions():
    toks = tokenize("  ab + 12")
    assert toks == [Token("name", "ab", 2), Token("op", "+", 5), Token("num", 12, 7)]
    assert [t.pos for t in tokenize("2**3")] == [0, 1, 3]


def test_tokenize_errors():
    with pytest.raises(CalcError) as info:
        tokenize("1 + $")
    assert info.value.position == 4
    with pytest.raises(CalcError) as info:
        tokenize("1.2.3")
    assert info.value.position == 0
    with pytest.raises(CalcError):
        tokenize(". + 1")


def test_tokenize_empty():
    assert tokenize("") == []
    assert tokenize("   ") == []
