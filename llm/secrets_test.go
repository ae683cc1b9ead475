package llm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/llm/llmtest"
	"github.com/dsbuild/dsbuild/schema"
)

// keyPiece returns the first piece of testKey (at least 4 characters) that
// s holds, or "".
func keyPiece(s string) string {
	for n := len(testKey); n >= 4; n-- {
		for i := 0; i+n <= len(testKey); i++ {
			if strings.Contains(s, testKey[i:i+n]) {
				return testKey[i : i+n]
			}
		}
	}
	return ""
}

// storeText returns every file of the store at dir, blobs decompressed.
func storeText(t *testing.T, store *cache.Store, dir string) string {
	t.Helper()
	var all strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		all.Write(raw)
		if filepath.Base(filepath.Dir(filepath.Dir(path))) == "blobs" {
			dg, err := cache.ParseDigest("sha256:" + d.Name())
			if err != nil {
				return err
			}
			data, err := store.Get(dg)
			if err != nil {
				return err
			}
			all.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all.String()
}

// TestReplyEchoingTheKeyIsScrubbedBeforeItIsStored: a model that repeats
// the API key (in its text or a tool call) has it removed from the reply
// before the reply is stored or returned; a cache hit returns the same.
func TestReplyEchoingTheKeyIsScrubbedBeforeItIsStored(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(
		llmtest.Text("your key is "+testKey+", and again: "+testKey+"."),
		llmtest.Reply{ToolCalls: []schema.ToolCall{{Function: schema.FunctionCall{Name: "bash", Arguments: `{"cmd":"echo ` + testKey + `"}`}}}},
	)
	dir := t.TempDir()
	store := openStore(t, dir)
	c := newClient(t, store, profile(srv), fastOpts())
	for i, q := range []string{"a", "b"} {
		for pass := 0; pass < 2; pass++ { // the call, then its cache hit
			r, err := c.Complete(context.Background(), ask(q))
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%+v", r.Message)
			if p := keyPiece(got); p != "" {
				t.Fatalf("reply %d (pass %d) holds %q of the key: %s", i, pass, p, got)
			}
			if i == 0 && r.Message.Content != "your key is [redacted], and again: [redacted]." {
				t.Fatalf("reply %q", r.Message.Content)
			}
			if i == 1 && r.Message.ToolCalls[0].Function.Arguments != `{"cmd":"echo [redacted]"}` {
				t.Fatalf("arguments %q", r.Message.ToolCalls[0].Function.Arguments)
			}
		}
	}
	if srv.Requests() != 2 {
		t.Fatalf("%d requests; the second pass should be cache hits", srv.Requests())
	}
	if p := keyPiece(storeText(t, store, dir)); p != "" {
		t.Fatalf("the store holds %q of the key", p)
	}
}

// TestKeyPiecesInErrorsAreScrubbed: an error body that shows the key
// masked but for its ends (as providers do) reaches no error or CallInfo
// with any piece of the key.
func TestKeyPiecesInErrorsAreScrubbed(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	masked := testKey[:7] + strings.Repeat("*", 20) + testKey[len(testKey)-6:]
	srv.Script(
		llmtest.Reply{Status: 401, ErrorMessage: "Incorrect API key provided: " + masked + ". You can find your API key at https://example.com."},
		llmtest.Reply{Status: 400, ErrorMessage: "bad request for key ending in " + testKey[len(testKey)-4:]},
	)
	var logged []string
	o := fastOpts()
	o.Observer = func(_ context.Context, ci llm.CallInfo) { logged = append(logged, fmt.Sprintf("%+v %v", ci, ci.Err)) }
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), o)
	var errs []string
	for _, q := range []string{"a", "b"} {
		_, err := c.Complete(context.Background(), ask(q))
		if err == nil {
			t.Fatal("the call succeeded")
		}
		errs = append(errs, err.Error())
	}
	if !strings.Contains(errs[0], "HTTP 401") || !strings.Contains(errs[0], "Incorrect API key provided") {
		t.Fatalf("the error lost its message: %s", errs[0])
	}
	for _, s := range append(errs, logged...) {
		if p := keyPiece(s); p != "" {
			t.Fatalf("%q of the key reached %q", p, s)
		}
	}
}

// TestBaseURLPathIsNeverPrinted: a token in the base URL's path shows in
// no error, whether the server echoes the path or the connection fails;
// the endpoint is named by scheme://host.
func TestBaseURLPathIsNeverPrinted(t *testing.T) {
	const token = "tok-5ecretPathToken"
	srv := llmtest.New()
	defer srv.Close()
	origin := strings.TrimSuffix(srv.URL(), "/v1")
	p := profile(srv)
	p.BaseURL = origin + "/" + token + "/v1" // the server answers 404, echoing the path
	p.MaxRetries = -1
	c := newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	_, err := c.Complete(context.Background(), ask("q"))
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") || strings.Contains(err.Error(), token) {
		t.Fatalf("got %v", err)
	}

	p.BaseURL = "http://127.0.0.1:1/" + token + "/v1" // nothing listens there
	c = newClient(t, openStore(t, t.TempDir()), p, fastOpts())
	_, err = c.Complete(context.Background(), ask("q"))
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "http://127.0.0.1:1") {
		t.Fatalf("got %v", err)
	}

	p.BaseURL = "ftp://host/" + token
	if err := p.Validate(); err == nil || strings.Contains(err.Error(), token) {
		t.Fatalf("validate: %v", err)
	}
}
