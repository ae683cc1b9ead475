package stats

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestSum(t *testing.T) {
	if got := Sum([]float64{1, 2, 3.5}); !near(got, 6.5) {
		t.Errorf("Sum = %v, want 6.5", got)
	}
	if got := Sum(nil); got != 0 {
		t.Errorf("Sum(nil) = %v, want 0", got)
	}
}

func TestMean(t *testing.T) {
	got, err := Mean([]float64{2, 4, 9})
	if err != nil || !near(got, 5) {
		t.Errorf("Mean = %v, %v; want 5", got, err)
	}
	if _, err := Mean(nil); err != ErrEmpty {
		t.Errorf("Mean(nil) error = %v, want ErrEmpty", err)
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		name string
		xs   []float64
		want float64
	}{
		{"odd", []float64{5, 1, 3}, 3},
		{"even", []float64{4, 1, 3, 2}, 2.5},
		{"single", []float64{7}, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Median(c.xs)
			if err != nil || !near(got, c.want) {
				t.Errorf("Median(%v) = %v, %v; want %v", c.xs, got, err, c.want)
			}
		})
	}
}

func TestMedianLeavesInputAlone(t *testing.T) {
	xs := []float64{3, 1, 2}
	if _, err := Median(xs); err != nil {
		t.Fatal(err)
	}
	if xs[0] != 3 || xs[1] != 1 || xs[2] != 2 {
		t.Errorf("Median sorted its input: %v", xs)
	}
}

func TestVarianceAndStdDev(t *testing.T) {
	xs := []float64{2, 4, 4, 4, 5, 5, 7, 9}
	v, err := Variance(xs)
	if err != nil || !near(v, 4) {
		t.Errorf("Variance = %v, %v; want 4", v, err)
	}
	sd, err := StdDev(xs)
	if err != nil || !near(sd, 2) {
		t.Errorf("StdDev = %v, %v; want 2", sd, err)
	}
	if _, err := StdDev(nil); err != ErrEmpty {
		t.Errorf("StdDev(nil) error = %v, want ErrEmpty", err)
	}
}

func TestMinMax(t *testing.T) {
	lo, hi, err := MinMax([]float64{3, -1, 8, 2})
	if err != nil || lo != -1 || hi != 8 {
		t.Errorf("MinMax = %v, %v, %v; want -1, 8", lo, hi, err)
	}
	if _, _, err := MinMax(nil); err != ErrEmpty {
		t.Errorf("MinMax(nil) error = %v", err)
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{15, 20, 35, 40, 50}
	for _, c := range []struct{ p, want float64 }{{0, 15}, {50, 35}, {100, 50}, {25, 20}, {90, 46}} {
		got, err := Percentile(xs, c.p)
		if err != nil || !near(got, c.want) {
			t.Errorf("Percentile(%v) = %v, %v; want %v", c.p, got, err, c.want)
		}
	}
	if _, err := Percentile(xs, 101); err == nil {
		t.Error("Percentile(101) did not fail")
	}
}

func TestMovingAverage(t *testing.T) {
	got := MovingAverage([]float64{1, 2, 3, 4, 5}, 2)
	want := []float64{1.5, 2.5, 3.5, 4.5}
	if len(got) != len(want) {
		t.Fatalf("MovingAverage = %v, want %v", got, want)
	}
	for i := range want {
		if !near(got[i], want[i]) {
			t.Errorf("MovingAverage[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if got := MovingAverage([]float64{1, 2}, 3); got != nil {
		t.Errorf("window larger than input: %v, want nil", got)
	}
}
