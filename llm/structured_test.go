package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dsbuild/dsbuild/llm"
	"github.com/dsbuild/dsbuild/llm/llmtest"
)

type plan struct {
	Tasks []string `json:"tasks"`
}

func validatePlan(raw []byte) error {
	var p plan
	if err := json.Unmarshal(raw, &p); err != nil {
		return err
	}
	if len(p.Tasks) < 2 {
		return fmt.Errorf("tasks must list at least 2 items, got %d", len(p.Tasks))
	}
	return nil
}

func TestCompleteJSONReasksWithTheError(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(
		llmtest.Text("Sure! Here it is: {tasks: [oops"),
		llmtest.Text(`{"tasks": ["only one"]}`),
		llmtest.Text("```json\n{\"tasks\": [\"parse\", \"eval\"]}\n```\nDone."),
	)
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	r := ask("plan it")
	r.ResponseFormat = llm.JSONObjectFormat
	var out plan
	resp, err := llm.CompleteJSON(context.Background(), c, r, validatePlan, &out, 2)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(out.Tasks, ",") != "parse,eval" || resp == nil {
		t.Fatalf("out %+v", out)
	}
	log := srv.Log()
	if len(log) != 3 {
		t.Fatalf("%d requests", len(log))
	}
	second := log[1].Messages
	if len(second) != 4 || second[2].Role != "assistant" || !strings.Contains(second[2].Content, "{tasks: [oops") ||
		second[3].Role != "user" || !strings.Contains(second[3].Content, "does not parse") {
		t.Fatalf("second request did not carry the reply and the error: %+v", second)
	}
	if third := log[2].Messages; len(third) != 6 || !strings.Contains(third[5].Content, "at least 2 items") {
		t.Fatalf("third request: %+v", third)
	}
	// The whole exchange replays from the cache.
	var again plan
	if _, err := llm.CompleteJSON(context.Background(), c, r, validatePlan, &again, 2); err != nil || srv.Requests() != 3 || len(again.Tasks) != 2 {
		t.Fatalf("replay: %v, %d requests, %+v", err, srv.Requests(), again)
	}
}

func TestCompleteJSONGivesUpAfterMaxReasks(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Handle(func(r *llmtest.Request) llmtest.Reply { return llmtest.Text(`{"tasks": []}`) })
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	var out plan
	resp, err := llm.CompleteJSON(context.Background(), c, ask("plan"), validatePlan, &out, 2)
	var ie *llm.InvalidOutputError
	if !errors.As(err, &ie) || ie.Attempts != 3 || resp == nil || !strings.Contains(err.Error(), "at least 2 items") {
		t.Fatalf("got %v", err)
	}
	if srv.Requests() != 3 {
		t.Fatalf("%d requests, want 3", srv.Requests())
	}
}

func TestCompleteJSONTreatsTruncationAsInvalid(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(llmtest.Reply{Content: `{"tasks": ["a", `, FinishReason: "length"}, llmtest.Text(`{"tasks":["a","b"]}`))
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	var out plan
	if _, err := llm.CompleteJSON(context.Background(), c, ask("plan"), validatePlan, &out, 1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(srv.Log()[1].LastUserMessage(), "cut off") {
		t.Fatalf("re-ask did not mention the truncation: %q", srv.Log()[1].LastUserMessage())
	}
}

func TestCompleteJSONPassesCallErrorsThrough(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Script(llmtest.Status(403))
	c := newClient(t, openStore(t, t.TempDir()), profile(srv), fastOpts())
	_, err := llm.CompleteJSON(context.Background(), c, ask("plan"), nil, nil, 3)
	var ae *llm.APIError
	if !errors.As(err, &ae) || srv.Requests() != 1 {
		t.Fatalf("got %v after %d requests", err, srv.Requests())
	}
	if _, err := llm.CompleteJSON(context.Background(), c, ask("plan"), nil, plan{}, 3); err == nil {
		t.Fatal("a non-pointer out was accepted")
	}
}

func TestExtractJSON(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{in: `{"a":1}`, want: `{"a":1}`},
		{in: "```json\n{\"a\": [1, 2]}\n```", want: `{"a": [1, 2]}`},
		{in: "```\n[1,2]\n```", want: `[1,2]`},
		{in: `Here you go: {"a":{"b":2}} hope it helps {"c":3}`, want: `{"a":{"b":2}}`},
		{in: `Options [see below]: {"x":true}`, want: `{"x":true}`},
		{in: "Intro ```json\n{\"a\":1}\n``` outro", want: `{"a":1}`},
		{in: `{"a": {"b": 1}, "c": `, err: "does not parse"},
		{in: "no json here", err: "no JSON"},
		{in: "  ", err: "empty"},
	}
	for _, tc := range cases {
		got, err := llm.ExtractJSON(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %s, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
