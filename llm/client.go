package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"golang.org/x/sync/singleflight"

	"github.com/dsbuild/dsbuild/cache"
	"github.com/dsbuild/dsbuild/schema"
)

// Request is one chat-completion request as a stage states it. Sampling
// parameters come from the Profile.
type Request struct {
	Messages []schema.Message
	Tools    []schema.Tool
	// ToolChoice is "" (server default), "auto", "none", "required", or the
	// name of one tool the model must call.
	ToolChoice string
	// ResponseFormat is sent verbatim as response_format, e.g.
	// {"type":"json_object"} or the value of JSONSchemaFormat.
	ResponseFormat json.RawMessage
	// Sample selects one of several distinct samples for the same request:
	// each index is cached separately (and offsets the profile's seed).
	Sample int
	// MaxTokens overrides the profile's max_tokens when positive.
	MaxTokens int
}

// Usage is the token count the endpoint reported for a call.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Response is the model's reply.
type Response struct {
	// Message is the assistant message, including any tool calls.
	Message      schema.Message
	FinishReason string
	Usage        Usage
	// Cached reports that the reply is not one this call fetched: it came
	// from the store or from an identical call made concurrently (and cost
	// nothing), or this call's own reply lost the race to be stored first
	// and the first stored reply is returned instead (CallInfo then shows
	// what the call spent).
	Cached bool
	// Key is the memo key the reply is stored under.
	Key cache.Key
}

// Options are per-build settings of a Client, as opposed to the recipe's
// Profile.
type Options struct {
	// Offline makes a cache miss an *OfflineMissError instead of a call.
	Offline bool
	// Salt is mixed into every key (a recipe-level "re-sample everything").
	Salt string
	// Observer, if set, is told about every Complete call once it ends.
	Observer func(ctx context.Context, c CallInfo)
	// APIKey is the key to send; if empty it is read from the environment
	// variable the profile names in api_key_env.
	APIKey string
	// HTTPClient replaces the default client (which keeps up to
	// max_in_flight idle connections to the endpoint).
	HTTPClient *http.Client
	// RetryBaseDelay is the first backoff delay (default 1s); each retry
	// doubles it, with jitter, up to RetryMaxDelay (default 60s). A
	// Retry-After from the server takes precedence.
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps the backoff delay and any Retry-After honoured.
	RetryMaxDelay time.Duration
}

// CallInfo describes one finished Complete call for accounting. Tokens and
// Dollars are what the call spent: zero for a cache hit.
type CallInfo struct {
	Profile                        string
	Key                            cache.Key
	Cached                         bool
	PromptTokens, CompletionTokens int64
	Dollars                        float64
	// Retries is the number of failed attempts that were retried: the
	// call's own, zero for a cache hit or a call shared with another
	// caller (which paid for them). RetryCauses says why each was, in
	// order: "http 429", "http 500", ..., "timeout", "request failed"
	// (no connection, or a body that could not be read) or "unusable
	// reply".
	Retries     int
	RetryCauses []string
	Duration    time.Duration
	// Err is the error Complete returned, if any.
	Err error
}

// Client makes memoised chat-completion calls for one model profile. It is
// safe for concurrent use; all callers of one profile should share one
// Client so that max_in_flight and the rate limits hold.
type Client struct {
	store   *cache.Store
	name    string
	profile Profile
	set     settings
	opts    Options
	apiKey  string
	sec     scrubber
	chat    openai.ChatCompletionService
	sem     chan struct{}
	rpm     *bucket
	tpm     *bucket
	replies replyCache
}

// flights joins identical calls in flight at once, across every Client of
// the process: two profiles that send the same request (same model and
// sampling settings, differing only in endpoint or key) share one call. The
// flight key is the store's root and the memo key, so only callers that
// would store the reply in the same place share it.
var flights singleflight.Group

