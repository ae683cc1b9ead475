import pytest

from mathx import from_roman, to_roman


def test_to_roman_known():
    assert to_roman(1) == "I"
    assert to_roman(4) == "IV"
    assert to_roman(9) == "IX"
    assert to_roman(14) == "XIV"
    assert to_roman(40) == "XL"
    assert to_roman(90) == "XC"
    assert to_roman(400) == "CD"
    assert to_roman(1994) == "MCMXCIV"
    assert to_roman(2024) == "MMXXIV"
    assert to_roman(3999) == "MMMCMXCIX"
    assert to_roman(3888) == "MMMDCCCLXXXVIII"


def test_to_roman_range_errors():
    with pytest.raises(ValueError):
        to_roman(0)
    with pytest.raises(ValueError):
        to_roman(4000)
    with pytest.raises(ValueError):
        to_roman(-5)
    with pytest.raises(TypeError):
        to_roman(2.0)
    with pytest.raises(TypeError):
        to_roman(True)


def test_from_roman_known():
    assert from_roman("I") == 1
    assert from_roman("iv") == 4
    assert from_roman(" MCMXCIV ") == 1994
    assert from_roman("MMMCMXCIX") == 3999
    assert from_roman("XLII") == 42
    assert from_roman("CDXLIV") == 444


def test_from_roman_rejects():
    for bad in ["", "IIII", "VX", "IC", "MMMM", "ABC", "IIV", "XM", "VV"]:
        with pytest.raises(ValueError):
            from_roman(bad)


def test_roman_roundtrip_all():
    for n in range(1, 4000):
        assert from_roman(to_roman(n)) == n
