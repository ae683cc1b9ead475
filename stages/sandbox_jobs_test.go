package stages

import (
	"testing"

	"github.com/dsbuild/dsbuild/build"
	"github.com/dsbuild/dsbuild/cache"
)

// The build's -j bounds the sandbox runner's slots, so kinds that fan out
// runs inside one node do not add to it.
func TestSandboxRunnerFollowsBuildJobs(t *testing.T) {
	st, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, jobs := range []int{1, 3} {
		c := &build.Call{Session: &build.Session{Store: st, Jobs: jobs}}
		r, err := Sandbox(c)
		if err != nil {
			t.Fatal(err)
		}
		if r.Jobs() != jobs {
			t.Errorf("-j %d: the sandbox runner has %d slots", jobs, r.Jobs())
		}
	}
}
