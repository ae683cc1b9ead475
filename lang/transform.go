package lang

import (
	"context"
	"fmt"
)

// treeSitterCandidates enumerates bug or stub candidates of src's files in
// language ("go", "javascript", "rust"), parsed with tree-sitter. It is
// deterministic for the same sources and options.
func treeSitterCandidates(ctx context.Context, language string, src Source, mode Mode, opts CandidateOptions) ([]Candidate, error) {
	return nil, fmt.Errorf("lang: %s %s candidates: not implemented yet", language, mode)
}
