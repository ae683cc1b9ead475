package schema

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// datasetStats gathers what the card's Statistics section says about a
// dataset's rows as they are written (each once, duplicates dropped): per
// project and task type counts, difficulties, test list sizes, trajectory
// lengths and resolved rates. It holds a few integers per row.
type datasetStats struct {
	tasksPerProjectType map[[2]string]int64
	difficulty          map[int]int64
	failToPass          []int32
	passToPass          []int32
	messages            []int32
	toolCalls           []int32
	resolvedPerType     map[string][2]int64 // resolved, all
}

func newDatasetStats() *datasetStats {
	return &datasetStats{
		tasksPerProjectType: map[[2]string]int64{},
		difficulty:          map[int]int64{},
		resolvedPerType:     map[string][2]int64{},
	}
}

func (s *datasetStats) addTask(row TaskRow) {
	project := row.SourceProject
	if project == "" {
		project = row.Repo
	}
	s.tasksPerProjectType[[2]string{project, row.TaskType}]++
	s.difficulty[int(row.Difficulty)]++
	f2p, _ := decodeTestList(row.FailToPass) // encoded by Row, so well formed
	p2p, _ := decodeTestList(row.PassToPass)
	s.failToPass = append(s.failToPass, int32(len(f2p)))
	s.passToPass = append(s.passToPass, int32(len(p2p)))
}

func (s *datasetStats) addTrajectory(row *TrajectoryRow) {
	calls := 0
	for _, m := range row.Messages {
		if !strings.Contains(string(m), `"tool_calls"`) {
			continue
		}
		var msg struct {
			ToolCalls []json.RawMessage `json:"tool_calls"`
		}
		if json.Unmarshal([]byte(m), &msg) == nil {
			calls += len(msg.ToolCalls)
		}
	}
	s.messages = append(s.messages, int32(len(row.Messages)))
	s.toolCalls = append(s.toolCalls, int32(calls))
	r := s.resolvedPerType[row.TaskType]
	if row.Resolved {
		r[0]++
	}
	r[1]++
	s.resolvedPerType[row.TaskType] = r
}

// spread describes a list of sizes as "min / median / max (mean)".
func spread(xs []int32) string {
	if len(xs) == 0 {
		return "-"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum int64
	for _, x := range s {
		sum += int64(x)
	}
	return fmt.Sprintf("%d / %d / %d (mean %.1f)", s[0], s[len(s)/2], s[len(s)-1], float64(sum)/float64(len(s)))
}

func typeName(t string) string {
	if t == "" {
		return "(none)"
	}
	return t
}

// markdown renders the card's Statistics section.
func (s *datasetStats) markdown() string {
	var b strings.Builder
	b.WriteString("## Statistics\n\n")
	if len(s.failToPass) > 0 {
		var projects, types []string
		for k := range s.tasksPerProjectType {
			if !slices.Contains(projects, k[0]) {
				projects = append(projects, k[0])
			}
			if !slices.Contains(types, k[1]) {
				types = append(types, k[1])
			}
		}
		slices.Sort(projects)
		slices.Sort(types)
		b.WriteString("Tasks per source project and task type:\n\n| project |")
		for _, t := range types {
			fmt.Fprintf(&b, " `%s` |", typeName(t))
		}
		b.WriteString(" total |\n|---|" + strings.Repeat("---:|", len(types)+1) + "\n")
		for _, p := range projects {
			var total int64
			fmt.Fprintf(&b, "| `%s` |", p)
			for _, t := range types {
				n := s.tasksPerProjectType[[2]string{p, t}]
				total += n
				fmt.Fprintf(&b, " %d |", n)
			}
			fmt.Fprintf(&b, " %d |\n", total)
		}
		b.WriteString("\nDifficulty (1 easiest to 5, 0 unknown): ")
		var parts []string
		for d := 0; d <= 5; d++ {
			if n := s.difficulty[d]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d: %d", d, n))
			}
		}
		b.WriteString(strings.Join(parts, ", ") + ".\n\n")
		fmt.Fprintf(&b, "Tests per task, min / median / max: FAIL_TO_PASS %s; PASS_TO_PASS %s.\n\n", spread(s.failToPass), spread(s.passToPass))
	}
	if len(s.messages) > 0 {
		fmt.Fprintf(&b, "Trajectory length, min / median / max: messages %s; tool calls %s.\n\n", spread(s.messages), spread(s.toolCalls))
		b.WriteString("Resolved trajectories per task type: ")
		var parts []string
		for _, t := range sortedKeys(s.resolvedPerType) {
			r := s.resolvedPerType[t]
			parts = append(parts, fmt.Sprintf("`%s` %d of %d (%.0f%%)", typeName(t), r[0], r[1], 100*float64(r[0])/float64(r[1])))
		}
		b.WriteString(strings.Join(parts, ", ") + ".\n\n")
	}
	b.WriteString("dsbuild also writes an HTML build report beside the output folder (`<folder>.report.html`; " +
		"`dsbuild report RECIPE.yaml` writes it again): the funnel of every stage with its rejection reasons, " +
		"costs, a timeline of the build and these statistics as plots.\n\n")
	return b.String()
}
