import pytest

from textkit import closest, hamming, lcs_length, levenshtein


def test_levenshtein_known():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert levenshtein("", "abc") == 3
    assert levenshtein("abc", "") == 3
    assert levenshtein("", "") == 0
    assert levenshtein("same", "same") == 0
    assert levenshtein("a", "b") == 1
    assert levenshtein("ab", "ba") == 2


def test_levenshtein_symmetric():
    words = ["", "a", "ab", "abc", "acb", "book", "back", "kitten", "sitting"]
    for x in words:
        for y in words:
            assert levenshtein(x, y) == levenshtein(y, x)
            assert levenshtein(x, y) >= abs(len(x) - len(y))


def test_hamming():
    assert hamming("karolin", "kathrin") == 3
    assert hamming("", "") == 0
    assert hamming("abc", "abc") == 0
    assert hamming("abc", "xyz") == 3
    with pytest.raises(ValueError):
        hamming("ab", "abc")


def test_lcs_length():
    assert lcs_length("ABCBDAB", "BDCABA") == 4
    assert lcs_length("", "abc") == 0
    assert lcs_length("abc", "abc") == 3
    assert lcs_length("abc", "def") == 0
    assert lcs_length("aggtab", "gxtxayb") == 4
    assert lcs_length("a", "a") == 1
    assert lcs_length("ab", "b") == 1


def test_closest():
    words = ["apple", "apply", "maple", "banana"]
    assert closest("appel", words) == "apple"
    assert closest("aple", words) == "apple"
    assert closest("banan", words) == "banana"
    assert closest("zzzzzz", words) is None
    assert closest("mapl", words, max_distance=1) == "maple"
    assert closest("xyz", []) is None


def test_closest_respects_max_distance_boundary():
    assert closest("abcd", ["abxy"], max_distance=2) == "abxy"
    assert closest("abcd", ["abxy"], max_distance=1) is None
    assert closest("abcd", ["abcd", "abce"], max_distance=0) == "abcd"
