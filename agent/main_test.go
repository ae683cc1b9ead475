package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/internal/testenv"
	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/sandbox"
	"github.com/dsbuild/dsbuild/schema"
)

// fixture is one store, sandbox runner and Debian image shared by the
// package's tests (the image is unpacked once).
var fixture struct {
	sync.Mutex
	dir    string
	store  *cache.Store
	runner *sandbox.Runner
	image  schema.Image
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.store != nil {
		fixture.store.Close()
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

func setup(tb testing.TB) Env {
	tb.Helper()
	fixture.Lock()
	defer fixture.Unlock()
	if fixture.runner == nil {
		dir, err := os.MkdirTemp("", "agent-test-")
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil { // the sandbox uid must reach it
			tb.Fatal(err)
		}
		st, err := cache.Open(dir)
		if err != nil {
			tb.Fatal(err)
		}
		r, err := sandbox.New(st, sandbox.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		fixture.dir, fixture.store, fixture.runner = dir, st, r
		fixture.image = testenv.Image(tb, st)
		if _, err := r.Rootfs(fixture.image); err != nil {
			tb.Fatal(err)
		}
	}
	return Env{Store: fixture.store, Sandbox: fixture.runner, SandboxLimits: sandbox.Limits{Timeout: 60 * time.Second}}
}

// The buggy project: total() skips the last element.
const calcPy = `def add(a, b):
    return a + b


def total(xs):
    """Return the sum of xs."""
    s = 0
    for i in range(len(xs) - 1):
        s += xs[i]
    return s
`

const testCalcPy = `from calc import add, total


def test_add():
    assert add(2, 3) == 5


def test_total():
    assert total([1, 2, 3]) == 6


def test_total_empty():
    assert total([]) == 0
`

var pytestCmd = []string{"python3", "-m", "pytest", "-rA", "-p", "no:cacheprovider"}

func calcTask(tb testing.TB, env Env) Task {
	tb.Helper()
	ws, err := env.Store.PutFiles(map[string]cache.File{
		"calc.py":            {Data: []byte(calcPy)},
		"tests/test_calc.py": {Data: []byte(testCalcPy)},
	})
	if err != nil {
		tb.Fatal(err)
	}
	system, user, err := Prompt(context.Background(), "fix", map[string]string{"problem_statement": "total([1, 2, 3]) returns 3 instead of 6."})
	if err != nil {
		tb.Fatal(err)
	}
	return Task{
		InstanceID: "calc-1",
		Repo:       "calc",
		TaskType:   "fix",
		Image:      fixture.image,
		Workspace:  ws,
		Prompt:     user,
		System:     system,
		Protected:  []string{"tests/"},
		TestCmd:    pytestCmd,
		FailToPass: []string{"tests/test_calc.py::test_total"},
		PassToPass: []string{"tests/test_calc.py::test_add", "tests/test_calc.py::test_total_empty"},
	}
}

// byStep answers each request with replies[i], where i is the number of
// assistant messages already in the conversation, so the answer depends on
// the conversation rather than on arrival order. Past the end it finishes.
func byStep(replies []llmtest.Reply) func(r *llmtest.Request) llmtest.Reply {
	return func(r *llmtest.Request) llmtest.Reply {
		i := 0
		for _, m := range r.Messages {
			if m.Role == "assistant" {
				i++
			}
		}
		if i < len(replies) {
			rep := replies[i]
			for j := range rep.ToolCalls {
				if rep.ToolCalls[j].ID == "" {
					rep.ToolCalls[j].ID = fmt.Sprintf("call_%d_%d", i, j)
				}
			}
			return rep
		}
		return call(fmt.Sprintf("call_%d_0", i), ToolFinish, `{}`)
	}
}

func call(id, name, args string) llmtest.Reply {
	r := llmtest.Call(name, args)
	r.ToolCalls[0].ID = id
	return r
}

func jsonArgs(v map[string]any) string {
	b, err := jsonMarshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func newClient(tb testing.TB, store *cache.Store, srv *llmtest.Server) *llm.Client {
	tb.Helper()
	c, err := llm.New(store, "teacher", llm.Profile{
		BaseURL:            srv.URL(),
		Model:              "test-model",
		PriceInputPerMTok:  1,
		PriceOutputPerMTok: 2,
	}, llm.Options{RetryBaseDelay: time.Millisecond, RetryMaxDelay: 10 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
