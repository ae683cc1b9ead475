package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Split names.
const (
	SplitTrain = "train"
	SplitTest  = "test"
)

// SplitOf assigns an instance to a split by hashing its ID: the first 8
// bytes of sha256(instance_id), read as a fraction of 2^64, below
// testFraction means "test", else "train". Every trajectory of one
// instance therefore lands in one split, and adding instances never moves
// another. (This is a partition rule, not a cache key.)
func SplitOf(instanceID string, testFraction float64) string {
	if testFraction <= 0 {
		return SplitTrain
	}
	sum := sha256.Sum256([]byte(instanceID))
	u := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
	if u < testFraction {
		return SplitTest
	}
	return SplitTrain
}

// DatasetOptions configure a DatasetWriter. Zero values take the defaults.
type DatasetOptions struct {
	// Name is the dataset's title on its card.
	Name string
	// Description is a paragraph for the card.
	Description string
	// TestFraction in [0,1) is the share of instances (and so of their
	// trajectories) put in the "test" split; 0 puts everything in "train".
	TestFraction float64
	// TargetShardBytes: a shard is closed once it reaches this size
	// (default 256 MiB), so shards are about this size or one row group more.
	TargetShardBytes int64
	// RowGroupBytes is the encoded input size per row group (default 32 MiB).
	RowGroupBytes int64
	// SortBufferBytes is how much row data is held in memory before a
	// sorted run is spilled to disk (default 64 MiB).
	SortBufferBytes int64
}

func (o *DatasetOptions) setDefaults() error {
	if o.TestFraction < 0 || o.TestFraction >= 1 || math.IsNaN(o.TestFraction) {
		return fmt.Errorf("dataset options: test fraction %v outside [0,1)", o.TestFraction)
	}
	if o.TargetShardBytes < 0 || o.RowGroupBytes < 0 || o.SortBufferBytes < 0 {
		return errors.New("dataset options: negative size")
	}
	if o.TargetShardBytes == 0 {
		o.TargetShardBytes = 256 << 20
	}
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = 32 << 20
	}
	if o.SortBufferBytes == 0 {
		o.SortBufferBytes = 64 << 20
	}
	if o.Name == "" {
		o.Name = "dsbuild dataset"
	}
	return nil
}

// DatasetManifest lists every file of an exported dataset with its digest,
// plus counts. It is written as manifest.json (which it does not list).
type DatasetManifest struct {
	// Files are sorted by path.
	Files []DatasetFile `json:"files"`
	// Tasks and Trajectories are row counts.
	Tasks        int64 `json:"tasks"`
	Trajectories int64 `json:"trajectories"`
	// Resolved counts trajectories with resolved = true.
	Resolved int64 `json:"resolved"`
	// PromptTokens and CompletionTokens sum over trajectories.
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// Counts per split and per task type.
	TasksPerSplit           map[string]int64 `json:"tasks_per_split"`
	TasksPerTaskType        map[string]int64 `json:"tasks_per_task_type"`
	TrajectoriesPerSplit    map[string]int64 `json:"trajectories_per_split"`
	TrajectoriesPerTaskType map[string]int64 `json:"trajectories_per_task_type"`
}

// DatasetWriter exports task instances and trajectories as a Hugging Face
// style dataset directory:
//
//	tasks/instances.jsonl                      SWE-bench-style, sorted by instance_id
//	tasks/tasks-00000-of-0000N.parquet         the same rows as Parquet
//	data/<split>-00000-of-0000N.parquet        trajectories per split
//	README.md                                  dataset card (YAML configs, features, counts)
//	manifest.json                              every file's sha256, bytes, rows
//
// Determinism: output depends only on the set of rows added, never on the
// order. Rows are sorted by (split, instance_id, trajectory_id) — tasks by
// instance_id — with an external merge sort: rows are buffered up to
// SortBufferBytes, each full buffer is sorted and spilled as a compressed
// run file, and Close merges the runs while streaming rows into shards.
// Memory stays bounded by the sort buffer plus one row group, however many
// rows are added. A row added twice with identical content is kept once;
// two different rows with the same key are an error.
//
// Atomicity: everything is written into a staging directory beside dir and
// moved into place by Close (an atomic exchange when dir already exists),
// so dir holds either the previous dataset or the complete new one. dir is
// replaced wholesale: give the writer a directory of its own.
//
// Add methods are safe for concurrent use. Every writer must end with Close
// or Abort, or its staging directory stays behind.
type DatasetWriter struct {
	mu      sync.Mutex
	dir     string
	staging string
	opts    DatasetOptions
	tasks   *externalSorter
	trajs   *externalSorter
	done    bool
}

