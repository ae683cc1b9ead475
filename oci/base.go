package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/reap"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/singleflight"
)

// formatVersion names the way this package lays out images. It is part of
// every memo key: bump it when a change alters the bytes produced.
const formatVersion = "oci/1"

// Builder builds environment images into a store. It is safe for concurrent
// use; concurrent requests for the same base are built once.
type Builder struct {
	store    *cache.Store
	offline  bool
	keychain authn.Keychain
	flight   singleflight.Group
	bases    sync.Map // base memo key -> schema.Image, for this Builder's life
}

// NewBuilder returns a Builder that keeps images in store. It first
// removes what killed mmdebstrap runs of other processes left in the
// store (see ReclaimLeftovers).
func NewBuilder(store *cache.Store, opts Options) *Builder {
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ReclaimLeftovers(store)
	return &Builder{store: store, offline: opts.Offline, keychain: kc}
}

// mmdebstrapPrefix names mmdebstrap's work directories, which live in the
// store's tmp/ (removed whole by gc) as mmdebstrap-<pid>-<random>: the
// pid of the dsbuild process that runs it, which holds a flock on the
// directory while it does (see internal/reap).
const mmdebstrapPrefix = "mmdebstrap-"

// mmdebstrapParent is the directory of mmdebstrap's work directories.
func mmdebstrapParent(store *cache.Store) string {
	return store.TempDir()
}

// ReclaimLeftovers removes the work directories of mmdebstrap runs whose
// dsbuild process died (a SIGKILL, a crash), detaching any mount left
// inside first, and returns how many it removed. A live process's
// directory is never touched.
func ReclaimLeftovers(store *cache.Store) (int, error) {
	removed, err := reap.Reclaim(mmdebstrapParent(store), mmdebstrapPrefix)
	return len(removed), err
}

// Base returns the base image spec describes, building or importing it on
// the first call and answering from the store's memo table afterwards. A
// registry tag is resolved again by each new Builder (see Options.Offline);
// within one Builder every base is resolved once. Every call, however it is
// answered, notes the base's memo key in ctx's cache.Recorder, so that gc
// keeps the base for every build that used it.
func (b *Builder) Base(ctx context.Context, spec BaseSpec) (schema.Image, error) {
	if err := spec.Validate(); err != nil {
		return schema.Image{}, err
	}
	if spec.pin == "" {
		if err := spec.Pin(); err != nil {
			return schema.Image{}, err
		}
	}
	key, err := baseKey(spec)
	if err != nil {
		return schema.Image{}, err
	}
	if v, ok := b.bases.Load(key); ok {
		return b.noteUse(ctx, key, v.(schema.Image))
	}
	for {
		leader := false
		v, err, _ := b.flight.Do(key.String(), func() (any, error) {
			leader = true
			img, err := b.base(ctx, key, spec)
			if err == nil {
				b.bases.Store(key, img)
			}
			return img, err
		})
		if err != nil && !leader && ctx.Err() == nil &&
			(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue // the caller we joined gave up; our own context is alive
		}
		if err != nil {
			return schema.Image{}, err
		}
		if leader {
			// base looked the key up or stored it under our context.
			return v.(schema.Image), nil
		}
		return b.noteUse(ctx, key, v.(schema.Image))
	}
}

// baseKey is the memo key of the base spec describes: a layout or archive
// spec is named by its content (see BaseSpec.KeyView), any other by itself.
func baseKey(spec BaseSpec) (cache.Key, error) {
	view, err := spec.KeyView()
	if err != nil {
		return cache.Key{}, err
	}
	return cache.KeyOf(struct {
		Kind    string `json:"kind"`
		Version string `json:"version"`
		Arch    string `json:"arch"`
		Spec    any    `json:"spec"`
	}{"oci.base", formatVersion, runtime.GOARCH, view})
}

// noteUse notes key in ctx's recorder (by looking it up) and returns img:
// a base answered from this Builder's memory or from another caller's
// flight is still a use of the base's memo entry.
func (b *Builder) noteUse(ctx context.Context, key cache.Key, img schema.Image) (schema.Image, error) {
	if _, _, err := b.store.MemoGet(ctx, key); err != nil {
		return schema.Image{}, err
	}
	return img, nil
}

