package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/reap"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/google/go-containerregistry/pkg/name"
)

func init() {
	build.Register(&build.Kind{
		Name: "export", Version: withLang("5"), Publish: true,
		Doc:    "writes task bundles and trajectories of its from: stages as a dataset folder (Parquet shards, SWE-bench JSONL, card, manifest) with an OCI image layout of every task's image",
		Params: func() any { return NewExportParams() },
		Run:    runExport,
	})
}

// Names of the files export adds beside the dataset's own.
const (
	// ExportImagesDir is the OCI image layout, one tag per instance.
	ExportImagesDir = "images"
	// ExportBuildFile lists every task's image (ExportBuild).
	ExportBuildFile = "build.json"
	// ExportDockerArchive is the docker-archive tarball (docker_archive: true).
	ExportDockerArchive = "images.tar"
)

// ExportParams are the params of the export kind.
type ExportParams struct {
	// Name is the dataset's title on its card.
	Name string `yaml:"name" json:"name"`
	// Description is a paragraph for the card.
	Description string `yaml:"description" json:"description"`
	// TestFraction in [0,1) is the share of instances in the test split.
	TestFraction float64 `yaml:"test_fraction" json:"test_fraction"`
	// ShardBytes is the target size of a Parquet shard (0: 256 MiB).
	ShardBytes int64 `yaml:"shard_bytes" json:"shard_bytes"`
	// Images writes an OCI image layout of every task's image under
	// images/, tagged by instance id.
	Images bool `yaml:"images" json:"images"`
	// DockerArchive also writes them as one docker-archive, images.tar,
	// for `docker load` and `podman load`, each image under its name.
	DockerArchive bool `yaml:"docker_archive" json:"docker_archive"`
	// Registry is where `dsbuild push` publishes the images:
	// HOST[:PORT][/NAMESPACE...], "localhost" (podman's name for local
	// images) if empty.
	Registry string `yaml:"registry" json:"registry"`
	// Repository is the images' repository below Registry; if empty, the
	// dataset name lower-cased with every other run of characters made
	// one '-' ("dsbuild quickstart" gives "dsbuild-quickstart").
	Repository string `yaml:"repository" json:"repository"`
}

// NewExportParams returns the defaults: title "dsbuild dataset", no test
// split, default shard size, the image layout on, no docker-archive.
func NewExportParams() *ExportParams {
	return &ExportParams{Name: "dsbuild dataset", Images: true}
}

// Validate checks the params.
func (p *ExportParams) Validate() error {
	if strings.TrimSpace(p.Name) == "" {
		return fmt.Errorf("name: the dataset needs a title")
	}
	if math.IsNaN(p.TestFraction) || p.TestFraction < 0 || p.TestFraction >= 1 {
		return fmt.Errorf("test_fraction: %v is not in [0, 1)", p.TestFraction)
	}
	if p.ShardBytes < 0 {
		return fmt.Errorf("shard_bytes: must not be negative")
	}
	if p.DockerArchive && !p.Images {
		return fmt.Errorf("docker_archive: needs images: true")
	}
	if strings.Contains(p.Registry, "://") {
		return fmt.Errorf("registry: %q: give HOST[:PORT][/NAMESPACE] without a scheme", p.Registry)
	}
	if strings.Contains(p.Registry, "@") {
		// Not echoed: what stands before the @ is likely a password.
		return fmt.Errorf("registry: must not carry credentials (log in with `docker login` instead)")
	}
	if _, err := exportImageName(p, "tag"); err != nil {
		return err
	}
	return nil
}

// imagePlace returns the registry and repository the images are named in,
// defaults filled in.
func (p *ExportParams) imagePlace() (registry, repository string) {
	registry = strings.TrimSuffix(p.Registry, "/")
	if registry == "" {
		registry = DefaultRegistry
	}
	repository = p.Repository
	if repository == "" {
		repository = imageRepository(p.Name, "dataset")
	}
	return registry, repository
}

