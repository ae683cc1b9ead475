package sandbox

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/reap"
	"github.com/dsbuild/dsbuild/schema"
)

// rootfsDir is where unpacked images live, below the store's root:
// rootfs/<hex of the image digest>.
const rootfsDir = "rootfs"

// mountpoints are created in every unpacked image so that bubblewrap can
// mount over them in a read-only root.
var mountpoints = []string{"dev", "proc", "tmp", "testbed"}

// Rootfs is RootfsContext without cancellation.
func (r *Runner) Rootfs(img schema.Image) (string, error) {
	return r.RootfsContext(context.Background(), img)
}

// RootfsContext returns the directory holding the unpacked root file system
// of img, unpacking it first if this store has not done so yet. Unpacking
// happens once per image digest: into a temporary directory
// (rootfs/unpack-<pid>-<random>, locked while in use), then renamed into
// place, under a file lock so that concurrent runs and processes share the
// work. The result must be treated as read-only. Waiting for another
// process's unpack and unpacking stop when ctx is done (between tar
// entries), leaving nothing behind.
//
// The first call in a process for a work directory also makes the process
// a user of it, removing what killed processes left there when no other
// process uses it (see claimWorkDir); runs call it before they create
// their workspace.
func (r *Runner) RootfsContext(ctx context.Context, img schema.Image) (string, error) {
	if _, err := cache.ParseDigest(img.Digest); err != nil {
		return "", fmt.Errorf("sandbox: image %q: bad digest: %w", img.Ref, err)
	}
	if len(img.Layers) == 0 {
		return "", fmt.Errorf("sandbox: image %s has no layers", img.Digest)
	}
	claimWorkDir(r.workDir)
	// Layers that only fill /testbed are shadowed by the run's workspace, so
	// they are left out and the root file system is keyed by the layers that
	// remain: every task image of one environment shares one unpacked root.
	layers, err := r.runtimeLayers(img.Layers)
	if err != nil {
		return "", fmt.Errorf("sandbox: image %s: %w", img.Digest, err)
	}
	key, err := cache.KeyOf(layers)
	if err != nil {
		return "", err
	}
	img.Layers = layers
	base := filepath.Join(r.workDir, rootfsDir)
	final := filepath.Join(base, key.String())
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	lf, err := os.OpenFile(final+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	defer lf.Close()
	if err := flockContext(ctx, lf); err != nil {
		return "", fmt.Errorf("sandbox: locking %s: %w", final, err)
	}
	if _, err := os.Stat(final); err == nil { // unpacked meanwhile
		return final, nil
	}
	reap.Reclaim(base, unpackPrefix) // what killed unpacks left
	tmp, err := reap.Create(base, unpackPrefix, 0o755)
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	defer tmp.Remove() // a no-op once renamed into place
	if err := os.Chmod(tmp.Path, 0o755); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	if err := r.unpackLayers(ctx, img, tmp.Path); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("sandbox: unpacking image %s: %w", img.Digest, ctx.Err())
		}
		return "", fmt.Errorf("sandbox: unpacking image %s: %w", img.Digest, err)
	}
	list, err := json.Marshal(layers)
	if err != nil {
		return "", err
	}
	if err := cache.WriteFileAtomic("", final+layersSuffix, list); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Rename(tmp.Path, final); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	return final, nil
}

// unpackPrefix names unpacks under way (or left by killed processes) in
// rootfs/: unpack-<pid>-<random> (see internal/reap).
const unpackPrefix = "unpack-"

// flockContext takes an exclusive flock on f, giving up when ctx is done.
func flockContext(ctx context.Context, f *os.File) error {
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// usersLock is the file in a work directory (beside work/ and rootfs/) on
// which every process that runs sandboxes there holds a shared flock for
// its life.
const usersLock = "sandbox-users.lock"

// workClaims holds this process's claim on each work directory it used.
var workClaims sync.Map // work directory -> *workClaim

type workClaim struct {
	once sync.Once
	lock *os.File // held until the process ends
}

// claimWorkDir makes this process a user of the work directory wd, once
// per process: it holds a shared flock on sandbox-users.lock from then on.
// A process that gets the exclusive lock first knows that no other live
// process uses wd, so every workspace (work/run-*) and unpack
// (rootfs/unpack-*) there was left by a killed one: it removes them before
// taking the shared lock. Otherwise it removes the unpacks whose process
// is dead (they are named after it); workspaces are not, so while another
// process uses wd they are left for a later start, or for gc.
func claimWorkDir(wd string) {
	v, _ := workClaims.LoadOrStore(wd, &workClaim{})
	c := v.(*workClaim)
	c.once.Do(func() {
		if err := os.MkdirAll(wd, 0o755); err != nil {
			return
		}
		f, err := os.OpenFile(filepath.Join(wd, usersLock), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return
		}
		removeLeftovers(wd, syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil)
		// Converting the lock (or waiting for another process's removal).
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
			f.Close()
			return
		}
		c.lock = f
	})
}

