package cache

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// gc removes what killed processes left in tmp/, including a killed
// mmdebstrap's chroot with proc, a tmpfs and a bind mount of a host
// directory still mounted in it: the mounts are detached first, and
// nothing is removed through them.
func TestGCRemovesLeftoversWithMountsSafely(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	// A thread with a mount namespace of its own, so that no mount can
	// outlive the test (the thread ends with it).
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	precious := filepath.Join(base, "host-dir")
	os.MkdirAll(precious, 0o755)
	os.WriteFile(filepath.Join(precious, "keep"), []byte("keep"), 0o644)

	s, err := OpenExclusive(filepath.Join(base, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chroot := filepath.Join(s.Root(), tmpDir, "mmdebstrap-12345-0123456789ab", "mmdebstrap.XYZ")
	for _, d := range []string{"proc", "dev/shm", "host", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(chroot, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(chroot, "usr/bin/tool"), []byte("x"), 0o755)
	os.WriteFile(filepath.Join(s.Root(), tmpDir, "put-123"), []byte("partial blob"), 0o600)
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "proc", "proc"}, {"tmpfs", "dev/shm", "tmpfs"}, {precious, "host", ""},
	} {
		flags := uintptr(0)
		if m.fstype == "" {
			flags = unix.MS_BIND
		}
		if err := unix.Mount(m.src, filepath.Join(chroot, m.dst), m.fstype, flags, ""); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // on failure, before TempDir's cleanup (on this thread)
		for _, d := range []string{"host", "dev/shm", "proc"} {
			unix.Unmount(filepath.Join(chroot, d), unix.MNT_DETACH)
		}
	})

	if _, err := s.GC(1); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(precious, "keep")); err != nil || string(b) != "keep" {
		t.Fatalf("gc removed a file through a bind mount: %q %v", b, err)
	}
	if des, _ := os.ReadDir(filepath.Join(s.Root(), tmpDir)); len(des) != 0 {
		t.Fatalf("gc left %d entries in tmp/", len(des))
	}
	raw, _ := os.ReadFile("/proc/thread-self/mountinfo")
	if strings.Contains(string(raw), s.Root()) {
		t.Fatalf("mounts left below the store:\n%s", raw)
	}
}
