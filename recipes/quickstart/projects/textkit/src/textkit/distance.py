"""Edit distances and string similarity."""


def levenshtein(a, b):
    """Return the minimum number of single-character insertions, deletions and substitutions."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost))
        previous = current
    return previous[-1]


def hamming(a, b):
    """Return the number of positions at which equal-length strings differ."""
    if len(a) != len(b):
        raise ValueError("hamming distance needs equal lengths (%d != %d)" % (len(a), len(b)))
    return sum(1 for x, y in zip(a, b) if x != y)


def lcs_length(a, b):
    """Return the length of the longest common subsequence of a and b."""
    rows = len(a) + 1
    cols = len(b) + 1
    table = [[0] * cols for _ in range(rows)]
    for i in range(1, rows):
        for j in range(1, cols):
            if a[i - 1] == b[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    return table[rows - 1][cols - 1]


def closest(word, candidates, max_distance=2):
    """Return the candidate nearest to word by Levenshtein distance, or None.

    Ties go to the earliest candidate; candidates farther than max_distance are ignored.
    """
    best = None
    best_distance = max_distance + 1
    for candidate in candidates:
        d = levenshtein(word, candidate)
        if d < best_distance:
            best = candidate
            best_distance = d
    return best
