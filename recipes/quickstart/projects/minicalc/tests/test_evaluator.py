import pytest

from minicalc import CalcError, Calculator, evaluate_rpn, to_rpn, tokenize


def ev(text, variables=None):
    return evaluate_rpn(to_rpn(tokenize(text)), variables)


def test_arithmetic():
    assert ev("1 + 2 * 3") == 7
    assert ev("(1 + 2) * 3") == 9
    assert ev("10 - 4 - 3") == 3
    assert ev("7 % 3") == 1
    assert ev("2 ^ 10") == 1024
    assert ev("2 ^ 3 ^ 2") == 512
    assert ev("-2 ^ 2") == -4
    assert ev("3 * -2") == -6


def test_division_keeps_ints_when_exact():
    assert ev("8 / 4") == 2
    assert isinstance(ev("8 / 4"), int)
    assert ev("7 / 2") == 3.5
    assert ev("-9 / 3") == -3
    assert ev("1.5 / 0.5") == 3.0


def test_errors():
    for text in ["1 / 0", "5 % 0", "0 ^ -1", "y + 1", "nope(1)", "sqrt(-4)", "min()", "sqrt(1, 2)"]:
        with pytest.raises(CalcError):
            ev(text)


def test_error_position_of_division():
    with pytest.raises(CalcError) as info:
        ev("1 + 4 / 0")
    assert info.value.position == 6


def test_variables():
    assert ev("x * 2 + y", {"x": 5, "y": 1}) == 11
    assert ev("x - y", {"x": 5, "y": 1}) == 4


def test_functions():
    assert ev("max(3, 9, 4)") == 9
    assert ev("min(3, -9, 4)") == -9
    assert ev("min(5)") == 5
    assert ev("max(1, 1)") == 1
    assert ev("sqrt(16)") == 4
    assert isinstance(ev("sqrt(16)"), int)
    assert ev("sqrt(2.25)") == 1.5
    assert ev("sqrt(2)") == pytest.approx(1.41421356)
    assert ev("abs(-3) + abs(2)") == 5
    assert ev("max(1, 2) * min(3, 4)") == 6


def test_custom_functions_and_stack_checks():
    assert evaluate_rpn(to_rpn(tokenize("twice(4)")), functions={"twice": lambda x: 2 * x}) == 8
    with pytest.raises(CalcError):
        evaluate_rpn(to_rpn(tokenize("1 + 2"))[:2])
    with pytest.raises(CalcError):
        evaluate_rpn([])
    rpn = to_rpn(tokenize("1 - 2"))
    with pytest.raises(CalcError):
        evaluate_rpn(rpn[1:])
    with pytest.raises(CalcError):
        evaluate_rpn(to_rpn(tokenize("-1"))[1:])


def test_calculator_assignment_and_ans():
    calc = Calculator()
    assert calc.evaluate("x = 2 * (3 + 4)") == 14
    assert calc.variables["x"] == 14
    assert calc.evaluate("x / 7") == 2
    assert calc.variables["ans"] == 2
    assert calc.evaluate("ans + 1") == 3
    assert calc.history == [("x = 2 * (3 + 4)", 14), ("x / 7", 2), ("ans + 1", 3)]
    assert "x" in calc.variables and calc.variables["x"] == 14


def test_calculator_errors():
    calc = Calculator()
    for line in ["", "x =", "x = 1 = 2", "max = 3", "1 = 2", "q"]:
        with pytest.raises(CalcError):
            calc.evaluate(line)
    assert calc.history == []
    assert calc.variables == {}


def test_calculator_run():
    calc = Calculator()
    lines = ["a = 3", "", "  # comment", "b = a ^ 2", "b - a", "   "]
    assert calc.run(lines) == [3, 9, 6]
    assert calc.variables == {"a": 3, "b": 9, "ans": 6}
