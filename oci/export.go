package oci

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AnnotationRefName is the index annotation that names a tagged image in an
// OCI image layout.
const AnnotationRefName = "org.opencontainers.image.ref.name"

// tagRE is the grammar of a tag (OCI distribution spec).
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// sortedTags returns the keys of images sorted, checking each is a tag or
// "repository:tag".
func sortedTags(images map[string]schema.Image) ([]string, error) {
	tags := make([]string, 0, len(images))
	for t := range images {
		if _, tag := splitTag(t); !tagRE.MatchString(tag) {
			return nil, fmt.Errorf("image tag %q is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]*, at most 128 characters)", t)
		}
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags, nil
}

// splitTag splits "repo:tag" into its parts; a plain "tag" has no repo.
func splitTag(s string) (repo, tag string) {
	if i := strings.LastIndex(s, ":"); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

// loadAll loads every image, in tag order.
func loadAll(store *cache.Store, images map[string]schema.Image) ([]string, []*stored, error) {
	tags, err := sortedTags(images)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*stored, len(tags))
	for i, t := range tags {
		s, err := load(store, images[t].Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("image %s: %w", t, err)
		}
		out[i] = s
	}
	return tags, out, nil
}

// WriteLayout writes images as one OCI image layout in dir, one index entry
// per tag (annotated with org.opencontainers.image.ref.name), sorted by tag.
// Blobs are written first, each by temporary file and rename and skipped if
// already there; index.json is replaced last in the same way, so a reader
// never sees an index naming a missing blob. Blobs no image of the new index
// uses are removed afterwards: dir is owned by the build.
func WriteLayout(ctx context.Context, store *cache.Store, dir string, images map[string]schema.Image) error {
	tags, imgs, err := loadAll(store, images)
	if err != nil {
		return fmt.Errorf("writing image layout %s: %w", dir, err)
	}
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return fmt.Errorf("writing image layout: %w", err)
	}
	keep := map[string]bool{}
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for i, s := range imgs {
		blobs := append([]v1.Descriptor{{Digest: hashOf(s.digest), Size: int64(len(s.rawManifest))}, s.manifest.Config}, s.manifest.Layers...)
		for _, b := range blobs {
			if err := ctx.Err(); err != nil {
				return err
			}
			keep[b.Digest.Hex] = true
			if err := copyBlob(store, b, filepath.Join(blobDir, b.Digest.Hex)); err != nil {
				return fmt.Errorf("writing image layout %s: image %s: %w", dir, tags[i], err)
			}
		}
		index.Manifests = append(index.Manifests, v1.Descriptor{
			MediaType:   s.manifest.MediaType,
			Size:        int64(len(s.rawManifest)),
			Digest:      hashOf(s.digest),
			Annotations: map[string]string{AnnotationRefName: tags[i]},
		})
	}
	rawIndex, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := cache.WriteFileAtomic("", filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return fmt.Errorf("writing image layout: %w", err)
	}
	if err := cache.WriteFileAtomic("", filepath.Join(dir, "index.json"), rawIndex); err != nil {
		return fmt.Errorf("writing image layout: %w", err)
	}
	des, err := os.ReadDir(blobDir)
	if err != nil {
		return fmt.Errorf("writing image layout: %w", err)
	}
	for _, de := range des {
		if n := de.Name(); len(n) == 64 && !keep[n] {
			os.Remove(filepath.Join(blobDir, n))
		}
	}
	return nil
}

// copyBlob writes the store blob desc to path unless a file of the right
// size is already there.
func copyBlob(store *cache.Store, desc v1.Descriptor, path string) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() == desc.Size {
		return nil
	}
	d, err := digestOf(desc.Digest)
	if err != nil {
		return err
	}
	r, err := store.Open(d)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err == nil && n != desc.Size {
		err = fmt.Errorf("blob %s has %d bytes, want %d", d, n, desc.Size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// PushOptions configure Push.
type PushOptions struct {
	// Insecure allows plain HTTP (and untrusted TLS) to the registry.
	Insecure bool
	// Keychain supplies credentials; authn.DefaultKeychain if nil.
	Keychain authn.Keychain
	// Retries is how many times a failed request is tried in all; 3 if zero.
	Retries int
	// Progress, if set, is called from one goroutine as bytes are
	// uploaded, with the bytes done and the total to upload (blobs the
	// registry already has count as done once checked).
	Progress func(done, total int64)
}

// ErrNoLogin and ErrLoginRefused tell the two reasons a registry refuses
// a push apart: no credentials were found for it, or the ones found were
// not accepted (wrong user, password or token, or no push permission).
var (
	ErrNoLogin      = errors.New("no login found for the registry")
	ErrLoginRefused = errors.New("the registry refused the login")
)

// PushResult reports one pushed image.
type PushResult struct {
	// Tag is the key the image had in the map given to Push.
	Tag string `json:"tag"`
	// Ref is the full reference it was pushed to.
	Ref string `json:"ref"`
	// Digest is its manifest digest, as the registry now serves it.
	Digest string `json:"digest"`
}

// Push uploads images to registry ("host[:port]/namespace"). A key "tag"
// goes to registry:tag (registry must then name a repository); a key
// "repo:tag" goes to registry/repo:tag. Blobs the registry already has are
// not uploaded again, blobs shared by several images are uploaded once, and
// failed requests are retried with backoff. Results are in tag order.
func Push(ctx context.Context, store *cache.Store, images map[string]schema.Image, registry string, opts PushOptions) ([]PushResult, error) {
	registry = strings.TrimSuffix(registry, "/")
	if registry == "" {
		return nil, errors.New("push: no registry given")
	}
	tags, imgs, err := loadAll(store, images)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	var nameOpts []name.Option
	if opts.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	todo := map[name.Reference]remote.Taggable{}
	results := make([]PushResult, len(tags))
	for i, t := range tags {
		repo, tag := splitTag(t)
		full := registry
		if repo != "" {
			full += "/" + repo
		}
		ref, err := name.NewTag(full+":"+tag, append(nameOpts, name.StrictValidation)...)
		if err != nil {
			return nil, fmt.Errorf("push: image %s: %q is not a valid reference: %v", t, full+":"+tag, err)
		}
		img, err := imgs[i].v1Image()
		if err != nil {
			return nil, err
		}
		todo[ref] = img
		results[i] = PushResult{Tag: t, Ref: ref.String(), Digest: imgs[i].digest.String()}
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	retries := opts.Retries
	if retries <= 0 {
		retries = 3
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: retries}),
	}
	if opts.Insecure {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the user asked for an insecure registry
		ropts = append(ropts, remote.WithTransport(t))
	}
	if opts.Progress != nil {
		updates := make(chan v1.Update, 16)
		ropts = append(ropts, remote.WithProgress(updates))
		done := make(chan struct{})
		go func() {
			defer close(done)
			for u := range updates {
				if u.Error == nil {
					opts.Progress(u.Complete, u.Total)
				}
			}
		}()
		defer func() { <-done }()
	}
	err = remote.MultiWrite(todo, ropts...)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("push to %s: %w", registry, loginError(err, kc, todo))
	}
	return results, nil
}

