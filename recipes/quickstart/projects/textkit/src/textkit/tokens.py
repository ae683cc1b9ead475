"""A small hand-written tokenizer for words, numbers and punctuation."""


def _kind(ch):
    if ch.isalpha() or ch == "_":
        return "word"
    if ch.isdigit():
        return "number"
    if ch.isspace():
        return "space"
    return "punct"


def tokenize(text):
    """Split text into (kind, value) tokens.

    Kinds are "word" (letters, digits after the first letter, underscores and
    inner apostrophes), "number" (digits with at most one inner decimal point)
    and "punct" (any other single non-space character). Whitespace is dropped.
    """
    tokens = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        kind = _kind(ch)
        if kind == "space":
            i += 1
        elif kind == "word":
            j = i + 1
            while j < n:
                c = text[j]
                if c.isalnum() or c == "_":
                    j += 1
                elif c == "'" and j + 1 < n and text[j + 1].isalpha():
                    j += 2
                else:
                    break
            tokens.append(("word", text[i:j]))
            i = j
        elif kind == "number":
            j = i + 1
            seen_dot = False
            while j < n:
                c = text[j]
                if c.isdigit():
                    j += 1
                elif c == "." and not seen_dot and j + 1 < n and text[j + 1].isdigit():
                    seen_dot = True
                    j += 1
                else:
                    break
            tokens.append(("number", text[i:j]))
            i = j
        else:
            tokens.append(("punct", ch))
            i += 1
    return tokens


def word_counts(text, lowercase=True):
    """Return a list of (word, count) sorted by count descending, then word ascending."""
    counts = {}
    for kind, value in tokenize(text):
        if kind != "word":
            continue
        if lowercase:
            value = value.lower()
        counts[value] = counts.get(value, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
