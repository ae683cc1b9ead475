package stages

import _ "embed"

// mutateScript is stages/py/mutate.py, the program that enumerates
// procedural bugs and Commit0-style stubs. The task kinds run it inside the
// sandbox as `python3 - bugs|stub /testbed ...` with the script on stdin, so
// its text is part of every such run's memo key: editing it re-runs exactly
// the enumerations it could change.
//
//go:embed py/mutate.py
var mutateScript []byte
