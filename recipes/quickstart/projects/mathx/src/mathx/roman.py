"""Roman numerals for 1..3999."""

_PAIRS = [
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
]

_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def to_roman(n):
    """Return the canonical Roman numeral for 1 <= n <= 3999."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError("to_roman needs an int")
    if n < 1 or n > 3999:
        raise ValueError("roman numerals cover 1..3999, got %d" % n)
    out = []
    for value, symbol in _PAIRS:
        count = n // value
        if count:
            out.append(symbol * count)
            n -= value * count
    return "".join(out)


def from_roman(text):
    """Parse a canonical Roman numeral (case-insensitive); reject non-canonical forms."""
    s = text.strip().upper()
    if not s:
        raise ValueError("empty roman numeral")
    total = 0
    i = 0
    while i < len(s):
        ch = s[i]
        if ch not in _VALUES:
            raise ValueError("invalid roman digit %r" % ch)
        value = _VALUES[ch]
        if i + 1 < len(s) and _VALUES.get(s[i + 1], 0) > value:
            total += _VALUES[s[i + 1]] - value
            i += 2
        else:
            total += value
            i += 1
    if total > 3999 or to_roman(total) != s:
        raise ValueError("non-canonical roman numeral %r" % text)
    return total