// New returns a Client for the profile called name. It validates the
// profile and reads the API key (Options.APIKey, else the variable named by
// api_key_env; an unset variable is an error, except in offline mode).
func New(store *cache.Store, name string, p Profile, opts Options) (*Client, error) {
	if store == nil {
		return nil, fmt.Errorf("llm: profile %q: no cache store given", name)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("llm: profile %q: %w", name, err)
	}
	key := opts.APIKey
	if key == "" && p.APIKeyEnv != "" {
		key = os.Getenv(p.APIKeyEnv)
		if key == "" && !opts.Offline {
			return nil, fmt.Errorf("llm: profile %q: environment variable %s (api_key_env) is not set", name, p.APIKeyEnv)
		}
	}
	if opts.RetryBaseDelay <= 0 {
		opts.RetryBaseDelay = time.Second
	}
	if opts.RetryMaxDelay <= 0 {
		opts.RetryMaxDelay = time.Minute
	}
	c := &Client{store: store, name: name, profile: p, set: p.settings(), opts: opts, apiKey: key, sec: newScrubber(key, p.BaseURL)}
	hc := opts.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = max(100, 2*c.set.maxInFlight)
		tr.MaxIdleConnsPerHost = c.set.maxInFlight
		hc = &http.Client{Transport: tr}
	}
	// The service is built from explicit options only: unlike
	// openai.NewClient it does not read OPENAI_BASE_URL, OPENAI_API_KEY,
	// OPENAI_ORG_ID or OPENAI_CUSTOM_HEADERS from the environment.
	c.chat = openai.NewChatCompletionService(
		option.WithBaseURL(p.BaseURL),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
		option.WithHTTPClient(hc),
	)
	c.sem = make(chan struct{}, c.set.maxInFlight)
	c.rpm = newBucket(p.RequestsPerMinute)
	c.tpm = newBucket(p.TokensPerMinute)
	return c, nil
}

// Name returns the profile name the client was created with.
func (c *Client) Name() string { return c.name }

// Profile returns the client's profile.
func (c *Client) Profile() Profile { return c.profile }

// keyMaterial is everything that determines a reply. The endpoint (base
// URL), the API key and the name of its variable are deliberately absent.
type keyMaterial struct {
	Kind           string           `json:"kind"`
	Model          string           `json:"model"`
	Messages       []schema.Message `json:"messages"`
	Tools          []schema.Tool    `json:"tools,omitempty"`
	ToolChoice     string           `json:"tool_choice,omitempty"`
	ResponseFormat json.RawMessage  `json:"response_format,omitempty"`
	Temperature    *float64         `json:"temperature,omitempty"`
	TopP           *float64         `json:"top_p,omitempty"`
	MaxTokens      int              `json:"max_tokens,omitempty"`
	Seed           *int64           `json:"seed,omitempty"`
	ExtraBody      map[string]any   `json:"extra_body,omitempty"`
	Sample         int              `json:"sample"`
	Salt           string           `json:"salt,omitempty"`
}

const keyKind = "llm.chat/1"

func (c *Client) maxTokens(r Request) int {
	if r.MaxTokens > 0 {
		return r.MaxTokens
	}
	return c.profile.MaxTokens
}

// Key returns the memo key of r under this client's profile and salt.
func (c *Client) Key(r Request) (cache.Key, error) {
	if len(r.Messages) == 0 {
		return cache.Key{}, fmt.Errorf("llm: profile %q: request has no messages", c.name)
	}
	if r.Sample < 0 {
		return cache.Key{}, fmt.Errorf("llm: profile %q: sample index %d is negative", c.name, r.Sample)
	}
	if len(r.ResponseFormat) > 0 && !json.Valid(r.ResponseFormat) {
		return cache.Key{}, fmt.Errorf("llm: profile %q: response format is not valid JSON", c.name)
	}
	for i, t := range r.Tools {
		if len(t.Function.Parameters) > 0 && !json.Valid(t.Function.Parameters) {
			return cache.Key{}, fmt.Errorf("llm: profile %q: tool %d (%q): parameters are not valid JSON", c.name, i, t.Function.Name)
		}
	}
	p := c.profile
	k, err := cache.KeyOf(keyMaterial{
		Kind:           keyKind,
		Model:          p.Model,
		Messages:       r.Messages,
		Tools:          r.Tools,
		ToolChoice:     r.ToolChoice,
		ResponseFormat: r.ResponseFormat,
		Temperature:    p.Temperature,
		TopP:           p.TopP,
		MaxTokens:      c.maxTokens(r),
		Seed:           p.Seed,
		ExtraBody:      p.ExtraBody,
		Sample:         r.Sample,
		Salt:           c.opts.Salt,
	})
	if err != nil {
		return cache.Key{}, fmt.Errorf("llm: profile %q: computing key: %w", c.name, err)
	}
	return k, nil
}

