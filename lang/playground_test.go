package lang

import (
	"context"
	"strings"
	"testing"
)

// StubStatement is what the profiles' stub candidates write, so the
// SWE-Playground scaffold asks agents for the bodies stub_tasks makes.
func TestStubStatementIsWhatStubsWrite(t *testing.T) {
	sources := map[string]struct{ file, src string }{
		"go":         {"calc/calc.go", "package calc\n\n// Add adds.\nfunc Add(a, b int) int {\n\tc := a + b\n\treturn c\n}\n"},
		"javascript": {"src/calc.js", "'use strict';\n\nfunction add(a, b) {\n  const c = a + b;\n  return c;\n}\n\nmodule.exports = { add };\n"},
		"rust":       {"src/lib.rs", "pub fn add(a: i64, b: i64) -> i64 {\n    let c = a + b;\n    c\n}\n"},
	}
	for name, s := range sources {
		stub, err := StubStatement(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p, _ := Get(name)
		src := Source{Files: []string{s.file}, ReadFile: func(string) ([]byte, error) { return []byte(s.src), nil }}
		cands, err := p.Candidates(context.Background(), src, ModeStub, CandidateOptions{})
		if err != nil || len(cands) != 1 || !strings.Contains(cands[0].Edit.Replacement, stub) {
			t.Errorf("%s: stub %q; candidates %+v (%v)", name, stub, cands, err)
			continue
		}
		// A body that is the stub already is no candidate: the scaffold
		// check reads "no candidates" as "every body is a stub".
		stubbed := s.src[:cands[0].Edit.Start] + cands[0].Edit.Replacement + s.src[cands[0].Edit.End:]
		src.ReadFile = func(string) ([]byte, error) { return []byte(stubbed), nil }
		if again, err := p.Candidates(context.Background(), src, ModeStub, CandidateOptions{}); err != nil || len(again) != 0 {
			t.Errorf("%s: the stubbed source still has candidates %+v (%v):\n%s", name, again, err, stubbed)
		}
	}
	if s, err := StubStatement(Python); err != nil || s != "raise NotImplementedError" {
		t.Errorf("python: %q, %v", s, err)
	}
	if _, err := StubStatement("cobol"); err == nil {
		t.Error("an unknown language has a stub")
	}
}
