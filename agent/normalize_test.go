package agent

import "testing"

func TestNormalize(t *testing.T) {
	cases := map[string]string{
		"==== 3 passed, 1 failed in 0.12s ====":                    "==== 3 passed, 1 failed ====",
		"= 1 passed in 62.01s (0:01:02) =":                         "= 1 passed =",
		"+  where 8 = <Calculator object at 0x7f895ac8fb10>.run()": "+  where 8 = <Calculator object at 0x…>.run()",
		"assert 0x10 == 16":                                        "assert 0x10 == 16",
		"print('done in 3s')":                                      "print('done in 3s')",
		"line one\n=== 2 passed in 0.05s ===\nmore":                "line one\n=== 2 passed ===\nmore",
	}
	for in, want := range cases {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
