package schema

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// isListNode reports whether n is a Parquet LIST group.
func isListNode(n parquet.Node) bool {
	if n.Leaf() {
		return false
	}
	lt := n.Type().LogicalType()
	if lt == nil {
		return false
	}
	_, ok := lt.Value.(*format.ListType)
	return ok
}

// listElement returns the element node of a LIST group (list.element).
func listElement(n parquet.Node) parquet.Node {
	repeated := n.Fields()[0]
	if repeated.Leaf() || len(repeated.Fields()) != 1 {
		return repeated // legacy two-level list
	}
	return repeated.Fields()[0]
}

// hfDtype maps a Parquet leaf to a Hugging Face datasets dtype.
func hfDtype(n parquet.Node) string {
	t := n.Type()
	if lt := t.LogicalType(); lt != nil {
		switch v := lt.Value.(type) {
		case *format.StringType, *format.JsonType, *format.EnumType:
			return "string"
		case *format.IntType:
			if v.IsSigned {
				return "int" + strconv.Itoa(int(v.BitWidth))
			}
			return "uint" + strconv.Itoa(int(v.BitWidth))
		}
	}
	switch t.Kind() {
	case parquet.Boolean:
		return "bool"
	case parquet.Int32:
		return "int32"
	case parquet.Int64:
		return "int64"
	case parquet.Float:
		return "float32"
	case parquet.Double:
		return "float64"
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return "binary"
	}
	return "string"
}

// writeFeatures writes the fields of group n as a YAML features list at
// the given indentation, in the Hugging Face dataset card format.
func writeFeatures(b *strings.Builder, n parquet.Node, indent string) {
	for _, f := range n.Fields() {
		fmt.Fprintf(b, "%s- name: %s\n", indent, f.Name())
		writeFeatureType(b, f, indent+"  ")
	}
}

func writeFeatureType(b *strings.Builder, f parquet.Node, indent string) {
	switch {
	case f.Leaf():
		fmt.Fprintf(b, "%sdtype: %s\n", indent, hfDtype(f))
	case isListNode(f):
		elem := listElement(f)
		if elem.Leaf() {
			fmt.Fprintf(b, "%ssequence: %s\n", indent, hfDtype(elem))
		} else {
			fmt.Fprintf(b, "%slist:\n", indent)
			writeFeatures(b, elem, indent)
		}
	default:
		fmt.Fprintf(b, "%sstruct:\n", indent)
		writeFeatures(b, f, indent)
	}
}

// yamlString quotes s as a YAML double-quoted scalar (JSON string syntax
// is valid YAML).
func yamlString(s string) string { return strconv.Quote(s) }

