package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/schema"
)

// Predictions are read in the three forms the SWE-bench harness takes, and
// mistakes name the file and the line or entry.
func TestReadPredictionsForms(t *testing.T) {
	d := &Dataset{Dir: "ds", Instances: map[string]schema.TaskInstance{"a": {InstanceID: "a"}, "b": {InstanceID: "b"}}}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, body := range map[string]string{
		"preds.jsonl": `{"instance_id": "b", "model_name_or_path": "m", "model_patch": "diff"}` + "\n\n" + `{"instance_id": "a", "model_name_or_path": "m", "model_patch": null}` + "\n",
		"list.json":   `[{"instance_id": "a", "model_name_or_path": "m", "model_patch": null}, {"instance_id": "b", "model_name_or_path": "m", "model_patch": "diff"}]`,
		"preds.json":  `{"b": {"instance_id": "b", "model_name_or_path": "m", "model_patch": "diff"}, "a": {"instance_id": "a", "model_name_or_path": "m", "model_patch": null}}`,
		"one.jsonl":   `{"instance_id": "a", "model_name_or_path": "m", "model_patch": null}`,
	} {
		ps, err := ReadPredictions(write(name, body), d)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "one.jsonl" {
			if len(ps) != 1 || ps[0].Patch != nil {
				t.Errorf("%s: %+v", name, ps)
			}
			continue
		}
		if len(ps) != 2 || ps[0].InstanceID != "a" || ps[0].Patch != nil || ps[1].Patch == nil || *ps[1].Patch != "diff" {
			t.Errorf("%s: %+v", name, ps)
		}
	}
	for name, c := range map[string]struct{ body, want string }{
		"bad.jsonl":  {`{"instance_id": "a", "model_name_or_path": "m", "model_patch": ""}` + "\n" + `{"instance_id": "zz", "model_name_or_path": "m", "model_patch": ""}`, "bad.jsonl:2: instance \"zz\" is not in"},
		"dup.json":   {`[{"instance_id": "a", "model_name_or_path": "m", "model_patch": ""}, {"instance_id": "a", "model_name_or_path": "m", "model_patch": ""}]`, "dup.json: entry 2: instance \"a\" was already predicted at"},
		"key.json":   {`{"b": {"instance_id": "a", "model_name_or_path": "m", "model_patch": ""}}`, `key.json: key "b": instance_id "a" under key "b"`},
		"nokey.json": {`[{"instance_id": "a", "model_patch": ""}]`, `nokey.json: entry 1: no "model_name_or_path"`},
		"junk.jsonl": {"{not json\n", "junk.jsonl:1: not a JSON object"},
		"empty.json": {"[]", "holds no predictions"},
	} {
		_, err := ReadPredictions(write(name, c.body), d)
		if err == nil || !build.IsBadInput(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want bad input with %q", name, err, c.want)
		}
	}
}
