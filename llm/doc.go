// Package llm owns dsbuild's model calls: memoised chat completions against
// any OpenAI-compatible endpoint (OpenAI, vLLM, SGLang, llama.cpp server,
// Ollama), reached by base URL through github.com/openai/openai-go/v3.
//
// A Client serves one model Profile from a recipe. Every call is keyed by
// cache.KeyOf over the canonical request: model, messages, tools,
// tool_choice, response_format, every sampling parameter (temperature,
// top_p, max_tokens, seed, extra_body), the sample index and the build's
// salt. The whole reply (message with tool calls, finish reason, usage) is
// stored as a blob and the key is memoised to it, so an identical request
// costs no network in this or any other process sharing the store.
//
// The base URL is deliberately not part of the key: the same model served
// from another host or port gives the same cached answers, so a build can
// move between providers or mirrors without losing its cache. The API key
// and the name of its environment variable are not part of the key either,
// and the key never appears in a cache entry, log, output or error.
//
// To re-sample deliberately, never by ignoring the cache: ask with another
// Request.Sample index (each index is its own cached sample, and offsets the
// profile's seed so that seeded servers give distinct samples), or set
// Options.Salt for a recipe-wide fresh set of samples. Options.Offline turns
// every miss into an *OfflineMissError naming the key.
//
// Failed calls are never cached. 429, 408, 409 and 5xx statuses, timeouts,
// connection errors and unreadable replies are retried with exponential
// backoff and jitter, honouring Retry-After; other statuses come back as
// *APIError. Replies that are cut off (*TruncatedError) or carry tool calls
// with unparsable arguments (*ToolArgumentsError) are kept, cached and
// returned together with the typed error so a stage can re-ask. CompleteJSON
// asks for structured output and re-asks with the validation error a
// bounded number of times.
//
// Each Client bounds concurrent requests (max_in_flight) and, when set,
// requests and tokens per minute, and reports every call (hit or not,
// tokens, dollars, retries) to Options.Observer.
//
// The package imports only cache and schema of the project. It knows
// nothing of stages, recipes or builds and must not: the engine adds stage
// and item to its errors and totals the accounting.
package llm
