"""Conversion of integers to and from positional notation in bases 2..36."""

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _check_base(base):
    if base < 2 or base > 36:
        raise ValueError("base must be in 2..36, got %d" % base)


def to_base(n, base):
    """Return the representation of integer n in base (lowercase digits, '-' for negatives)."""
    _check_base(base)
    if n == 0:
        return "0"
    negative = n < 0
    n = abs(n)
    digits = []
    while n > 0:
        n, r = divmod(n, base)
        digits.append(DIGITS[r])
    if negative:
        digits.append("-")
    return "".join(reversed(digits))


def from_base(text, base):
    """Parse text written in base (case-insensitive, optional sign, '_' separators allowed)."""
    _check_base(base)
    text = text.strip().lower()
    sign = 1
    if text.startswith("-"):
        sign = -1
        text = text[1:]
    elif text.startswith("+"):
        text = text[1:]
    if not text:
        raise ValueError("no digits to parse")
    if text.startswith("_") or text.endswith("_"):
        raise ValueError("misplaced separator in %r" % text)
    value = 0
    for ch in text:
        if ch == "_":
            continue
        d = DIGITS.find(ch)
        if d < 0 or d >= base:
            raise ValueError("invalid digit %r for base %d" % (ch, base))
        value = value * base + d
    return sign * value
