"""Greatest common divisors, modular arithmetic and primes."""


def gcd(a, b):
    """Return the non-negative greatest common divisor of a and b."""
    a, b = abs(a), abs(b)
    while b != 0:
        a, b = b, a % b
    return a


def lcm(a, b):
    """Return the non-negative least common multiple of a and b (0 if either is 0)."""
    if a == 0 or b == 0:
        return 0
    return abs(a * b) // gcd(a, b)


def extended_gcd(a, b):
    """Return (g, x, y) with a*x + b*y == g == gcd(a, b), g >= 0."""
    old_r, r = a, b
    old_x, x = 1, 0
    old_y, y = 0, 1
    while r != 0:
        q = old_r // r
        old_r, r = r, old_r - q * r
        old_x, x = x, old_x - q * x
        old_y, y = y, old_y - q * y
    if old_r < 0:
        old_r, old_x, old_y = -old_r, -old_x, -old_y
    return old_r, old_x, old_y


def mod_pow(base, exponent, modulus):
    """Return base**exponent % modulus by square-and-multiply.

    Raises ValueError for a negative exponent or a non-positive modulus.
    """
    if modulus <= 0:
        raise ValueError("modulus must be positive")
    if exponent < 0:
        raise ValueError("exponent must be non-negative")
    if modulus == 1:
        return 0
    result = 1
    base = base % modulus
    while exponent > 0:
        if exponent % 2 == 1:
            result = result * base % modulus
        base = base * base % modulus
        exponent //= 2
    return result


def mod_inverse(a, modulus):
    """Return x in [0, modulus) with a*x % modulus == 1.

    Raises ValueError when a has no inverse modulo modulus.
    """
    if modulus <= 1:
        raise ValueError("modulus must be greater than 1")
    g, x, _ = extended_gcd(a % modulus, modulus)
    if g != 1:
        raise ValueError("%d has no inverse modulo %d" % (a, modulus))
    return x % modulus


def is_prime(n):
    """Return True if n is a prime number (trial division by 6k +/- 1)."""
    if n < 2:
        return False
    if n < 4:
        return True
    if n % 2 == 0 or n % 3 == 0:
        return False
    i = 5
    while i * i <= n:
        if n % i == 0 or n % (i + 2) == 0:
            return False
        i += 6
    return True


def primes_up_to(limit):
    """Return the sorted list of primes p with p <= limit (sieve of Eratosthenes)."""
    if limit < 2:
        return []
    sieve = [True] * (limit + 1)
    sieve[0] = False
    sieve[1] = False
    p = 2
    while p * p <= limit:
        if sieve[p]:
            for multiple in range(p * p, limit + 1, p):
                sieve[multiple] = False
        p += 1
    return [i for i in range(limit + 1) if sieve[i]]


def factorize(n):
    """Return the prime factorisation of n >= 1 as a sorted list of (prime, exponent)."""
    if n < 1:
        raise ValueError("factorize needs a positive integer, got %d" % n)
    factors = []
    d = 2
    while d * d <= n:
        count = 0
        while n % d == 0:
            n //= d
            count += 1
        if count > 0:
            factors.append((d, count))
        d += 1 if d == 2 else 2
    if n > 1:
        factors.append((n, 1))
    return factors


def divisors(n):
    """Return all positive divisors of n >= 1 in increasing order."""
    if n < 1:
        raise ValueError("divisors needs a positive integer, got %d" % n)
    small = []
    large = []
    i = 1
    while i * i <= n:
        if n % i == 0:
            small.append(i)
            if i != n // i:
                large.append(n // i)
        i += 1
    return small + large[::-1]


def totient(n):
    """Return Euler's phi(n): how many k in [1, n] are coprime to n."""
    if n < 1:
        raise ValueError("totient needs a positive integer, got %d" % n)
    result = n
    for p, _ in factorize(n):
        result -= result // p
    return result
