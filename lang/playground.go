package lang

// StubStatement returns the statement the language's stubs put in a
// function body, its "not implemented": `raise NotImplementedError` for
// Python, `panic("not implemented")` for Go, `throw new Error("not
// implemented");` for JavaScript, `unimplemented!()` for Rust. Candidates
// in ModeStub write it; the SWE-Playground scaffold asks for it.
func StubStatement(name string) (string, error) {
	p, err := Get(name)
	if err != nil {
		return "", err
	}
	if p.Name() == Python {
		return "raise NotImplementedError", nil
	}
	g, err := tsGrammarFor(p.Name())
	if err != nil {
		return "", err
	}
	return g.stubText, nil
}
