package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
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
	// MemoryBytes is the address-space limit of each process (RLIMIT_AS).
	MemoryBytes int64 `json:"memory" yaml:"memory"`
	// Processes is the most processes (and threads) the run may have at
	// once (RLIMIT_NPROC of a uid of its own).
	Processes int `json:"processes" yaml:"processes"`
	// OutputBytes is the most bytes captured from each of stdout and
	// stderr; a run that writes more is killed and its output truncated
	// with a marker.
	OutputBytes int64 `json:"output" yaml:"output"`
	// WorkspaceBytes bounds the workspace (/testbed) after and during the
	// run, the size of any one file written (RLIMIT_FSIZE) and the size of
	// the tmpfs at /tmp and /dev/shm.
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
