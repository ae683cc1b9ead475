// Package sandbox runs programs inside an image's root file system with
// bubblewrap, isolated and bounded, as memoised pure functions:
//
//	(image runtime layers, image env and working dir, workspace tree,
//	 argv, env, dir, limits, stdin)
//	    -> (exit code, stdout, stderr, output tree, duration, limit hit)
//
// A run is keyed by what it can observe of its image, not by the image's
// manifest digest: labels and annotations (provenance, say) change the
// digest without changing anything a run sees, and must not make every run
// of the image, and every model call whose prompt quotes a run's output,
// happen again. Results are first-writer-wins: when two runners (in one
// process or several) run the same key at once, both return the result
// stored first.
//
// It owns the unpacked root file systems (<store>/rootfs/<hex>), the
// temporary workspaces of running programs and the memo entries of runs. It
// must not know about stages, agents or recipes, and imports only the
// project's cache, schema and internal/reap packages.
//
// Isolation: the image is mounted read-only at /, the workspace read-write at
// /testbed (Spec.Dir), /tmp and /dev/shm (see Limits.WorkspaceBytes), a
// minimal /dev and a fresh /proc. The run gets new user, pid, ipc, uts, cgroup and
// network namespaces (only loopback, which is not the host's), no
// capabilities, uid and gid 1000 inside, --die-with-parent and a session of
// its own.
//
// The program runs as a child of the image's /bin/sh (which must exist),
// itself pid 1 of the namespace, so the program's signals behave as usual
// and, when it ends, the kernel kills whatever it left running.
//
// Limits: rlimits set with prlimit(1) on bubblewrap (CPU, address space,
// processes, file size); a wall-clock timeout that kills the sandbox's pid 1
// (and with it the whole pid namespace); captured output cut at a bound (the
// run is killed); the workspace size, watched while the run goes and checked
// after it. At most Options.Jobs runs go at once (a build passes its -j).
//
// When dsbuild runs as root, bubblewrap runs as an unprivileged host uid of
// the run's own, so RLIMIT_NPROC is enforced by the kernel (it is not for
// uid 0) and counts only that run's processes. Uids come from blocks that a
// process locks (flock on /var/tmp/dsbuild-uids/<block>), so two dsbuild
// processes never share one, and a uid is handed to a run only once no
// process runs as it (those of a killed fork bomb may take a while to go).
// As an ordinary user the user's own uid is used, and RLIMIT_NPROC counts
// all of the user's processes.
//
// Where the machine allows it (root, and a cgroup v2 hierarchy with memory
// and pids for our children, or writable cgroup v1 memory or pids
// hierarchies; see Runner.Bounds), each run also gets a cgroup of its own,
// joined before bubblewrap starts: memory.max (v1: memory.limit_in_bytes)
// of Limits.MemoryBytes bounds the whole run, its tmpfs /tmp and /dev/shm
// included, and pids.max bounds its processes. Without a memory cgroup,
// /tmp and /dev/shm are directories on disk next to the workspace and count
// against its limit instead of taking RAM; memory is then bounded per
// process only.
//
// Which limit a run hit is known for timeout, output and workspace, and for
// memory and processes where there is a cgroup (an OOM kill, a refused
// fork; the run is stopped at either). For cpu it is read from the exit
// status (SIGXCPU, or SIGKILL after the CPU time was used). Without a
// cgroup, rlimit failures of memory and processes leave no record, so they
// are inferred from the usual messages in stderr (MemoryError, "Cannot
// fork", EAGAIN) and, as root, from the process count.
//
// Wall-clock timeouts and the memo: a run's result is memoised as a pure
// function of its key, but whether a run hits its wall-clock timeout
// depends on how busy the machine is, so the timeout is treated as a hang
// detector with slack, not as a result:
//
//   - A run that hits the timeout (LimitHit "timeout") is run once more
//     with SlackFactor (4) times the timeout. If that run ends in time, its
//     result is returned and memoised under the original key, so a quiet
//     and a busy machine agree on the memo; a program that needs between 1
//     and 4 times its timeout costs up to 5 times it, once.
//   - If the slack run also hits the timeout, it is returned with
//     LimitHit "timeout" and Provisional set, nothing is memoised, and
//     cache.MarkProvisional is called on the ctx of every caller (the one
//     that ran it and those whose identical runs were merged with it), so
//     the work that used it is not memoised as final either and a later
//     build runs it again.
//   - A memo entry holding a wall-clock timeout (written before this rule)
//     reads as a miss, as does one that reaches any blob no longer in the
//     store (cache.Store.Missing): a file of its output tree, say.
//
// Every other limit (cpu, memory, processes, output, workspace) is a
// property of the program, not of the machine's load, and is memoised like
// an ordinary result. Callers that bound a run to catch endless loops, such
// as test runs of candidate tasks, should therefore bound it by CPU time
// (Limits.CPUSeconds, RLIMIT_CPU) and keep a generous wall-clock timeout as
// a backstop for programs that hang without using the CPU.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
	"golang.org/x/sync/singleflight"
)