func (b *Builder) base(ctx context.Context, key cache.Key, spec BaseSpec) (schema.Image, error) {
	var (
		img schema.Image
		err error
	)
	switch {
	case spec.Debian != nil:
		if img, ok := b.memo(ctx, key); ok {
			return img, nil
		}
		img, err = b.debian(ctx, spec)
	case spec.Image != "":
		img, err = b.registry(ctx, key, spec)
	case spec.Layout != "":
		img, err = b.layout(ctx, spec)
	case spec.Archive != "":
		img, err = b.archive(ctx, spec)
	}
	if err != nil {
		return schema.Image{}, err
	}
	if err := b.memoPut(ctx, key, img); err != nil {
		return schema.Image{}, err
	}
	return img, nil
}

// memo returns the image recorded under key if it and all its blobs are in
// the store.
func (b *Builder) memo(ctx context.Context, key cache.Key) (schema.Image, bool) {
	d, ok, err := b.store.MemoGet(ctx, key)
	if err != nil || !ok {
		return schema.Image{}, false
	}
	s, err := load(b.store, d.String())
	if err != nil {
		return schema.Image{}, false
	}
	return s.image(), true
}

func (b *Builder) memoPut(ctx context.Context, key cache.Key, img schema.Image) error {
	d, err := cache.ParseDigest(img.Digest)
	if err != nil {
		return err
	}
	return b.store.MemoPut(ctx, key, d)
}

// debian builds a rootfs with mmdebstrap and stores it as a one-layer image.
func (b *Builder) debian(ctx context.Context, spec BaseSpec) (schema.Image, error) {
	d := spec.Debian.withDefaults()
	mm, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return schema.Image{}, errors.New("mmdebstrap not found: install it with `apt-get install mmdebstrap`")
	}
	if b.offline && !strings.HasPrefix(d.Mirror, "file:") {
		return schema.Image{}, fmt.Errorf("debian base %s is not in the store and offline mode forbids fetching packages from %s", d.Suite, d.Mirror)
	}
	work, err := reap.Create(mmdebstrapParent(b.store), mmdebstrapPrefix, 0o755)
	if err != nil {
		return schema.Image{}, fmt.Errorf("mmdebstrap work directory: %w", err)
	}
	defer work.Remove()
	tmp := work.Path
	out := filepath.Join(tmp, "rootfs.tar")
	args := []string{"--quiet", "--variant=" + d.Variant, "--format=tar"}
	if len(d.Packages) > 0 {
		args = append(args, "--include="+strings.Join(d.Packages, ","))
	}
	args = append(args, d.Suite, out, d.Mirror)
	var stderr bytes.Buffer
	if err := runMmdebstrap(ctx, mm, args, tmp, &stderr); err != nil {
		if ctx.Err() != nil {
			return schema.Image{}, fmt.Errorf("mmdebstrap %s: %w", d.Suite, ctx.Err())
		}
		return schema.Image{}, fmt.Errorf("mmdebstrap %s (variant %s, packages %v) failed: %v\n%s", d.Suite, d.Variant, d.Packages, err, tail(stderr.Bytes(), 4000))
	}
	f, err := os.Open(out)
	if err != nil {
		return schema.Image{}, err
	}
	defer f.Close()
	lb, err := putLayer(b.store, func(w io.Writer) error { return normaliseRootfs(ctx, f, w) })
	if err != nil {
		return schema.Image{}, fmt.Errorf("storing debian rootfs: %w", err)
	}
	created := fmt.Sprintf("mmdebstrap --variant=%s --include=%s %s", d.Variant, strings.Join(d.Packages, ","), d.Suite)
	cfg := &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      epoch,
		Config: v1.Config{
			Env: mergeEnv([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, spec.Env),
		},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hashOf(lb.diffID)}},
		History: []v1.History{{Created: epoch, CreatedBy: created}},
	}
	layer := v1.Descriptor{MediaType: types.OCILayer, Size: lb.size, Digest: hashOf(lb.compressed)}
	return putImage(b.store, cfg, nil, []v1.Descriptor{layer}, nil)
}

