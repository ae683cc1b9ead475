package schema

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestSWEBenchJSONIsHubEncoded(t *testing.T) {
	task := synthTask(3)
	b, err := task.SWEBenchJSON()
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatalf("SWEBenchJSON is not JSON: %v\n%s", err, b)
	}
	for _, k := range []string{"instance_id", "repo", "base_commit", "patch", "test_patch", "problem_statement",
		"hints_text", "created_at", "version", "FAIL_TO_PASS", "PASS_TO_PASS", "environment_setup_commit"} {
		if _, ok := obj[k].(string); !ok {
			t.Errorf("field %s = %#v, want a string", k, obj[k])
		}
	}
	if got := obj["FAIL_TO_PASS"]; got != `["tests/test_x.py::test_3"]` {
		t.Errorf("FAIL_TO_PASS = %q", got)
	}
	if got := obj["PASS_TO_PASS"]; got != `["tests/test_y.py::test_a","tests/test_y.py::test_b[1-2]"]` {
		t.Errorf("PASS_TO_PASS = %q", got)
	}
	if obj["task_type"] != "testgen" || obj["image_name"] != task.Image || obj["difficulty"] != float64(4) {
		t.Errorf("extras wrong: %v %v %v", obj["task_type"], obj["image_name"], obj["difficulty"])
	}
	if _, ok := obj["split"]; ok {
		t.Error("split present outside a dataset export")
	}
	if obj["language"] != "python" {
		t.Errorf("language = %v", obj["language"])
	}
	// An instance that names no language is Python in the Hub encoding;
	// a row without the column (SWE-bench's) names none.
	if row, _ := (TaskInstance{InstanceID: "x"}).Row(); row.Language != "python" {
		t.Errorf("empty language encodes as %q", row.Language)
	}
	if back, _ := ParseSWEBenchJSON([]byte(`{"instance_id": "x"}`)); back.Language != "" {
		t.Errorf("a row without language decodes as %q", back.Language)
	}
	if strings.Contains(string(b), `\u003c`) || strings.Contains(string(b), "\n") {
		t.Errorf("want no HTML escaping and one line: %s", b)
	}
	back, err := ParseSWEBenchJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, task) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, task)
	}
}

func TestSWEBenchJSONEmptyListsAreEncodedLists(t *testing.T) {
	b, err := TaskInstance{InstanceID: "x"}.SWEBenchJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"FAIL_TO_PASS":"[]"`) || !strings.Contains(string(b), `"PASS_TO_PASS":"[]"`) {
		t.Errorf("nil test lists: %s", b)
	}
}

func TestParseSWEBenchJSONAcceptsUpstreamForms(t *testing.T) {
	// SWE-bench Verified style: string lists, difficulty as a time label.
	hub := `{"instance_id":"a__b-1","repo":"a/b","FAIL_TO_PASS":"[\"t1\", \"t2\"]","PASS_TO_PASS":"[]","difficulty":"15 min - 1 hour","version":"1.2"}`
	got, err := ParseSWEBenchJSON([]byte(hub))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.FailToPass, []string{"t1", "t2"}) || len(got.PassToPass) != 0 || got.Difficulty != 0 || got.Version != "1.2" {
		t.Errorf("hub form: %+v", got)
	}
	// Plain JSON lists and numeric difficulty (the typed encoding).
	typed, err := json.Marshal(synthTask(7))
	if err != nil {
		t.Fatal(err)
	}
	got, err = ParseSWEBenchJSON(typed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, synthTask(7)) {
		t.Errorf("typed form:\n got %+v\nwant %+v", got, synthTask(7))
	}
	// SWE-smith image_name fills Image.
	got, err = ParseSWEBenchJSON([]byte(`{"instance_id":"x","image_name":"r@sha256:` + strings.Repeat("0", 64) + `"}`))
	if err != nil || got.Image == "" {
		t.Errorf("image_name: %+v %v", got, err)
	}
}

func TestParseSWEBenchJSONErrorsNameTheField(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"instance_id":"x","FAIL_TO_PASS":"not json"}`, "FAIL_TO_PASS"},
		{`{"instance_id":"x","PASS_TO_PASS":"[1,2]"}`, "PASS_TO_PASS"},
		{`{"instance_id":"x","difficulty":true}`, "difficulty"},
		{`{"instance_id":`, "SWE-bench JSON"},
	} {
		_, err := ParseSWEBenchJSON([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want mention of %s", c.in, err, c.want)
		}
	}
}

func TestTaskInstanceValidate(t *testing.T) {
	good := synthTask(1)
	if err := good.Validate(); err != nil {
		t.Fatalf("valid task rejected: %v", err)
	}
	cases := map[string]func(*TaskInstance){
		"empty instance_id": func(x *TaskInstance) { x.InstanceID = " " },
		"unknown task_type": func(x *TaskInstance) { x.TaskType = "bugfix" },
		"outside 0-5":       func(x *TaskInstance) { x.Difficulty = 6 },
		"ref@sha256":        func(x *TaskInstance) { x.Image = "dsbuild/x:latest" },
		"64 lowercase hex":  func(x *TaskInstance) { x.Image = "x@sha256:ABC" },
	}
	for want, mutate := range cases {
		bad := good
		mutate(&bad)
		err := bad.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v", want, err)
		}
	}
}

func TestTrajectoryRowAndValidate(t *testing.T) {
	tr := synthTrajectory(5, 3)
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	row, err := tr.Row()
	if err != nil {
		t.Fatal(err)
	}
	if row.NumTurns != 4 {
		t.Errorf("NumTurns = %d, want 4 assistant messages", row.NumTurns)
	}
	var tools []Tool
	if err := json.Unmarshal([]byte(row.Tools), &tools); err != nil || len(tools) != 3 || tools[1].Function.Name != "str_replace_editor" {
		t.Errorf("tools JSON %q: %v", row.Tools, err)
	}
	if empty, _ := (Trajectory{TrajectoryID: "t", InstanceID: "i"}).Row(); empty.Tools != "[]" || empty.Messages == nil {
		t.Errorf("empty trajectory row: tools %q messages %v", empty.Tools, empty.Messages)
	}
	cases := map[string]func(*Trajectory){
		"empty trajectory_id":    func(x *Trajectory) { x.TrajectoryID = "" },
		"empty instance_id":      func(x *Trajectory) { x.InstanceID = "" },
		"unknown role":           func(x *Trajectory) { x.Messages[1].Role = "human" },
		"want \"function\"":      func(x *Trajectory) { x.Messages[2].ToolCalls[0].Type = "fn" },
		"unknown tool_call_id":   func(x *Trajectory) { x.Messages[3].ToolCallID = "nope" },
		"tool calls in a \"user": func(x *Trajectory) { x.Messages[1].ToolCalls = x.Messages[2].ToolCalls },
	}
	for want, mutate := range cases {
		bad := synthTrajectory(5, 3)
		mutate(&bad)
		err := bad.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v", want, err)
		}
	}
}
