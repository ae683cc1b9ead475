package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestKillScript runs scripts/killtest.sh against the binary under test: a
// small recipe with a Debian environment is SIGKILLed at 20 random points
// (3 of them while mmdebstrap runs); every output must be byte-identical
// to a clean build's, `cache verify` must pass, and no process, mount or
// temporary directory may be left (see the script). It takes a few
// minutes; the script prints its seed (KILLTEST_SEED) to repeat a run.
func TestKillScript(t *testing.T) {
	if testing.Short() {
		t.Skip("scripts/killtest.sh takes a few minutes")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "killtest.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, binary)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t.Log(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("scripts/killtest.sh: %v", err)
	}
}