// DefaultDir is where the workspace is mounted when Spec.Dir is empty.
const DefaultDir = "/testbed"

// SlackFactor is how many times its wall-clock timeout a run that hit it
// gets when it is run again (see the package doc).
const SlackFactor = 4

// SandboxUID and SandboxGID are the ids the program runs as inside.
const (
	SandboxUID = 1000
	SandboxGID = 1000
)

// hostUIDBase is the first host uid used for runs when dsbuild is root (see
// uidPool: blocks of uidBlockSize uids, each held by one process).
const hostUIDBase = 1_900_000_000

// MaxJobs is the most runs one Runner has going at once.
const MaxJobs = 256

// Options configure a Runner.
type Options struct {
	// NoCache makes every Run execute, ignoring memoised results (results
	// are still recorded, except provisional ones). For benchmarks and
	// forced re-runs.
	NoCache bool
	// Jobs is the most runs at once; 0 means the number of CPUs. At most
	// MaxJobs. A build passes its -j, so that one limit bounds every run of
	// the build, however its stage kinds fan out.
	Jobs int
	// Recheck is the fraction (0 to 1) of memoised runs that run again and
	// must end the same way (see Runner.recheck), chosen by key.
	Recheck float64
	// WorkDir holds unpacked images and workspaces of running programs. It
	// must be reachable by the sandbox's host uid. Default: the store's
	// root if every directory above it is searchable by others, else
	// /var/tmp/dsbuild-sandbox/<hash of the store root>.
	WorkDir string
}

// Runner runs Specs against one store.
type Runner struct {
	store   *cache.Store
	opts    Options
	bwrap   string
	prlimit string
	workDir string
	asRoot  bool
	slots   chan int
	// cg is where runs get cgroups (nil: nowhere, cgWhy says why); groups
	// maps the host uid of a running sandbox to its *runGroup.
	cg     *cgroups
	cgWhy  string
	groups sync.Map
	// flight merges identical runs under way at once.
	flight singleflight.Group
	// testbedLayers remembers, per layer digest, whether the layer only
	// fills /testbed (see runtimeLayers).
	testbedLayers sync.Map
}

// workDirFor is where a Runner on store keeps unpacked roots and
// workspaces: Options.WorkDir, else the store's root when the sandbox's
// unprivileged uid can reach it, else a directory under /var/tmp named
// after the store.
func workDirFor(store *cache.Store, opts Options, asRoot bool) (string, error) {
	if opts.WorkDir != "" {
		return opts.WorkDir, nil
	}
	if !asRoot || searchableByOthers(store.Root()) {
		return store.Root(), nil
	}
	k, err := cache.KeyOf(store.Root())
	if err != nil {
		return "", err
	}
	return filepath.Join(sharedWorkBase, k.Short()), nil
}

