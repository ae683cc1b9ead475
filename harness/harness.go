// Package harness grades model patches against an exported dsbuild dataset
// the way the SWE-bench harness grades predictions: for each prediction it
// takes the instance's image from the dataset's OCI image layout, applies
// the patch to the image's /testbed, restores the instance's test files,
// runs the instance's test command in a sandbox, reads the log with the
// pytest log parsing rollouts use and calls the instance resolved when every
// FAIL_TO_PASS and PASS_TO_PASS test passed. It needs the exported files
// only, never a recipe or a build record.
//
// Tasks answered with tests are graded by what the tests the patch adds or
// changes do (only those files are taken from the patch):
//
//   - reproduce (SWT-bench style): they must fail on the start state and
//     all pass with the instance's golden_code_patch (the fix) applied;
//   - testgen: they must all pass on the start state (the reference
//     implementation) and fail with at least half of the instance's
//     mutant_patches applied one at a time.
//
// It owns reading datasets and prediction files, the grading order and the
// report; running tests, restoring files and parsing logs belong to the
// agent package, images to oci, patches to patch.
package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/schema"
	"github.com/dsbuild/dsbuild/stages"
)

// InstancesFile is where an exported dataset keeps its SWE-bench-style
// instances, relative to the dataset folder.
const InstancesFile = "tasks/instances.jsonl"

// Dataset is an exported dataset folder opened for grading.
type Dataset struct {
	// Dir is the dataset folder.
	Dir string
	// Instances are the task instances by instance id.
	Instances map[string]schema.TaskInstance
	// Images are the instances' images in the folder's OCI layout, by
	// instance id; an instance without one cannot be graded.
	Images map[string]stages.ExportImage
}

// OpenDataset reads an exported dataset: path is its folder or the folder's
// tasks/instances.jsonl. Malformed lines are bad input naming file and line.
func OpenDataset(path string) (*Dataset, error) {
	dir := path
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		if filepath.Base(path) != filepath.Base(InstancesFile) || filepath.Base(filepath.Dir(path)) != filepath.Dir(InstancesFile) {
			return nil, build.BadInput("%s: give an exported dataset folder or its %s", path, InstancesFile)
		}
		dir = filepath.Dir(filepath.Dir(path))
	} else if errors.Is(err, fs.ErrNotExist) {
		return nil, build.BadInput("%s does not exist", path)
	}
	file := filepath.Join(dir, InstancesFile)
	body, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, build.BadInput("%s has no %s: is it a folder dsbuild's export wrote?", dir, InstancesFile)
	}
	if err != nil {
		return nil, err
	}
	d := &Dataset{Dir: dir, Instances: map[string]schema.TaskInstance{}, Images: map[string]stages.ExportImage{}}
	for i, line := range bytes.Split(body, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		inst, err := schema.ParseSWEBenchJSON(line)
		if err != nil {
			return nil, build.BadInput("%s:%d: %v", file, i+1, err)
		}
		if _, dup := d.Instances[inst.InstanceID]; dup {
			return nil, build.BadInput("%s:%d: instance %q appears twice", file, i+1, inst.InstanceID)
		}
		d.Instances[inst.InstanceID] = inst
	}
	eb, err := os.ReadFile(filepath.Join(dir, stages.ExportBuildFile))
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil // no images: every prediction is an error
	}
	if err != nil {
		return nil, err
	}
	var info stages.ExportBuild
	if err := json.Unmarshal(eb, &info); err != nil {
		return nil, build.BadInput("%s: %v", filepath.Join(dir, stages.ExportBuildFile), err)
	}
	for _, img := range info.Images {
		d.Images[img.InstanceID] = img
	}
	return d, nil
}

// Prediction is one line of a predictions file, as the SWE-bench harness
// reads it.
type Prediction struct {
	InstanceID string `json:"instance_id"`
	Model      string `json:"model_name_or_path"`
	// Patch is the model's diff; nil when the file says null (SWE-bench's
	// patch_is_None).
	Patch *string `json:"model_patch"`
}

// ReadPredictions reads a JSONL predictions file. Every line must be an
// object with a non-empty instance_id of an instance in d, a
// model_name_or_path and a model_patch (a string or null); an instance may
// be predicted once, and every line must name the same model. Mistakes are
// bad input naming file and line.
func ReadPredictions(path string, d *Dataset) ([]Prediction, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, build.BadInput("predictions %s does not exist", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	var out []Prediction
	seen := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(line, &raw); err != nil {
			return nil, build.BadInput("%s:%d: not a JSON object: %v", path, n, err)
		}
		for _, key := range []string{"instance_id", "model_name_or_path", "model_patch"} {
			if _, ok := raw[key]; !ok {
				return nil, build.BadInput("%s:%d: no %q (a prediction has instance_id, model_name_or_path and model_patch)", path, n, key)
			}
		}
		var p Prediction
		if err := json.Unmarshal(line, &p); err != nil {
			return nil, build.BadInput("%s:%d: %v", path, n, err)
		}
		switch {
		case strings.TrimSpace(p.InstanceID) == "":
			return nil, build.BadInput("%s:%d: empty instance_id", path, n)
		case strings.TrimSpace(p.Model) == "":
			return nil, build.BadInput("%s:%d: empty model_name_or_path", path, n)
		case len(out) > 0 && p.Model != out[0].Model:
			return nil, build.BadInput("%s:%d: model %q, but line %d has %q: grade one model per file", path, n, p.Model, seen[out[0].InstanceID], out[0].Model)
		}
		if _, ok := d.Instances[p.InstanceID]; !ok {
			return nil, build.BadInput("%s:%d: instance %q is not in %s", path, n, p.InstanceID, filepath.Join(d.Dir, InstancesFile))
		}
		if first, dup := seen[p.InstanceID]; dup {
			return nil, build.BadInput("%s:%d: instance %q was already predicted on line %d", path, n, p.InstanceID, first)
		}
		seen[p.InstanceID] = n
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, build.BadInput("%s:%d: %v", path, n+1, err)
	}
	if len(out) == 0 {
		return nil, build.BadInput("%s holds no predictions", path)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	return out, nil
}
