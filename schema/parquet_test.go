package schema

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// columnStats reads the footer of a Parquet file with arrow-go and returns,
// per column path and row group, the chunk statistics arrow-go trusts (nil
// when it finds none), and whether every data page of the column carries
// min/max in its header.
func columnStats(t *testing.T, path string) (map[string][]metadata.TypedStatistics, map[string]bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	stats := map[string][]metadata.TypedStatistics{}
	pageBounds := map[string]bool{}
	for rg := 0; rg < pr.NumRowGroups(); rg++ {
		rgr := pr.RowGroup(rg)
		for c := 0; c < rgr.NumColumns(); c++ {
			cc, err := rgr.MetaData().ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			name := cc.PathInSchema().String()
			s, err := cc.Statistics()
			if err != nil {
				t.Fatal(err)
			}
			stats[name] = append(stats[name], s)
			pages, err := rgr.GetColumnPageReader(c)
			if err != nil {
				t.Fatal(err)
			}
			all := true
			for pages.Next() {
				if dp, ok := pages.Page().(file.DataPage); ok {
					es := dp.Statistics()
					all = all && es.HasMin && es.HasMax
				}
			}
			pageBounds[name] = (rg == 0 || pageBounds[name]) && all
		}
	}
	return stats, pageBounds
}

// Every shard carries column statistics an independent reader (arrow-go)
// accepts: key columns have min, max and null counts per column chunk and
// min/max per page; free-text columns have null counts only.
func TestShardsCarryColumnStatistics(t *testing.T) {
	tasks, trajs := synthSet(60, 180, 3)
	dir := filepath.Join(t.TempDir(), "ds")
	m := writeDataset(t, dir, smallShards, tasks, trajs)
	checked := map[string]int{}
	for _, f := range m.Files {
		if !strings.HasSuffix(f.Path, ".parquet") {
			continue
		}
		stats, pageBounds := columnStats(t, filepath.Join(dir, f.Path))
		_, _, rows := arrowShard(t, filepath.Join(dir, f.Path))
		var ids []string
		for _, r := range rows {
			var row struct {
				InstanceID string `json:"instance_id"`
			}
			if err := json.Unmarshal(r, &row); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, row.InstanceID)
		}
		for _, col := range []string{"instance_id", "task_type", "repo", "source_project"} {
			for rg, s := range stats[col] {
				if s == nil || !s.HasMinMax() || !s.HasNullCount() || s.NullCount() != 0 {
					t.Errorf("%s: column %s row group %d: statistics %v", f.Path, col, rg, s)
				}
			}
			if !pageBounds[col] {
				t.Errorf("%s: column %s: a data page has no min/max", f.Path, col)
			}
			checked[col]++
		}
		// The first row group's instance_id bounds are its rows' ids.
		first := stats["instance_id"][0].(*metadata.ByteArrayStatistics)
		n := int(first.NumValues())
		if lo, hi := string(first.Min()), string(first.Max()); lo != slices.Min(ids[:n]) || hi != slices.Max(ids[:n]) {
			t.Errorf("%s: instance_id bounds %q..%q, rows %q..%q", f.Path, lo, hi, slices.Min(ids[:n]), slices.Max(ids[:n]))
		}
		for _, col := range []string{"patch", "messages.list.element", "problem_statement"} {
			for rg, s := range stats[col] {
				if s == nil || s.HasMinMax() || !s.HasNullCount() {
					t.Errorf("%s: blob column %s row group %d: statistics %v, want a null count only", f.Path, col, rg, s)
				}
			}
		}
	}
	if checked["instance_id"] < 4 || checked["task_type"] != checked["instance_id"] {
		t.Errorf("checked %v", checked)
	}
}