// New returns a Runner that keeps its results in store. It fails if
// bubblewrap or prlimit is not installed, saying what to install.
func New(store *cache.Store, opts Options) (*Runner, error) {
	if store == nil {
		return nil, errors.New("sandbox: no store")
	}
	bw, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, errors.New("bubblewrap (bwrap) not found: install it with `apt-get install bubblewrap`")
	}
	pl, err := exec.LookPath("prlimit")
	if err != nil {
		return nil, errors.New("prlimit not found: install it with `apt-get install util-linux`")
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.Jobs > MaxJobs {
		return nil, fmt.Errorf("sandbox: jobs %d: at most %d", opts.Jobs, MaxJobs)
	}
	r := &Runner{store: store, opts: opts, bwrap: bw, prlimit: pl, asRoot: os.Geteuid() == 0}
	r.cg, r.cgWhy = hostCgroups()
	wd, err := workDirFor(store, opts, r.asRoot)
	if err != nil {
		return nil, err
	}
	r.workDir = wd
	if err := os.MkdirAll(filepath.Join(r.workDir, "work"), 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if filepath.Dir(wd) == sharedWorkBase {
		noteStoreRoot(wd, store.Root())
	}
	if r.asRoot && !searchableByOthers(r.workDir) {
		return nil, fmt.Errorf("sandbox: work directory %s is not reachable by the sandbox's unprivileged uid; give a directory whose parents are all searchable (chmod o+x) in Options.WorkDir", r.workDir)
	}
	r.slots = make(chan int, opts.Jobs)
	for i := 0; i < opts.Jobs; i++ {
		r.slots <- i
	}
	return r, nil
}

// Jobs is the most runs the Runner has going at once.
func (r *Runner) Jobs() int { return r.opts.Jobs }

// Bounds says how this machine bounds a run's memory and processes: by a
// cgroup per run, or per process only (and why).
func (r *Runner) Bounds() string {
	if r.cg == nil {
		return "no cgroups (" + r.cgWhy + "): memory is bounded per process (RLIMIT_AS), processes by RLIMIT_NPROC, /tmp and /dev/shm are on disk and count against the workspace limit"
	}
	var b []string
	if r.cg.memory != "" {
		b = append(b, "memory per run (memory cgroup, /tmp and /dev/shm included)")
	} else {
		b = append(b, "memory per process (RLIMIT_AS; /tmp and /dev/shm are on disk and count against the workspace limit)")
	}
	if r.cg.pids != "" {
		b = append(b, "processes per run (pids cgroup)")
	} else {
		b = append(b, "processes by RLIMIT_NPROC")
	}
	return r.cg.desc + ": " + strings.Join(b, ", ")
}

// ramTmp reports whether /tmp and /dev/shm are tmpfs (in RAM, bounded by
// the run's memory cgroup) rather than directories on disk.
func (r *Runner) ramTmp() bool { return r.cg != nil && r.cg.memory != "" }

// start starts cmd, the sandbox of the run of host uid, in the run's
// cgroup if it has one.
func (r *Runner) start(cmd *exec.Cmd, uid int) error {
	if v, ok := r.groups.Load(uid); ok {
		return v.(*runGroup).start(cmd)
	}
	return cmd.Start()
}

// searchableByOthers reports whether every directory from / down to dir has
// the search bit for others.
func searchableByOthers(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			// Not created yet: judge by the parents.
			if d == filepath.Dir(d) {
				return false
			}
			continue
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// Spec is one run.
type Spec struct {
	// Image is the root file system, mounted read-only at /. The run's key
	// takes the image's runtime layers (its layers less those confined to
	// /testbed, which the workspace shadows), Env and WorkingDir; not its
	// Digest or Ref, which change with labels and annotations that the run
	// cannot observe. The layer blobs must be in the store to compute the
	// key.
	Image schema.Image
	// Workspace is the tree mounted read-write at Dir; zero means empty.
	Workspace cache.Digest
	// Argv is the program and its arguments; argv[0] is looked up in PATH.
	Argv []string
	// Env is KEY=VALUE pairs added to (and overriding) the image's Env.
	// PATH and HOME get defaults when neither sets them.
	Env []string
	// Dir is where the workspace is mounted and the working directory;
	// default /testbed.
	Dir string
	// Limits bound the run; zero fields take DefaultLimits.
	Limits Limits
	// Stdin is the program's standard input (nil: empty).
	Stdin []byte
}

// Result is what a run produced. A program that fails or hits a limit gives
// a normal Result; only infrastructure failures are errors.
type Result struct {
	// ExitCode is the program's exit status, 128+N if killed by signal N
	// (137 when the sandbox killed it for a limit).
	ExitCode int
	// Stdout and Stderr are the captured output, each at most
	// Limits.OutputBytes plus a truncation marker.
	Stdout, Stderr []byte
	// Output is the workspace tree after the run; zero when the workspace
	// limit was hit (the oversized tree is not stored).
	Output cache.Digest
	// Duration is the wall-clock time of the run (of the original run when
	// the result came from the memo).
	Duration time.Duration
	// LimitHit names the limit the run hit ("" for none): "timeout",
	// "cpu", "memory", "processes", "output" or "workspace".
	LimitHit string
	// Cached is true when the result came from the memo and nothing ran.
	Cached bool
	// Provisional is true when the run hit its wall-clock timeout even
	// when run again with slack: the result may depend on the machine's
	// load, so it is not memoised, and cache.MarkProvisional was called on
	// the caller's ctx (see the package doc).
	Provisional bool
	// Key is the run's memo key.
	Key cache.Key
}

// runKey is what a run's memo key is computed from.
type runKey struct {
	Kind      string       `json:"kind"`
	Image     imageKey     `json:"image"`
	Workspace cache.Digest `json:"workspace"`
	Argv      []string     `json:"argv"`
	Env       []string     `json:"env"`
	Dir       string       `json:"dir"`
	Limits    Limits       `json:"limits"`
	Stdin     cache.Digest `json:"stdin"`
}

// imageKey is the part of an image a run can observe: the layers of the
// root file system it runs in, and the image's environment and working
// directory. The manifest digest is deliberately absent (see Spec.Image).
type imageKey struct {
	Layers     []string `json:"layers"`
	Env        []string `json:"env"`
	WorkingDir string   `json:"working_dir"`
}

// record is a Result as stored in the memo.
type record struct {
	ExitCode   int          `json:"exit_code"`
	Stdout     cache.Digest `json:"stdout"`
	Stderr     cache.Digest `json:"stderr"`
	Output     cache.Digest `json:"output,omitzero"`
	DurationNS int64        `json:"duration_ns"`
	LimitHit   string       `json:"limit_hit,omitempty"`
}

// normalize checks s and fills in defaults.
func (s Spec) normalize() (Spec, error) {
	if _, err := cache.ParseDigest(s.Image.Digest); err != nil {
		return s, fmt.Errorf("sandbox: image digest %q: %w", s.Image.Digest, err)
	}
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return s, errors.New("sandbox: empty argv: nothing to run")
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return s, fmt.Errorf("sandbox: env entry %q: want KEY=VALUE", e)
		}
	}
	if s.Dir == "" {
		s.Dir = DefaultDir
	}
	if !path.IsAbs(s.Dir) || path.Clean(s.Dir) != s.Dir || s.Dir == "/" {
		return s, fmt.Errorf("sandbox: dir %q: want a clean absolute path below /", s.Dir)
	}
	for _, reserved := range []string{"/dev", "/proc", "/tmp"} {
		if s.Dir == reserved || strings.HasPrefix(s.Dir, reserved+"/") {
			return s, fmt.Errorf("sandbox: dir %q: %s is reserved", s.Dir, reserved)
		}
	}
	if err := s.Limits.Validate(); err != nil {
		return s, err
	}
	s.Limits = s.Limits.WithDefaults()
	if s.Env == nil {
		s.Env = []string{}
	}
	return s, nil
}