// runMmdebstrap runs mmdebstrap with args and TMPDIR=tmp so that it dies,
// with everything it started and everything it mounted, when ctx is done
// or when this process dies, however it dies:
//
//   - As root it is pid 1 of a new pid namespace, so the kernel kills every
//     process it started when it dies, and has a mount namespace of its
//     own (with private propagation), so the proc, sysfs and /dev mounts
//     of its chroot vanish with it instead of staying on the host.
//   - It leads a process group of its own (a terminal's Ctrl-C is for
//     dsbuild, which stops it itself), and gets SIGKILL when dsbuild dies
//     (Pdeathsig).
//   - When ctx is done it is killed at once: as root, SIGKILL to its pid
//     namespace; otherwise (mmdebstrap's unshare mode, which has
//     namespaces of its own) SIGTERM to its process group, so it can
//     remove files owned by its subordinate ids, then SIGKILL after
//     killGrace.
//
// Where namespaces cannot be created (a container without CAP_SYS_ADMIN),
// it runs without them.
func runMmdebstrap(ctx context.Context, mm string, args []string, tmp string, output *bytes.Buffer) error {
	asRoot := os.Geteuid() == 0
	newCmd := func(namespaces bool) *exec.Cmd {
		cmd := exec.CommandContext(ctx, mm, args...)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0", "TMPDIR="+tmp)
		cmd.Stdout = output
		cmd.Stderr = output
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if namespaces {
			cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
			cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
		}
		cmd.Cancel = func() error {
			if namespaces {
				return cmd.Process.Kill() // the kernel kills the rest of its pid namespace
			}
			sig := syscall.SIGKILL
			if !asRoot {
				sig = syscall.SIGTERM
				pgid := cmd.Process.Pid
				time.AfterFunc(killGrace, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
			}
			err := syscall.Kill(-cmd.Process.Pid, sig)
			if errors.Is(err, syscall.ESRCH) {
				return os.ErrProcessDone
			}
			return err
		}
		// Output pipes held open by a straggler must not hold up Wait.
		cmd.WaitDelay = killGrace + 2*time.Second
		return cmd
	}
	cmd := newCmd(asRoot)
	err := cmd.Start()
	if err != nil && asRoot && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL)) {
		cmd = newCmd(false)
		err = cmd.Start()
	}
	if err != nil {
		return err
	}
	return cmd.Wait()
}

// killGrace is how long mmdebstrap has to clean up after SIGTERM (when it
// does not run as root) before it is killed.
const killGrace = 5 * time.Second

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// normaliseRootfs copies a rootfs tarball, keeping entry order, ownership and
// extended attributes, with every time set to zero, names relative without
// "./", and device nodes and fifos dropped (runtimes provide /dev, and
// unprivileged unpacking cannot create them).
func normaliseRootfs(ctx context.Context, r io.Reader, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading rootfs tarball: %w", err)
		}
		switch h.Typeflag {
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			continue
		}
		nameRel := strings.TrimPrefix(h.Name, "./")
		if nameRel == "" || nameRel == "." {
			continue
		}
		var pax map[string]string
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				if pax == nil {
					pax = map[string]string{}
				}
				pax[k] = v
			}
		}
		out := &tar.Header{
			Typeflag:   h.Typeflag,
			Name:       nameRel,
			Linkname:   h.Linkname,
			Size:       h.Size,
			Mode:       h.Mode,
			Uid:        h.Uid,
			Gid:        h.Gid,
			Uname:      h.Uname,
			Gname:      h.Gname,
			ModTime:    epoch.Time,
			PAXRecords: pax,
		}
		if h.Typeflag == tar.TypeLink {
			out.Linkname = strings.TrimPrefix(h.Linkname, "./")
		}
		if err := tw.WriteHeader(out); err != nil {
			return fmt.Errorf("writing layer entry %s: %w", nameRel, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return fmt.Errorf("writing layer entry %s: %w", nameRel, err)
			}
		}
	}
	return tw.Close()
}

