package schema

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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

// AssignSplits puts whole projects in splits, so that no project has
// instances in both: instancesPerProject counts the instances (tasks, and
// instances that only have trajectories) of each project. Projects are
// ranked by the sha256 of their name, and taken into "test" in that order
// while the test split holds less than testFraction of all instances;
// with two or more projects and testFraction > 0, at least one project
// goes to each split. A single project cannot be split without leaking,
// so it stays in "train". The result maps every project to its split.
//
// The rule depends only on the set of projects and their sizes, never on
// input order; adding instances to a project can move a project whose
// rank comes after it (test shares are recomputed), never one before.
func AssignSplits(instancesPerProject map[string]int64, testFraction float64) map[string]string {
	out := make(map[string]string, len(instancesPerProject))
	type ranked struct {
		name string
		hash [32]byte
	}
	var projects []ranked
	var total int64
	for p, n := range instancesPerProject {
		out[p] = SplitTrain
		projects = append(projects, ranked{p, sha256.Sum256([]byte(p))})
		total += n
	}
	if testFraction <= 0 || len(projects) < 2 {
		return out
	}
	slices.SortFunc(projects, func(a, b ranked) int {
		if c := bytes.Compare(a.hash[:], b.hash[:]); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	var test int64
	for i, p := range projects {
		if i == len(projects)-1 || float64(test) >= testFraction*float64(total) {
			break
		}
		out[p.name] = SplitTest
		test += instancesPerProject[p.name]
	}
	return out
}

// DatasetOptions configure a DatasetWriter. Zero values take the defaults.
type DatasetOptions struct {
	// Name is the dataset's title on its card.
	Name string
	// Description is a paragraph for the card.
	Description string
	// TestFraction in [0,1) is the share of instances put in the "test"
	// split, by whole source projects (AssignSplits); 0 puts everything in
	// "train".
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
	// ProjectsPerSplit lists, per split, the source projects whose tasks
	// and trajectories it holds (sorted); no project is in two splits.
	ProjectsPerSplit map[string][]string `json:"projects_per_split"`
}

// DatasetWriter exports task instances and trajectories as a Hugging Face
// style dataset directory:
//
//	tasks/instances.jsonl                      SWE-bench-style, sorted by instance_id, every split
//	tasks/<split>-00000-of-0000N.parquet       the same rows as Parquet, per split
//	data/<split>-00000-of-0000N.parquet        trajectories per split
//	README.md                                  dataset card (YAML configs, features, counts)
//	manifest.json                              every file's sha256, bytes, rows
//
// Splits: every task and trajectory is in the split of its source project
// (AssignSplits): a task's SourceProject (its Repo when that is empty), a
// trajectory's the project of its instance's task, or, when the instance
// has no task in the dataset, the trajectory's Repo (which dsbuild's
// producers set to the project id). So no project contributes to both
// train and test. Splits are decided in Close, once every row is known.
//
// Determinism: output depends only on the set of rows added, never on the
// order. Rows are sorted by (instance_id, trajectory_id) — tasks by
// instance_id — and written to their split's shards, with an external
// merge sort: rows are buffered up to
// SortBufferBytes, each full buffer is sorted and spilled as a compressed
// run file, and Close merges the runs while streaming rows into shards.
// Memory stays bounded by the sort buffer plus one row group, however many
// rows are added (plus a few bytes per distinct instance, for the split
// rule). A row added twice with identical content is kept once;
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
	// projects maps every instance id to its project (see DatasetWriter;
	// names interned in projectNames), and repoConflicts records
	// instances whose trajectories name different repos.
	projects      map[string]instanceProject
	projectNames  map[string]string
	repoConflicts map[string]string
	// splits maps every project to its split, set by Close.
	splits map[string]string
	// stats feeds the card's Statistics section.
	stats *datasetStats
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
	w := &DatasetWriter{dir: dir, staging: staging, opts: opts,
		projects: map[string]instanceProject{}, projectNames: map[string]string{}, repoConflicts: map[string]string{}, stats: newDatasetStats()}
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
	project := t.SourceProject
	if project == "" {
		project = t.Repo
	}
	w.projects[t.InstanceID] = instanceProject{name: w.intern(project), fromTask: true}
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
	key := tr.InstanceID + "\x00" + tr.TrajectoryID
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errWriterClosed
	}
	if err := w.trajs.add(key, payload); err != nil {
		return fmt.Errorf("dataset %s: trajectory %s: %w", w.dir, tr.TrajectoryID, err)
	}
	if prev, seen := w.projects[tr.InstanceID]; !seen {
		w.projects[tr.InstanceID] = instanceProject{name: w.intern(tr.Repo)}
	} else if !prev.fromTask && prev.name != tr.Repo {
		w.repoConflicts[tr.InstanceID] = min(prev.name, tr.Repo) + " and " + max(prev.name, tr.Repo)
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
		ProjectsPerSplit:        map[string][]string{},
	}
	if err := w.assignSplits(m); err != nil {
		return nil, err
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
	card, err := datasetCard(w.opts, m, w.stats)
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

// instanceProject is the project of an instance and whether its task (or
// only its trajectories) named it.
type instanceProject struct {
	name     string
	fromTask bool
}

// intern returns the one copy of a project name the writer keeps, so that
// memory grows with instances, not with their repo strings.
func (w *DatasetWriter) intern(name string) string {
	if s, ok := w.projectNames[name]; ok {
		return s
	}
	w.projectNames[name] = name
	return name
}

// assignSplits decides the split of every project (see DatasetWriter) and
// records the projects per split in m.
func (w *DatasetWriter) assignSplits(m *DatasetManifest) error {
	perProject := map[string]int64{}
	for _, id := range sortedKeys(w.projects) {
		p := w.projects[id]
		if w.opts.TestFraction > 0 {
			if c, ok := w.repoConflicts[id]; ok && !p.fromTask {
				return fmt.Errorf("instance %s is not among the dataset's tasks and its trajectories name two repos, %s, so its project (and split) is ambiguous", id, c)
			}
			if p.name == "" && p.fromTask {
				return fmt.Errorf("task instance %s has neither source_project nor repo, so its split cannot be decided by project", id)
			}
			if p.name == "" {
				return fmt.Errorf("instance %s is not among the dataset's tasks and its trajectories have no repo, so its split cannot be decided by project", id)
			}
		}
		perProject[p.name]++
	}
	w.splits = AssignSplits(perProject, w.opts.TestFraction)
	for _, p := range sortedKeys(perProject) {
		m.ProjectsPerSplit[w.splits[p]] = append(m.ProjectsPerSplit[w.splits[p]], p)
	}
	return nil
}

// splitWriter writes rows into per-split shards with one shard set open
// at a time, so memory holds one row group however many splits there are:
// rows of the train split go straight to their shards; rows of any other
// split are appended, in order, to a spill file of their split, and
// written to their shards by finish, one split after another.
type splitWriter[T any] struct {
	w      *DatasetWriter
	prefix string
	train  *shardSet[T]
	spills map[string]*spillFile
	decode func([]byte) (T, error)
}

func newSplitWriter[T any](w *DatasetWriter, prefix string, decode func([]byte) (T, error)) *splitWriter[T] {
	return &splitWriter[T]{w: w, prefix: prefix, spills: map[string]*spillFile{}, decode: decode}
}

func (s *splitWriter[T]) newShards(split string) *shardSet[T] {
	return newShardSet[T](s.w.staging, s.prefix+split, s.w.opts.TargetShardBytes, s.w.opts.RowGroupBytes)
}

// write adds a row of split; payload is its encoding, which decode reads
// back for rows that wait in a spill file.
func (s *splitWriter[T]) write(split string, row T, payload []byte) error {
	if split == SplitTrain {
		if s.train == nil {
			s.train = s.newShards(split)
		}
		return s.train.write(row, len(payload))
	}
	sp := s.spills[split]
	if sp == nil {
		var err error
		if sp, err = newSpillFile(filepath.Join(s.w.staging, ".spill-"+strings.ReplaceAll(s.prefix, "/", "")+"-"+split)); err != nil {
			return err
		}
		s.spills[split] = sp
	}
	return sp.add(payload)
}

// finish closes the train shards, writes every spilled split's shards and
// returns all their files.
func (s *splitWriter[T]) finish() ([]DatasetFile, error) {
	var files []DatasetFile
	if s.train != nil {
		f, err := s.train.finish()
		if err != nil {
			return nil, err
		}
		s.train = nil
		files = append(files, f...)
	}
	for _, split := range slices.Sorted(maps.Keys(s.spills)) {
		shards := s.newShards(split)
		err := s.spills[split].each(func(payload []byte) error {
			row, err := s.decode(payload)
			if err != nil {
				return err
			}
			return shards.write(row, len(payload))
		})
		if err != nil {
			shards.abort()
			return nil, err
		}
		f, err := shards.finish()
		if err != nil {
			return nil, err
		}
		s.spills[split].remove()
		delete(s.spills, split)
		files = append(files, f...)
	}
	return files, nil
}

func (s *splitWriter[T]) abort() {
	if s.train != nil {
		s.train.abort()
	}
	for _, sp := range s.spills {
		sp.remove()
	}
}

// spillFile is a temporary file of length-prefixed records, read back in
// the order written.
type spillFile struct {
	f *os.File
	w *bufio.Writer
}

func newSpillFile(path string) (*spillFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &spillFile{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (s *spillFile) add(payload []byte) error {
	var n [binary.MaxVarintLen64]byte
	if _, err := s.w.Write(n[:binary.PutUvarint(n[:], uint64(len(payload)))]); err != nil {
		return err
	}
	_, err := s.w.Write(payload)
	return err
}

func (s *spillFile) each(fn func([]byte) error) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(s.f, 256<<10)
	var buf []byte
	for {
		n, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("spill %s: %w", s.f.Name(), err)
		}
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("spill %s: %w", s.f.Name(), err)
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
}

func (s *spillFile) remove() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// writeTasks streams the sorted tasks into instances.jsonl (every split,
// each line with its "split") and per-split Parquet shards.
func (w *DatasetWriter) writeTasks(m *DatasetManifest) ([]DatasetFile, error) {
	shards := newSplitWriter(w, "tasks/", func(b []byte) (TaskRow, error) {
		var row TaskRow
		err := json.Unmarshal(b, &row)
		return row, err
	})
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
		var row TaskRow
		if err := json.Unmarshal(payload, &row); err != nil {
			return fmt.Errorf("task instance %s: decode sorted row: %w", key, err)
		}
		row.Split = w.splits[w.projects[key].name]
		line, err := marshalNoEscape(row)
		if err != nil {
			return fmt.Errorf("task instance %s: %w", key, err)
		}
		jsonl.Write(line) // errors surface at close
		jsonl.Write([]byte{'\n'})
		m.Tasks++
		m.TasksPerSplit[row.Split]++
		m.TasksPerTaskType[row.TaskType]++
		w.stats.addTask(row)
		return shards.write(row.Split, row, line)
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
	shards := newSplitWriter(w, "data/", decodeTrajectoryRow)
	defer shards.abort()
	var prevKey string
	var prevPayload []byte
	err := w.trajs.each(func(key string, payload []byte) error {
		if m.Trajectories > 0 && key == prevKey {
			if bytes.Equal(payload, prevPayload) {
				return nil
			}
			inst, traj, _ := strings.Cut(key, "\x00")
			return fmt.Errorf("trajectory %s of instance %s added twice with different contents", traj, inst)
		}
		prevKey, prevPayload = key, payload
		row, err := decodeTrajectoryRow(payload)
		if err != nil {
			return fmt.Errorf("trajectory %s: decode sorted row: %w", key, err)
		}
		row.SourceProject = w.projects[row.InstanceID].name
		split := w.splits[row.SourceProject]
		if split != SplitTrain {
			payload = encodeTrajectoryRow(&row) // with its project, for the spill file
		}
		m.Trajectories++
		m.TrajectoriesPerSplit[split]++
		m.TrajectoriesPerTaskType[row.TaskType]++
		m.PromptTokens += row.PromptTokens
		m.CompletionTokens += row.CompletionTokens
		if row.Resolved {
			m.Resolved++
		}
		w.stats.addTrajectory(&row)
		return shards.write(split, row, payload)
	})
	if err != nil {
		return nil, err
	}
	return shards.finish()
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