// Key returns the memo key of s (after defaults are filled in). It depends
// on the image's runtime layers, Env and WorkingDir, not on its digest (see
// Spec.Image), so it reads the headers of the image's layer blobs.
func (r *Runner) Key(s Spec) (cache.Key, error) {
	s, err := s.normalize()
	if err != nil {
		return cache.Key{}, err
	}
	return r.key(s)
}

func (r *Runner) key(s Spec) (cache.Key, error) {
	ws := s.Workspace
	if ws.IsZero() {
		var err error
		if ws, err = r.store.EmptyTree(); err != nil {
			return cache.Key{}, err
		}
	}
	if len(s.Image.Layers) == 0 {
		return cache.Key{}, fmt.Errorf("sandbox: image %s has no layers", s.Image.Digest)
	}
	layers, err := r.runtimeLayers(s.Image.Layers)
	if err != nil {
		return cache.Key{}, fmt.Errorf("sandbox: image %s: %w", s.Image.Digest, err)
	}
	env := s.Image.Env
	if env == nil {
		env = []string{}
	}
	return cache.KeyOf(runKey{
		Kind:      "sandbox.run/v2",
		Image:     imageKey{Layers: layers, Env: env, WorkingDir: s.Image.WorkingDir},
		Workspace: ws,
		Argv:      s.Argv, Env: s.Env, Dir: s.Dir, Limits: s.Limits,
		Stdin: cache.DigestOf(s.Stdin),
	})
}