// removeLeftovers removes what killed processes left in the work directory
// wd: with all, every workspace and unpack (the caller knows that no other
// process uses wd); otherwise the unpacks whose process is dead. It returns
// how many unpacks it removed.
func removeLeftovers(wd string, all bool) int {
	base := filepath.Join(wd, rootfsDir)
	if !all {
		removed, _ := reap.Reclaim(base, unpackPrefix)
		return len(removed)
	}
	work := filepath.Join(wd, "work")
	des, _ := os.ReadDir(work)
	for _, de := range des {
		if de.IsDir() && strings.HasPrefix(de.Name(), "run-") {
			reap.RemoveAll(filepath.Join(work, de.Name()))
		}
	}
	n := 0
	des, _ = os.ReadDir(base)
	for _, de := range des {
		if de.IsDir() && strings.HasPrefix(de.Name(), unpackPrefix) && reap.RemoveAll(filepath.Join(base, de.Name())) == nil {
			n++
		}
	}
	return n
}

func (r *Runner) unpackLayers(ctx context.Context, img schema.Image, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	dirModes := map[string]fs.FileMode{}
	for i, l := range img.Layers {
		ld, err := cache.ParseDigest(l)
		if err != nil {
			return fmt.Errorf("layer %d: bad digest %q: %w", i, l, err)
		}
		rc, err := r.store.Open(ld)
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		err = applyLayer(ctx, root, rc, dirModes)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, ld.Short(), err)
		}
	}
	for _, m := range mountpoints {
		if err := ensureDir(root, m, dirModes); err != nil {
			return fmt.Errorf("creating mount point /%s: %w", m, err)
		}
	}
	// Directory modes last (deepest first), so that read-only directories
	// could still be filled while unpacking.
	names := make([]string, 0, len(dirModes))
	for n := range dirModes {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, n := range names {
		if err := root.Chmod(n, dirModes[n]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func ensureDir(root *os.Root, name string, dirModes map[string]fs.FileMode) error {
	fi, err := root.Lstat(name)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("/%s exists and is not a directory", name)
	case errors.Is(err, fs.ErrNotExist):
		if err := root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		if _, ok := dirModes[name]; !ok {
			dirModes[name] = 0o755
		}
		return nil
	default:
		return err
	}
}

// cleanTarName turns a tar entry name into a clean relative path, or
// reports that it tries to leave the root.
func cleanTarName(name string) (string, error) {
	p := path.Clean("/" + name)
	if p == "/" {
		return ".", nil
	}
	rel := strings.TrimPrefix(p, "/")
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q leaves the root", name)
		}
	}
	return rel, nil
}

// applyLayer extracts one uncompressed layer tarball into root, honouring
// OCI whiteouts, and stops between entries when ctx is done. Paths cannot escape root (os.Root refuses), device nodes,
// fifos and sockets are skipped (bubblewrap provides /dev), and set-id bits
// are dropped.
func applyLayer(ctx context.Context, root *os.Root, r io.Reader, dirModes map[string]fs.FileMode) error {
	tr := tar.NewReader(r)
	created := map[string]bool{} // paths written by this layer, for opaque whiteouts
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := cleanTarName(h.Name)
		if err != nil {
			return err
		}
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		if base == ".wh..wh..opq" {
			if err := opaque(root, dir, created); err != nil {
				return fmt.Errorf("opaque whiteout %s: %w", h.Name, err)
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			victim := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			if err := root.RemoveAll(victim); err != nil {
				return fmt.Errorf("whiteout %s: %w", h.Name, err)
			}
			continue
		}
		if name == "." {
			if h.Typeflag == tar.TypeDir {
				dirModes["."] = fs.FileMode(h.Mode) & 0o1777
			}
			continue
		}
		if dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		}
		mode := fs.FileMode(h.Mode) & 0o1777
		switch h.Typeflag {
		case tar.TypeDir:
			if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
				if err := root.Remove(name); err != nil {
					return fmt.Errorf("%s: %w", h.Name, err)
				}
			}
			if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			dirModes[name] = mode
		case tar.TypeReg:
			if err := replace(root, name); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = root.Chmod(name, mode)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			if err := replace(root, name); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeLink:
			target, err := cleanTarName(h.Linkname)
			if err != nil {
				return fmt.Errorf("hard link %s: %w", h.Name, err)
			}
			if err := replace(root, name); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("hard link %s -> %s: %w", h.Name, h.Linkname, err)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			continue // bubblewrap mounts its own /dev; nothing else needs these
		case tar.TypeXGlobalHeader:
			continue
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", h.Name, h.Typeflag)
		}
		created[name] = true
	}
}