// DefaultRegistry is the registry part of image names when an export
// names none: podman's prefix for images that live on this machine.
const DefaultRegistry = "localhost"

// exportImageName is the one rule that names an exported task's image:
// REGISTRY/REPOSITORY:TAG. Every instance's image and image_name field,
// the docker-archive's tags and `dsbuild push` use it, the instance fields
// with "@sha256:<manifest digest>" appended.
func exportImageName(p *ExportParams, tag string) (string, error) {
	registry, repo := p.imagePlace()
	full := registry + "/" + repo + ":" + tag
	if _, err := name.NewTag(full, name.StrictValidation); err != nil {
		return "", fmt.Errorf("registry/repository: %q is not a valid image name: %v", full, err)
	}
	// go-containerregistry is lenient about path components ("-x",
	// "a//b", "x___y"); skopeo and podman are not.
	host, path, _ := strings.Cut(registry+"/"+repo, "/")
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		path = registry + "/" + repo // no registry host: all of it is path
	}
	for _, comp := range strings.Split(path, "/") {
		if !repositoryComponent.MatchString(comp) {
			return "", fmt.Errorf("registry/repository: %q in %q is not a valid repository path component (lower-case letters and digits, separated by one '.', one or two '_', or '-'s)", comp, registry+"/"+repo)
		}
	}
	return full, nil
}

// repositoryComponent is a path component of the distribution spec's
// repository name grammar.
var repositoryComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)

// ExportBuild is the content of build.json in an exported folder: what the
// dataset files do not say about the build, chiefly each task's image.
type ExportBuild struct {
	// Name is the dataset's title.
	Name string `json:"name"`
	// Registry and Repository are where the images are named (and pushed):
	// each image's Name is Registry/Repository:Tag.
	Registry   string `json:"registry"`
	Repository string `json:"repository"`
	// Images lists every task's image, sorted by instance id; empty when
	// the export writes no images.
	Images []ExportImage `json:"images"`
	// DockerArchive is the docker-archive's path in the folder, if any.
	DockerArchive string `json:"docker_archive,omitempty"`
}

// ExportImage is one task's environment image in an exported folder.
type ExportImage struct {
	InstanceID string `json:"instance_id"`
	// Tag is the image's tag in images/ (the instance id, or the instance
	// id made a valid OCI tag).
	Tag string `json:"tag"`
	// Digest is the OCI manifest digest.
	Digest string `json:"digest"`
	// Name is Registry/Repository:Tag, what `dsbuild push` publishes; the
	// instance's image and image_name are Name@Digest.
	Name string `json:"name"`
}

// ReadExportBuild reads build.json from an exported tree in store.
func ReadExportBuild(store *cache.Store, tree cache.Digest) (*ExportBuild, error) {
	b, err := store.ReadFile(tree, ExportBuildFile)
	if err != nil {
		return nil, fmt.Errorf("export tree %s: %w", tree.Short(), err)
	}
	var eb ExportBuild
	if err := json.Unmarshal(b, &eb); err != nil {
		return nil, fmt.Errorf("export tree %s: %s: %w", tree.Short(), ExportBuildFile, err)
	}
	return &eb, nil
}

// exportTempPrefix names export's work directories in the store's tmp/.
const exportTempPrefix = "export-"