// NewDatasetWriter starts a dataset that Close will publish at dir.
func NewDatasetWriter(dir string, opts DatasetOptions) (*DatasetWriter, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("dataset %s: exists and is not a directory", dir)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("dataset %s: %w", dir, err)
	}
	staging, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".staging-")
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", dir, err)
	}
	w := &DatasetWriter{dir: dir, staging: staging, opts: opts}
	limit := int(opts.SortBufferBytes)
	taskRuns, err := runDir(staging, "tasks")
	if err == nil {
		w.tasks = newExternalSorter(taskRuns, limit/4+1)
		var trajRuns string
		trajRuns, err = runDir(staging, "trajectories")
		w.trajs = newExternalSorter(trajRuns, limit)
	}
	if err != nil {
		os.RemoveAll(staging)
		return nil, fmt.Errorf("dataset %s: %w", dir, err)
	}
	return w, nil
}

var errWriterClosed = errors.New("dataset writer already closed")

// AddTask adds one task instance.
func (w *DatasetWriter) AddTask(t TaskInstance) error {
	if err := t.Validate(); err != nil {
		return err
	}
	row, err := t.Row()
	if err != nil {
		return err
	}
	row.Split = SplitOf(t.InstanceID, w.opts.TestFraction)
	payload, err := marshalNoEscape(row)
	if err != nil {
		return fmt.Errorf("task instance %s: %w", t.InstanceID, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errWriterClosed
	}
	if err := w.tasks.add(t.InstanceID, payload); err != nil {
		return fmt.Errorf("dataset %s: task %s: %w", w.dir, t.InstanceID, err)
	}
	return nil
}

// AddTrajectory adds one trajectory.
func (w *DatasetWriter) AddTrajectory(tr Trajectory) error {
	if err := tr.Validate(); err != nil {
		return err
	}
	row, err := tr.Row()
	if err != nil {
		return err
	}
	payload := encodeTrajectoryRow(&row)
	key := SplitOf(tr.InstanceID, w.opts.TestFraction) + "\x00" + tr.InstanceID + "\x00" + tr.TrajectoryID
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errWriterClosed
	}
	if err := w.trajs.add(key, payload); err != nil {
		return fmt.Errorf("dataset %s: trajectory %s: %w", w.dir, tr.TrajectoryID, err)
	}
	return nil
}

// Abort discards everything added and leaves dir untouched.
func (w *DatasetWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	w.done = true
	return os.RemoveAll(w.staging)
}

// Close writes all files, publishes the dataset at dir and returns its
// manifest. On error nothing is published and the staging files are removed.
func (w *DatasetWriter) Close() (*DatasetManifest, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil, errWriterClosed
	}
	w.done = true
	m, err := w.build()
	if err == nil {
		err = publishDir(w.staging, w.dir)
	}
	if err != nil {
		os.RemoveAll(w.staging)
		return nil, fmt.Errorf("dataset %s: %w", w.dir, err)
	}
	return m, nil
}

