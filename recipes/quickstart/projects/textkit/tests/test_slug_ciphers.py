import pytest

from textkit import caesar, slugify, vigenere_decrypt, vigenere_encrypt


def test_slugify_basic():
    assert slugify("Hello, World!") == "hello-world"
    assert slugify("  --Already--slugged--  ") == "already-slugged"
    assert slugify("Crème Brûlée à la carte") == "creme-brulee-a-la-carte"
    assert slugify("") == ""
    assert slugify("!!!") == ""
    assert slugify("a") == "a"


def test_slugify_separator():
    assert slugify("Hello World 2024", separator="_") == "hello_world_2024"


def test_slugify_max_length():
    assert slugify("the quick brown fox", max_length=9) == "the-quick"
    assert slugify("the quick brown fox", max_length=12) == "the-quick"
    assert slugify("the quick brown fox", max_length=19) == "the-quick-brown-fox"
    assert slugify("abcdefghij", max_length=4) == "abcd"
    assert slugify("ab cd", max_length=0) == "ab-cd"


def test_caesar():
    assert caesar("abc xyz", 3) == "def abc"
    assert caesar("Hello, World!", 13) == "Uryyb, Jbeyq!"
    assert caesar("Hello", -1) == "Gdkkn"
    assert caesar("Zz", 1) == "Aa"
    assert caesar("ümlaut 123", 26) == "ümlaut 123"
    assert caesar(caesar("Round Trip", 7), -7) == "Round Trip"


def test_vigenere_known():
    assert vigenere_encrypt("ATTACKATDAWN", "LEMON") == "LXFOPVEFRNHR"
    assert vigenere_decrypt("LXFOPVEFRNHR", "lemon") == "ATTACKATDAWN"
    assert vigenere_encrypt("attack at dawn!", "Lemon") == "lxfopv ef rnhr!"


def test_vigenere_roundtrip_and_key_a():
    text = "The Quick, Brown Fox; 42 jumps."
    assert vigenere_decrypt(vigenere_encrypt(text, "Secret"), "secret") == text
    assert vigenere_encrypt(text, "a") == text
    assert vigenere_encrypt("abc", "b") == "bcd"


def test_vigenere_bad_key():
    for key in ["", "k3y", "clé", "two words"]:
        with pytest.raises(ValueError):
            vigenere_encrypt("abc", key)
