package stages

import (
	"context"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/lang"
)

// mutateAsset is lang/py/mutate.py (lang.Scripts), the program through
// which the Python profile enumerates procedural bugs and Commit0-style
// stubs. The kinds that call Profile.Candidates declare it, so editing the
// script re-runs their nodes (and, through the sandbox's run keys, exactly
// the enumerations it could change); derive_testgen runs it directly.
var mutateAsset = build.NewAsset("lang/py/mutate.py", lang.Scripts)

// mutateScript returns the text of mutate.py for the running node.
func mutateScript(ctx context.Context) ([]byte, error) {
	return mutateAsset.ReadFile(ctx, "py/mutate.py")
}
