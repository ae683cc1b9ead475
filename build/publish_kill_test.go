package build

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
)

const publishHelperEnv = "DSBUILD_PUBLISH_KILL_HELPER" // the store; the output is beside it

// publishTrees stores two different trees of many small files.
func publishTrees(t *testing.T, s *cache.Store) [2]cache.Digest {
	t.Helper()
	var out [2]cache.Digest
	for i := range out {
		files := map[string]cache.File{}
		for j := range 300 {
			files[fmt.Sprintf("d%02d/f%03d.txt", j%17, j)] = cache.File{Data: fmt.Appendf(nil, "tree %d file %d\n", i, j)}
		}
		d, err := s.PutFiles(files)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = d
	}
	return out
}

// TestPublishHelper is not a test: it is the process
// TestSIGKILLDuringPublishLeavesNothing kills. It publishes two trees in
// turn to the same folder, forever.
func TestPublishHelper(t *testing.T) {
	dir := os.Getenv(publishHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestSIGKILLDuringPublishLeavesNothing")
	}
	s, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	trees := publishTrees(t, s)
	for i := 0; ; i++ {
		if err := Publish(s, trees[i%2], filepath.Join(filepath.Dir(dir), "out")); err != nil {
			t.Fatal(err)
		}
	}
}

// A build SIGKILLed while it publishes leaves <out>.tmp-* or <out>.old-*
// beside the output; the next Publish removes them, and the output is the
// tree published.
func TestSIGKILLDuringPublishLeavesNothing(t *testing.T) {
	base := t.TempDir()
	storeDir := filepath.Join(base, "store")
	s, err := cache.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	trees := publishTrees(t, s)
	out := filepath.Join(base, "out")
	rng := rand.New(rand.NewPCG(3, 4))
	leftBehind := 0
	for i := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPublishHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), publishHelperEnv+"="+storeDir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once it has published at least once, kill it at a random moment.
		for deadline := time.Now().Add(2 * time.Minute); ; {
			if _, err := os.Stat(filepath.Join(out, MarkerFile)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("the helper never published")
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		des, _ := os.ReadDir(base)
		leftBehind += len(des) - 2 // store and out
		if err := Publish(s, trees[i%2], out); err != nil {
			t.Fatal(err)
		}
		des, _ = os.ReadDir(base)
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		if !slices.Equal(names, []string{"out", "store"}) {
			t.Fatalf("kill %d: beside the output after the next Publish: %v", i, names)
		}
		if got, err := PublishedTree(out); err != nil || got != trees[i%2] || !intactPublished(s, out, trees[i%2]) {
			t.Fatalf("kill %d: the output is not the tree published: %v %v", i, got, err)
		}
	}
	t.Logf("%d leftovers removed over 8 kills", leftBehind)
}

// Publish removes only a dead process's leftovers: a live process's
// folders (here: this process's) and names it does not know stay.
func TestPublishSparesLiveLeftovers(t *testing.T) {
	base := t.TempDir()
	s, err := cache.Open(filepath.Join(base, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := publishTrees(t, s)[0]
	dead := exec.Command("true")
	dead.Run()
	dp, lp := strconv.Itoa(dead.Process.Pid), strconv.Itoa(os.Getpid())
	gone := []string{"out.tmp-" + dp + "-0a1b2c", "out.old-" + dp + "-0a1b2c"}
	kept := []string{"out.tmp-" + lp + "-0a1b2c", "out.old-" + lp + "-3d4e5f", "out.tmp-0a1b2c3d", "other.tmp-" + dp + "-0a1b2c"}
	for _, n := range append(slices.Clone(gone), kept...) {
		if err := os.MkdirAll(filepath.Join(base, n, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Publish(s, d, filepath.Join(base, "out")); err != nil {
		t.Fatal(err)
	}
	for _, n := range gone {
		if _, err := os.Stat(filepath.Join(base, n)); !os.IsNotExist(err) {
			t.Errorf("dead process's %s kept", n)
		}
	}
	for _, n := range kept {
		if _, err := os.Stat(filepath.Join(base, n, "sub")); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
}
