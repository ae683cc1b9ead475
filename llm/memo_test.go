package llm_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/llm/llmtest"
)

// Two writers of one store that do not share a flight (two processes; here
// two handles, one opened through a symlink so the roots differ) make the
// same call at once. The one whose reply is stored second gets the first
// reply back, so every build replays the reply it used.
func TestLateWriterGetsTheFirstStoredReply(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	slowArrived := make(chan struct{})
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		if r.Index == 0 {
			close(slowArrived)
			return llmtest.Reply{Content: "slow reply", Delay: 300 * time.Millisecond, PromptTokens: 7, CompletionTokens: 3}
		}
		return llmtest.Reply{Content: "fast reply", PromptTokens: 7, CompletionTokens: 5}
	})
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "same-store")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	slowStore, fastStore := openStore(t, link), openStore(t, dir)
	var slowInfo llm.CallInfo
	o := fastOpts()
	o.Observer = func(_ context.Context, c llm.CallInfo) { slowInfo = c }
	slow := newClient(t, slowStore, profile(srv), o)
	fast := newClient(t, fastStore, profile(srv), fastOpts())

	var slowResp *llm.Response
	var slowErr error
	done := make(chan struct{})
	rec := &cache.Recorder{}
	go func() {
		defer close(done)
		slowResp, slowErr = slow.Complete(cache.WithRecorder(context.Background(), rec), ask("race"))
	}()
	<-slowArrived
	fastResp, err := fast.Complete(context.Background(), ask("race"))
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if slowErr != nil {
		t.Fatal(slowErr)
	}
	if srv.Requests() != 2 {
		t.Fatalf("server saw %d requests, want 2 (the handles must not share a flight)", srv.Requests())
	}
	if fastResp.Message.Content != "fast reply" || fastResp.Cached {
		t.Fatalf("first writer got %+v", fastResp)
	}
	if slowResp.Message.Content != "fast reply" || slowResp.Usage != fastResp.Usage || !slowResp.Cached {
		t.Fatalf("late writer got %q (usage %+v, cached %v); want the first stored reply", slowResp.Message.Content, slowResp.Usage, slowResp.Cached)
	}
	// The late call still paid for its own request.
	if slowInfo.Cached || slowInfo.PromptTokens != 7 || slowInfo.CompletionTokens != 3 {
		t.Fatalf("late writer's accounting %+v; want its own paid usage", slowInfo)
	}
	if keys := rec.Keys(); len(keys) != 1 || keys[0] != slowResp.Key {
		t.Fatalf("recorder noted %v, want [%s]", keys, slowResp.Key)
	}
	// Both handles, and a fresh client, now replay the first reply.
	for _, s := range []*cache.Store{slowStore, fastStore} {
		r, err := newClient(t, s, profile(srv), fastOpts()).Complete(context.Background(), ask("race"))
		if err != nil || !r.Cached || r.Message.Content != "fast reply" {
			t.Fatalf("replay: %+v %v", r, err)
		}
	}
}

// A winner whose stored reply does not decode is a miss: the late writer
// replaces it with its own reply.
func TestUnreadableFirstReplyIsReplaced(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(echo)
	store := openStore(t, t.TempDir())
	c := newClient(t, store, profile(srv), fastOpts())
	key, err := c.Key(ask("q"))
	if err != nil {
		t.Fatal(err)
	}
	junk, err := store.Put([]byte("not a reply"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.MemoPut(context.Background(), key, junk); err != nil {
		t.Fatal(err)
	}
	r, err := c.Complete(context.Background(), ask("q"))
	if err != nil || r.Cached || r.Message.Content != "echo q #0" {
		t.Fatalf("got %+v %v", r, err)
	}
	if d, ok, _ := store.MemoGet(context.Background(), key); !ok || d == junk {
		t.Fatalf("memo entry still points at the unreadable reply")
	}
}

// Clients of different profiles that send the same request at once share
// one call: the flight group is per process, keyed by store and memo key.
func TestIdenticalCallsShareOneRequestAcrossClients(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(r *llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Content: "shared", Delay: 200 * time.Millisecond}
	})
	store := openStore(t, t.TempDir())
	var cached atomic.Int32
	o := fastOpts()
	o.Observer = func(_ context.Context, c llm.CallInfo) {
		if c.Cached {
			cached.Add(1)
		}
	}
	p := profile(srv)
	other := p
	other.MaxInFlight = 3 // a different profile, same request
	clients := []*llm.Client{newClient(t, store, p, o), newClient(t, store, other, o), newClient(t, store, p, o)}
	recs := make([]*cache.Recorder, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		recs[i] = &cache.Recorder{}
		wg.Go(func() {
			r, err := c.Complete(cache.WithRecorder(context.Background(), recs[i]), ask("same"))
			if err != nil || r.Message.Content != "shared" {
				t.Errorf("client %d: %+v %v", i, r, err)
			}
		})
	}
	wg.Wait()
	if srv.Requests() != 1 || cached.Load() != 2 {
		t.Fatalf("server saw %d requests and %d callers were cached; want 1 and 2", srv.Requests(), cached.Load())
	}
	for i, rec := range recs {
		if len(rec.Keys()) != 1 {
			t.Fatalf("client %d recorded %v", i, rec.Keys())
		}
	}
}

// The server's error text is scrubbed of the key before it is cut short, so
// a cut through the key cannot leave part of it behind.
func TestKeyScrubbedBeforeErrorTextIsCut(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	msg := strings.Repeat("x", 285) + testKey + " and more"
	srv.Script(llmtest.Reply{Status: 400, ErrorMessage: msg})
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	_, err := c.Complete(context.Background(), ask("q"))
	if err == nil || !strings.Contains(err.Error(), "xxxx") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), testKey[:8]) {
		t.Fatalf("error %q carries part of the key", err)
	}
}
