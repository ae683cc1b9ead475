package lang

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// syntheticGo is a Go file of about lines lines: many small functions with
// the constructs every transform looks for.
func syntheticGo(lines int) string {
	var b strings.Builder
	b.WriteString("package synth\n\nimport \"fmt\"\n\n")
	for i := 0; strings.Count(b.String(), "\n") < lines; i++ {
		fmt.Fprintf(&b, `// F%[1]d is synthetic.
func F%[1]d(xs []int, lo, hi int) (int, bool) {
	total := 0
	for i := 0; i < len(xs); i++ {
		if xs[i] >= lo && xs[i] <= hi {
			total += xs[i] * 2
		} else {
			total -= 1
		}
	}
	if total > 100 || total == 0 {
		return Clamp%[1]d(total, lo, hi), false
	}
	fmt.Println(total)
	return total + 1, true
}

func Clamp%[1]d(x, lo, hi int) int {
	if x < lo {
		return lo
	}
	return min(x, hi)
}

`, i)
	}
	return b.String()
}

// BenchmarkCandidatesGoBugs: every bug candidate of a ~3000-line Go file,
// each re-parsed.
func BenchmarkCandidatesGoBugs(b *testing.B) {
	src := memSource(map[string]string{"synth/synth.go": syntheticGo(3000)})
	n := 0
	for b.Loop() {
		cs, err := treeSitterCandidates(context.Background(), "go", src, ModeBugs, CandidateOptions{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		n = len(cs)
	}
	b.ReportMetric(float64(n), "candidates")
}

// BenchmarkCandidatesGoStubs: every stub of the same file.
func BenchmarkCandidatesGoStubs(b *testing.B) {
	src := memSource(map[string]string{"synth/synth.go": syntheticGo(3000)})
	n := 0
	for b.Loop() {
		cs, err := treeSitterCandidates(context.Background(), "go", src, ModeStub, CandidateOptions{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		n = len(cs)
	}
	b.ReportMetric(float64(n), "candidates")
}
