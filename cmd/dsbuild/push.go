package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"time"

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
		Usage: "push the task images of a recipe's last build to the registry its export names",
		Description: "Reads the recipe's last build record from the store, takes every image its export stages wrote\n" +
			"(build.json in the exported folder) and pushes each under the name its instances give as\n" +
			"image_name: REGISTRY/REPOSITORY:TAG, with REGISTRY and REPOSITORY from the export stage's\n" +
			"`registry:` and `repository:` params. Blobs the registry already has are skipped.\n" +
			"Credentials come from the Docker config ($DOCKER_CONFIG or ~/.docker/config.json) and are\n" +
			"never printed. Prints each pushed image as NAME@DIGEST.",
		ArgsUsage: "RECIPE.yaml",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "insecure", Usage: "allow plain HTTP (and unverified TLS) to the registry"},
			&cli.StringFlag{Name: "stage", Usage: "push only the images of this export stage"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error { return runPush(ctx, cmd) },
	})
}

func runPush(ctx context.Context, cmd *cli.Command) error {
	if cmd.Args().Len() != 1 {
		return usageError{"usage: dsbuild push RECIPE.yaml [--insecure] [--stage EXPORT_STAGE]"}
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
	places, err := exportedImages(ctx, store, r.Name, cmd.String("stage"))
	if err != nil {
		return err
	}
	w := cmd.Root().Writer
	progress := newPushProgress(cmd.Root().ErrWriter)
	for _, pl := range places {
		if pl.registry == stages.DefaultRegistry {
			return usageError{fmt.Sprintf("push: export stage %s names its images %s/%s:TAG, which is this machine, not a registry; "+
				"set `registry: HOST[:PORT]/NAMESPACE` in its with: and build again, so that every instance's image_name is what gets pushed",
				pl.stage, pl.registry, pl.repository)}
		}
	}
	for _, pl := range places {
		byRef := map[string]schema.Image{}
		for tag, img := range pl.images {
			byRef[pl.repository+":"+tag] = img
		}
		progress.start(pl.registry+"/"+pl.repository, len(byRef))
		results, err := oci.Push(ctx, store, byRef, pl.registry, oci.PushOptions{Insecure: cmd.Bool("insecure"), Progress: progress.update})
		progress.finish(err)
		if err != nil {
			return err // oci's errors name the registry and the image
		}
		for _, res := range results {
			fmt.Fprintf(w, "%s@%s\n", res.Ref, res.Digest)
		}
	}
	return nil
}

// imagePlace is the images one export stage names, in one registry and
// repository.
type imagePlace struct {
	stage                string
	registry, repository string
	// images by tag.
	images map[string]schema.Image
}

// exportedImages returns the images written by the export stages (or the
// one called onlyStage) of the newest build of recipe, grouped by where
// they are named, sorted by registry and repository.
func exportedImages(ctx context.Context, store *cache.Store, recipe, onlyStage string) ([]imagePlace, error) {
	rec, err := latestRecord(store, recipe, "push")
	if err != nil {
		return nil, err
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
	byName := map[string]schema.Image{}
	places := map[string]*imagePlace{}
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
		place := eb.Registry + "/" + eb.Repository
		if places[place] == nil {
			places[place] = &imagePlace{stage: n.Stage, registry: eb.Registry, repository: eb.Repository, images: map[string]schema.Image{}}
		}
		for _, im := range eb.Images {
			img, err := lookupImage(ctx, store, rec.Published, res.Output.Value, im)
			if err != nil {
				return nil, fmt.Errorf("push: image %s of %s: %w", im.Tag, n.ID, err)
			}
			if prev, dup := byName[im.Name]; dup && prev.Digest != img.Digest {
				return nil, fmt.Errorf("push: two export stages name different images %s (%s and %s); pick one with --stage", im.Name, prev.Digest, img.Digest)
			}
			byName[im.Name] = img
			places[place].images[im.Tag] = img
		}
	}
	if found == 0 {
		return nil, fmt.Errorf("push: the last build of %s (status %s) has no export output; build it again", recipe, rec.Status)
	}
	if len(byName) == 0 {
		return nil, fmt.Errorf("push: the last build of %s exported no images (export with images: true)", recipe)
	}
	var out []imagePlace
	for _, k := range slices.Sorted(maps.Keys(places)) {
		if len(places[k].images) > 0 {
			out = append(out, *places[k])
		}
	}
	return out, nil
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

// pushProgress shows how far a push is on stderr: one line rewritten in
// place on a terminal (at most ten times a second), else a line at the
// start, at every quarter and at the end.
type pushProgress struct {
	w        io.Writer
	tty      bool
	dest     string
	images   int
	last     time.Time
	quarter  int64
	lastDone int64
}

func newPushProgress(w io.Writer) *pushProgress {
	return &pushProgress{w: w, tty: isTerminal(w)}
}

func (p *pushProgress) start(dest string, images int) {
	p.dest, p.images, p.last, p.quarter, p.lastDone = dest, images, time.Time{}, 0, 0
	if !p.tty {
		fmt.Fprintf(p.w, "pushing %d images to %s\n", images, dest)
	}
}

func (p *pushProgress) update(done, total int64) {
	p.lastDone = done
	if total <= 0 {
		return
	}
	if p.tty {
		if time.Since(p.last) < 100*time.Millisecond && done < total {
			return
		}
		p.last = time.Now()
		fmt.Fprintf(p.w, "\r\x1b[Kpushing %d images to %s: %s of %s (%d%%)", p.images, p.dest, mib(done), mib(total), done*100/total)
		return
	}
	if q := done * 4 / total; q > p.quarter && q < 4 {
		p.quarter = q
		fmt.Fprintf(p.w, "pushed %s of %s (%d%%)\n", mib(done), mib(total), done*100/total)
	}
}

func (p *pushProgress) finish(err error) {
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	if err == nil {
		fmt.Fprintf(p.w, "pushed %d images to %s (%s uploaded)\n", p.images, p.dest, mib(p.lastDone))
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// latestRecord reads the newest build record of recipe from store, for
// the command named cmd (push, report), which names itself in errors.
func latestRecord(store *cache.Store, recipe, cmd string) (*build.Record, error) {
	body, ok, err := store.LatestRecord(recipe)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: recipe %s has no build in store %s; build it first", cmd, recipe, store.Root())
	}
	var rec build.Record
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, fmt.Errorf("%s: the last build record of %s is damaged: %w", cmd, recipe, err)
	}
	return &rec, nil
}
