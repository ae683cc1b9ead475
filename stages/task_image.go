package stages

import (
	"context"
	"fmt"

	"github.com/dsbuild/dsbuild/agent"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/gitrepo"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/schema"
)

// taskImage returns a task's image, base plus start at agent.Workdir as a
// git repository whose single commit is start (oci.ConfigOptions
// GitRepository), and that commit's id: the instance's base_commit and,
// the repository having no other commit, its environment_setup_commit.
// cfg's GitRepository is set here.
func taskImage(ctx context.Context, store *cache.Store, images *oci.Builder, base schema.Image, start cache.Digest, cfg oci.ConfigOptions) (schema.Image, string, error) {
	cfg.GitRepository = true
	img, err := images.WithTree(ctx, base, start, agent.Workdir, cfg)
	if err != nil {
		return schema.Image{}, "", err
	}
	commit, err := gitrepo.Commit(store, start)
	if err != nil {
		return schema.Image{}, "", fmt.Errorf("start tree %s: %w", start, err)
	}
	return img, commit.String(), nil
}
