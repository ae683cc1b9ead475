package stages

import (
	"context"
	"embed"

	"github.com/dsbuild/dsbuild/build"
)

//go:embed py/mutate.py
var mutateFS embed.FS

// mutateAsset is stages/py/mutate.py, the program that enumerates
// procedural bugs and Commit0-style stubs. The task kinds run it inside the
// sandbox as `python3 - bugs|stub /testbed ...` with the script on stdin;
// the kinds that do declare the asset, so editing the script re-runs their
// nodes (and, through the sandbox's run keys, exactly the enumerations it
// could change).
var mutateAsset = build.NewAsset("stages/py/mutate.py", mutateFS)

// mutateScript returns the text of mutate.py for the running node.
func mutateScript(ctx context.Context) ([]byte, error) {
	return mutateAsset.ReadFile(ctx, "py/mutate.py")
}