// Run runs s, or returns its memoised result without starting anything.
// The error is for infrastructure failures (bad spec, missing image, bwrap
// failing to set up, ctx cancelled); such runs are not memoised. A run that
// hits its wall-clock timeout is run again with slack, and is returned
// Provisional, unmemoised, if it hits it again (see the package doc).
func (r *Runner) Run(ctx context.Context, s Spec) (*Result, error) {
	s, err := s.normalize()
	if err != nil {
		return nil, err
	}
	key, err := r.key(s)
	if err != nil {
		return nil, err
	}
	if !r.opts.NoCache {
		if res, ok, err := r.stored(ctx, key); err != nil || ok {
			if err == nil && cache.Sampled(key, r.opts.Recheck) {
				return r.recheck(ctx, s, key, res)
			}
			return res, err
		}
	}
	for {
		// Identical runs under way at once are run once: their outputs
		// (timings, say) could differ, and every caller must see the result
		// that is memoised.
		ran := false
		v, err, _ := r.flight.Do(key.String(), func() (any, error) {
			ran = true
			return r.runOnce(ctx, s, key)
		})
		if err != nil && !ran && ctx.Err() == nil && errors.Is(err, context.Canceled) {
			continue // the run we joined was cancelled by its own caller
		}
		if err != nil {
			return nil, err
		}
		res := *v.(*Result)
		if res.Provisional {
			// Every caller's work used a load-dependent result, the
			// callers merged into this flight included.
			cache.MarkProvisional(ctx, "sandbox run "+key.Short()+" hit the wall-clock timeout")
		}
		if !ran {
			res.Cached = true
			if !res.Provisional {
				r.store.MemoGet(ctx, key) // note the key in this caller's recorder
			}
		}
		return &res, nil
	}
}

// RecheckError reports a memoised run that, run again for Options.Recheck,
// ended otherwise: another exit code, limit or output tree.
type RecheckError struct {
	Key           cache.Key
	Cached, Rerun string // "exit N, limit L, output D"
}

func (e *RecheckError) Error() string {
	return fmt.Sprintf("sandbox: recheck of run %s: memoised %s, but running it again gave %s: the run is not deterministic", e.Key, e.Cached, e.Rerun)
}

// recheck runs s again and compares what a run's users act on (exit code,
// limit hit, output tree) with the memoised result cached; captured output
// is not compared, as it may hold timings. A rerun stopped by the
// wall-clock timeout proves nothing (load may have caused it) and is
// ignored. The memoised result is returned when they agree.
func (r *Runner) recheck(ctx context.Context, s Spec, key cache.Key, cached *Result) (*Result, error) {
	fresh, err := r.executeInSlot(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("sandbox: recheck of run %s %q: %w", key.Short(), s.Argv, err)
	}
	if fresh.LimitHit == LimitTimeout {
		return cached, nil
	}
	summary := func(res *Result) string {
		lim := res.LimitHit
		if lim == "" {
			lim = "none"
		}
		return fmt.Sprintf("exit %d, limit %s, output %s", res.ExitCode, lim, res.Output.Short())
	}
	if a, b := summary(cached), summary(fresh); a != b {
		return nil, &RecheckError{Key: key, Cached: a, Rerun: b}
	}
	return cached, nil
}

// stored returns the memoised result of key, if there is a readable one.
func (r *Runner) stored(ctx context.Context, key cache.Key) (*Result, bool, error) {
	d, ok, err := r.store.MemoGet(ctx, key)
	if err != nil || !ok {
		return nil, false, err
	}
	res, err := r.load(d)
	if err != nil {
		return nil, false, nil // an unreadable record is redone
	}
	res.Cached, res.Key = true, key
	return res, true, nil
}

