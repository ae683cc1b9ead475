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
// the given indentation, in the Hugging Face dataset card format. Columns
// named in jsonColumns hold JSON text and are declared with the `datasets`
// Json feature (`dtype: json`, or `list: json` for a list of them), which
// decodes each value.
func writeFeatures(b *strings.Builder, n parquet.Node, indent string, jsonColumns map[string]bool) {
	for _, f := range n.Fields() {
		fmt.Fprintf(b, "%s- name: %s\n", indent, f.Name())
		switch {
		case jsonColumns[f.Name()] && isListNode(f):
			fmt.Fprintf(b, "%s  list: json\n", indent)
			continue
		case jsonColumns[f.Name()] && f.Leaf():
			fmt.Fprintf(b, "%s  dtype: json\n", indent)
			continue
		}
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
			writeFeatures(b, elem, indent, nil)
		}
	default:
		fmt.Fprintf(b, "%sstruct:\n", indent)
		writeFeatures(b, f, indent, nil)
	}
}

// yamlString quotes s as a YAML double-quoted scalar (JSON string syntax
// is valid YAML).
func yamlString(s string) string { return strconv.Quote(s) }

// trajectoryJSONColumns are the TrajectoryRow columns that hold JSON text.
var trajectoryJSONColumns = map[string]bool{"messages": true, "tools": true}

// cardConfig is one config of the card: its files' directory prefix, its
// rows per split and its row type's schema.
type cardConfig struct {
	name        string
	prefix      string // "data/" or "tasks/"
	perSplit    map[string]int64
	schema      parquet.Node
	jsonColumns map[string]bool
}

