package oci

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/gitrepo"
	"github.com/dsbuild/dsbuild/schema"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AnnotationBaseDigest is the standard manifest annotation naming the base
// image's manifest digest; WithTree sets it.
const AnnotationBaseDigest = "org.opencontainers.image.base.digest"

// WithTree returns base plus one layer holding the store tree tree at the
// absolute directory at (e.g. "/testbed"), with cfg applied to the config.
// Layer entries are in tree order (sorted per directory), owned by 0:0 with
// zero mtimes; files are 0644 or 0755, directories 0755. With
// cfg.GitRepository the layer then holds the tree's .git directory (see
// gitrepo.WriteTar). Only the base's manifest and config are read, never
// its layers. The result is memoised.
func (b *Builder) WithTree(ctx context.Context, base schema.Image, tree cache.Digest, at string, cfg ConfigOptions) (schema.Image, error) {
	if !strings.HasPrefix(at, "/") || path.Clean(at) != at || at == "/" {
		return schema.Image{}, fmt.Errorf("image layer: location %q must be a clean absolute path below /", at)
	}
	if err := cfg.validate(); err != nil {
		return schema.Image{}, err
	}
	// The git repository's format enters the key only where there is one,
	// so images without it keep their keys.
	var (
		gitFormat string
		commit    gitrepo.ID
		err       error
	)
	if cfg.GitRepository {
		gitFormat = gitrepo.Version
		// First, so a tree git cannot hold fails before anything is written.
		if commit, err = gitrepo.Commit(b.store, tree); err != nil {
			return schema.Image{}, fmt.Errorf("image layer for tree %s: %w", tree, err)
		}
	}
	key, err := cache.KeyOf(struct {
		Kind    string        `json:"kind"`
		Version string        `json:"version"`
		Base    string        `json:"base"`
		Tree    cache.Digest  `json:"tree"`
		At      string        `json:"at"`
		Config  ConfigOptions `json:"config"`
		Git     string        `json:"git,omitempty"`
	}{"oci.with_tree", formatVersion, base.Digest, tree, at, cfg, gitFormat})
	if err != nil {
		return schema.Image{}, err
	}
	if img, ok := b.memo(ctx, key); ok {
		return img, nil
	}
	s, err := load(b.store, base.Digest)
	if err != nil {
		return schema.Image{}, fmt.Errorf("image layer: base: %w", err)
	}
	lb, err := putLayer(b.store, func(w io.Writer) error { return writeTreeTar(b.store, tree, at, cfg.GitRepository, w) })
	if err != nil {
		return schema.Image{}, fmt.Errorf("image layer for tree %s: %w", tree, err)
	}

	c := s.config.DeepCopy()
	c.Created = epoch
	c.RootFS.Type = "layers"
	c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, hashOf(lb.diffID))
	createdBy := fmt.Sprintf("dsbuild: tree %s at %s", tree, at)
	if cfg.GitRepository {
		createdBy += fmt.Sprintf(", a git repository at commit %s", commit)
	}
	c.History = append(c.History, v1.History{Created: epoch, CreatedBy: createdBy})
	c.Config.Env = mergeEnv(c.Config.Env, cfg.Env)
	c.Config.WorkingDir = cfg.WorkingDir
	if c.Config.WorkingDir == "" {
		c.Config.WorkingDir = at
	}
	if len(cfg.Labels) > 0 {
		if c.Config.Labels == nil {
			c.Config.Labels = map[string]string{}
		}
		maps.Copy(c.Config.Labels, cfg.Labels)
	}
	layers := append(append([]v1.Descriptor(nil), s.manifest.Layers...),
		v1.Descriptor{MediaType: types.OCILayer, Size: lb.size, Digest: hashOf(lb.compressed)})
	annotations := map[string]string{AnnotationBaseDigest: base.Digest}
	maps.Copy(annotations, cfg.Labels)
	img, err := putImage(b.store, c, nil, layers, annotations)
	if err != nil {
		return schema.Image{}, err
	}
	if err := b.memoPut(ctx, key, img); err != nil {
		return schema.Image{}, err
	}
	return img, nil
}

// writeTreeTar writes the tar of tree placed at the absolute directory at:
// first at's directories, then the tree's entries in walk order, then, if
// git is set, the entries of at/.git.
func writeTreeTar(store *cache.Store, tree cache.Digest, at string, git bool, w io.Writer) error {
	tw := tar.NewWriter(w)
	rel := strings.TrimPrefix(at, "/")
	parts := strings.Split(rel, "/")
	for i := range parts {
		if err := tw.WriteHeader(dirHeader(strings.Join(parts[:i+1], "/"))); err != nil {
			return err
		}
	}
	err := store.Walk(tree, func(p string, e cache.TreeEntry) error {
		full := rel + "/" + p
		switch e.Type {
		case cache.TypeDir:
			return tw.WriteHeader(dirHeader(full))
		case cache.TypeSymlink:
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: full, Linkname: e.Target, Mode: 0o777, ModTime: epoch.Time})
		case cache.TypeFile:
			mode := int64(0o644)
			if e.Exec {
				mode = 0o755
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: full, Size: e.Size, Mode: mode, ModTime: epoch.Time}); err != nil {
				return err
			}
			r, err := store.Open(e.Digest)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			_, err = io.Copy(tw, r)
			r.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			return nil
		default:
			return fmt.Errorf("%s: unknown tree entry type %q", p, e.Type)
		}
	})
	if err != nil {
		return err
	}
	if git {
		if _, err := gitrepo.WriteTar(tw, store, tree, rel+"/.git"); err != nil {
			return err
		}
	}
	return tw.Close()
}

func dirHeader(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch.Time}
}