// stored is the blob kept for a key: the whole reply.
type stored struct {
	Message      schema.Message `json:"message"`
	FinishReason string         `json:"finish_reason"`
	Usage        Usage          `json:"usage"`
}

// fetched is the outcome of one network call (shared by concurrent
// identical callers).
type fetched struct {
	// st is the memoised reply: this call's own, or the reply another
	// writer stored first for the same key (then lost is set).
	st   stored
	lost bool
	// spent is the usage this call paid for, whichever reply won.
	spent Usage
}

// Complete returns the reply to r: from the store if this exact request
// (and sample index, and salt) was answered before, else from the endpoint,
// storing the reply. A reply that stopped at the token limit comes back
// with a *TruncatedError, one with unparsable tool arguments with a
// *ToolArgumentsError; in both cases the Response is non-nil and cached.
// Failed calls are never stored.
func (c *Client) Complete(ctx context.Context, r Request) (*Response, error) {
	start := time.Now()
	info := CallInfo{Profile: c.name}
	resp, err := c.complete(ctx, r, &info)
	if c.opts.Observer != nil {
		info.Duration = time.Since(start)
		info.Err = err
		c.opts.Observer(ctx, info)
	}
	return resp, err
}

func (c *Client) complete(ctx context.Context, r Request, info *CallInfo) (*Response, error) {
	key, err := c.Key(r)
	if err != nil {
		return nil, err
	}
	info.Key = key
	if st, ok, err := c.lookup(ctx, key); err != nil {
		return nil, err
	} else if ok {
		info.Cached = true
		return c.finish(st, key, true, r)
	}
	if c.opts.Offline {
		return nil, &OfflineMissError{Profile: c.name, Model: c.profile.Model, Key: key}
	}
	// Identical calls in flight at once share one request. Only the caller
	// whose function ran paid for it; the others count as cached.
	leader := false
	v, err, _ := flights.Do(c.store.Root()+"\x00"+key.String(), func() (any, error) {
		leader = true
		return c.fetch(ctx, key, r, info)
	})
	shared := !leader
	var exhausted *RetriesExhaustedError
	if shared && err != nil && ctx.Err() == nil && !errors.As(err, &exhausted) &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The caller we shared with gave up; our own context is alive.
		v, err = c.fetch(ctx, key, r, info)
		shared = false
	}
	if err != nil {
		return nil, err
	}
	if shared {
		// The leader's context recorded the key; record it in ours too, so
		// this caller's build also names the memo entry it used.
		if _, _, err := c.store.MemoGet(ctx, key); err != nil {
			return nil, err
		}
	}
	f := v.(*fetched)
	if shared {
		info.Cached = true
	} else {
		info.PromptTokens = f.spent.PromptTokens
		info.CompletionTokens = f.spent.CompletionTokens
		info.Dollars = c.profile.Dollars(info.PromptTokens, info.CompletionTokens)
	}
	return c.finish(f.st, key, shared || f.lost, r)
}

// lookup returns the stored reply for key, if any. A blob that fails to
// decode is treated as a miss (and will be overwritten).
func (c *Client) lookup(ctx context.Context, key cache.Key) (stored, bool, error) {
	d, ok, err := c.store.MemoGet(ctx, key)
	if err != nil || !ok {
		return stored{}, false, err
	}
	return c.load(d)
}

// load returns the reply stored as blob d. A blob that is missing, corrupt
// or fails to decode reads as a miss.
func (c *Client) load(d cache.Digest) (stored, bool, error) {
	if st, ok := c.replies.get(d); ok {
		return st, true, nil
	}
	data, err := c.store.Get(d)
	if err != nil {
		var ce *cache.CorruptError
		if errors.As(err, &ce) || errors.Is(err, cache.ErrMissing) {
			return stored{}, false, nil
		}
		return stored{}, false, err
	}
	var st stored
	if err := json.Unmarshal(data, &st); err != nil {
		return stored{}, false, nil
	}
	c.replies.put(d, st, len(data))
	return st, true, nil
}

