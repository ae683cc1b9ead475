package sandbox

import (
	"archive/tar"
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
	"syscall"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// rootfsDir is where unpacked images live, below the store's root:
// rootfs/<hex of the image digest>.
const rootfsDir = "rootfs"

// mountpoints are created in every unpacked image so that bubblewrap can
// mount over them in a read-only root.
var mountpoints = []string{"dev", "proc", "tmp", "testbed"}

// Rootfs returns the directory holding the unpacked root file system of img,
// unpacking it first if this store has not done so yet. Unpacking happens
// once per image digest: into a temporary directory, then renamed into
// place, under a file lock so that concurrent runs and processes share the
// work. The result must be treated as read-only.
func (r *Runner) Rootfs(img schema.Image) (string, error) {
	if _, err := cache.ParseDigest(img.Digest); err != nil {
		return "", fmt.Errorf("sandbox: image %q: bad digest: %w", img.Ref, err)
	}
	if len(img.Layers) == 0 {
		return "", fmt.Errorf("sandbox: image %s has no layers", img.Digest)
	}
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
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("sandbox: locking %s: %w", final, err)
	}
	if _, err := os.Stat(final); err == nil { // unpacked meanwhile
		return final, nil
	}
	tmp, err := os.MkdirTemp(base, "unpack-")
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	defer removeAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	if err := r.unpackLayers(img, tmp); err != nil {
		return "", fmt.Errorf("sandbox: unpacking image %s: %w", img.Digest, err)
	}
	list, err := json.Marshal(layers)
	if err != nil {
		return "", err
	}
	if err := cache.WriteFileAtomic("", final+layersSuffix, list); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	return final, nil
}

func (r *Runner) unpackLayers(img schema.Image, dir string) error {
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
		err = applyLayer(root, rc, dirModes)
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
// OCI whiteouts. Paths cannot escape root (os.Root refuses), device nodes,
// fifos and sockets are skipped (bubblewrap provides /dev), and set-id bits
// are dropped.
func applyLayer(root *os.Root, r io.Reader, dirModes map[string]fs.FileMode) error {
	tr := tar.NewReader(r)
	created := map[string]bool{} // paths written by this layer, for opaque whiteouts
	for {
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

// Prune removes the unpacked root file systems (and leftovers of killed
// unpacks) that the store can no longer rebuild, because a layer they were
// made from is gone, and returns how many it removed. Run it only while no
// build uses the store (cache gc holds the store's exclusive lock).
func Prune(store *cache.Store, opts Options) (int, error) {
	wd, err := workDirFor(store, opts, os.Geteuid() == 0)
	if err != nil {
		return 0, err
	}
	base := filepath.Join(wd, rootfsDir)
	des, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sandbox: %w", err)
	}
	removed := 0
	for _, de := range des {
		name := de.Name()
		if !de.IsDir() {
			continue
		}
		dir := filepath.Join(base, name)
		if !strings.HasPrefix(name, "unpack-") && rootStillValid(store, dir) {
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
// testbed/ (the workspace mount point).
func (r *Runner) runtimeLayers(layers []string) ([]string, error) {
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
