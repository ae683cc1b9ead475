// Package harness grades model patches against an exported dsbuild dataset
// the way the SWE-bench harness grades predictions: for each prediction it
// takes the instance's image from the dataset's OCI image layout, applies
// the patch to the image's /testbed, restores the instance's test files,
// runs the instance's test command in a sandbox, reads the log with the
// report parser of the instance's language (lang.Profile.ParseReport, as
// rollouts do; pytest's for Python and for instances that name no
// language) and calls the instance resolved when every FAIL_TO_PASS and
// PASS_TO_PASS test passed. It needs the exported files
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
// report; running tests and restoring files belong to the agent package,
// parsing logs to lang, images to oci, patches to patch.
package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// ReadPredictions reads a predictions file in any of the forms the
// SWE-bench harness takes: JSON lines (one prediction per line), a JSON
// list of predictions, or a JSON object mapping instance ids to
// predictions (SWE-agent's preds.json). Every prediction must be an object
// with a non-empty instance_id of an instance in d, a model_name_or_path
// and a model_patch (a string or null); an instance may be predicted once,
// and every prediction must name the same model. Mistakes are bad input
// naming the file and the line (JSON lines) or the entry.
func ReadPredictions(path string, d *Dataset) ([]Prediction, error) {
	body, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, build.BadInput("predictions %s does not exist", path)
	}
	if err != nil {
		return nil, err
	}
	entries, err := predictionEntries(path, body)
	if err != nil {
		return nil, err
	}
	var out []Prediction
	seen := map[string]string{}
	for _, e := range entries {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(e.raw, &raw); err != nil {
			return nil, build.BadInput("%s: not a JSON object: %v", e.where, err)
		}
		for _, key := range []string{"instance_id", "model_name_or_path", "model_patch"} {
			if _, ok := raw[key]; !ok {
				return nil, build.BadInput("%s: no %q (a prediction has instance_id, model_name_or_path and model_patch)", e.where, key)
			}
		}
		var p Prediction
		if err := json.Unmarshal(e.raw, &p); err != nil {
			return nil, build.BadInput("%s: %v", e.where, err)
		}
		switch {
		case strings.TrimSpace(p.InstanceID) == "":
			return nil, build.BadInput("%s: empty instance_id", e.where)
		case e.key != "" && e.key != p.InstanceID:
			return nil, build.BadInput("%s: instance_id %q under key %q", e.where, p.InstanceID, e.key)
		case strings.TrimSpace(p.Model) == "":
			return nil, build.BadInput("%s: empty model_name_or_path", e.where)
		case len(out) > 0 && p.Model != out[0].Model:
			return nil, build.BadInput("%s: model %q, but %s has %q: grade one model per file", e.where, p.Model, seen[out[0].InstanceID], out[0].Model)
		}
		if _, ok := d.Instances[p.InstanceID]; !ok {
			return nil, build.BadInput("%s: instance %q is not in %s", e.where, p.InstanceID, filepath.Join(d.Dir, InstancesFile))
		}
		if first, dup := seen[p.InstanceID]; dup {
			return nil, build.BadInput("%s: instance %q was already predicted at %s", e.where, p.InstanceID, first)
		}
		seen[p.InstanceID] = e.where
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, build.BadInput("%s holds no predictions", path)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	return out, nil
}

// predictionEntry is one prediction's raw JSON and where it is in its file.
type predictionEntry struct {
	where string // "file:line" or "file: entry N" / "file: key K"
	key   string // the key it is under in a JSON object, else ""
	raw   []byte
}

// predictionEntries splits a predictions file into its predictions: a
// whole-file JSON list or object, else JSON lines.
func predictionEntries(path string, body []byte) ([]predictionEntry, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(trimmed, &list); err != nil {
			return nil, build.BadInput("%s: not a JSON list of predictions: %v", path, err)
		}
		out := make([]predictionEntry, len(list))
		for i, raw := range list {
			out[i] = predictionEntry{where: fmt.Sprintf("%s: entry %d", path, i+1), raw: raw}
		}
		return out, nil
	}
	if len(trimmed) > 0 && trimmed[0] == '{' {
		// A JSON object is a preds.json if it parses whole and is not
		// itself a prediction (JSON lines start with '{' too).
		var byID map[string]json.RawMessage
		if json.Unmarshal(trimmed, &byID) == nil {
			if _, isPrediction := byID["instance_id"]; !isPrediction {
				keys := make([]string, 0, len(byID))
				for k := range byID {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				out := make([]predictionEntry, len(keys))
				for i, k := range keys {
					out[i] = predictionEntry{where: fmt.Sprintf("%s: key %q", path, k), key: k, raw: byID[k]}
				}
				return out, nil
			}
		}
	}
	var out []predictionEntry
	for n, line := range bytes.Split(body, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			out = append(out, predictionEntry{where: fmt.Sprintf("%s:%d", path, n+1), raw: line})
		}
	}
	return out, nil
}
