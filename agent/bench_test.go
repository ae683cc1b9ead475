package agent

import (
	"context"
	"testing"

	"github.com/dsbuild/dsbuild/llm/llmtest"
)

// BenchmarkReplayRollout measures a fully memoised 5-step rollout (model
// replies and sandbox runs from the store): the cost of resuming or
// re-running a finished rollout.
func BenchmarkReplayRollout(b *testing.B) {
	env := setup(b)
	task := calcTask(b, env)
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(byStep(solvingModel))
	pol := ModelPolicy{Client: newClient(b, env.Store, srv), Sample: 100}
	if _, err := Run(context.Background(), env, task, pol, Limits{}); err != nil {
		b.Fatal(err)
	}
	srv.ResetCounters()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := Run(context.Background(), env, task, pol, Limits{})
		if err != nil || r.ModelCalls != 0 {
			b.Fatal(err, r.ModelCalls)
		}
	}
	b.StopTimer()
	if srv.Requests() != 0 {
		b.Fatalf("replay made %d model requests", srv.Requests())
	}
}
