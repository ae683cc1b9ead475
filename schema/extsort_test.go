package schema

import (
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"testing"
)

func TestExternalSorterMergesManyRuns(t *testing.T) {
	dir := t.TempDir()
	s := newExternalSorter(dir, 2000) // ~20 records per run
	r := rand.New(rand.NewPCG(3, 4))
	var want []string
	for i := 0; i < 3000; i++ {
		key := fmt.Sprintf("k%06d", r.IntN(1_000_000))
		want = append(want, key+"|"+fmt.Sprint(i))
		if err := s.add(key, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.runs) <= maxMergeFanIn {
		t.Fatalf("only %d runs; the test must exceed the fan-in of %d", len(s.runs), maxMergeFanIn)
	}
	slices.SortFunc(want, func(a, b string) int {
		ka, pa, _ := cutLast(a)
		kb, pb, _ := cutLast(b)
		return compareRecords(sortRecord{ka, []byte(pa)}, sortRecord{kb, []byte(pb)})
	})
	var got []string
	err := s.each(func(key string, payload []byte) error {
		got = append(got, key+"|"+string(payload))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("merge order wrong: %d records, first %v", len(got), got[:5])
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("%d run files left behind", len(left))
	}
}

func cutLast(s string) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '|' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestTrajectoryRowCodec(t *testing.T) {
	for _, tr := range []Trajectory{synthTrajectory(9, 4), {TrajectoryID: "t", InstanceID: "i"}} {
		row, err := tr.Row()
		if err != nil {
			t.Fatal(err)
		}
		row.Reward = -0.5
		b := encodeTrajectoryRow(&row)
		back, err := decodeTrajectoryRow(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, row) {
			t.Errorf("codec round trip:\n got %+v\nwant %+v", back, row)
		}
		for _, cut := range []int{0, 1, len(b) / 2, len(b) - 1} {
			if _, err := decodeTrajectoryRow(b[:cut]); err == nil {
				t.Errorf("truncated at %d of %d accepted", cut, len(b))
			}
		}
		if _, err := decodeTrajectoryRow(append(slices.Clone(b), 0)); err == nil {
			t.Error("trailing byte accepted")
		}
	}
}