// replace removes whatever non-directory is at name so that a new entry
// can take its place (a directory there is an error: tar replaced a
// directory with a file).
func replace(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return root.RemoveAll(name)
	}
	return root.Remove(name)
}

// opaque removes every entry of dir that this layer did not itself create.
func opaque(root *os.Root, dir string, created map[string]bool) error {
	f, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if created[p] {
			continue
		}
		if err := root.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// layersSuffix names the file beside an unpacked root that lists the
// layers it was made from (for Prune).
const layersSuffix = ".layers"

// Prune removes the unpacked root file systems that the store can no longer
// rebuild, because a layer they were made from is gone, and what killed
// processes left (workspaces work/run-*, unpacks rootfs/unpack-*), and
// returns how many unpacked roots and unpacks it removed. Run it only
// while no build uses the store (cache gc holds the store's exclusive
// lock); even so, leftovers are removed only if no process holds the work
// directory (see claimWorkDir), and otherwise only unpacks whose process
// is dead.
func Prune(store *cache.Store, opts Options) (int, error) {
	wd, err := workDirFor(store, opts, os.Geteuid() == 0)
	if err != nil {
		return 0, err
	}
	removed := 0
	if f, err := os.OpenFile(filepath.Join(wd, usersLock), os.O_RDWR, 0); err == nil {
		all := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
		removed += removeLeftovers(wd, all)
		f.Close()
	} else {
		// No process ever claimed it (it was written before the lock
		// existed, or not at all): nobody uses it now.
		removed += removeLeftovers(wd, true)
	}
	base := filepath.Join(wd, rootfsDir)
	des, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return removed, nil
	}
	if err != nil {
		return removed, fmt.Errorf("sandbox: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if !de.IsDir() || strings.HasPrefix(name, unpackPrefix) {
			continue
		}
		dir := filepath.Join(base, name)
		if rootStillValid(store, dir) {
			continue
		}
		removeAll(dir)
		if _, err := os.Stat(dir); err == nil {
			return removed, fmt.Errorf("sandbox: could not remove %s", dir)
		}
		os.Remove(dir + layersSuffix)
		os.Remove(dir + ".lock")
		removed++
	}
	return removed, nil
}

func rootStillValid(store *cache.Store, dir string) bool {
	raw, err := os.ReadFile(dir + layersSuffix)
	if err != nil {
		return false
	}
	var layers []string
	if json.Unmarshal(raw, &layers) != nil {
		return false
	}
	for _, l := range layers {
		d, err := cache.ParseDigest(l)
		if err != nil || !store.Has(d) {
			return false
		}
	}
	return true
}

// runtimeLayers returns layers without those whose every entry lies under
// testbed/ (the workspace mount point). Every run's key passes here, memo
// hits included, so it also makes this process a user of the work
// directory (claimWorkDir): a build that only replays memoised runs still
// removes what killed builds left there.
func (r *Runner) runtimeLayers(layers []string) ([]string, error) {
	claimWorkDir(r.workDir)
	out := make([]string, 0, len(layers))
	for _, l := range layers {
		only, err := r.testbedOnly(l)
		if err != nil {
			return nil, err
		}
		if !only {
			out = append(out, l)
		}
	}
	return out, nil
}

// testbedOnly reports whether every entry of the layer blob l is /testbed
// or below it. It reads tar headers only and stops at the first entry
// elsewhere, so a large base layer costs one header.
func (r *Runner) testbedOnly(l string) (bool, error) {
	if v, ok := r.testbedLayers.Load(l); ok {
		return v.(bool), nil
	}
	d, err := cache.ParseDigest(l)
	if err != nil {
		return false, fmt.Errorf("bad layer digest %q: %w", l, err)
	}
	rc, err := r.store.Open(d)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	only := true
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, fmt.Errorf("layer %s: %w", d.Short(), err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name != "" && name != DefaultDir[1:] && !strings.HasPrefix(name, DefaultDir[1:]+"/") {
			only = false
			break
		}
	}
	r.testbedLayers.Store(l, only)
	return only, nil
}