// datasetCard renders README.md: YAML front matter with the configs
// (trajectories, the default, and tasks), each declaring exactly the
// splits it has files for, their features and sizes; then the split rule,
// count tables and how to load the data. It holds no timestamps.
func datasetCard(opts DatasetOptions, m *DatasetManifest, stats *datasetStats) ([]byte, error) {
	var configs []cardConfig
	if m.Trajectories > 0 {
		configs = append(configs, cardConfig{"trajectories", "data/", m.TrajectoriesPerSplit, parquet.SchemaOf(TrajectoryRow{}), trajectoryJSONColumns})
	}
	if m.Tasks > 0 {
		configs = append(configs, cardConfig{"tasks", "tasks/", m.TasksPerSplit, parquet.SchemaOf(TaskRow{}), nil})
	}
	var b strings.Builder
	b.WriteString("---\n")
	b.WriteString("pretty_name: " + yamlString(opts.Name) + "\n")
	b.WriteString("tags:\n- code\n- agents\n- swe\n- dsbuild\n")
	if len(configs) > 0 {
		b.WriteString("configs:\n")
	}
	for i, c := range configs {
		fmt.Fprintf(&b, "- config_name: %s\n", c.name)
		if i == 0 {
			b.WriteString("  default: true\n")
		}
		b.WriteString("  data_files:\n")
		for _, s := range sortedKeys(c.perSplit) {
			fmt.Fprintf(&b, "  - split: %s\n    path: %s\n", s, yamlString(c.prefix+s+"-*.parquet"))
		}
	}
	if len(configs) > 0 {
		b.WriteString("dataset_info:\n")
	}
	for _, c := range configs {
		fmt.Fprintf(&b, "- config_name: %s\n  features:\n", c.name)
		writeFeatures(&b, c.schema, "  ", c.jsonColumns)
		b.WriteString("  splits:\n")
		for _, s := range sortedKeys(c.perSplit) {
			var bytes int64
			for _, f := range m.Files {
				if strings.HasPrefix(f.Path, c.prefix+s+"-") && strings.HasSuffix(f.Path, ".parquet") {
					bytes += f.Bytes
				}
			}
			fmt.Fprintf(&b, "  - name: %s\n    num_bytes: %d\n    num_examples: %d\n", s, bytes, c.perSplit[s])
		}
	}
	b.WriteString("---\n\n")

	fmt.Fprintf(&b, "# %s\n\n", opts.Name)
	if opts.Description != "" {
		b.WriteString(strings.TrimSpace(opts.Description) + "\n\n")
	}
	b.WriteString("Built by dsbuild: software-engineering task environments and agent trajectories, " +
		"content-addressed and reproducible.\n\n")
	b.WriteString("## Configurations\n\n")
	b.WriteString("- `trajectories` (default): one row per agent rollout. `messages` (a list of JSON objects, " +
		"`list: json` above) and `tools` (a JSON list, `dtype: json`) use the `datasets` `Json` feature and are in " +
		"the form Hugging Face chat templates and TRL take: each message has `role` and `content`; only assistant " +
		"messages that call tools have `tool_calls`, each `{\"id\", \"type\": \"function\", \"function\": " +
		"{\"name\", \"arguments\"}}` with `arguments` a JSON object (a string only where the model wrote arguments " +
		"that are not a JSON object); only tool results have `tool_call_id` and `name`. `tools` lists JSON-schema " +
		"function objects `{\"type\": \"function\", \"function\": {\"name\", \"description\", \"parameters\"}}`. " +
		"In the Parquet files each message, and the tools list, is JSON text. `source_project` is the project " +
		"the split was decided by.\n")
	b.WriteString("- `tasks`: one row per task instance with the SWE-bench fields (all strings; " +
		"`FAIL_TO_PASS`/`PASS_TO_PASS` are JSON-encoded lists), plus `task_type`, `image`, `image_name`, " +
		"`test_cmd`, `test_files`, `source_project`, `difficulty`, `split`, `language` (how `test_cmd`'s output is read), and what grading reproduce and testgen " +
		"tasks needs: `golden_code_patch` and `golden_test_patch` (SWT-bench's names: the fix, and the reference " +
		"reproduction test, also in `patch`) and `mutant_patches` (a JSON-encoded list of diffs; tests resolve a " +
		"testgen task when they pass on `/testbed` and fail on at least half of the mutants). `tasks/instances.jsonl` holds the " +
		"rows of every split for SWE-bench harnesses; `tasks/<split>-*.parquet` holds them per split.\n\n")
	b.WriteString("### Running an instance\n\n")
	b.WriteString("`image_name` (the same as `image`) is `REGISTRY/REPOSITORY:TAG@sha256:...`: pull it, or copy it out " +
		"of `images/` (an OCI image layout, one tag per instance, listed with its name in `build.json`) with " +
		"`skopeo copy oci:images:TAG containers-storage:NAME`. In the image, `/testbed` is a git repository " +
		"with one commit, `base_commit` (also `environment_setup_commit`), holding the task's start state; " +
		"git and patch are installed. To grade a patch as the SWE-bench harness does: apply it in `/testbed` " +
		"(`git apply`), check out `base_commit`'s version of every file in `test_files` " +
		"(`git checkout BASE -- FILES`; a patch may not change the tests) and remove any `conftest.py` or `pytest.ini` the patch added, run `test_cmd` in `/testbed` " +
		"(for `language` python a pytest command with `-rA`, whose `PASSED <id>`/`FAILED <id>` lines SWE-bench's pytest log parser " +
		"reads; ids with spaces are never listed), and call the instance resolved when every `FAIL_TO_PASS` " +
		"and `PASS_TO_PASS` test passed. `dsbuild eval DATASET PREDICTIONS.jsonl` does exactly this.\n\n")

	b.WriteString("## Splits\n\n")
	b.WriteString("Splits are by source project, never by instance: every task and every trajectory is in the split " +
		"of its project (a task's `source_project`, or its `repo` when that is empty; a trajectory's, the project " +
		"of its instance's task, or its own `repo` when the instance has no task here), so no project contributes " +
		"to both. Projects are ranked by the sha256 of their name and taken into `test` in that order while `test` " +
		"holds less than the test fraction of all instances, keeping at least one project in each split when " +
		"there are two or more.")
	fmt.Fprintf(&b, " Test fraction: %v.\n\n", opts.TestFraction)
	for _, s := range sortedKeys(m.ProjectsPerSplit) {
		fmt.Fprintf(&b, "- `%s`: %s\n", s, strings.Join(quoteAll(m.ProjectsPerSplit[s]), ", "))
	}
	if len(m.ProjectsPerSplit) > 0 {
		b.WriteString("\n")
	}

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
	b.WriteString(stats.markdown())
	writeLoading(&b, m)
	b.WriteString("`manifest.json` lists every file with its sha256, size and row count.\n")
	return []byte(b.String()), nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "`" + s + "`"
	}
	return out
}