// registry pulls spec.Image. Online, a reference by tag is resolved on every
// call (one manifest request) so that a moved tag is noticed, and the import
// is memoised by the digest it resolves to; offline, the last resolution
// recorded under key is used, and there being none is an error.
func (b *Builder) registry(ctx context.Context, key cache.Key, spec BaseSpec) (schema.Image, error) {
	ref, err := name.ParseReference(spec.Image)
	if err != nil {
		return schema.Image{}, fmt.Errorf("base image %q: %w", spec.Image, err)
	}
	if b.offline {
		if img, ok := b.memo(ctx, key); ok {
			return img, nil
		}
		return schema.Image{}, fmt.Errorf("base image %s is not in the store and offline mode forbids pulling it", spec.Image)
	}
	if _, pinned := ref.(name.Digest); pinned {
		if img, ok := b.memo(ctx, key); ok {
			return img, nil
		}
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(b.keychain),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return schema.Image{}, fmt.Errorf("pulling base image %s: %w", spec.Image, err)
	}
	// Key the import by what the reference points at now.
	pinKey, err := cache.KeyOf(struct {
		Kind    string   `json:"kind"`
		Version string   `json:"version"`
		Arch    string   `json:"arch"`
		Digest  string   `json:"digest"`
		Env     []string `json:"env"`
	}{"oci.pull", formatVersion, runtime.GOARCH, desc.Digest.String(), spec.Env})
	if err != nil {
		return schema.Image{}, err
	}
	if img, ok := b.memo(ctx, pinKey); ok {
		return img, nil
	}
	img, err := desc.Image()
	if err != nil {
		return schema.Image{}, fmt.Errorf("pulling base image %s: %w", spec.Image, err)
	}
	out, err := b.importImage(img, spec.Env, false)
	if err != nil {
		return schema.Image{}, fmt.Errorf("pulling base image %s: %w", spec.Image, err)
	}
	return out, b.memoPut(ctx, pinKey, out)
}

// layout imports an image from an OCI image layout directory: the image
// manifest spec was pinned to, which the layout must still select.
func (b *Builder) layout(ctx context.Context, spec BaseSpec) (schema.Image, error) {
	idx, d, err := selectLayout(spec.Layout)
	if err != nil {
		return schema.Image{}, err
	}
	if spec.pin != "" && d.String() != spec.pin {
		return schema.Image{}, fmt.Errorf("base layout %s changed after it was read: it now selects manifest %s, not %s", spec.Layout, d, spec.pin)
	}
	key, err := cache.KeyOf(struct {
		Kind, Version, Digest string
		Env                   []string
	}{"oci.import", formatVersion, d.String(), spec.Env})
	if err != nil {
		return schema.Image{}, err
	}
	if img, ok := b.memo(ctx, key); ok {
		return img, nil
	}
	img, err := idx.Image(d)
	if err != nil {
		return schema.Image{}, fmt.Errorf("base layout %s: %w", spec.Layout, err)
	}
	out, err := b.importImage(img, spec.Env, false)
	if err != nil {
		return schema.Image{}, fmt.Errorf("base layout %s: %w", spec.Layout, err)
	}
	return out, b.memoPut(ctx, key, out)
}

// archive imports the one image of a docker-archive tarball: the image
// spec was pinned to, which the archive must still hold. The import is
// keyed by the digest of the image's config, which names every layer by
// its content's digest (the import checks each layer against it and
// recompresses it, so the config determines the imported image).
func (b *Builder) archive(ctx context.Context, spec BaseSpec) (schema.Image, error) {
	img, d, err := archiveImage(spec.Archive)
	if err != nil {
		return schema.Image{}, err
	}
	if spec.pin != "" && d.String() != spec.pin {
		return schema.Image{}, fmt.Errorf("base archive %s changed after it was read: it now holds image %s, not %s", spec.Archive, d, spec.pin)
	}
	key, err := cache.KeyOf(struct {
		Kind, Version, Config string
		Env                   []string
	}{"oci.archive-config", formatVersion, d.String(), spec.Env})
	if err != nil {
		return schema.Image{}, err
	}
	if img, ok := b.memo(ctx, key); ok {
		return img, nil
	}
	out, err := b.importImage(img, spec.Env, true)
	if err != nil {
		return schema.Image{}, fmt.Errorf("base archive %s: %w", spec.Archive, err)
	}
	return out, b.memoPut(ctx, key, out)
}

