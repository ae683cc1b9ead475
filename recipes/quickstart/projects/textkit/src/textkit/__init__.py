"""textkit: small text utilities."""
from textkit.tokens import tokenize, word_counts
from textkit.wrap import wrap, justify
from textkit.distance import levenshtein, hamming, lcs_length, closest
from textkit.slug import slugify
from textkit.ciphers import caesar, vigenere_encrypt, vigenere_decrypt

__all__ = [
    "tokenize",
    "word_counts",
    "wrap",
    "justify",
    "levenshtein",
    "hamming",
    "lcs_length",
    "closest",
    "slugify",
    "caesar",
    "vigenere_encrypt",
    "vigenere_decrypt",
]
