package build

import (
	"fmt"
	"sync"

	"github.com/dsbuild/dsbuild/cache"
)

// Session is what every node of one build shares: the recipe, the store,
// the build's options and lazily created services (model clients, sandbox
// runners) that stage kinds set up through Service.
type Session struct {
	Recipe  *Recipe
	Store   *cache.Store
	Offline bool
	// Recheck is the fraction of cache hits to run again and compare (see
	// Options.Recheck); effects with a memo of their own (sandbox runs)
	// honour it too.
	Recheck float64
	// OutDir is where published outputs go.
	OutDir string
	// Jobs is the build's -j (Options.Jobs): the sandbox runner's slots
	// follow it, so that one limit bounds every sandbox run of the build.
	Jobs int
	// Observer receives log lines stages emit with Logf.
	observer Observer
	services sync.Map // name -> *service
}

type service struct {
	once sync.Once
	val  any
	err  error
}

// Logf reports a line of progress for stage (shown on the console, never
// part of any output).
func (s *Session) Logf(stage, format string, args ...any) {
	if s.observer != nil {
		s.observer.Event(Event{Type: EventLog, Stage: stage, Message: fmt.Sprintf(format, args...)})
	}
}

// Service returns the build-wide value called name, creating it with init
// on first use. Every node of the build gets the same value, so a model
// client's in-flight limit or a sandbox runner's slots are shared.
func Service[T any](s *Session, name string, init func() (T, error)) (T, error) {
	v, _ := s.services.LoadOrStore(name, &service{})
	svc := v.(*service)
	svc.once.Do(func() { svc.val, svc.err = init() })
	if svc.err != nil {
		var zero T
		return zero, svc.err
	}
	t, ok := svc.val.(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("service %q has type %T, not %T", name, svc.val, zero)
	}
	return t, nil
}
