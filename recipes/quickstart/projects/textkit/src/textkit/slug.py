"""URL slugs."""
import unicodedata


def slugify(text, separator="-", max_length=0):
    """Return a lowercase ASCII slug of text.

    Accents are stripped, runs of other characters become one separator, and
    no separator is left at either end. If max_length > 0 the slug is cut to at
    most max_length characters at a separator boundary when possible.
    """
    normalized = unicodedata.normalize("NFKD", text)
    ascii_text = normalized.encode("ascii", "ignore").decode("ascii").lower()
    pieces = []
    word = []
    for ch in ascii_text:
        if ch.isalnum():
            word.append(ch)
        elif word:
            pieces.append("".join(word))
            word = []
    if word:
        pieces.append("".join(word))
    slug = separator.join(pieces)
    if max_length > 0 and len(slug) > max_length:
        cut = slug[:max_length]
        if not slug.startswith(separator, max_length):
            boundary = cut.rfind(separator)
            if boundary > 0:
                cut = cut[:boundary]
        slug = cut.strip(separator)
    return slug