// finish builds the Response and the soft errors a stage may act on.
func (c *Client) finish(st stored, key cache.Key, cached bool, r Request) (*Response, error) {
	msg := st.Message
	msg.ToolCalls = append([]schema.ToolCall(nil), msg.ToolCalls...) // the stored copy is shared
	resp := &Response{Message: msg, FinishReason: st.FinishReason, Usage: st.Usage, Cached: cached, Key: key}
	if st.FinishReason == "length" {
		return resp, &TruncatedError{MaxTokens: c.maxTokens(r), CompletionTokens: st.Usage.CompletionTokens}
	}
	var bad []BadToolCall
	for _, tc := range st.Message.ToolCalls {
		if reason := checkArguments(tc.Function.Arguments); reason != "" {
			bad = append(bad, BadToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: c.scrub(tc.Function.Arguments), Reason: c.scrub(reason)})
		}
	}
	if len(bad) > 0 {
		return resp, &ToolArgumentsError{Calls: bad}
	}
	return resp, nil
}

// checkArguments returns why a tool call's arguments are unusable, or "".
// Empty arguments count as an empty object.
func checkArguments(args string) string {
	if strings.TrimSpace(args) == "" {
		return ""
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &obj); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return "arguments are JSON but not an object"
		}
		return "arguments are not valid JSON: " + err.Error()
	}
	if obj == nil {
		return "arguments are null, not an object"
	}
	return ""
}

// fetch calls the endpoint with retries, then stores the reply. Each retry
// is recorded in info (Retries, RetryCauses), also when the call fails in
// the end.
func (c *Client) fetch(ctx context.Context, key cache.Key, r Request, info *CallInfo) (*fetched, error) {
	params, reqOpts, err := c.buildParams(r)
	if err != nil {
		return nil, fmt.Errorf("llm: profile %q: %w", c.name, err)
	}
	var last error
	for attempt := 0; ; attempt++ {
		st, retryAfter, err := c.attempt(ctx, params, reqOpts)
		if err == nil {
			c.tpm.charge(float64(st.Usage.PromptTokens + st.Usage.CompletionTokens))
			// A reply that echoes the key is stored (and returned)
			// without it.
			st = c.sec.scrubReply(st)
			blob, err := json.Marshal(st)
			if err != nil {
				return nil, fmt.Errorf("llm: profile %q: encoding reply: %w", c.name, err)
			}
			won, lost, err := c.storeReply(ctx, key, st, blob)
			if err != nil {
				return nil, fmt.Errorf("llm: profile %q: storing reply for key %s: %w", c.name, key, err)
			}
			return &fetched{st: won, lost: lost, spent: st.Usage}, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("llm: profile %q: %w", c.name, ctx.Err())
		}
		last = err
		var ae *APIError
		if errors.As(err, &ae) && !ae.Retryable {
			return nil, err
		}
		if attempt >= c.set.maxRetries {
			return nil, &RetriesExhaustedError{Profile: c.name, Attempts: attempt + 1, Last: last}
		}
		info.Retries++
		info.RetryCauses = append(info.RetryCauses, retryCause(err))
		if err := sleep(ctx, c.backoff(attempt, retryAfter)); err != nil {
			return nil, fmt.Errorf("llm: profile %q: %w (while waiting to retry after: %v)", c.name, err, last)
		}
	}
}

// storeReply writes the reply blob and, unless another writer (another
// process, or another store handle) stored a reply for key first, its memo
// entry. It returns the memoised reply, which every caller must use so that
// a build replays the reply it saw: this call's own, or the first writer's
// (lost reports that). A first writer's reply that cannot be read is a
// miss, replaced by this call's.
func (c *Client) storeReply(ctx context.Context, key cache.Key, st stored, blob []byte) (stored, bool, error) {
	d, err := c.store.Put(blob)
	if err != nil {
		return stored{}, false, err
	}
	won, err := c.store.MemoPutFirst(ctx, key, d)
	if err != nil {
		return stored{}, false, err
	}
	if won != d {
		if first, ok, err := c.load(won); err != nil {
			return stored{}, false, err
		} else if ok {
			return first, true, nil
		}
		if err := c.store.MemoPut(ctx, key, d); err != nil {
			return stored{}, false, err
		}
	}
	c.replies.put(d, st, len(blob))
	return st, false, nil
}