// datasetCard renders README.md: YAML front matter with the configs
// (trajectories, the default, and tasks), their features and split sizes,
// then a short description and count tables. It holds no timestamps.
func datasetCard(opts DatasetOptions, m *DatasetManifest, trajFiles []DatasetFile) ([]byte, error) {
	splits := sortedKeys(m.TrajectoriesPerSplit)
	var b strings.Builder
	b.WriteString("---\n")
	b.WriteString("pretty_name: " + yamlString(opts.Name) + "\n")
	b.WriteString("tags:\n- code\n- agents\n- swe\n- dsbuild\n")
	if m.Trajectories > 0 || m.Tasks > 0 {
		b.WriteString("configs:\n")
	}
	if m.Trajectories > 0 {
		b.WriteString("- config_name: trajectories\n  default: true\n  data_files:\n")
		for _, s := range splits {
			fmt.Fprintf(&b, "  - split: %s\n    path: %s\n", s, yamlString("data/"+s+"-*.parquet"))
		}
	}
	if m.Tasks > 0 {
		b.WriteString("- config_name: tasks\n  data_files:\n")
		fmt.Fprintf(&b, "  - split: %s\n    path: %s\n", SplitTrain, yamlString("tasks/tasks-*.parquet"))
	}
	if m.Trajectories > 0 || m.Tasks > 0 {
		b.WriteString("dataset_info:\n")
	}
	if m.Trajectories > 0 {
		b.WriteString("- config_name: trajectories\n  features:\n")
		writeFeatures(&b, parquet.SchemaOf(TrajectoryRow{}), "  ")
		b.WriteString("  splits:\n")
		for _, s := range splits {
			var bytes int64
			for _, f := range trajFiles {
				if strings.HasPrefix(f.Path, "data/"+s+"-") {
					bytes += f.Bytes
				}
			}
			fmt.Fprintf(&b, "  - name: %s\n    num_bytes: %d\n    num_examples: %d\n", s, bytes, m.TrajectoriesPerSplit[s])
		}
	}
	if m.Tasks > 0 {
		b.WriteString("- config_name: tasks\n  features:\n")
		writeFeatures(&b, parquet.SchemaOf(TaskRow{}), "  ")
		fmt.Fprintf(&b, "  splits:\n  - name: %s\n    num_examples: %d\n", SplitTrain, m.Tasks)
	}
	b.WriteString("---\n\n")

	fmt.Fprintf(&b, "# %s\n\n", opts.Name)
	if opts.Description != "" {
		b.WriteString(strings.TrimSpace(opts.Description) + "\n\n")
	}
	b.WriteString("Built by dsbuild: software-engineering task environments and agent trajectories, " +
		"content-addressed and reproducible.\n\n")
	b.WriteString("## Configurations\n\n")
	b.WriteString("- `trajectories` (default): one row per agent rollout, `messages` and `tools` in the " +
		"OpenAI chat layout that TRL's SFTTrainer and LLaMA-Factory read; `tools` is a JSON string.\n")
	b.WriteString("- `tasks`: one row per task instance with the SWE-bench fields (all strings; " +
		"`FAIL_TO_PASS`/`PASS_TO_PASS` are JSON-encoded lists), plus `task_type`, `image`, `test_cmd`, " +
		"`source_project`, `difficulty`, `split`. `tasks/instances.jsonl` holds the same rows for SWE-bench harnesses.\n\n")
	b.WriteString("Splits are assigned by hashing `instance_id`, so all trajectories of one instance share a split.\n\n")
	b.WriteString("## Counts\n\n")
	fmt.Fprintf(&b, "| | trajectories | tasks |\n|---|---:|---:|\n")
	for _, s := range sortedKeys(mergeKeys(m.TrajectoriesPerSplit, m.TasksPerSplit)) {
		fmt.Fprintf(&b, "| split `%s` | %d | %d |\n", s, m.TrajectoriesPerSplit[s], m.TasksPerSplit[s])
	}
	for _, t := range sortedKeys(mergeKeys(m.TrajectoriesPerTaskType, m.TasksPerTaskType)) {
		name := t
		if name == "" {
			name = "(none)"
		}
		fmt.Fprintf(&b, "| task type `%s` | %d | %d |\n", name, m.TrajectoriesPerTaskType[t], m.TasksPerTaskType[t])
	}
	fmt.Fprintf(&b, "| **total** | %d | %d |\n\n", m.Trajectories, m.Tasks)
	if m.Trajectories > 0 {
		fmt.Fprintf(&b, "Resolved trajectories: %d of %d. Tokens: %d prompt, %d completion.\n\n",
			m.Resolved, m.Trajectories, m.PromptTokens, m.CompletionTokens)
	}
	b.WriteString("## Loading\n\n```python\nfrom datasets import load_dataset\n")
	if len(splits) > 0 {
		var files []string
		for _, s := range splits {
			files = append(files, fmt.Sprintf("%q: %q", s, "data/"+s+"-*.parquet"))
		}
		fmt.Fprintf(&b, "trajectories = load_dataset(\"parquet\", data_files={%s})\n", strings.Join(files, ", "))
	}
	if m.Tasks > 0 {
		b.WriteString("tasks = load_dataset(\"json\", data_files=\"tasks/instances.jsonl\", split=\"train\")\n")
	}
	b.WriteString("```\n\n`manifest.json` lists every file with its sha256, size and row count.\n")
	return []byte(b.String()), nil
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func mergeKeys(a, b map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(a)+len(b))
	for k := range a {
		out[k] = 0
	}
	for k := range b {
		out[k] = 0
	}
	return out
}
