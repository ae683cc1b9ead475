package schema

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInspect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	tr := synthTrajectory(1, 2)
	tr.Messages[1].Content = strings.Repeat("long ", 200)
	m := writeDataset(t, dir, DatasetOptions{}, nil, []Trajectory{tr, synthTrajectory(2, 2), synthTrajectory(3, 2)})
	var out bytes.Buffer
	if err := Inspect(filepath.Join(dir, m.Files[1].Path), &out, 2); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"created_by:  dsbuild\n", "rows:        3\n", "row groups:  1\n", "[ZSTD]", "message ", "messages (LIST)", "first 2 rows:\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, s)
		}
	}
	_, rowsText, _ := strings.Cut(s, "first 2 rows:\n")
	lines := strings.Split(strings.TrimSpace(rowsText), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 row lines, got %d:\n%s", len(lines), rowsText)
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil {
		t.Fatalf("row line is not JSON: %v", err)
	}
	if row["trajectory_id"] != "traj-0000001" {
		t.Errorf("first row %v", row["trajectory_id"])
	}
	message := row["messages"].([]any)[1].(string) // one JSON text per message
	if !strings.HasPrefix(message, `{"role":"user","content":"long long`) || !strings.HasSuffix(message, " bytes)") {
		t.Errorf("long message not shortened: %q", message)
	}

	// Not Parquet: a clear error naming the file.
	bad := filepath.Join(t.TempDir(), "x.parquet")
	os.WriteFile(bad, []byte("hello"), 0o644)
	if err := Inspect(bad, &out, 1); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("non-parquet: %v", err)
	}
	if err := Inspect(filepath.Join(dir, "missing.parquet"), &out, 1); err == nil {
		t.Error("missing file accepted")
	}
}

func TestWriteParquetReadsBackThroughArrow(t *testing.T) {
	var rows []TaskRow
	for i := 0; i < 5; i++ {
		r, err := synthTask(i).Row()
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	path := filepath.Join(t.TempDir(), "tasks.parquet")
	var buf bytes.Buffer
	if err := WriteParquet(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, createdBy, got := arrowShard(t, path)
	if createdBy != CreatedBy || len(got) != 5 {
		t.Fatalf("created_by %q, %d rows", createdBy, len(got))
	}
	back, err := ParseSWEBenchJSON(got[3])
	if err != nil || back.InstanceID != synthTask(3).InstanceID || back.PassToPass[1] != "tests/test_y.py::test_b[1-2]" {
		t.Errorf("row 3: %+v %v", back, err)
	}
}