func runExport(ctx context.Context, c *build.Call) (build.Output, error) {
	p := c.Params.(*ExportParams)
	if len(c.Inputs) == 0 {
		return build.Output{}, build.BadInput("stage %s (export) needs from: [stages of task bundles and/or trajectories]", c.Stage)
	}
	// The dataset is written in the store's temp directory, named so that
	// the next export reclaims it if this process is killed.
	reap.Reclaim(c.Store().TempDir(), exportTempPrefix)
	work, err := reap.Create(c.Store().TempDir(), exportTempPrefix, 0o755)
	if err != nil {
		return build.Output{}, err
	}
	defer work.Remove()
	tmp := work.Path
	dir := filepath.Join(tmp, "dataset")
	w, err := schema.NewDatasetWriter(dir, schema.DatasetOptions{
		Name: p.Name, Description: p.Description, TestFraction: p.TestFraction, TargetShardBytes: p.ShardBytes,
	})
	if err != nil {
		return build.Output{}, err
	}
	images, err := addExportItems(c, p, w)
	if err != nil {
		w.Abort()
		return build.Output{}, err
	}
	m, err := w.Close()
	if err != nil {
		return build.Output{}, build.BadInput("stage %s: %v", c.Stage, err)
	}
	c.Count(ctx, "tasks", float64(m.Tasks))
	c.Count(ctx, "trajectories", float64(m.Trajectories))

	eb := ExportBuild{Name: p.Name, Images: []ExportImage{}}
	eb.Registry, eb.Repository = p.imagePlace()
	if p.Images && len(images) > 0 {
		byTag := map[string]schema.Image{}
		byName := map[string]schema.Image{}
		for _, id := range sortedKeys(images) {
			ei := images[id]
			byTag[ei.Tag] = ei.image
			byName[ei.Name] = ei.image
			eb.Images = append(eb.Images, ei.ExportImage)
		}
		if err := oci.WriteLayout(ctx, c.Store(), filepath.Join(dir, ExportImagesDir), byTag); err != nil {
			return build.Output{}, fmt.Errorf("stage %s: writing image layout: %w", c.Stage, err)
		}
		if p.DockerArchive {
			if err := oci.WriteDockerArchive(ctx, c.Store(), filepath.Join(dir, ExportDockerArchive), byName); err != nil {
				return build.Output{}, fmt.Errorf("stage %s: writing docker-archive: %w", c.Stage, err)
			}
			eb.DockerArchive = ExportDockerArchive
		}
		c.Count(ctx, "images", float64(len(byTag)))
	}
	body, err := json.MarshalIndent(eb, "", "  ")
	if err != nil {
		return build.Output{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, ExportBuildFile), append(body, '\n'), 0o644); err != nil {
		return build.Output{}, err
	}
	tree, err := snapshotExport(c.Store(), dir)
	if err != nil {
		return build.Output{}, fmt.Errorf("stage %s: storing the export: %w", c.Stage, err)
	}
	return build.Value(tree), nil
}

// exportedImage is one task's image with the names export gives it.
type exportedImage struct {
	ExportImage
	image schema.Image
}

