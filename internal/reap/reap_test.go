package reap

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestOwner(t *testing.T) {
	for name, want := range map[string]int{
		"tmp-123-abc": 123, "tmp-123-": 123, "tmp-0-a": 0, "tmp-x-1": 0, "tmp-0123-a": 0,
		"tmp-123": 0, "other-123-a": 0, "tmp--1-a": 0,
	} {
		got, ok := Owner(name, "tmp-")
		if got != want || ok != (want != 0) {
			t.Errorf("Owner(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	if pid, ok := Owner(Name("x."), "x."); !ok || pid != os.Getpid() {
		t.Errorf("Name does not encode this process: %d %v", pid, ok)
	}
}

// Reclaim removes a dead writer's entries and nothing else: not a live
// process's, not one whose lock is held (a writer in another pid
// namespace), not a name it does not know.
func TestReclaimOnlyDeadWriters(t *testing.T) {
	parent := t.TempDir()
	dead := deadPID(t)
	mk := func(name string) string {
		p := filepath.Join(parent, name)
		if err := os.MkdirAll(filepath.Join(p, "sub", "deep"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(p, "sub", "deep", "f"), []byte("x"), 0o444)
		os.Chmod(filepath.Join(p, "sub", "deep"), 0o500) // read-only dirs are removed too
		return p
	}
	gone := mk("mm-" + strconv.Itoa(dead) + "-aaaa")
	goneFile := filepath.Join(parent, "mm-"+strconv.Itoa(dead)+"-file")
	os.WriteFile(goneFile, []byte("x"), 0o644)
	live := mk("mm-" + strconv.Itoa(os.Getpid()) + "-bbbb")
	locked := mk("mm-" + strconv.Itoa(dead) + "-cccc")
	other := mk("unrelated-" + strconv.Itoa(dead) + "-dddd")
	oldStyle := mk("mm-abcdef")
	lf, err := Lock(locked)
	if err != nil {
		t.Fatal(err)
	}
	removed, err := Reclaim(parent, "mm-")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want the dead writer's two entries", removed)
	}
	for _, p := range []string{gone, goneFile} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s was not removed", p)
		}
	}
	for _, p := range []string{live, locked, other, oldStyle} {
		if _, err := os.Stat(filepath.Join(p, "sub", "deep", "f")); err != nil {
			t.Errorf("%s was touched: %v", p, err)
		}
	}
	lf.Close()
	if removed, _ := Reclaim(parent, "mm-"); len(removed) != 1 || removed[0] != locked {
		t.Errorf("after its lock was released: removed %v, want %s", removed, locked)
	}
	os.Chmod(filepath.Join(live, "sub", "deep"), 0o755)
	os.Chmod(filepath.Join(other, "sub", "deep"), 0o755)
	os.Chmod(filepath.Join(oldStyle, "sub", "deep"), 0o755)
}

// A Dir is locked while held: a second lock fails, and Reclaim leaves it
// even if its pid looked dead.
func TestCreateLocks(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "a", "b")
	d, err := Create(parent, "w-", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	if pid, ok := Owner(filepath.Base(d.Path), "w-"); !ok || pid != os.Getpid() {
		t.Fatalf("name %s", d.Path)
	}
	if f, err := Lock(d.Path); !errors.Is(err, ErrInUse) {
		f.Close()
		t.Fatalf("a held Dir could be locked again: %v", err)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path); !os.IsNotExist(err) {
		t.Fatal("Remove left the directory")
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b\134c\011`); got != "/tmp/a b\\c\t" {
		t.Fatalf("got %q", got)
	}
}

// privateMounts gives the test's goroutine a thread with a mount namespace
// of its own, so that nothing it mounts can outlive it (the thread is
// never unlocked, so it ends with the test).
func privateMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
}

func mountedBelow(t *testing.T, dir string) []string {
	t.Helper()
	m, err := MountsBelow(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// RemoveAll detaches the mounts below a leftover (a proc, a tmpfs, a bind
// mount of a directory that must survive, as a killed mmdebstrap leaves in
// its chroot) before removing it, and removes nothing through them.
func TestRemoveAllUnmountsFirst(t *testing.T) {
	privateMounts(t)
	base := t.TempDir()
	precious := filepath.Join(base, "precious")
	os.MkdirAll(precious, 0o755)
	os.WriteFile(filepath.Join(precious, "keep"), []byte("keep"), 0o644)
	victim := filepath.Join(base, "with space", "chroot")
	for _, d := range []string{"proc", "dev/shm", "host"} {
		if err := os.MkdirAll(filepath.Join(victim, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(unix.Mount("proc", filepath.Join(victim, "proc"), "proc", 0, ""))
	must(unix.Mount("tmpfs", filepath.Join(victim, "dev/shm"), "tmpfs", 0, "size=1m"))
	must(unix.Mount(precious, filepath.Join(victim, "host"), "", unix.MS_BIND, ""))
	if n := len(mountedBelow(t, filepath.Dir(victim))); n != 3 {
		t.Fatalf("%d mounts below the victim, want 3", n)
	}
	if err := RemoveAll(filepath.Dir(victim)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(victim)); !os.IsNotExist(err) {
		t.Fatalf("victim still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(precious, "keep")); err != nil || string(b) != "keep" {
		t.Fatalf("a bind-mounted directory lost its content: %q %v", b, err)
	}
	raw, _ := os.ReadFile("/proc/thread-self/mountinfo")
	if strings.Contains(string(raw), base) {
		t.Fatalf("mounts left:\n%s", raw)
	}
}

// A mount that the unmounting step missed (one in a namespace of its own,
// say) stops the walk: nothing on another file system is removed.
func TestRemoveTreeStaysOnItsFileSystem(t *testing.T) {
	privateMounts(t)
	base := t.TempDir()
	victim := filepath.Join(base, "v")
	os.MkdirAll(filepath.Join(victim, "m"), 0o755)
	if err := unix.Mount("tmpfs", filepath.Join(victim, "m"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Unmount(base) }) // cleanups run on this thread, before TempDir's
	os.WriteFile(filepath.Join(victim, "m", "f"), []byte("x"), 0o644)
	var st unix.Stat_t
	if err := unix.Stat(victim, &st); err != nil {
		t.Fatal(err)
	}
	if err := removeTree(victim, st.Dev); err == nil || !strings.Contains(err.Error(), "another file system") {
		t.Fatalf("removeTree crossed a mount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(victim, "m", "f")); err != nil {
		t.Fatalf("a file on the other file system was removed: %v", err)
	}
}
