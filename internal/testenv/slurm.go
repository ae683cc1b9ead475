package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// NeedSlurm fails the test unless a Slurm cluster answers with a node that
// takes jobs: the Slurm tests run against a real one, which
// scripts/slurm-local.sh starts on this machine (make test runs it).
func NeedSlurm(tb testing.TB) {
	tb.Helper()
	out, err := exec.Command("sinfo", "--noheader", "--format", "%t").CombinedOutput()
	up := false
	for _, state := range strings.Fields(string(out)) {
		// idle, mix, alloc, comp (finishing jobs), ...; a trailing '*'
		// means the node does not respond.
		switch strings.TrimRight(state, "~#%$@^-+") {
		case "idle", "mix", "alloc", "comp", "plnd":
			up = true
		}
	}
	if err != nil || !up {
		tb.Fatalf("no Slurm cluster answers sinfo with a node that takes jobs (%v: %s): start one with scripts/slurm-local.sh (as root)", err, strings.TrimSpace(string(out)))
	}
}
