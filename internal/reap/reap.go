// Package reap keeps what killed processes leave behind from piling up:
// temporary directories (and files) that are named after the process that
// writes them and locked by it while in use, so that a later process can
// tell a dead writer's leftovers from a live one's work, and removal that
// first detaches any mount below a directory and never follows one.
//
// The rule for a leftover, used everywhere in dsbuild: an entry named
// <prefix><pid>-<anything> is a leftover when no process with that pid is
// alive (in this pid namespace) and nobody holds a flock on it. The pid is
// checked so that an entry is never taken between its creation and its
// lock; the lock is checked so that a writer in another pid namespace (a
// container sharing the store) is never mistaken for a dead one. A reused
// pid only delays the removal of a leftover.
//
// The package imports nothing of the project.
package reap

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dir is a directory created by this process, locked for as long as the
// Dir is held.
type Dir struct {
	Path string
	lock *os.File
}

// Name returns prefix<pid>-<12 hex digits>, a name Reclaim recognises as
// belonging to this process.
func Name(prefix string) string {
	var nonce [6]byte
	rand.Read(nonce[:])
	return fmt.Sprintf("%s%d-%s", prefix, os.Getpid(), hex.EncodeToString(nonce[:]))
}

// Create makes a new directory parent/<prefix><pid>-<random> (creating
// parent if needed) and locks it. Release or Remove it when done; if the
// process dies first, Reclaim removes it.
func Create(parent, prefix string, perm fs.FileMode) (*Dir, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	for range 100 {
		p := filepath.Join(parent, Name(prefix))
		err := os.Mkdir(p, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		f, err := Lock(p)
		if errors.Is(err, ErrInUse) {
			os.Remove(p)
			return nil, err
		}
		// A file system without flock on directories (NFS, say) leaves
		// the pid alone to tell a leftover.
		return &Dir{Path: p, lock: f}, nil
	}
	return nil, fmt.Errorf("reap: could not create a directory in %s", parent)
}

// Lock takes the lock (an exclusive flock, never inherited by children)
// that marks path as in use, failing at once if another holder has it.
// Closing the file releases it.
func Lock(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("reap: %s: %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("reap: locking %s: %w", path, err)
	}
	return f, nil
}

// ErrInUse is returned (wrapped) by Lock when another holder has the lock.
var ErrInUse = errors.New("in use")

// Release unlocks d without removing it (it was renamed into place, say).
func (d *Dir) Release() {
	if d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
}

// Remove removes d (see RemoveAll) and then unlocks it.
func (d *Dir) Remove() error {
	err := RemoveAll(d.Path)
	d.Release()
	return err
}

// Owner returns the pid encoded in name, which must be
// <prefix><pid>-<anything>.
func Owner(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(num)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != num {
		return 0, false
	}
	return pid, true
}

// Alive reports whether a process with this pid exists in this pid
// namespace (a zombie counts).
func Alive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Stale reports whether path, named <prefix><pid>-..., is a leftover: its
// pid is dead and nobody holds its lock. When it is, the lock is returned
// held (nil where the file system has no flock), so that the caller
// removes it before anyone else can claim it; close it afterwards.
func Stale(path, prefix string) (*os.File, bool) {
	pid, ok := Owner(filepath.Base(path), prefix)
	if !ok || Alive(pid) {
		return nil, false
	}
	f, err := Lock(path)
	switch {
	case err == nil:
		return f, true
	case errors.Is(err, ErrInUse), errors.Is(err, fs.ErrNotExist):
		return nil, false
	default:
		// No flock here (NFS, say): the dead pid decides.
		return nil, true
	}
}

// Reclaim removes every leftover (see Stale) in parent whose name starts
// with one of prefixes, and returns the paths removed. A missing parent
// holds none. It goes on past an entry it cannot remove and returns the
// first error.
func Reclaim(parent string, prefixes ...string) ([]string, error) {
	des, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var first error
	for _, de := range des {
		for _, prefix := range prefixes {
			if !strings.HasPrefix(de.Name(), prefix) {
				continue
			}
			p := filepath.Join(parent, de.Name())
			lock, ok := Stale(p, prefix)
			if !ok {
				break
			}
			err := RemoveAll(p)
			if lock != nil {
				lock.Close()
			}
			if err != nil {
				if first == nil {
					first = err
				}
			} else {
				removed = append(removed, p)
			}
			break
		}
	}
	return removed, first
}

// MountsBelow returns the mount points of this mount namespace at or below
// dir, deepest first.
func MountsBelow(dir string) ([]string, error) {
	dir, err := canonical(dir)
	if err != nil {
		return nil, err
	}
	// The calling thread's view: a thread may have a mount namespace of
	// its own (tests do).
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		if f, err = os.Open("/proc/self/mountinfo"); err != nil {
			return nil, err
		}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out, nil
}

// canonical is dir made absolute with symbolic links resolved, as
// mountinfo names it (dir itself may be gone).
func canonical(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(r, filepath.Base(abs)), nil
	}
	return abs, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Unmount detaches every mount at or below dir, deepest first, and fails if
// any is left.
func Unmount(dir string) error {
	for range 64 { // mounts can be stacked on one point
		mps, err := MountsBelow(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("reap: unmounting %s: %w", mp, err)
			}
		}
	}
	return fmt.Errorf("reap: mounts below %s keep coming back", dir)
}

// RemoveAll removes path and everything below it, like os.RemoveAll, after
// detaching every mount below it; it never descends into another file
// system (a mount it could not see, say), making directories it owns
// writable where needed. A missing path is not an error.
func RemoveAll(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return os.Remove(path)
	}
	if err := Unmount(path); err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("reap: no device number for %s", path)
	}
	return removeTree(path, st.Dev)
}

func removeTree(path string, dev uint64) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Dev != dev {
		return fmt.Errorf("reap: %s is on another file system (a mount point?); not removing it", path)
	}
	if fi.Mode().Perm()&0o700 != 0o700 {
		os.Chmod(path, fi.Mode().Perm()|0o700)
	}
	for {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(1024)
		f.Close()
		if len(names) == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			break
		}
		for _, n := range names {
			if err := removeTree(filepath.Join(path, n), dev); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