func (w *DatasetWriter) build() (*DatasetManifest, error) {
	m := &DatasetManifest{
		TasksPerSplit:           map[string]int64{},
		TasksPerTaskType:        map[string]int64{},
		TrajectoriesPerSplit:    map[string]int64{},
		TrajectoriesPerTaskType: map[string]int64{},
	}
	taskFiles, err := w.writeTasks(m)
	if err != nil {
		return nil, err
	}
	m.Files = append(m.Files, taskFiles...)
	trajFiles, err := w.writeTrajectories(m)
	if err != nil {
		return nil, err
	}
	m.Files = append(m.Files, trajFiles...)
	for _, name := range []string{".sort-tasks", ".sort-trajectories"} {
		if err := os.RemoveAll(filepath.Join(w.staging, name)); err != nil {
			return nil, err
		}
	}
	card, err := datasetCard(w.opts, m, trajFiles)
	if err != nil {
		return nil, err
	}
	f, err := writeSmallFile(w.staging, "README.md", card)
	if err != nil {
		return nil, err
	}
	m.Files = append(m.Files, f)
	slices.SortFunc(m.Files, func(a, b DatasetFile) int { return strings.Compare(a.Path, b.Path) })
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if _, err := writeSmallFile(w.staging, "manifest.json", append(mj, '\n')); err != nil {
		return nil, err
	}
	for _, d := range []string{"tasks", "data", "."} {
		if err := syncDir(filepath.Join(w.staging, d)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return m, nil
}

// writeTasks streams the sorted tasks into instances.jsonl and Parquet.
func (w *DatasetWriter) writeTasks(m *DatasetManifest) ([]DatasetFile, error) {
	shards := newShardSet[TaskRow](w.staging, "tasks/tasks", w.opts.TargetShardBytes, w.opts.RowGroupBytes)
	defer shards.abort()
	var jsonl *hashingFile
	var prevKey string
	var prevPayload []byte
	err := w.tasks.each(func(key string, payload []byte) error {
		if m.Tasks > 0 && key == prevKey {
			if bytes.Equal(payload, prevPayload) {
				return nil
			}
			return fmt.Errorf("task instance %s added twice with different contents", key)
		}
		prevKey, prevPayload = key, payload
		if jsonl == nil {
			var err error
			if jsonl, err = createHashingFile(filepath.Join(w.staging, "tasks", "instances.jsonl")); err != nil {
				return err
			}
		}
		jsonl.Write(payload) // errors surface at close
		jsonl.Write([]byte{'\n'})
		var row TaskRow
		if err := json.Unmarshal(payload, &row); err != nil {
			return fmt.Errorf("task instance %s: decode sorted row: %w", key, err)
		}
		m.Tasks++
		m.TasksPerSplit[row.Split]++
		m.TasksPerTaskType[row.TaskType]++
		return shards.write(row, len(payload))
	})
	if err != nil {
		if jsonl != nil {
			jsonl.abort()
		}
		return nil, err
	}
	if jsonl == nil {
		return nil, nil
	}
	n, sum, err := jsonl.close()
	if err != nil {
		return nil, err
	}
	files, err := shards.finish()
	if err != nil {
		return nil, err
	}
	return append([]DatasetFile{{Path: "tasks/instances.jsonl", SHA256: sum, Bytes: n, Rows: m.Tasks}}, files...), nil
}

// writeTrajectories streams the sorted trajectories into per-split shards.
func (w *DatasetWriter) writeTrajectories(m *DatasetManifest) ([]DatasetFile, error) {
	var files []DatasetFile
	var shards *shardSet[TrajectoryRow]
	var split, prevKey string
	var prevPayload []byte
	defer func() {
		if shards != nil {
			shards.abort()
		}
	}()
	err := w.trajs.each(func(key string, payload []byte) error {
		if m.Trajectories > 0 && key == prevKey {
			if bytes.Equal(payload, prevPayload) {
				return nil
			}
			parts := strings.Split(key, "\x00")
			return fmt.Errorf("trajectory %s of instance %s added twice with different contents", parts[2], parts[1])
		}
		prevKey, prevPayload = key, payload
		s, _, _ := strings.Cut(key, "\x00")
		if shards == nil || s != split {
			if shards != nil {
				f, err := shards.finish()
				if err != nil {
					return err
				}
				files = append(files, f...)
			}
			split = s
			shards = newShardSet[TrajectoryRow](w.staging, "data/"+split, w.opts.TargetShardBytes, w.opts.RowGroupBytes)
		}
		row, err := decodeTrajectoryRow(payload)
		if err != nil {
			return fmt.Errorf("trajectory %s: decode sorted row: %w", key, err)
		}
		m.Trajectories++
		m.TrajectoriesPerSplit[split]++
		m.TrajectoriesPerTaskType[row.TaskType]++
		m.PromptTokens += row.PromptTokens
		m.CompletionTokens += row.CompletionTokens
		if row.Resolved {
			m.Resolved++
		}
		return shards.write(row, len(payload))
	})
	if err != nil {
		return nil, err
	}
	if shards != nil {
		f, err := shards.finish()
		if err != nil {
			return nil, err
		}
		shards = nil
		files = append(files, f...)
	}
	return files, nil
}

func writeSmallFile(root, rel string, data []byte) (DatasetFile, error) {
	f, err := createHashingFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return DatasetFile{}, err
	}
	if _, err := f.Write(data); err != nil {
		f.abort()
		return DatasetFile{}, fmt.Errorf("write %s: %w", rel, err)
	}
	n, sum, err := f.close()
	if err != nil {
		return DatasetFile{}, err
	}
	return DatasetFile{Path: rel, SHA256: sum, Bytes: n}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// publishDir moves staging to dir. If dir exists the two are exchanged
// atomically (renameat2 RENAME_EXCHANGE) and the old dataset is removed;
// where the exchange is unsupported, dir is renamed aside first.
func publishDir(staging, dir string) error {
	if err := os.Chmod(staging, 0o755); err != nil {
		return err
	}
	err := os.Rename(staging, dir)
	if err == nil {
		return syncDir(filepath.Dir(dir))
	}
	if _, statErr := os.Stat(dir); statErr != nil {
		return err
	}
	err = unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
	if err != nil {
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("publish: %w", err)
		}
		old := staging + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if err := os.Rename(staging, dir); err != nil {
			os.Rename(old, dir)
			return fmt.Errorf("publish: %w", err)
		}
		staging = old
	}
	// staging now holds the previous dataset.
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return os.RemoveAll(staging)
}
