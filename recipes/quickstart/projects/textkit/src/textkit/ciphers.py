"""Classical substitution ciphers over the Latin alphabet."""


def _shift_char(ch, shift):
    if "a" <= ch <= "z":
        return chr((ord(ch) - ord("a") + shift) % 26 + ord("a"))
    if "A" <= ch <= "Z":
        return chr((ord(ch) - ord("A") + shift) % 26 + ord("A"))
    return ch


def caesar(text, shift):
    """Shift every ASCII letter by shift places, keeping case; other characters are unchanged."""
    return "".join(_shift_char(ch, shift) for ch in text)


def _key_shifts(key):
    shifts = []
    for ch in key:
        if not ch.isalpha() or not ch.isascii():
            raise ValueError("vigenere key must contain only ASCII letters")
        shifts.append(ord(ch.lower()) - ord("a"))
    if not shifts:
        raise ValueError("vigenere key must not be empty")
    return shifts


def _vigenere(text, key, direction):
    shifts = _key_shifts(key)
    out = []
    k = 0
    for ch in text:
        if ch.isascii() and ch.isalpha():
            out.append(_shift_char(ch, direction * shifts[k % len(shifts)]))
            k += 1
        else:
            out.append(ch)
    return "".join(out)


def vigenere_encrypt(text, key):
    """Encrypt text with the Vigenere cipher; the key advances only on letters."""
    return _vigenere(text, key, 1)


def vigenere_decrypt(text, key):
    """Invert vigenere_encrypt."""
    return _vigenere(text, key, -1)
