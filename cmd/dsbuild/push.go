package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/oci"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
	"github.com/urfave/cli/v3"
)

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:  "push",
		Usage: "push the task images of a recipe's last build to a registry",
		Description: "Reads the recipe's last build record from the store, takes every image its export stages wrote\n" +
			"(build.json in the exported folder) and pushes each to REGISTRY/<recipe name>:<instance tag>,\n" +
			"skipping blobs the registry already has. Credentials come from the Docker config\n" +
			"($DOCKER_CONFIG or ~/.docker/config.json) and are never printed.",
		ArgsUsage: "RECIPE.yaml",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "registry", Usage: "where to push: HOST[:PORT]/NAMESPACE"},
			&cli.BoolFlag{Name: "insecure", Usage: "allow plain HTTP (and unverified TLS) to the registry"},
			&cli.StringFlag{Name: "stage", Usage: "push only the images of this export stage"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error { return runPush(ctx, cmd) },
	})
}

func runPush(ctx context.Context, cmd *cli.Command) error {
	if cmd.Args().Len() != 1 {
		return usageError{"usage: dsbuild push RECIPE.yaml --registry HOST[:PORT]/NAMESPACE [--insecure]"}
	}
	registry := strings.TrimSuffix(cmd.String("registry"), "/")
	if registry == "" {
		return usageError{"push: --registry HOST[:PORT]/NAMESPACE is required"}
	}
	if strings.Contains(registry, "@") {
		// Not echoed: what stands before the @ is likely a password.
		return usageError{"push: --registry must not carry credentials; log in with `docker login` (or point DOCKER_CONFIG at a config.json) and give HOST[:PORT]/NAMESPACE"}
	}
	if strings.Contains(registry, "://") {
		return usageError{fmt.Sprintf("push: --registry %q: give HOST[:PORT]/NAMESPACE without a scheme (use --insecure for plain HTTP)", registry)}
	}
	r, err := loadRecipe(cmd, cmd.Args().First())
	if err != nil {
		return err
	}
	store, err := openStore(cmd)
	if err != nil {
		return err
	}
	defer store.Close()
	images, err := exportedImages(ctx, store, r.Name, cmd.String("stage"))
	if err != nil {
		return err
	}
	repo := repositoryName(r.Name)
	byRef := map[string]schema.Image{}
	for tag, img := range images {
		byRef[repo+":"+tag] = img
	}
	results, err := oci.Push(ctx, store, byRef, registry, oci.PushOptions{Insecure: cmd.Bool("insecure")})
	w := cmd.Root().Writer
	for _, res := range results {
		fmt.Fprintf(w, "%s@%s\n", res.Ref, res.Digest)
	}
	return err // oci's errors name the registry and the image
}

// exportedImages returns the images, by tag, written by the export stages
// (or the one called onlyStage) of the newest build of recipe.
func exportedImages(ctx context.Context, store *cache.Store, recipe, onlyStage string) (map[string]schema.Image, error) {
	body, ok, err := store.LatestRecord(recipe)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("push: recipe %s has no build in store %s; build it first", recipe, store.Root())
	}
	var rec build.Record
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, fmt.Errorf("push: the last build record of %s is damaged: %w", recipe, err)
	}
	exports := map[string]bool{}
	for _, s := range rec.Stages {
		if s.Kind == "export" && (onlyStage == "" || s.Stage == onlyStage) {
			exports[s.Stage] = true
		}
	}
	if onlyStage != "" && !exports[onlyStage] {
		return nil, usageError{fmt.Sprintf("push: recipe %s has no export stage %q in its last build", recipe, onlyStage)}
	}
	if len(exports) == 0 {
		return nil, fmt.Errorf("push: the last build of %s has no export stage, so no images to push", recipe)
	}
	images := map[string]schema.Image{}
	found := 0
	for _, n := range rec.Nodes {
		if !exports[n.Stage] || n.Result.IsZero() {
			continue
		}
		var res struct {
			Output build.Output `json:"output"`
		}
		if err := build.GetJSON(store, n.Result, &res); err != nil {
			return nil, fmt.Errorf("push: result of %s: %w", n.ID, err)
		}
		eb, err := stages.ReadExportBuild(store, res.Output.Value)
		if err != nil {
			return nil, fmt.Errorf("push: output of %s: %w", n.ID, err)
		}
		found++
		for _, im := range eb.Images {
			img, err := lookupImage(ctx, store, rec.Published, res.Output.Value, im)
			if err != nil {
				return nil, fmt.Errorf("push: image %s of %s: %w", im.Tag, n.ID, err)
			}
			if prev, dup := images[im.Tag]; dup && prev.Digest != img.Digest {
				return nil, fmt.Errorf("push: two export stages give tag %s different images (%s and %s); pick one with --stage", im.Tag, prev.Digest, img.Digest)
			}
			images[im.Tag] = img
		}
	}
	if found == 0 {
		return nil, fmt.Errorf("push: the last build of %s (status %s) has no export output; build it again", recipe, rec.Status)
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("push: the last build of %s exported no images (export with images: true)", recipe)
	}
	return images, nil
}

// lookupImage finds an exported image in the store, or else imports it
// from the published folder's image layout (for a store whose unpacked
// layers were collected).
func lookupImage(ctx context.Context, store *cache.Store, published []string, tree cache.Digest, im stages.ExportImage) (schema.Image, error) {
	img, err := oci.Lookup(store, im.Digest)
	if err == nil {
		return img, nil
	}
	for _, dir := range published {
		if got, rerr := build.PublishedTree(dir); rerr != nil || got != tree {
			continue
		}
		spec := oci.BaseSpec{Layout: filepath.Join(dir, stages.ExportImagesDir) + ":" + im.Tag}
		got, ierr := oci.NewBuilder(store, oci.Options{Offline: true}).Base(ctx, spec)
		if ierr == nil && got.Digest == im.Digest {
			return got, nil
		}
	}
	return schema.Image{}, err
}

// repositoryName makes a recipe name a registry repository component:
// lower case, other characters than [a-z0-9._-] become '-'.
func repositoryName(name string) string {
	b := []byte(strings.ToLower(name))
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			b[i] = '-'
		}
	}
	s := strings.Trim(string(b), "._-")
	if s == "" {
		s = "dataset"
	}
	return s
}
