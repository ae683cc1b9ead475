import pytest

from mathx import from_base, to_base


def test_to_base_binary_and_hex():
    assert to_base(10, 2) == "1010"
    assert to_base(255, 16) == "ff"
    assert to_base(0, 7) == "0"
    assert to_base(35, 36) == "z"
    assert to_base(36, 36) == "10"
    assert to_base(1, 2) == "1"


def test_to_base_negative():
    assert to_base(-255, 16) == "-ff"
    assert to_base(-1, 2) == "-1"


def test_to_base_roundtrip_python():
    for n in range(-300, 300):
        assert int(to_base(n, 2), 2) == n
        assert int(to_base(n, 36), 36) == n
        assert int(to_base(n, 8), 8) == n


def test_base_bounds():
    for bad in (0, 1, 37, -2):
        with pytest.raises(ValueError):
            to_base(5, bad)
        with pytest.raises(ValueError):
            from_base("1", bad)
    assert to_base(5, 2) == "101"
    assert to_base(40, 36) == "14"


def test_from_base_values():
    assert from_base("1010", 2) == 10
    assert from_base("FF", 16) == 255
    assert from_base("  z ", 36) == 35
    assert from_base("-ff", 16) == -255
    assert from_base("+17", 8) == 15
    assert from_base("1_000", 10) == 1000
    assert from_base("0", 2) == 0


def test_from_base_errors():
    for text, base in [("", 10), ("-", 10), ("12", 2), ("g", 16), ("1.5", 10), ("_1", 10), ("1_", 10)]:
        with pytest.raises(ValueError):
            from_base(text, base)


def test_from_base_digit_at_limit():
    assert from_base("9", 10) == 9
    assert from_base("a", 11) == 10
    with pytest.raises(ValueError):
        from_base("a", 10)


def test_base_roundtrip():
    for base in range(2, 37):
        for n in (-1000, -37, -1, 0, 1, base - 1, base, base + 1, 12345):
            assert from_base(to_base(n, base), base) == n
