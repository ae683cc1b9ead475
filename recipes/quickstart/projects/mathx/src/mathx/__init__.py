"""mathx: integer number theory helpers."""
from mathx.numtheory import (
    gcd,
    lcm,
    extended_gcd,
    mod_pow,
    mod_inverse,
    is_prime,
    primes_up_to,
    factorize,
    divisors,
    totient,
)
from mathx.bases import to_base, from_base
from mathx.roman import to_roman, from_roman

__all__ = [
    "gcd",
    "lcm",
    "extended_gcd",
    "mod_pow",
    "mod_inverse",
    "is_prime",
    "primes_up_to",
    "factorize",
    "divisors",
    "totient",
    "to_base",
    "from_base",
    "to_roman",
    "from_roman",
]
