import pytest

from textkit import justify, wrap


def test_wrap_simple():
    assert wrap("the quick brown fox jumps", 10) == ["the quick", "brown fox", "jumps"]


def test_wrap_exact_fit():
    assert wrap("abc def", 7) == ["abc def"]
    assert wrap("abc def", 6) == ["abc", "def"]


def test_wrap_long_word_broken():
    assert wrap("abcdefghij xy", 4) == ["abcd", "efgh", "ij", "xy"]
    assert wrap("ab abcdefgh", 4) == ["ab", "abcd", "efgh"]
    assert wrap("abcd", 4) == ["abcd"]


def test_wrap_whitespace_and_empty():
    assert wrap("", 5) == []
    assert wrap("   a    b  ", 5) == ["a b"]
    assert wrap("a b c d e", 1) == ["a", "b", "c", "d", "e"]


def test_wrap_invalid_width():
    with pytest.raises(ValueError):
        wrap("x", 0)
    assert wrap("x", 1) == ["x"]


def test_justify_distributes_spaces_left_first():
    assert justify("aa b c dddd", 8) == ["aa  b  c", "dddd    "]
    assert justify("a b c d", 6) == ["a  b c", "d     "]
    assert justify("one two three four five", 12) == ["one      two", "three   four", "five        "]


def test_justify_single_word_lines():
    assert justify("abcdef gh", 6) == ["abcdef", "gh    "]
    assert justify("", 4) == []


def test_justify_every_line_full_width():
    text = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do"
    lines = justify(text, 15)
    assert all(len(line) == 15 for line in lines)
    assert " ".join(" ".join(lines).split()) == text
