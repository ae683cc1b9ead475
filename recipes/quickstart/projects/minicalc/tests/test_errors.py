import pytest

from minicalc import CalcError, Calculator, evaluate_rpn, to_rpn, tokenize


def ev(text):
    return evaluate_rpn(to_rpn(tokenize(text)))


def test_calc_error_position_default_and_message():
    err = CalcError("boom")
    assert err.position == -1
    assert str(err) == "boom"
    assert CalcError("at", 3).position == 3


def test_missing_operand_position():
    with pytest.raises(CalcError) as info:
        to_rpn(tokenize("1 + * 2"))
    assert info.value.position == 4
    assert "missing operand" in str(info.value)


def test_missing_operator_position():
    with pytest.raises(CalcError) as info:
        to_rpn(tokenize("12 x"))
    assert info.value.position == 3
    with pytest.raises(CalcError) as info:
        to_rpn(tokenize("(1) 2"))
    assert info.value.position == 4


def test_function_errors_are_wrapped():
    with pytest.raises(CalcError) as info:
        ev("1 + sqrt(-4)")
    assert str(info.value) == "sqrt: sqrt of a negative number"
    assert info.value.position == 4
    with pytest.raises(CalcError) as info:
        ev("max()")
    assert str(info.value) == "max: max needs at least one argument"
    with pytest.raises(CalcError) as info:
        ev("abs(1, 2)")
    assert str(info.value).startswith("abs: ")


def test_unknown_names_report_position():
    with pytest.raises(CalcError) as info:
        ev("2 * foo")
    assert info.value.position == 4
    assert "foo" in str(info.value)
    with pytest.raises(CalcError) as info:
        ev("3 + bar(1)")
    assert info.value.position == 4
    assert "bar" in str(info.value)


def test_unexpected_equals_position():
    with pytest.raises(CalcError) as info:
        Calculator().evaluate("x = 1 = 2")
    assert info.value.position == 6
    with pytest.raises(CalcError) as info:
        to_rpn(tokenize("1 = 2"))
    assert info.value.position == 2


def test_abs_and_extremes_with_negatives():
    assert ev("abs(0)") == 0
    assert ev("abs(-0.5)") == 0.5
    assert ev("max(-3, -1, -2)") == -1
    assert ev("min(2, 1, 3)") == 1
    assert ev("max(2, 3, 1)") == 3
    assert ev("min(1, 0)") == 0
