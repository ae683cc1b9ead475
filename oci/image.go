package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"
)

// epoch is the fixed timestamp of every config and history entry.
var epoch = v1.Time{Time: time.Unix(0, 0).UTC()}

// gzipLevel is the one compression level used for layers. Changing it (or
// the klauspost/compress version) changes every image digest.
const gzipLevel = gzip.DefaultCompression

// layerBlobs are the two store blobs of one layer.
type layerBlobs struct {
	diffID     cache.Digest // uncompressed tar
	compressed cache.Digest // gzip of it; the OCI layer digest
	size       int64        // compressed size
}

// putLayer stores the layer tarball that write produces, uncompressed and
// gzip-compressed, in one streaming pass.
func putLayer(store *cache.Store, write func(w io.Writer) error) (layerBlobs, error) {
	var out layerBlobs
	ur, uw := io.Pipe()
	cr, cw := io.Pipe()
	var g errgroup.Group
	g.Go(func() error {
		d, _, err := store.PutStream(ur)
		ur.CloseWithError(err) // unblock the writer if storing failed
		out.diffID = d
		return err
	})
	g.Go(func() error {
		d, n, err := store.PutStream(cr)
		cr.CloseWithError(err)
		out.compressed, out.size = d, n
		return err
	})
	werr := func() error {
		gz, err := gzip.NewWriterLevel(cw, gzipLevel)
		if err != nil {
			return err
		}
		// No name, comment or mtime in the gzip header: same bytes everywhere.
		if err := write(io.MultiWriter(uw, gz)); err != nil {
			return err
		}
		return gz.Close()
	}()
	uw.CloseWithError(werr)
	cw.CloseWithError(werr)
	if err := g.Wait(); err != nil {
		if werr != nil {
			return out, werr
		}
		return out, fmt.Errorf("storing layer: %w", err)
	}
	if werr != nil {
		return out, werr
	}
	return out, nil
}

// putImage stores config and manifest for layers (which must be stored
// already) and returns the image. annotations go into the manifest.
func putImage(store *cache.Store, cfg *v1.ConfigFile, rawConfig []byte, layers []v1.Descriptor, annotations map[string]string) (schema.Image, error) {
	var err error
	if rawConfig == nil {
		if rawConfig, err = json.Marshal(cfg); err != nil {
			return schema.Image{}, fmt.Errorf("encoding image config: %w", err)
		}
	}
	cfgDigest, err := store.Put(rawConfig)
	if err != nil {
		return schema.Image{}, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config: v1.Descriptor{
			MediaType: types.OCIConfigJSON,
			Size:      int64(len(rawConfig)),
			Digest:    hashOf(cfgDigest),
		},
		Layers:      layers,
		Annotations: annotations,
	}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return schema.Image{}, fmt.Errorf("encoding image manifest: %w", err)
	}
	md, err := store.Put(rawManifest)
	if err != nil {
		return schema.Image{}, err
	}
	return imageOf(md, cfg), nil
}

func imageOf(manifest cache.Digest, cfg *v1.ConfigFile) schema.Image {
	img := schema.Image{
		Digest:     manifest.String(),
		Layers:     make([]string, len(cfg.RootFS.DiffIDs)),
		Env:        cfg.Config.Env,
		WorkingDir: cfg.Config.WorkingDir,
	}
	for i, d := range cfg.RootFS.DiffIDs {
		img.Layers[i] = d.String()
	}
	return img
}

func hashOf(d cache.Digest) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: d.Hex()} }

func digestOf(h v1.Hash) (cache.Digest, error) {
	if h.Algorithm != "sha256" {
		return cache.Digest{}, fmt.Errorf("unsupported digest algorithm %q", h.Algorithm)
	}
	return cache.ParseDigest(h.String())
}

// stored is an image read back from the store: its raw manifest and config,
// parsed, with every blob checked present.
type stored struct {
	store       *cache.Store
	digest      cache.Digest
	rawManifest []byte
	manifest    *v1.Manifest
	rawConfig   []byte
	config      *v1.ConfigFile
}

// errIncomplete marks an image some of whose blobs are not in the store.
var errIncomplete = errors.New("image blobs missing from the store")

// load reads the image whose manifest digest is digest.
func load(store *cache.Store, digest string) (*stored, error) {
	md, err := cache.ParseDigest(digest)
	if err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}
	rawManifest, err := store.Get(md)
	if err != nil {
		if errors.Is(err, cache.ErrMissing) {
			return nil, fmt.Errorf("image %s: manifest: %w", digest, errIncomplete)
		}
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", digest, err)
	}
	cd, err := digestOf(m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", digest, err)
	}
	rawConfig, err := store.Get(cd)
	if err != nil {
		if errors.Is(err, cache.ErrMissing) {
			return nil, fmt.Errorf("image %s: config: %w", digest, errIncomplete)
		}
		return nil, fmt.Errorf("image %s: config: %w", digest, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: %d layers but %d diff ids", digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		for _, h := range []v1.Hash{l.Digest, cfg.RootFS.DiffIDs[i]} {
			d, err := digestOf(h)
			if err != nil {
				return nil, fmt.Errorf("image %s: layer %d: %w", digest, i, err)
			}
			if !store.Has(d) {
				return nil, fmt.Errorf("image %s: layer %d blob %s: %w", digest, i, d, errIncomplete)
			}
		}
	}
	return &stored{store: store, digest: md, rawManifest: rawManifest, manifest: m, rawConfig: rawConfig, config: cfg}, nil
}

// Lookup returns the description of the image whose manifest digest is
// digest, read from store. It fails if any of the image's blobs (manifest,
// config, compressed or uncompressed layers) is missing.
func Lookup(store *cache.Store, digest string) (schema.Image, error) {
	s, err := load(store, digest)
	if err != nil {
		return schema.Image{}, err
	}
	return s.image(), nil
}

// image returns the schema description of s.
func (s *stored) image() schema.Image { return imageOf(s.digest, s.config) }

// v1Image adapts s to go-containerregistry, serving blobs from the store.
func (s *stored) v1Image() (v1.Image, error) { return partial.CompressedToImage(s) }

// RawManifest implements partial.CompressedImageCore.
func (s *stored) RawManifest() ([]byte, error) { return s.rawManifest, nil }

// RawConfigFile implements partial.CompressedImageCore.
func (s *stored) RawConfigFile() ([]byte, error) { return s.rawConfig, nil }

// MediaType implements partial.CompressedImageCore.
func (s *stored) MediaType() (types.MediaType, error) { return s.manifest.MediaType, nil }

// LayerByDigest implements partial.CompressedImageCore.
func (s *stored) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == s.manifest.Config.Digest {
		return &storedBlob{store: s.store, desc: s.manifest.Config}, nil
	}
	for _, l := range s.manifest.Layers {
		if l.Digest == h {
			return &storedBlob{store: s.store, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("image %s has no layer %s", s.digest, h)
}

// storedBlob is one compressed layer (or the config) served from the store.
type storedBlob struct {
	store *cache.Store
	desc  v1.Descriptor
}

func (b *storedBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *storedBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *storedBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *storedBlob) Compressed() (io.ReadCloser, error) {
	d, err := digestOf(b.desc.Digest)
	if err != nil {
		return nil, err
	}
	return b.store.Open(d)
}