// attemptError is a failed attempt that is worth retrying: a timeout, a
// connection error, or a reply that could not be read or parsed.
type attemptError struct {
	what string
	err  error
}

func (e *attemptError) Error() string { return e.what + ": " + e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// attempt makes one HTTP request under the in-flight and rate limits.
func (c *Client) attempt(ctx context.Context, params openai.ChatCompletionNewParams, reqOpts []option.RequestOption) (stored, time.Duration, error) {
	if err := c.rpm.wait(ctx, 1); err != nil {
		return stored{}, 0, err
	}
	if err := c.tpm.wait(ctx, 0); err != nil {
		return stored{}, 0, err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return stored{}, 0, ctx.Err()
	}
	defer func() { <-c.sem }()

	actx, cancel := context.WithTimeout(ctx, c.set.timeout)
	defer cancel()
	var res *http.Response
	opts := append(reqOpts[:len(reqOpts):len(reqOpts)], option.WithResponseInto(&res))
	comp, err := c.chat.New(actx, params, opts...)
	if res != nil && res.StatusCode >= 400 {
		ae := &APIError{Profile: c.name, StatusCode: res.StatusCode, Retryable: retryableStatus(res.StatusCode)}
		var oe *openai.Error
		if errors.As(err, &oe) {
			// Scrub before cutting: a cut could split the key so that
			// the scrub no longer finds it.
			ae.Message = prefix(c.scrub(oe.Message), 300)
		}
		if ae.Message == "" {
			ae.Message = http.StatusText(res.StatusCode)
		}
		return stored{}, retryAfter(res.Header), ae
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return stored{}, 0, ctx.Err()
		case actx.Err() != nil:
			return stored{}, 0, &attemptError{what: fmt.Sprintf("no reply within the %s timeout", c.set.timeout), err: actx.Err()}
		default:
			return stored{}, 0, &attemptError{what: "request failed", err: c.scrubErr(err)}
		}
	}
	st, err := fromCompletion(comp)
	if err != nil {
		return stored{}, 0, &attemptError{what: "unusable reply", err: c.scrubErr(err)}
	}
	return st, 0, nil
}

// scrub removes the API key (whole or in pieces) and the endpoint's path
// from text that came from the server or the HTTP client (see scrubber).
func (c *Client) scrub(s string) string { return c.sec.text(s) }

// scrubErr returns err, or if its text holds a secret an error with the
// text scrubbed, which still unwraps to err.
func (c *Client) scrubErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := c.scrub(msg); clean != msg {
		return &scrubbedError{msg: clean, err: err}
	}
	return err
}

// retryCause names why a failed attempt is retried, for counters:
// "http <status>", "timeout", "request failed" or "unusable reply".
func retryCause(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return fmt.Sprintf("http %d", ae.StatusCode)
	}
	var at *attemptError
	if errors.As(err, &at) {
		switch {
		case strings.HasPrefix(at.what, "no reply"):
			return "timeout"
		}
		return at.what // "request failed" (connection, unreadable body), "unusable reply"
	}
	return "other"
}

func retryableStatus(code int) bool {
	switch {
	case code == 408, code == 409, code == 425, code == 429:
		return true
	case code == 501, code == 505:
		return false
	default:
		return code >= 500
	}
}

// retryAfter reads retry-after-ms or Retry-After (seconds or an HTTP date).
func retryAfter(h http.Header) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// backoff returns the wait before retry number attempt+1: the server's
// Retry-After if it gave one, else exponential backoff with equal jitter;
// both capped at RetryMaxDelay.
func (c *Client) backoff(attempt int, serverSaid time.Duration) time.Duration {
	maxD := c.opts.RetryMaxDelay
	if serverSaid > 0 {
		return min(serverSaid, maxD)
	}
	d := c.opts.RetryBaseDelay << min(attempt, 30)
	if d <= 0 || d > maxD {
		d = maxD
	}
	half := d / 2
	return half + rand.N(half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
