// Package calc is a fixture for the tree-sitter transforms.
package calc

import (
	"errors"
	"fmt"
	"strings"
)

// Limit is computed while the package initialises.
var Limit = defaultLimit()

func defaultLimit() int { return scale(10, 3) }

func scale(a, b int) int {
	out := a * b
	return out + 1
}

// Calc accumulates values.
type Calc struct {
	total int
	log   []string
}

// Add adds v and reports whether the total is still under Limit.
func (c *Calc) Add(v int) bool {
	c.total += v
	c.log = append(c.log, fmt.Sprint(v))
	if c.total > Limit {
		return false
	}
	return true
}

// Total returns the running total.
func (c *Calc) Total() int { return c.total }

// Clamp bounds x to [lo, hi].
func Clamp(x, lo, hi int) int {
	if x < lo {
		return lo
	} else if x > hi {
		return hi
	}
	return x
}

// Sum adds the elements of xs between from and to.
func Sum(xs []int, from, to int) int {
	s := 0
	for i := from; i < to && i < len(xs); i++ {
		s += xs[i]
	}
	return s
}

// Mean is the average of xs, an error for none.
func Mean(xs []float64) (float64, error) {
	if len(xs) == 0 {
		return 0, errors.New("empty")
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs)), nil
}

// Label names a value.
func Label(name string, v int) string {
	prefix := strings.ToUpper(name)
	return prefix + ": " + fmt.Sprint(v)
}

// Between reports whether lo <= x <= hi.
func Between(x, lo, hi int) bool {
	if x >= lo && x <= hi {
		return true
	} else {
		return false
	}
}

// Diff is a - b.
func Diff(a, b int) int {
	return Clamp(a-b, -100, 100)
}

// Last returns the last element and the first.
func Last(xs []int) (int, int) {
	n := len(xs)
	return xs[n-1], xs[0]
}

func init() {
	Limit = scale(Limit, 2)
}
