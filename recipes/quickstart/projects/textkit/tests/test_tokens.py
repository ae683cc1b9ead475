from textkit import tokenize, word_counts


def test_tokenize_words_and_punct():
    assert tokenize("Hello, world!") == [
        ("word", "Hello"),
        ("punct", ","),
        ("word", "world"),
        ("punct", "!"),
    ]


def test_tokenize_numbers():
    assert tokenize("pi is 3.14 and 42.") == [
        ("word", "pi"),
        ("word", "is"),
        ("number", "3.14"),
        ("word", "and"),
        ("number", "42"),
        ("punct", "."),
    ]
    assert tokenize("1.2.3") == [("number", "1.2"), ("punct", "."), ("number", "3")]
    assert tokenize("7") == [("number", "7")]


def test_tokenize_identifiers_and_apostrophes():
    assert tokenize("don't x_1 rock'n'roll it'") == [
        ("word", "don't"),
        ("word", "x_1"),
        ("word", "rock'n'roll"),
        ("word", "it"),
        ("punct", "'"),
    ]
    assert tokenize("_a b") == [("word", "_a"), ("word", "b")]


def test_tokenize_whitespace_only():
    assert tokenize("") == []
    assert tokenize(" \t\n ") == []
    assert tokenize("a\tb\nc") == [("word", "a"), ("word", "b"), ("word", "c")]


def test_tokenize_number_then_word():
    assert tokenize("3rd (x)") == [
        ("number", "3"),
        ("word", "rd"),
        ("punct", "("),
        ("word", "x"),
        ("punct", ")"),
    ]


def test_word_counts_sorted():
    assert word_counts("b a B c a b, 3 3") == [("b", 3), ("a", 2), ("c", 1)]
    assert word_counts("The the THE cat", lowercase=False) == [
        ("THE", 1),
        ("The", 1),
        ("cat", 1),
        ("the", 1),
    ]
    assert word_counts("") == []
