package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goccy/go-yaml"
	"golang.org/x/sys/unix"
)

// Names of the limits, as reported in Result.LimitHit and used as keys in
// JSON and YAML.
const (
	LimitTimeout   = "timeout"
	LimitCPU       = "cpu"
	LimitMemory    = "memory"
	LimitProcesses = "processes"
	LimitOutput    = "output"
	LimitWorkspace = "workspace"
)

// Limits bound one sandbox run. A zero field means "the default" (see
// DefaultLimits); WithDefaults fills them in.
//
// In JSON and YAML the timeout is a Go duration string ("120s") and the byte
// sizes are integers or strings with a unit ("4GiB", "512MiB", "1GB", "64k"):
//
//	sandbox: {timeout: 120s, cpu: 60, memory: 4GiB, processes: 256, output: 1MiB, workspace: 2GiB}
type Limits struct {
	// Timeout is the wall-clock limit; at the deadline the whole process
	// tree is killed.
	Timeout time.Duration `json:"timeout" yaml:"timeout"`
	// CPUSeconds is the CPU-time limit of each process (RLIMIT_CPU).
	CPUSeconds int `json:"cpu" yaml:"cpu"`
	// MemoryBytes is the address-space limit of each process (RLIMIT_AS)
	// and, where the machine allows a memory cgroup (see the package doc),
	// the limit of the whole run's memory: all its processes, its page
	// cache and its files in the RAM-backed /tmp and /dev/shm.
	MemoryBytes int64 `json:"memory" yaml:"memory"`
	// Processes is the most processes (and threads) the run may have at
	// once (a pids cgroup where there is one, and RLIMIT_NPROC of a host
	// uid of its own).
	Processes int `json:"processes" yaml:"processes"`
	// OutputBytes is the most bytes captured from each of stdout and
	// stderr; a run that writes more is killed and its output truncated
	// with a marker.
	OutputBytes int64 `json:"output" yaml:"output"`
	// WorkspaceBytes bounds the workspace (/testbed) after and during the
	// run and the size of any one file written (RLIMIT_FSIZE). With a
	// memory cgroup, /tmp and /dev/shm are tmpfs of this size each (and
	// count against MemoryBytes); without one they are directories on disk
	// next to the workspace and count against this limit with it.
	WorkspaceBytes int64 `json:"workspace" yaml:"workspace"`
}

// DefaultLimits returns the limits used for fields left zero.
func DefaultLimits() Limits {
	return Limits{
		Timeout:        10 * time.Minute,
		CPUSeconds:     600,
		MemoryBytes:    4 << 30,
		Processes:      512,
		OutputBytes:    1 << 20,
		WorkspaceBytes: 2 << 30,
	}
}

// WithDefaults returns l with every zero field set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.CPUSeconds == 0 {
		l.CPUSeconds = d.CPUSeconds
	}
	if l.MemoryBytes == 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	if l.Processes == 0 {
		l.Processes = d.Processes
	}
	if l.OutputBytes == 0 {
		l.OutputBytes = d.OutputBytes
	}
	if l.WorkspaceBytes == 0 {
		l.WorkspaceBytes = d.WorkspaceBytes
	}
	return l
}

// Validate reports the first limit that is negative or too small to run
// anything (zero fields are fine: they mean the default).
func (l Limits) Validate() error {
	var errs []error
	if l.Timeout < 0 || (l.Timeout > 0 && l.Timeout < time.Millisecond) {
		errs = append(errs, fmt.Errorf("timeout %s: want at least 1ms", l.Timeout))
	}
	if l.CPUSeconds < 0 {
		errs = append(errs, fmt.Errorf("cpu %d: want a positive number of seconds", l.CPUSeconds))
	}
	if l.MemoryBytes < 0 || (l.MemoryBytes > 0 && l.MemoryBytes < 16<<20) {
		errs = append(errs, fmt.Errorf("memory %d: want at least 16MiB", l.MemoryBytes))
	}
	if l.Processes < 0 || (l.Processes > 0 && l.Processes < 4) {
		errs = append(errs, fmt.Errorf("processes %d: want at least 4", l.Processes))
	}
	if l.OutputBytes < 0 {
		errs = append(errs, fmt.Errorf("output %d: want a positive size", l.OutputBytes))
	}
	if l.WorkspaceBytes < 0 || (l.WorkspaceBytes > 0 && l.WorkspaceBytes < 1<<20) {
		errs = append(errs, fmt.Errorf("workspace %d: want at least 1MiB", l.WorkspaceBytes))
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox limits: %w", errors.Join(errs...))
	}
	return nil
}