// addExportItems adds every input item to w, telling task bundles
// (which have "instance") from trajectories (which have "trajectory_id"),
// and returns each task's image by instance id. Each instance's image
// fields are set to its exported name (exportImageName).
func addExportItems(c *build.Call, p *ExportParams, w *schema.DatasetWriter) (map[string]exportedImage, error) {
	images := map[string]exportedImage{}
	instances := map[string]cache.Digest{}
	tags := map[string]string{}
	for _, stage := range sortedKeys(c.Inputs) {
		for _, it := range c.Inputs[stage] {
			raw, err := c.Store().Get(it.Value)
			if err != nil {
				return nil, err
			}
			var probe map[string]json.RawMessage
			if err := json.Unmarshal(raw, &probe); err != nil {
				return nil, build.BadInput("stage %s: item %s of %s is not a JSON object (export takes task bundles and trajectories): %v", c.Stage, it.Name, stage, err)
			}
			_, isBundle := probe["instance"]
			_, isTraj := probe["trajectory_id"]
			switch {
			case isBundle && !isTraj:
				var b TaskBundle
				if err := json.Unmarshal(raw, &b); err != nil {
					return nil, build.BadInput("stage %s: item %s of %s: bad task bundle: %v", c.Stage, it.Name, stage, err)
				}
				id := b.Instance.InstanceID
				if prev, dup := instances[id]; dup {
					if prev != it.Value {
						return nil, build.BadInput("stage %s: two different task bundles for instance %q (item %s of %s is one)", c.Stage, id, it.Name, stage)
					}
					continue
				}
				instances[id] = it.Value
				if b.Image.Digest == "" {
					return nil, build.BadInput("stage %s: item %s of %s: task bundle %s has no image", c.Stage, it.Name, stage, id)
				}
				tag := imageTag(id)
				if other, dup := tags[tag]; dup {
					return nil, build.BadInput("stage %s: instance ids %q and %q both become image tag %q", c.Stage, other, id, tag)
				}
				tags[tag] = id
				imgName, err := exportImageName(p, tag)
				if err != nil {
					return nil, build.BadInput("stage %s: instance %s: %v", c.Stage, id, err)
				}
				// With images: false nothing holds or can publish the
				// image, so no instance names one.
				b.Instance.Image = ""
				if p.Images {
					b.Instance.Image = imgName + "@" + b.Image.Digest
				}
				inst, err := TestSpec(c.Store(), b)
				if err != nil {
					return nil, fmt.Errorf("stage %s: item %s of %s: test spec: %w", c.Stage, it.Name, stage, err)
				}
				if err := w.AddTask(inst); err != nil {
					return nil, build.BadInput("stage %s: item %s of %s: %v", c.Stage, it.Name, stage, err)
				}
				images[id] = exportedImage{ExportImage{InstanceID: id, Tag: tag, Digest: b.Image.Digest, Name: imgName}, b.Image}
			case isTraj && !isBundle:
				var tr schema.Trajectory
				if err := json.Unmarshal(raw, &tr); err != nil {
					return nil, build.BadInput("stage %s: item %s of %s: bad trajectory: %v", c.Stage, it.Name, stage, err)
				}
				if err := w.AddTrajectory(tr); err != nil {
					return nil, build.BadInput("stage %s: item %s of %s: %v", c.Stage, it.Name, stage, err)
				}
			default:
				return nil, build.BadInput("stage %s: item %s of %s is neither a task bundle (with \"instance\") nor a trajectory (with \"trajectory_id\")", c.Stage, it.Name, stage)
			}
		}
	}
	return images, nil
}

var blobName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// snapshotExport is store.Snapshot with a shortcut for the image layout's
// blobs: a file images/blobs/sha256/<hex> whose digest the store already
// holds (every layer and config WriteLayout copied out of it) is entered by
// name instead of being read, hashed and compressed again.
func snapshotExport(store *cache.Store, dir string) (cache.Digest, error) {
	return snapshotExportDir(store, dir, "")
}

func snapshotExportDir(store *cache.Store, dir, rel string) (cache.Digest, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return cache.Digest{}, err
	}
	t := &cache.Tree{Entries: make([]cache.TreeEntry, 0, len(des))}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		switch {
		case de.IsDir():
			d, err := snapshotExportDir(store, p, rel+de.Name()+"/")
			if err != nil {
				return cache.Digest{}, err
			}
			t.Entries = append(t.Entries, cache.TreeEntry{Name: de.Name(), Type: cache.TypeDir, Digest: d})
		case de.Type().IsRegular():
			fi, err := de.Info()
			if err != nil {
				return cache.Digest{}, err
			}
			var d cache.Digest
			if rel == ExportImagesDir+"/blobs/sha256/" && blobName.MatchString(de.Name()) {
				if known, err := cache.ParseDigest("sha256:" + de.Name()); err == nil && store.Has(known) {
					d = known
				}
			}
			if d.IsZero() {
				f, err := os.Open(p)
				if err != nil {
					return cache.Digest{}, err
				}
				d, _, err = store.PutStream(f)
				f.Close()
				if err != nil {
					return cache.Digest{}, err
				}
			}
			t.Entries = append(t.Entries, cache.TreeEntry{Name: de.Name(), Type: cache.TypeFile, Size: fi.Size(), Digest: d})
		default:
			return cache.Digest{}, fmt.Errorf("%s is not a regular file or directory", p)
		}
	}
	sort.Slice(t.Entries, func(i, j int) bool { return t.Entries[i].Name < t.Entries[j].Name })
	return store.PutTree(t)
}