// runOnce executes s and memoises the result, unless another process has
// memoised one for key meanwhile: then that one is returned, so that the
// first result stored is the one everybody sees. With Options.NoCache the
// new result replaces any memoised one and is returned.
//
// A run that hits the wall-clock timeout is run again with SlackFactor
// times the timeout; the second run's result is memoised under key unless
// it hits the timeout too, in which case it is returned as Provisional and
// not memoised.
func (r *Runner) runOnce(ctx context.Context, s Spec, key cache.Key) (*Result, error) {
	res, err := r.executeInSlot(ctx, s)
	if err == nil && res.LimitHit == LimitTimeout {
		slack := s
		slack.Limits.Timeout = slackTimeout(s.Limits.Timeout)
		res, err = r.executeInSlot(ctx, slack)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: run %s %q: %w", key.Short(), s.Argv, err)
	}
	res.Key = key
	if res.LimitHit == LimitTimeout {
		res.Provisional = true
		return res, nil
	}
	return r.save(ctx, key, res)
}

// slackTimeout is the wall-clock timeout of the second run of a run that
// timed out.
func slackTimeout(t time.Duration) time.Duration {
	if t > math.MaxInt64/SlackFactor {
		return math.MaxInt64
	}
	return t * SlackFactor
}

// executeInSlot executes s once a job slot is free.
func (r *Runner) executeInSlot(ctx context.Context, s Spec) (*Result, error) {
	var slot int
	select {
	case slot = <-r.slots:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { r.slots <- slot }()
	return r.execute(ctx, s, slot)
}

// errStale is returned by load for a memoised result that must be redone.
var errStale = errors.New("stale sandbox result")

// load reads the memoised result d. It fails with errStale for a result
// that must not be replayed: one that reaches blobs no longer in the store
// (its output tree, say, in part or whole), or one that hit the wall-clock
// timeout (memoised before such runs became provisional).
func (r *Runner) load(d cache.Digest) (*Result, error) {
	missing, err := r.store.Missing(d)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %d blobs it reaches are missing, %s first", errStale, len(missing), missing[0])
	}
	b, err := r.store.Get(d)
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	if rec.LimitHit == LimitTimeout {
		return nil, fmt.Errorf("%w: it hit the wall-clock timeout", errStale)
	}
	stdout, err := r.store.Get(rec.Stdout)
	if err != nil {
		return nil, err
	}
	stderr, err := r.store.Get(rec.Stderr)
	if err != nil {
		return nil, err
	}
	return &Result{
		ExitCode: rec.ExitCode, Stdout: stdout, Stderr: stderr, Output: rec.Output,
		Duration: time.Duration(rec.DurationNS), LimitHit: rec.LimitHit,
	}, nil
}

// save stores res as the result of key and returns the result that key
// holds afterwards: res, or the result another runner stored first (marked
// Cached), which every caller must use. A first result that cannot be read,
// or is stale (see load), is replaced by res. With Options.NoCache, res
// replaces any stored result.
func (r *Runner) save(ctx context.Context, key cache.Key, res *Result) (*Result, error) {
	so, err := r.store.Put(res.Stdout)
	if err != nil {
		return nil, err
	}
	se, err := r.store.Put(res.Stderr)
	if err != nil {
		return nil, err
	}
	b, err := cache.Canonical(record{
		ExitCode: res.ExitCode, Stdout: so, Stderr: se, Output: res.Output,
		DurationNS: int64(res.Duration), LimitHit: res.LimitHit,
	})
	if err != nil {
		return nil, err
	}
	d, err := r.store.Put(b)
	if err != nil {
		return nil, err
	}
	if r.opts.NoCache {
		return res, r.store.MemoPut(ctx, key, d)
	}
	won, err := r.store.MemoPutFirst(ctx, key, d)
	if err != nil {
		return nil, err
	}
	if won == d {
		return res, nil
	}
	if first, err := r.load(won); err == nil {
		first.Cached, first.Key = true, key
		return first, nil
	}
	return res, r.store.MemoPut(ctx, key, d)
}

