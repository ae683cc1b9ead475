import math

import pytest

from mathx import (
    divisors,
    extended_gcd,
    factorize,
    gcd,
    is_prime,
    lcm,
    mod_inverse,
    mod_pow,
    primes_up_to,
    totient,
)


def brute_is_prime(n):
    return n >= 2 and all(n % d for d in range(2, n))


def test_gcd_basic():
    assert gcd(12, 18) == 6
    assert gcd(17, 5) == 1
    assert gcd(100, 75) == 25


def test_gcd_zero_and_signs():
    assert gcd(0, 0) == 0
    assert gcd(0, 7) == 7
    assert gcd(7, 0) == 7
    assert gcd(-12, 18) == 6
    assert gcd(12, -18) == 6


def test_gcd_matches_math_gcd():
    for a in range(-20, 21):
        for b in range(-20, 21):
            assert gcd(a, b) == math.gcd(a, b)


def test_lcm_values():
    assert lcm(4, 6) == 12
    assert lcm(21, 6) == 42
    assert lcm(-4, 6) == 12
    assert lcm(0, 5) == 0
    assert lcm(5, 0) == 0
    assert lcm(7, 7) == 7
    assert lcm(1, 9) == 9


def test_extended_gcd_identity():
    for a in range(-15, 16):
        for b in range(-15, 16):
            g, x, y = extended_gcd(a, b)
            assert g == math.gcd(a, b)
            assert a * x + b * y == g


def test_extended_gcd_known():
    assert extended_gcd(240, 46) == (2, -9, 47)
    assert extended_gcd(0, 0) == (0, 1, 0)
    assert extended_gcd(-6, 0) == (6, -1, 0)


def test_mod_pow_values():
    assert mod_pow(2, 10, 1000) == 24
    assert mod_pow(3, 0, 7) == 1
    assert mod_pow(5, 3, 13) == 125 % 13
    assert mod_pow(7, 1, 1) == 0
    assert mod_pow(-2, 3, 5) == (-8) % 5


def test_mod_pow_matches_pow():
    for b in range(-5, 12):
        for e in range(0, 20):
            for m in (1, 2, 3, 7, 10, 97):
                assert mod_pow(b, e, m) == pow(b, e, m)


def test_mod_pow_errors():
    with pytest.raises(ValueError):
        mod_pow(2, -1, 7)
    with pytest.raises(ValueError):
        mod_pow(2, 3, 0)
    with pytest.raises(ValueError):
        mod_pow(2, 3, -5)


def test_mod_inverse_values():
    assert mod_inverse(3, 11) == 4
    assert mod_inverse(10, 17) == 12
    assert mod_inverse(-3, 11) == 7
    assert mod_inverse(1, 2) == 1
    for m in (5, 7, 13, 26):
        for a in range(1, m):
            if math.gcd(a, m) == 1:
                assert a * mod_inverse(a, m) % m == 1
                assert 0 <= mod_inverse(a, m) < m


def test_mod_inverse_errors():
    with pytest.raises(ValueError):
        mod_inverse(2, 4)
    with pytest.raises(ValueError):
        mod_inverse(0, 7)
    with pytest.raises(ValueError):
        mod_inverse(3, 1)


def test_is_prime_small():
    assert [n for n in range(-3, 30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]


def test_is_prime_matches_bruteforce():
    for n in range(0, 600):
        assert is_prime(n) == brute_is_prime(n), n


def test_is_prime_squares_of_primes():
    for p in (5, 7, 11, 13, 29, 31):
        assert not is_prime(p * p)
        assert not is_prime(p * (p + 2))
    assert is_prime(7919)


def test_primes_up_to():
    assert primes_up_to(-1) == []
    assert primes_up_to(1) == []
    assert primes_up_to(2) == [2]
    assert primes_up_to(3) == [2, 3]
    assert primes_up_to(30) == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
    assert primes_up_to(49)[-1] == 47
    assert primes_up_to(121) == [n for n in range(122) if brute_is_prime(n)]


def test_factorize():
    assert factorize(1) == []
    assert factorize(2) == [(2, 1)]
    assert factorize(360) == [(2, 3), (3, 2), (5, 1)]
    assert factorize(97) == [(97, 1)]
    assert factorize(49) == [(7, 2)]
    assert factorize(2 * 3 * 5 * 7 * 11 * 13) == [(2, 1), (3, 1), (5, 1), (7, 1), (11, 1), (13, 1)]
    assert factorize(1024) == [(2, 10)]
    assert factorize(3 * 101) == [(3, 1), (101, 1)]


def test_factorize_roundtrip():
    for n in range(1, 400):
        product = 1
        for p, e in factorize(n):
            assert brute_is_prime(p)
            product *= p ** e
        assert product == n


def test_factorize_errors():
    with pytest.raises(ValueError):
        factorize(0)
    with pytest.raises(ValueError):
        factorize(-8)


def test_divisors():
    assert divisors(1) == [1]
    assert divisors(12) == [1, 2, 3, 4, 6, 12]
    assert divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36]
    assert divisors(13) == [1, 13]
    for n in range(1, 100):
        assert divisors(n) == [d for d in range(1, n + 1) if n % d == 0]
    with pytest.raises(ValueError):
        divisors(0)


def test_totient():
    assert totient(1) == 1
    assert totient(9) == 6
    assert totient(10) == 4
    assert totient(13) == 12
    assert totient(36) == 12
    for n in range(1, 80):
        assert totient(n) == sum(1 for k in range(1, n + 1) if math.gcd(k, n) == 1)
    with pytest.raises(ValueError):
        totient(0)
