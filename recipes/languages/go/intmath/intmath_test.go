package intmath

import (
	"reflect"
	"testing"
)

func TestGCD(t *testing.T) {
	for _, c := range []struct{ a, b, want int }{{12, 18, 6}, {17, 5, 1}, {0, 9, 9}, {-8, 12, 4}} {
		if got := GCD(c.a, c.b); got != c.want {
			t.Errorf("GCD(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestLCM(t *testing.T) {
	for _, c := range []struct{ a, b, want int }{{4, 6, 12}, {7, 3, 21}, {0, 5, 0}, {-4, 6, 12}} {
		if got := LCM(c.a, c.b); got != c.want {
			t.Errorf("LCM(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestIsPrime(t *testing.T) {
	primes := []int{2, 3, 5, 7, 11, 13, 97}
	for _, p := range primes {
		if !IsPrime(p) {
			t.Errorf("IsPrime(%d) = false", p)
		}
	}
	for _, n := range []int{-7, 0, 1, 4, 9, 15, 49, 91} {
		if IsPrime(n) {
			t.Errorf("IsPrime(%d) = true", n)
		}
	}
}

func TestPrimeFactors(t *testing.T) {
	cases := map[int][]int{
		1:   nil,
		2:   {2},
		12:  {2, 2, 3},
		97:  {97},
		360: {2, 2, 2, 3, 3, 5},
	}
	for n, want := range cases {
		if got := PrimeFactors(n); !reflect.DeepEqual(got, want) {
			t.Errorf("PrimeFactors(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestFibonacci(t *testing.T) {
	want := []int{0, 1, 1, 2, 3, 5, 8, 13}
	if got := Fibonacci(8); !reflect.DeepEqual(got, want) {
		t.Errorf("Fibonacci(8) = %v, want %v", got, want)
	}
	if got := Fibonacci(1); !reflect.DeepEqual(got, []int{0}) {
		t.Errorf("Fibonacci(1) = %v", got)
	}
	if got := Fibonacci(0); got != nil {
		t.Errorf("Fibonacci(0) = %v, want nil", got)
	}
}

func TestPowMod(t *testing.T) {
	for _, c := range []struct{ b, e, m, want int }{{2, 10, 1000, 24}, {3, 0, 7, 1}, {5, 3, 13, 8}, {-2, 3, 5, 2}, {7, 5, 1, 0}} {
		if got := PowMod(c.b, c.e, c.m); got != c.want {
			t.Errorf("PowMod(%d, %d, %d) = %d, want %d", c.b, c.e, c.m, got, c.want)
		}
	}
}

func TestDigitSum(t *testing.T) {
	for _, c := range []struct{ n, want int }{{0, 0}, {9, 9}, {1234, 10}, {-505, 10}} {
		if got := DigitSum(c.n); got != c.want {
			t.Errorf("DigitSum(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

func TestBinarySearch(t *testing.T) {
	xs := []int{1, 3, 5, 7, 9, 11}
	for i, x := range xs {
		if got := BinarySearch(xs, x); got != i {
			t.Errorf("BinarySearch(%d) = %d, want %d", x, got, i)
		}
	}
	for _, x := range []int{0, 4, 12} {
		if got := BinarySearch(xs, x); got != -1 {
			t.Errorf("BinarySearch(%d) = %d, want -1", x, got)
		}
	}
	if got := BinarySearch(nil, 1); got != -1 {
		t.Errorf("BinarySearch(nil) = %d", got)
	}
}