// loginError rewrites a registry's 401 or 403 as ErrNoLogin or
// ErrLoginRefused, saying which from whether kc holds credentials for the
// registry; other errors are returned as they are. The credentials
// themselves never enter the message.
func loginError(err error, kc authn.Keychain, refs map[name.Reference]remote.Taggable) error {
	var terr *transport.Error
	if !errors.As(err, &terr) || (terr.StatusCode != http.StatusUnauthorized && terr.StatusCode != http.StatusForbidden) {
		return err
	}
	var reg name.Registry
	for ref := range refs {
		reg = ref.Context().Registry
		break
	}
	auth, kerr := kc.Resolve(reg)
	if kerr == nil && auth == authn.Anonymous {
		return fmt.Errorf("%w for %s: log in with `docker login %s` (or `podman login --authfile $DOCKER_CONFIG/config.json %s`), then push again (%d %s)",
			ErrNoLogin, reg.RegistryStr(), reg.RegistryStr(), reg.RegistryStr(), terr.StatusCode, http.StatusText(terr.StatusCode))
	}
	return fmt.Errorf("%w for %s: the credentials in the Docker config were not accepted or may not push here; log in again with `docker login %s` (%d %s)",
		ErrLoginRefused, reg.RegistryStr(), reg.RegistryStr(), terr.StatusCode, http.StatusText(terr.StatusCode))
}

// dockerManifestEntry is one image in a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// WriteDockerArchive writes images as one docker-archive tarball at path, for
// `docker load` or `podman load`. A key "repo:tag" is the image's RepoTag; a
// plain "tag" becomes "dsbuild:tag". The tarball is deterministic (images in
// tag order, each blob once, zero mtimes) and written by temporary file and
// rename.
func WriteDockerArchive(ctx context.Context, store *cache.Store, path string, images map[string]schema.Image) error {
	tags, imgs, err := loadAll(store, images)
	if err != nil {
		return fmt.Errorf("writing docker archive %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-docker-archive-*")
	if err != nil {
		return fmt.Errorf("writing docker archive: %w", err)
	}
	defer os.Remove(f.Name())
	err = writeDockerArchive(ctx, store, f, tags, imgs)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing docker archive %s: %w", path, err)
	}
	return nil
}

func writeDockerArchive(ctx context.Context, store *cache.Store, w io.Writer, tags []string, imgs []*stored) error {
	tw := tar.NewWriter(w)
	seen := map[string]bool{}
	add := func(name string, desc v1.Descriptor) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := digestOf(desc.Digest)
		if err != nil {
			return err
		}
		r, err := store.Open(d)
		if err != nil {
			return err
		}
		defer r.Close()
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: desc.Size, Mode: 0o644, ModTime: epoch.Time}); err != nil {
			return err
		}
		_, err = io.Copy(tw, r)
		return err
	}
	manifest := []dockerManifestEntry{}
	for i, s := range imgs {
		repo, tag := splitTag(tags[i])
		if repo == "" {
			repo = "dsbuild"
		}
		e := dockerManifestEntry{Config: s.manifest.Config.Digest.Hex + ".json", RepoTags: []string{repo + ":" + tag}}
		if err := add(e.Config, s.manifest.Config); err != nil {
			return fmt.Errorf("image %s: %w", tags[i], err)
		}
		for _, l := range s.manifest.Layers {
			n := l.Digest.Hex + ".tar.gz"
			if err := add(n, l); err != nil {
				return fmt.Errorf("image %s: %w", tags[i], err)
			}
			e.Layers = append(e.Layers, n)
		}
		manifest = append(manifest, e)
	}
	raw, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "manifest.json", Size: int64(len(raw)), Mode: 0o644, ModTime: epoch.Time}); err != nil {
		return err
	}
	if _, err := tw.Write(raw); err != nil {
		return err
	}
	return tw.Close()
}