// importImage copies img into the store as an OCI image. Gzip layers keep
// their bytes (and so their digests) unless recompress is set; other layers
// are recompressed with the package's gzip settings. (Docker-archive layers
// are always recompressed: go-containerregistry reports uncompressed ones as
// gzip and compresses them on the fly with settings that are not ours.) The config is kept byte for byte unless env
// changes it.
func (b *Builder) importImage(img v1.Image, env []string, recompress bool) (schema.Image, error) {
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return schema.Image{}, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return schema.Image{}, fmt.Errorf("parsing config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return schema.Image{}, fmt.Errorf("listing layers: %w", err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return schema.Image{}, fmt.Errorf("%d layers but %d diff ids in the config", len(layers), len(cfg.RootFS.DiffIDs))
	}
	descs := make([]v1.Descriptor, len(layers))
	for i, l := range layers {
		d, err := b.importLayer(l, cfg.RootFS.DiffIDs[i], recompress)
		if err != nil {
			return schema.Image{}, fmt.Errorf("layer %d: %w", i, err)
		}
		descs[i] = d
	}
	if len(env) > 0 {
		cfg.Config.Env = mergeEnv(cfg.Config.Env, env)
		rawConfig = nil // re-encode
	}
	var annotations map[string]string
	if !recompress {
		// Keep the source manifest's annotations, so that an image dsbuild
		// built imports back with its own digest.
		m, err := img.Manifest()
		if err != nil {
			return schema.Image{}, fmt.Errorf("reading manifest: %w", err)
		}
		annotations = m.Annotations
	}
	return putImage(b.store, cfg, rawConfig, descs, annotations)
}

func (b *Builder) importLayer(l v1.Layer, diffID v1.Hash, recompress bool) (v1.Descriptor, error) {
	mt, err := l.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	wantDiff, err := digestOf(diffID)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if !recompress && (mt == types.DockerLayer || mt == types.OCILayer) {
		digest, err := l.Digest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		want, err := digestOf(digest)
		if err != nil {
			return v1.Descriptor{}, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return v1.Descriptor{}, err
		}
		got, size, err := b.store.PutStream(rc)
		rc.Close()
		if err != nil {
			return v1.Descriptor{}, err
		}
		if got != want {
			return v1.Descriptor{}, fmt.Errorf("compressed content is %s, not the %s its manifest names", got, want)
		}
		if !b.store.Has(wantDiff) {
			r, err := b.store.Open(got)
			if err != nil {
				return v1.Descriptor{}, err
			}
			zr, err := gzip.NewReader(r)
			if err != nil {
				r.Close()
				return v1.Descriptor{}, fmt.Errorf("decompressing %s: %w", got, err)
			}
			gotDiff, _, err := b.store.PutStream(zr)
			r.Close()
			if err != nil {
				return v1.Descriptor{}, err
			}
			if gotDiff != wantDiff {
				return v1.Descriptor{}, fmt.Errorf("uncompressed content is %s, not the diff id %s its config names", gotDiff, wantDiff)
			}
		}
		return v1.Descriptor{MediaType: types.OCILayer, Size: size, Digest: digest}, nil
	}
	if !recompress && mt != types.DockerUncompressedLayer && mt != types.OCIUncompressedLayer && mt != types.OCILayerZStd {
		return v1.Descriptor{}, fmt.Errorf("unsupported layer media type %s", mt)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer rc.Close()
	lb, err := putLayer(b.store, func(w io.Writer) error { _, err := io.Copy(w, rc); return err })
	if err != nil {
		return v1.Descriptor{}, err
	}
	if lb.diffID != wantDiff {
		return v1.Descriptor{}, fmt.Errorf("uncompressed content is %s, not the diff id %s its config names", lb.diffID, wantDiff)
	}
	return v1.Descriptor{MediaType: types.OCILayer, Size: lb.size, Digest: hashOf(lb.compressed)}, nil
}