// env merges the image's environment, the spec's and defaults; later
// entries override earlier ones with the same key.
func mergeEnv(layers ...[]string) [][2]string {
	var out [][2]string
	idx := map[string]int{}
	for _, l := range layers {
		for _, e := range l {
			k, v, _ := strings.Cut(e, "=")
			if i, ok := idx[k]; ok {
				out[i][1] = v
				continue
			}
			idx[k] = len(out)
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

var defaultEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/tmp",
}

// prepareRun makes a fresh run directory holding the workspace tree
// (testbed) owned by uid and, when /tmp and /dev/shm are on disk, their
// directories (tmp, shm). The workspace limit counts the run directory.
func (r *Runner) prepareRun(s Spec, uid int) (runDir, ws string, err error) {
	runDir, err = os.MkdirTemp(filepath.Join(r.workDir, "work"), "run-")
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			removeAll(runDir)
		}
	}()
	if err := os.Chmod(runDir, 0o755); err != nil {
		return "", "", err
	}
	ws = filepath.Join(runDir, "testbed")
	if s.Workspace.IsZero() {
		err = os.Mkdir(ws, 0o755)
	} else {
		err = r.store.Materialize(s.Workspace, ws)
	}
	if err != nil {
		return "", "", err
	}
	if err := os.Chmod(ws, 0o755); err != nil {
		return "", "", err
	}
	if r.asRoot {
		err := filepath.WalkDir(ws, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, uid)
		})
		if err != nil {
			return "", "", err
		}
	}
	if !r.ramTmp() {
		for _, d := range []string{"tmp", "shm"} {
			p := filepath.Join(runDir, d)
			if err := os.Mkdir(p, 0o755); err != nil {
				return "", "", err
			}
			if r.asRoot {
				if err := os.Lchown(p, uid, uid); err != nil {
					return "", "", err
				}
			}
			if err := os.Chmod(p, 0o1777); err != nil {
				return "", "", err
			}
		}
	}
	return runDir, ws, nil
}

// tidyWorkspace makes everything the run left readable to us, removes what
// a tree cannot hold (fifos, sockets, devices) and returns the size as the
// workspace limit counts it.
func tidyWorkspace(dir string, fix bool) (int64, error) {
	var size int64
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if fix && p != dir {
				// An unreadable directory: open it up and retry once.
				if os.Chmod(p, 0o700) == nil {
					return nil
				}
			}
			return err
		}
		size += entryOverhead
		t := de.Type()
		switch {
		case t.IsDir():
			if fix {
				if fi, err := de.Info(); err == nil && fi.Mode().Perm()&0o700 != 0o700 {
					os.Chmod(p, fi.Mode().Perm()|0o700)
				}
			}
		case t.IsRegular():
			fi, err := de.Info()
			if err != nil {
				return err
			}
			size += fi.Size()
			if fix && fi.Mode().Perm()&0o400 == 0 {
				os.Chmod(p, fi.Mode().Perm()|0o400)
			}
		case t&fs.ModeSymlink != 0:
		default:
			return os.Remove(p)
		}
		return nil
	})
	return size, err
}

// entryOverhead is what each file, directory or symlink costs against the
// workspace limit besides its bytes, so that millions of empty files count.
const entryOverhead = 512

// removeAll removes dir even if the run made parts of it read-only.
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if de != nil && de.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}

// errSetup is returned when bubblewrap failed before starting the program.
type errSetup struct{ stderr string }

func (e *errSetup) Error() string {
	return "bubblewrap could not set up the sandbox: " + strings.TrimSpace(e.stderr)
}