// writeLoading writes the card's loading instructions: `datasets`, TRL's
// SFTTrainer and LLaMA-Factory, as exact snippets.
func writeLoading(b *strings.Builder, m *DatasetManifest) {
	b.WriteString("## Loading\n\n")
	b.WriteString("With `datasets` 4.7 or later (the `Json` feature), from this folder or its Hub repository; " +
		"`messages` and `tools` come back as lists of dicts with exactly the keys written:\n\n" +
		"```python\nfrom datasets import load_dataset\n\n" +
		"trajectories = load_dataset(\"path/to/this/folder\")  # config \"trajectories\"\n")
	if m.Tasks > 0 {
		b.WriteString("tasks = load_dataset(\"path/to/this/folder\", \"tasks\")\n")
	}
	b.WriteString("```\n\n")
	if m.Trajectories == 0 {
		return
	}
	b.WriteString("Older `datasets` cannot read `list: json` in the card; read the Parquet files directly " +
		"(`messages` is then a list of JSON strings, `tools` a JSON string) and decode them with `json.loads`. " +
		"Do not store the decoded rows back into a `datasets` table: it would unify the keys of all messages " +
		"and arguments and fill the missing ones with `None`, which chat templates render.\n\n" +
		"```python\nimport json\nfrom datasets import load_dataset\n\n" +
		"raw = load_dataset(\"parquet\", data_files={\"train\": \"data/train-*.parquet\"}, split=\"train\")\n" +
		"messages = [json.loads(m) for m in raw[0][\"messages\"]]\n" +
		"tools = json.loads(raw[0][\"tools\"])\n```\n\n")
	b.WriteString("### TRL\n\n" +
		"`SFTTrainer` reads `messages` and `tools` and passes them to the tokenizer's chat template:\n\n" +
		"```python\nfrom datasets import load_dataset\nfrom trl import SFTConfig, SFTTrainer\n\n" +
		"train = load_dataset(\"path/to/this/folder\", split=\"train\").select_columns([\"messages\", \"tools\"])\n" +
		"trainer = SFTTrainer(model=\"Qwen/Qwen2.5-0.5B-Instruct\", train_dataset=train, args=SFTConfig(output_dir=\"sft-out\"))\n" +
		"trainer.train()\n```\n\n" +
		"With `datasets` older than 4.7, render the text first and train on it:\n\n" +
		"```python\nimport json\nfrom datasets import load_dataset\nfrom transformers import AutoTokenizer\n" +
		"from trl import SFTConfig, SFTTrainer\n\n" +
		"tok = AutoTokenizer.from_pretrained(\"Qwen/Qwen2.5-0.5B-Instruct\")\n" +
		"raw = load_dataset(\"parquet\", data_files={\"train\": \"data/train-*.parquet\"}, split=\"train\")\n" +
		"text = raw.map(lambda r: {\"text\": tok.apply_chat_template([json.loads(m) for m in r[\"messages\"]],\n" +
		"    tools=json.loads(r[\"tools\"]), tokenize=False)}, remove_columns=raw.column_names)\n" +
		"trainer = SFTTrainer(model=\"Qwen/Qwen2.5-0.5B-Instruct\", train_dataset=text, processing_class=tok,\n" +
		"    args=SFTConfig(output_dir=\"sft-out\", dataset_text_field=\"text\"))\n" +
		"trainer.train()\n```\n\n")
	b.WriteString("### LLaMA-Factory\n\n" +
		"LLaMA-Factory reads tool-calling data in its sharegpt format (`function_call` and `observation` turns, " +
		"`tools` a JSON string). Convert, then register the file in `data/dataset_info.json`:\n\n" +
		"```python\nimport json\nfrom datasets import load_dataset\n\n" +
		"raw = load_dataset(\"parquet\", data_files={\"train\": \"data/train-*.parquet\"}, split=\"train\")\n" +
		"rows = []\n" +
		"for r in raw:\n" +
		"    msgs = [json.loads(m) for m in r[\"messages\"]]\n" +
		"    system = msgs.pop(0)[\"content\"] if msgs and msgs[0][\"role\"] == \"system\" else \"\"\n" +
		"    conv = []\n" +
		"    for m in msgs:\n" +
		"        if m.get(\"tool_calls\"):\n" +
		"            calls = [{\"name\": c[\"function\"][\"name\"], \"arguments\": c[\"function\"][\"arguments\"]} for c in m[\"tool_calls\"]]\n" +
		"            conv.append({\"from\": \"function_call\", \"value\": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)})\n" +
		"        elif m[\"role\"] == \"tool\" and conv and conv[-1][\"from\"] == \"observation\":\n" +
		"            conv[-1][\"value\"] += \"\\n\" + m[\"content\"]  # results of parallel calls: one observation\n" +
		"        else:\n" +
		"            conv.append({\"from\": {\"user\": \"human\", \"assistant\": \"gpt\", \"tool\": \"observation\"}[m[\"role\"]], \"value\": m[\"content\"]})\n" +
		"    while conv and conv[-1][\"from\"] in (\"observation\", \"human\"):\n" +
		"        conv.pop()  # the result of the last call (finish): the model's turn ends the conversation\n" +
		"    rows.append({\"conversations\": conv, \"system\": system,\n" +
		"                 \"tools\": r[\"tools\"]})  # already the JSON string LLaMA-Factory reads\n" +
		"json.dump(rows, open(\"LLaMA-Factory/data/dsbuild_sft.json\", \"w\"), ensure_ascii=False)\n```\n\n" +
		"```json\n\"dsbuild_sft\": {\"file_name\": \"dsbuild_sft.json\", \"formatting\": \"sharegpt\",\n" +
		"  \"columns\": {\"messages\": \"conversations\", \"system\": \"system\", \"tools\": \"tools\"}}\n```\n\n" +
		"Every rollout ends with the result of its last call (`finish`), and LLaMA-Factory skips conversations " +
		"that do not end on the model's turn, so the converter drops that trailing result. LLaMA-Factory keeps " +
		"only the call of an assistant turn that also has text.\n\n")
}

func sortedKeys[V any](m map[string]V) []string {
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
