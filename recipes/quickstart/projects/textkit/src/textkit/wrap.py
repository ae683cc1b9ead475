"""Greedy word wrapping and full justification."""


def wrap(text, width):
    """Wrap text into lines of at most width characters, splitting on whitespace.

    Words longer than width are broken into width-sized pieces.
    """
    if width < 1:
        raise ValueError("width must be at least 1")
    lines = []
    current = ""
    for word in text.split():
        while len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        if not word:
            continue
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current = current + " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def justify(text, width):
    """Wrap text to width and pad every line but the last to exactly width.

    Extra spaces go to the leftmost gaps first. A line with a single word is
    left-aligned and padded on the right.
    """
    lines = wrap(text, width)
    out = []
    for index, line in enumerate(lines):
        words = line.split(" ")
        if index == len(lines) - 1 or len(words) == 1:
            out.append(line.ljust(width))
            continue
        gaps = len(words) - 1
        letters = sum(len(w) for w in words)
        spaces = width - letters
        base, extra = divmod(spaces, gaps)
        parts = []
        for i, w in enumerate(words[:-1]):
            parts.append(w)
            parts.append(" " * (base + (1 if i < extra else 0)))
        parts.append(words[-1])
        out.append("".join(parts))
    return out