func (r *Runner) execute(ctx context.Context, s Spec, slot int) (*Result, error) {
	rootfs, err := r.RootfsContext(ctx, s.Image)
	if err != nil {
		return nil, err
	}
	if err := ensureMountpoint(rootfs, s.Dir); err != nil {
		return nil, err
	}
	uid := os.Getuid()
	if r.asRoot {
		if uid, err = hostUIDs.acquire(ctx); err != nil {
			return nil, err
		}
	}
	runDir, ws, err := r.prepareRun(s, uid)
	if err != nil {
		if r.asRoot {
			hostUIDs.release(uid, false)
		}
		return nil, fmt.Errorf("preparing workspace: %w", err)
	}
	var group *runGroup
	if r.cg != nil {
		if group, err = r.cg.create(s.Limits); err != nil {
			removeAll(runDir)
			hostUIDs.release(uid, false)
			return nil, err
		}
		r.groups.Store(uid, group)
	}
	defer func() {
		// Nothing of the run may outlive it: its cgroup is emptied before
		// the uid and the directory go back.
		clean := false
		if group != nil {
			r.groups.Delete(uid)
			clean = group.destroy()
		}
		removeAll(runDir)
		if r.asRoot {
			hostUIDs.release(uid, clean)
		}
	}()

	res, err := r.bwrapRun(ctx, s, rootfs, ws, uid)
	if err != nil {
		return nil, err
	}
	size, err := tidyWorkspace(ws, !r.asRoot)
	if err != nil {
		return nil, fmt.Errorf("reading workspace after the run: %w", err)
	}
	if !r.ramTmp() {
		for _, d := range []string{"tmp", "shm"} {
			n, _ := dirSize(filepath.Join(runDir, d), math.MaxInt64)
			size += n
		}
	}
	if size > s.Limits.WorkspaceBytes && res.LimitHit == "" {
		res.LimitHit = LimitWorkspace
	}
	if res.LimitHit != LimitWorkspace {
		if res.Output, err = r.store.Snapshot(ws); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// ensureMountpoint makes sure dir exists as a directory in rootfs so that
// the workspace can be mounted there.
func ensureMountpoint(rootfs, dir string) error {
	rel := strings.TrimPrefix(dir, "/")
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	if fi, err := root.Stat(rel); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("dir %s is not a directory in the image", dir)
		}
		return nil
	}
	if err := root.MkdirAll(rel, 0o755); err != nil {
		return fmt.Errorf("creating mount point %s in the image: %w", dir, err)
	}
	return nil
}

func (r *Runner) bwrapArgs(s Spec, rootfs, ws string) []string {
	l := s.Limits
	// RLIMIT_NPROC counts bubblewrap too (it runs as the host uid outside
	// the sandbox). With a pids cgroup (pids.max is Processes+1, bwrap
	// included) it is only a backstop, well above: the kernel counts a
	// fork against RLIMIT_NPROC before the cgroup charges it, so forks
	// racing at the limit would otherwise be refused by the rlimit, which
	// leaves no record, rather than by the cgroup, which counts them.
	nproc := l.Processes + 1
	if r.cg != nil && r.cg.pids != "" {
		nproc = 2*l.Processes + 16
	}
	args := []string{
		// prlimit sets the rlimits, then execs bwrap, which keeps them.
		fmt.Sprintf("--cpu=%d:%d", l.CPUSeconds, l.CPUSeconds+1),
		fmt.Sprintf("--as=%d", l.MemoryBytes),
		fmt.Sprintf("--nproc=%d", nproc),
		fmt.Sprintf("--fsize=%d", l.WorkspaceBytes),
		"--core=0",
		"--", r.bwrap,
		"--unshare-all", "--unshare-user",
		"--uid", fmt.Sprint(SandboxUID), "--gid", fmt.Sprint(SandboxGID),
		"--disable-userns",
		"--die-with-parent", "--new-session",
		// The image's /bin/sh is pid 1 (see below). bwrap's own init would
		// be left a zombie for the host's init to reap, holding the slot's
		// uid for a while.
		"--as-pid-1",
		"--cap-drop", "ALL",
		"--hostname", "sandbox",
		"--ro-bind", rootfs, "/",
		"--dev", "/dev", "--remount-ro", "/dev",
	}
	if r.ramTmp() {
		tmpSize := fmt.Sprint(l.WorkspaceBytes)
		args = append(args, "--size", tmpSize, "--tmpfs", "/dev/shm",
			"--proc", "/proc",
			"--size", tmpSize, "--tmpfs", "/tmp")
	} else {
		runDir := filepath.Dir(ws)
		args = append(args, "--bind", filepath.Join(runDir, "shm"), "/dev/shm",
			"--proc", "/proc",
			"--bind", filepath.Join(runDir, "tmp"), "/tmp")
	}
	args = append(args,
		"--bind", ws, s.Dir,
		"--chdir", s.Dir,
		"--json-status-fd", "3",
		"--clearenv",
	)
	for _, kv := range mergeEnv(defaultEnv, s.Image.Env, s.Env) {
		args = append(args, "--setenv", kv[0], kv[1])
	}
	// sh waits for the program and exits with its status (128+N when a
	// signal killed it); when sh exits, the kernel kills everything else
	// in the pid namespace. The program itself is not pid 1, so signals
	// behave as usual for it.
	args = append(args, "--", "/bin/sh", "-c", `"$@"`, "sh")
	return append(args, s.Argv...)
}
