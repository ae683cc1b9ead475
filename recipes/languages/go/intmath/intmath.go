// Package intmath holds integer arithmetic: divisors, primes, sequences.
package intmath

// GCD returns the greatest common divisor of a and b (non-negative).
func GCD(a, b int) int {
	if a < 0 {
		a = -a
	}
	if b < 0 {
		b = -b
	}
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// LCM returns the least common multiple of a and b (0 if either is 0).
func LCM(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	l := a / GCD(a, b) * b
	if l < 0 {
		l = -l
	}
	return l
}

// IsPrime reports whether n is a prime number.
func IsPrime(n int) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := 3; d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// PrimeFactors returns the prime factors of n in ascending order, with
// multiplicity; nil for n < 2.
func PrimeFactors(n int) []int {
	var out []int
	for d := 2; d*d <= n; d++ {
		for n%d == 0 {
			out = append(out, d)
			n /= d
		}
	}
	if n > 1 {
		out = append(out, n)
	}
	return out
}

// Fibonacci returns the first n Fibonacci numbers, starting 0, 1.
func Fibonacci(n int) []int {
	if n <= 0 {
		return nil
	}
	out := make([]int, n)
	for i := 1; i < n; i++ {
		if i == 1 {
			out[i] = 1
			continue
		}
		out[i] = out[i-1] + out[i-2]
	}
	return out
}

// PowMod returns base**exp modulo m by repeated squaring (exp >= 0, m > 0).
func PowMod(base, exp, m int) int {
	result := 1 % m
	base %= m
	if base < 0 {
		base += m
	}
	for exp > 0 {
		if exp&1 == 1 {
			result = result * base % m
		}
		base = base * base % m
		exp >>= 1
	}
	return result
}

// DigitSum returns the sum of the decimal digits of n (its absolute value).
func DigitSum(n int) int {
	if n < 0 {
		n = -n
	}
	s := 0
	for n > 0 {
		s += n % 10
		n /= 10
	}
	return s
}

// BinarySearch returns the index of target in the ascending slice xs, or
// -1 when it is absent.
func BinarySearch(xs []int, target int) int {
	lo, hi := 0, len(xs)-1
	for lo <= hi {
		mid := lo + (hi-lo)/2
		switch {
		case xs[mid] == target:
			return mid
		case xs[mid] < target:
			lo = mid + 1
		default:
			hi = mid - 1
		}
	}
	return -1
}