// limitsText is the wire form of Limits: the timeout as a duration string,
// sizes as integers (or, when read, strings with units).
type limitsText struct {
	Timeout        any `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	CPUSeconds     any `json:"cpu,omitempty" yaml:"cpu,omitempty"`
	MemoryBytes    any `json:"memory,omitempty" yaml:"memory,omitempty"`
	Processes      any `json:"processes,omitempty" yaml:"processes,omitempty"`
	OutputBytes    any `json:"output,omitempty" yaml:"output,omitempty"`
	WorkspaceBytes any `json:"workspace,omitempty" yaml:"workspace,omitempty"`
}

func (l Limits) text() limitsText {
	var t limitsText
	if l.Timeout != 0 {
		t.Timeout = l.Timeout.String()
	}
	if l.CPUSeconds != 0 {
		t.CPUSeconds = l.CPUSeconds
	}
	if l.MemoryBytes != 0 {
		t.MemoryBytes = l.MemoryBytes
	}
	if l.Processes != 0 {
		t.Processes = l.Processes
	}
	if l.OutputBytes != 0 {
		t.OutputBytes = l.OutputBytes
	}
	if l.WorkspaceBytes != 0 {
		t.WorkspaceBytes = l.WorkspaceBytes
	}
	return t
}

func (l *Limits) fromText(t limitsText) error {
	var out Limits
	var err error
	if out.Timeout, err = parseDuration(t.Timeout); err != nil {
		return fmt.Errorf("sandbox limits: timeout: %w", err)
	}
	cpu, err := parseCPU(t.CPUSeconds)
	if err != nil {
		return fmt.Errorf("sandbox limits: cpu: %w", err)
	}
	out.CPUSeconds = int(cpu)
	if out.MemoryBytes, err = parseSize(t.MemoryBytes); err != nil {
		return fmt.Errorf("sandbox limits: memory: %w", err)
	}
	procs, err := parseCount(t.Processes)
	if err != nil {
		return fmt.Errorf("sandbox limits: processes: %w", err)
	}
	out.Processes = int(procs)
	if out.OutputBytes, err = parseSize(t.OutputBytes); err != nil {
		return fmt.Errorf("sandbox limits: output: %w", err)
	}
	if out.WorkspaceBytes, err = parseSize(t.WorkspaceBytes); err != nil {
		return fmt.Errorf("sandbox limits: workspace: %w", err)
	}
	*l = out
	return nil
}

// MarshalJSON writes the timeout as a duration string and sizes in bytes;
// zero fields are left out.
func (l Limits) MarshalJSON() ([]byte, error) { return json.Marshal(l.text()) }

// UnmarshalJSON reads what MarshalJSON writes, and sizes with units.
func (l *Limits) UnmarshalJSON(b []byte) error {
	var t limitsText
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return fmt.Errorf("sandbox limits: %w", err)
	}
	return l.fromText(t)
}

// MarshalYAML writes the same fields as MarshalJSON.
func (l Limits) MarshalYAML() (any, error) { return l.text(), nil }

// UnmarshalYAML reads a mapping such as
// {timeout: 120s, memory: 4GiB, processes: 256}. Unknown keys are an error.
func (l *Limits) UnmarshalYAML(b []byte) error {
	var t limitsText
	if err := yaml.UnmarshalWithOptions(b, &t, yaml.DisallowUnknownField()); err != nil {
		return fmt.Errorf("sandbox limits: %w", err)
	}
	return l.fromText(t)
}

func parseDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration like 90s or 10m", x)
		}
		return d, nil
	default:
		return 0, fmt.Errorf("%v is not a duration: write it with a unit, like 90s or 10m", v)
	}
}

// parseCPU accepts a number of seconds or a duration string ("90s", "2m").
func parseCPU(v any) (int64, error) {
	if s, ok := v.(string); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(s)); err == nil {
			return int64(math.Ceil(d.Seconds())), nil
		}
	}
	n, err := parseCount(v)
	if err != nil {
		return 0, fmt.Errorf("%v is not a number of seconds or a duration", v)
	}
	return n, nil
}

func parseCount(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case json.Number:
		return x.Int64()
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d is too large", x)
		}
		return int64(x), nil
	case float64:
		if x != math.Trunc(x) {
			return 0, fmt.Errorf("%v is not a whole number", x)
		}
		return int64(x), nil
	case string:
		return strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	default:
		return 0, fmt.Errorf("%v (%T) is not a number", v, v)
	}
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1000, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1000 * 1000, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1000 * 1000 * 1000, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1000 * 1000 * 1000 * 1000, "tib": 1 << 40,
}

// ParseSize parses a byte size such as "4GiB", "512MiB", "1GB", "64k" or
// "1048576". Binary units (KiB, MiB, GiB, TiB and the bare K, M, G, T) are
// powers of 1024; KB, MB, GB, TB are powers of 1000.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("%q is not a size like 4GiB, 512MiB or 1048576", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size like 4GiB, 512MiB or 1048576", s)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

func parseSize(v any) (int64, error) {
	if s, ok := v.(string); ok {
		return ParseSize(s)
	}
	return parseCount(v)
}

// Enforcement: host uids, cgroups and the watcher of a running sandbox.
//
// As root every run gets a host uid of its own (for RLIMIT_NPROC, and so
// that a run cannot signal or ptrace another). Uids come in blocks of
// uidBlockSize; a process takes a block by holding an exclusive flock on
// uidLockDir/<block>, so two dsbuild processes never share one, and all
// Runners of a process share its blocks (hostUIDs). A uid is handed to a
// run only when no process of the host runs as it: a run's processes may
// still be dying after the run returned (a fork bomb's, say).
//
// Where the machine allows it, each run also gets a cgroup of its own with
// memory and pids limits (see hostCgroups), which bound the run as a whole.

const (
	uidBlockSize  = 256
	uidBlockCount = 4096
	// maxUIDBlocks is the most blocks one process takes.
	maxUIDBlocks = 16
	// uidWait is how long a run waits for a uid free of processes.
	uidWait = 2 * time.Minute
)

var uidLockDir = "/var/tmp/dsbuild-uids"

// uidPool hands out host uids of the blocks this process holds.
type uidPool struct {
	dir string
	// start is the first block tried; -1: one picked by the pid.
	start int

	mu     sync.Mutex
	blocks []int
	locks  []*os.File // held (and never closed) for the process's life
	free   []int
	// clean marks free uids known to own no process: their run's cgroup
	// was seen empty.
	clean map[int]bool
}

// hostUIDs is the pool of every Runner of the process.
var hostUIDs = &uidPool{dir: uidLockDir, start: -1}

// acquire returns a uid no other run uses and no process runs as. It waits
// (bounded by uidWait) while the only free uids still have processes.
func (p *uidPool) acquire(ctx context.Context) (int, error) {
	delay := 5 * time.Millisecond
	deadline := time.Now().Add(uidWait)
	for {
		uid, busy, err := p.tryAcquire()
		if err != nil || uid >= 0 {
			return uid, err
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no sandbox host uid was free of processes within %s (%d uids free, each still running processes)", uidWait, busy)
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
}

// tryAcquire returns a free uid that owns no process, locking another block
// if none is left, or -1 and the number of free uids that own processes.
func (p *uidPool) tryAcquire() (uid, busy int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if u := p.free[i]; p.clean[u] {
			p.take(i)
			return u, 0, nil
		}
	}
	var owners map[uint32]int
	for {
		if len(p.free) > 0 {
			if owners == nil {
				owners = processOwners()
			}
			for i, u := range p.free {
				if owners[uint32(u)] == 0 {
					p.take(i)
					return u, 0, nil
				}
			}
		}
		if len(p.blocks) >= maxUIDBlocks {
			return -1, len(p.free), nil
		}
		if err := p.lockBlock(); err != nil {
			return -1, 0, err
		}
	}
}

func (p *uidPool) take(i int) {
	delete(p.clean, p.free[i])
	p.free = append(p.free[:i], p.free[i+1:]...)
}

// release gives uid back; clean says that it is known to own no process.
func (p *uidPool) release(uid int, clean bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, uid)
	if clean {
		if p.clean == nil {
			p.clean = map[int]bool{}
		}
		p.clean[uid] = true
	}
}

// lockBlock takes the first block, from one picked by the pid on, that no
// other process holds.
func (p *uidPool) lockBlock() error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("sandbox uid locks: %w", err)
	}
	start := p.start
	if start < 0 {
		start = os.Getpid() % uidBlockCount
	}
	for i := range uidBlockCount {
		b := (start + i) % uidBlockCount
		if slicesContains(p.blocks, b) {
			continue
		}
		f, err := os.OpenFile(filepath.Join(p.dir, strconv.Itoa(b)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return fmt.Errorf("sandbox uid locks: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue
			}
			return fmt.Errorf("sandbox uid locks: %s: %w", f.Name(), err)
		}
		p.blocks = append(p.blocks, b)
		p.locks = append(p.locks, f)
		for u := uidBlockSize - 1; u >= 0; u-- {
			p.free = append(p.free, hostUIDBase+b*uidBlockSize+u)
		}
		return nil
	}
	return fmt.Errorf("sandbox uid locks: all %d blocks in %s are held by other processes", uidBlockCount, p.dir)
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// processOwners counts the host's processes by owner uid.
func processOwners() map[uint32]int {
	owners := map[uint32]int{}
	d, err := os.Open("/proc")
	if err != nil {
		return owners
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	fd := int(d.Fd())
	for _, n := range names {
		if n == "" || n[0] < '0' || n[0] > '9' {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(fd, n, &st, 0) == nil {
			owners[st.Uid]++
		}
	}
	return owners
}

// countProcesses counts the host's processes owned by uid.
func countProcesses(uid int) int { return processOwners()[uint32(uid)] }

// cgroups is where per-run cgroups are made: the parent directories of
// the memory and pids controllers ("" for one not available).
type cgroups struct {
	v2           bool
	memory, pids string
	desc         string
}

var (
	cgroupsOnce sync.Once
	cgroupsHost *cgroups
	cgroupsWhy  string
	cgroupSeq   atomic.Int64
)

// hostCgroups detects, once per process, whether runs can get cgroups of
// their own: as root, on cgroup v2 when memory and pids can be enabled for
// children of dsbuild's cgroup (at the root of the hierarchy) or of a
// sibling of it, else on cgroup v1 when the memory or pids hierarchy takes
// a child of dsbuild's cgroup. It returns nil and why when neither does.
func hostCgroups() (*cgroups, string) {
	cgroupsOnce.Do(func() {
		if os.Geteuid() != 0 {
			cgroupsWhy = "dsbuild is not root"
			return
		}
		own, err := ownCgroups()
		if err != nil {
			cgroupsWhy = err.Error()
			return
		}
		var why2 string
		if cg, err := cgroupV2(own[""]); err == nil {
			cgroupsHost = cg
		} else {
			why2 = err.Error()
			cg, err := cgroupV1(own)
			if err != nil {
				cgroupsWhy = why2 + "; " + err.Error()
				return
			}
			cgroupsHost = cg
		}
		for _, dir := range []string{cgroupsHost.memory, cgroupsHost.pids} {
			if dir != "" {
				removeStaleGroups(dir)
			}
		}
	})
	return cgroupsHost, cgroupsWhy
}

// ownCgroups reads /proc/self/cgroup: controller name -> path ("" for the
// v2 hierarchy).
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	own := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			own[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	return own, nil
}

const cgroupRoot = "/sys/fs/cgroup"

func cgroupV2(path string) (*cgroups, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, errors.New("cgroup v2: " + cgroupRoot + " is not a cgroup2 mount")
	}
	if path == "" {
		return nil, errors.New("cgroup v2: dsbuild's cgroup is unknown")
	}
	own := filepath.Join(cgroupRoot, path)
	var parent string
	if path == "/" {
		// The root cgroup may have processes and enable controllers.
		if err := enableControllers(own); err != nil {
			return nil, err
		}
		parent = own
	} else {
		// A cgroup with processes cannot enable controllers for children
		// ("no internal processes"); make a parent for runs beside it.
		removeStaleGroups(filepath.Dir(own))
		parent = filepath.Join(filepath.Dir(own), fmt.Sprintf("dsbuild-runs-%d", os.Getpid()))
		if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		if err := enableControllers(parent); err != nil {
			os.Remove(parent)
			return nil, err
		}
	}
	cg := &cgroups{v2: true, memory: parent, pids: parent, desc: "cgroup v2 (memory, pids) under " + parent}
	if err := probe(cg); err != nil {
		return nil, err
	}
	return cg, nil
}

func enableControllers(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +pids"), 0); err != nil {
		return fmt.Errorf("cgroup v2: enabling memory and pids in %s: %w", dir, err)
	}
	return nil
}

func cgroupV1(own map[string]string) (*cgroups, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cg := &cgroups{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent dev root mountpoint opts ... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(qf[2], ",") {
			if opt != "memory" && opt != "pids" {
				continue
			}
			path, ok := own[opt]
			if !ok {
				continue
			}
			rel, err := filepath.Rel(pf[3], path)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			dir := filepath.Join(pf[4], rel)
			if opt == "memory" {
				cg.memory = dir
			} else {
				cg.pids = dir
			}
		}
	}
	var names []string
	for _, c := range []struct {
		name string
		dir  *string
	}{{"memory", &cg.memory}, {"pids", &cg.pids}} {
		if *c.dir == "" {
			continue
		}
		one := &cgroups{}
		if c.name == "memory" {
			one.memory = *c.dir
		} else {
			one.pids = *c.dir
		}
		if probe(one) != nil {
			*c.dir = ""
			continue
		}
		names = append(names, c.name)
	}
	if len(names) == 0 {
		return nil, errors.New("cgroup v1: no writable memory or pids hierarchy")
	}
	cg.desc = "cgroup v1 (" + strings.Join(names, ", ") + ")"
	return cg, nil
}

// probe makes and removes a run cgroup.
func probe(cg *cgroups) error {
	g, err := cg.create(Limits{}.WithDefaults())
	if err != nil {
		return err
	}
	g.destroy()
	return nil
}

// removeStaleGroups removes the run cgroups (dsbuild-<pid>-<n>) and v2
// parents of run cgroups (dsbuild-runs-<pid>) in parent that dsbuild
// processes now gone left.
func removeStaleGroups(parent string) {
	des, _ := os.ReadDir(parent)
	for _, de := range des {
		rest, ok := strings.CutPrefix(de.Name(), "dsbuild-")
		if !ok || !de.IsDir() {
			continue
		}
		rest, runs := strings.CutPrefix(rest, "runs-")
		pid, err := strconv.Atoi(strings.Split(rest, "-")[0])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		dir := filepath.Join(parent, de.Name())
		if runs {
			removeStaleGroups(dir)
		}
		g := &runGroup{dirs: []string{dir}, fd: -1}
		g.destroy()
	}
}

// runGroup is the cgroup of one run (one directory per hierarchy on v1).
type runGroup struct {
	v2        bool
	mem, pids string   // where the events are read ("" when not used)
	dirs      []string // every directory of the group
	parents   []string // v1: where the forking thread goes back to
	fd        int      // v2: the group's directory, for clone3
}

// create makes a run's cgroup with the memory and process limits of l.
func (c *cgroups) create(l Limits) (*runGroup, error) {
	name := fmt.Sprintf("dsbuild-%d-%d", os.Getpid(), cgroupSeq.Add(1))
	g := &runGroup{v2: c.v2, fd: -1}
	fail := func(err error) (*runGroup, error) {
		g.destroy()
		return nil, fmt.Errorf("sandbox cgroup: %w", err)
	}
	mk := func(parent string) (string, error) {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", err
		}
		g.dirs = append(g.dirs, dir)
		g.parents = append(g.parents, parent)
		return dir, nil
	}
	write := func(dir, file, val string, optional bool) error {
		err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0)
		if optional && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	mem := strconv.FormatInt(l.MemoryBytes, 10)
	// The sandbox's processes and bubblewrap itself, which stays outside
	// the sandbox's pid namespace.
	pids := strconv.Itoa(l.Processes + 1)
	if c.v2 {
		dir, err := mk(c.memory)
		if err != nil {
			return fail(err)
		}
		g.mem, g.pids = dir, dir
		for _, w := range []struct {
			file, val string
			optional  bool
		}{{"memory.max", mem, false}, {"memory.swap.max", "0", true}, {"pids.max", pids, false}} {
			if err := write(dir, w.file, w.val, w.optional); err != nil {
				return fail(err)
			}
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		g.fd = fd
		return g, nil
	}
	if c.memory != "" {
		dir, err := mk(c.memory)
		if err != nil {
			return fail(err)
		}
		g.mem = dir
		if err := write(dir, "memory.limit_in_bytes", mem, false); err != nil {
			return fail(err)
		}
		if err := write(dir, "memory.memsw.limit_in_bytes", mem, true); err != nil {
			return fail(err)
		}
	}
	if c.pids != "" {
		dir, err := mk(c.pids)
		if err != nil {
			return fail(err)
		}
		g.pids = dir
		if err := write(dir, "pids.max", pids, false); err != nil {
			return fail(err)
		}
	}
	return g, nil
}

// start starts cmd inside g, so that nothing it runs escapes g: on v2 by
// clone3 into the group, on v1 by forking from a thread moved into the
// group for the while.
func (g *runGroup) start(cmd *exec.Cmd) error {
	if g.v2 {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, g.fd
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := []byte(strconv.Itoa(unix.Gettid()))
		back := func() bool {
			ok := true
			for _, p := range g.parents {
				if os.WriteFile(filepath.Join(p, "tasks"), tid, 0) != nil {
					ok = false
				}
			}
			return ok
		}
		for _, d := range g.dirs {
			if err := os.WriteFile(filepath.Join(d, "tasks"), tid, 0); err != nil {
				if back() {
					runtime.UnlockOSThread()
				}
				errc <- fmt.Errorf("sandbox cgroup: %w", err)
				return
			}
		}
		err := cmd.Start()
		if !back() {
			// The thread stays locked and ends with this goroutine; the
			// process it started (whose parent-death signal that fires)
			// must not run half in dsbuild's cgroup.
			if err == nil {
				cmd.Process.Kill()
				cmd.Wait()
				err = errors.New("sandbox cgroup: could not leave the run's cgroup after starting it")
			}
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// events returns the group's OOM kills and refused forks so far.
func (g *runGroup) events() (oomKills, forkFails int64) {
	if g.mem != "" {
		f := "memory.oom_control"
		if g.v2 {
			f = "memory.events"
		}
		oomKills = readCounter(filepath.Join(g.mem, f), "oom_kill")
	}
	if g.pids != "" {
		forkFails = readCounter(filepath.Join(g.pids, "pids.events"), "max")
	}
	return oomKills, forkFails
}

// readCounter reads the value of "name N" in a cgroup's flat-keyed file.
func readCounter(file, name string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(" "))
		if ok && string(k) == name {
			n, _ := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return n
		}
	}
	return 0
}

// cgroupDrain bounds how long destroy waits for a group's processes to go.
const cgroupDrain = 30 * time.Second

// destroy kills whatever is left in g, waits (bounded) until it is empty
// and removes it. It reports whether g was emptied and removed.
func (g *runGroup) destroy() bool {
	if g.fd >= 0 {
		unix.Close(g.fd)
		g.fd = -1
	}
	deadline := time.Now().Add(cgroupDrain)
	delay := time.Millisecond
	for {
		var left []int
		for _, d := range g.dirs {
			left = append(left, groupProcs(d)...)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return false
		}
		for _, d := range g.dirs {
			os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0) // v2
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
	ok := true
	for i := len(g.dirs) - 1; i >= 0; i-- {
		if err := os.Remove(g.dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			ok = false
		}
	}
	return ok
}

// groupProcs lists the processes in the cgroup dir, less this one (on v1
// it is listed while one of its threads forks a run there).
func groupProcs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// The watcher of a running sandbox (monitor) must cost little next to the
// program it watches. Per tick (monitorTick) it reads two small cgroup
// files (OOM kills, refused forks) and statfs's the work directory's file
// system; it walks the run's directory only when statfs shows the file
// system grew by half of what the workspace has left since the last walk,
// or when an interval that starts at workspaceFirst and doubles up to
// workspaceMax has passed, and never sooner than walkGap times the last
// walk's duration after it (so walks take at most 2% of a CPU). Without a pids cgroup (as root) it counts the host's
// processes of the run's uid, first after 100 ms and then at doubling
// intervals up to 2 s; RLIMIT_NPROC bounds them meanwhile.
const (
	monitorTick    = 100 * time.Millisecond
	workspaceFirst = 200 * time.Millisecond
	workspaceMax   = 5 * time.Second
	processesMax   = 2 * time.Second
	walkGap        = 50
)

// monitor watches a running sandbox until stop is closed, and calls w.hit
// when it reaches a limit; the run's cgroup events are read once more when
// stop closes, so a limit the run hit just before it ended is not missed.
func (r *Runner) monitor(stop <-chan struct{}, w *watch, ws string, uid int, l Limits) {
	var g *runGroup
	if v, ok := r.groups.Load(uid); ok {
		g = v.(*runGroup)
	}
	cgroupHit := func() bool {
		if g == nil {
			return false
		}
		oom, forks := g.events()
		switch {
		case oom > 0:
			w.hit(LimitMemory)
		case forks > 0:
			w.hit(LimitProcesses)
		default:
			return false
		}
		return true
	}
	countProcs := r.asRoot && (g == nil || g.pids == "")
	procsEvery := monitorTick
	nextProcs := time.Now().Add(procsEvery)
	du := newUsageWatch(filepath.Dir(ws), l.WorkspaceBytes)
	tick := time.NewTicker(monitorTick)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			cgroupHit()
			return
		case <-tick.C:
		}
		if cgroupHit() {
			return
		}
		now := time.Now()
		if countProcs && !now.Before(nextProcs) {
			if countProcesses(uid) >= l.Processes {
				w.hit(LimitProcesses)
				return
			}
			procsEvery = min(2*procsEvery, processesMax)
			nextProcs = now.Add(procsEvery)
		}
		if du.over(now) {
			w.hit(LimitWorkspace)
			return
		}
	}
}

// usageWatch decides when to walk a run's directory (see monitor).
type usageWatch struct {
	dir      string
	max      int64
	every    time.Duration
	next     time.Time
	lastWalk time.Time
	walkCost time.Duration
	lastSize int64
	lastUsed int64
	usedOK   bool
}

func newUsageWatch(dir string, max int64) *usageWatch {
	now := time.Now()
	return &usageWatch{dir: dir, max: max, every: workspaceFirst, next: now.Add(workspaceFirst), lastWalk: now}
}

// over reports whether the directory is over the limit, walking it only
// when it is due.
func (u *usageWatch) over(now time.Time) bool {
	used, ok := fsUsed(u.dir)
	due := !now.Before(u.next)
	if !due && ok && u.usedOK && used-u.lastUsed > (u.max-u.lastSize)/2 && now.Sub(u.lastWalk) >= walkGap*u.walkCost {
		due = true
	}
	if !due {
		return false
	}
	t0 := time.Now()
	size, over := dirSize(u.dir, u.max)
	u.walkCost = time.Since(t0)
	u.lastWalk, u.lastSize, u.lastUsed, u.usedOK = now, size, used, ok
	u.every = min(2*u.every, workspaceMax)
	u.next = now.Add(max(u.every, walkGap*u.walkCost))
	return over
}

// fsUsed is what the file system holding dir uses, as the workspace limit
// counts it (bytes plus entryOverhead per inode).
func fsUsed(dir string) (int64, bool) {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0, false
	}
	return int64(st.Blocks-st.Bfree)*int64(st.Bsize) + int64(st.Files-st.Ffree)*entryOverhead, true
}

var errOver = errors.New("over")

// dirSize returns the size of the tree at dir as the workspace limit
// counts it, and whether it is over max (the walk stops as soon as it is).
func dirSize(dir string, max int64) (int64, bool) {
	var size int64
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == dir {
			return nil
		}
		size += entryOverhead
		if de.Type().IsRegular() {
			if fi, err := de.Info(); err == nil {
				size += fi.Size()
			}
		}
		if size > max {
			return errOver
		}
		return nil
	})
	return size, err == errOver
}

// held returns every uid of the blocks the pool holds.
func (p *uidPool) held() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var uids []int
	for _, b := range p.blocks {
		for u := range uidBlockSize {
			uids = append(uids, hostUIDBase+b*uidBlockSize+u)
		}
	}
	return uids
}
