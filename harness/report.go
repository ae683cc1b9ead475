package harness

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dsbuild/dsbuild/cache"
)

// Report is the outcome of grading one predictions file: SWE-bench's run
// report (counts and id lists, schema_version 2) with every instance's
// verdict under "instances".
type Report struct {
	Model                string `json:"model_name_or_path"`
	RunID                string `json:"run_id"`
	Dataset              string `json:"dataset"`
	TotalInstances       int    `json:"total_instances"`
	SubmittedInstances   int    `json:"submitted_instances"`
	CompletedInstances   int    `json:"completed_instances"`
	ResolvedInstances    int    `json:"resolved_instances"`
	UnresolvedInstances  int    `json:"unresolved_instances"`
	EmptyPatchInstances  int    `json:"empty_patch_instances"`
	ErrorInstances       int    `json:"error_instances"`
	TouchedTestInstances int    `json:"touched_test_instances"`

	SubmittedIDs   []string `json:"submitted_ids"`
	CompletedIDs   []string `json:"completed_ids"`
	IncompleteIDs  []string `json:"incomplete_ids"`
	ResolvedIDs    []string `json:"resolved_ids"`
	UnresolvedIDs  []string `json:"unresolved_ids"`
	EmptyPatchIDs  []string `json:"empty_patch_ids"`
	ErrorIDs       []string `json:"error_ids"`
	TouchedTestIDs []string `json:"touched_test_ids"`

	// ByTaskType counts submitted and resolved instances per task type.
	ByTaskType map[string]TypeCounts `json:"by_task_type"`
	// Instances are the verdicts by instance id.
	Instances map[string]*InstanceReport `json:"instances"`

	SchemaVersion int `json:"schema_version"`
}

// TypeCounts are the counts of one task type in a Report.
type TypeCounts struct {
	Submitted  int `json:"submitted"`
	Resolved   int `json:"resolved"`
	EmptyPatch int `json:"empty_patch"`
	Error      int `json:"error"`
}

// NewReport summarises the verdicts of one model's predictions on d.
// Completed instances are those whose tests ran (resolved or unresolved).
func NewReport(d *Dataset, model, runID string, verdicts map[string]*InstanceReport) *Report {
	r := &Report{
		Model: model, RunID: runID, Dataset: d.Dir, TotalInstances: len(d.Instances),
		SubmittedIDs: []string{}, CompletedIDs: []string{}, IncompleteIDs: []string{}, ResolvedIDs: []string{},
		UnresolvedIDs: []string{}, EmptyPatchIDs: []string{}, ErrorIDs: []string{}, TouchedTestIDs: []string{},
		ByTaskType: map[string]TypeCounts{}, Instances: verdicts, SchemaVersion: 2,
	}
	for id, v := range verdicts {
		r.SubmittedIDs = append(r.SubmittedIDs, id)
		c := r.ByTaskType[v.TaskType]
		c.Submitted++
		switch v.Status {
		case Resolved:
			r.ResolvedIDs = append(r.ResolvedIDs, id)
			c.Resolved++
		case Unresolved:
			r.UnresolvedIDs = append(r.UnresolvedIDs, id)
		case EmptyPatch:
			r.EmptyPatchIDs = append(r.EmptyPatchIDs, id)
			c.EmptyPatch++
		default:
			r.ErrorIDs = append(r.ErrorIDs, id)
			c.Error++
		}
		if v.Status == Resolved || v.Status == Unresolved {
			r.CompletedIDs = append(r.CompletedIDs, id)
		}
		if len(v.TouchedTestFiles) > 0 {
			r.TouchedTestIDs = append(r.TouchedTestIDs, id)
		}
		r.ByTaskType[v.TaskType] = c
	}
	completed := map[string]bool{}
	for _, id := range r.CompletedIDs {
		completed[id] = true
	}
	for id := range d.Instances {
		if !completed[id] {
			r.IncompleteIDs = append(r.IncompleteIDs, id)
		}
	}
	for _, ids := range []*[]string{&r.SubmittedIDs, &r.CompletedIDs, &r.IncompleteIDs, &r.ResolvedIDs, &r.UnresolvedIDs, &r.EmptyPatchIDs, &r.ErrorIDs, &r.TouchedTestIDs} {
		sort.Strings(*ids)
	}
	r.SubmittedInstances, r.CompletedInstances, r.ResolvedInstances = len(r.SubmittedIDs), len(r.CompletedIDs), len(r.ResolvedIDs)
	r.UnresolvedInstances, r.EmptyPatchInstances, r.ErrorInstances = len(r.UnresolvedIDs), len(r.EmptyPatchIDs), len(r.ErrorIDs)
	r.TouchedTestInstances = len(r.TouchedTestIDs)
	return r
}

// DefaultReportPath is eval/<model>.<run id>.json, with "/" in the model's
// name made "__" as the SWE-bench harness names its reports.
func DefaultReportPath(model, runID string) string {
	return filepath.Join("eval", strings.ReplaceAll(model, "/", "__")+"."+runID+".json")
}

// Write writes the report as indented JSON to path, atomically.
func (r *Report) Write(path string) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	return cache.WriteFileAtomic("", path, b.Bytes())
}
