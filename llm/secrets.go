package llm

import (
	"net/url"
	"strings"

	"github.com/dsbuild/dsbuild/schema"
)

// Secrets a Client keeps out of everything it stores, returns or reports:
// the API key, and the parts of the base URL after the host (some gateways
// take a token in the path).
//
// Text from the endpoint may hold the key whole (a reply that echoes it),
// or pieces of it: an error that shows the key masked but for its first
// and last characters ("sk-pr****...wxyz"), or text cut through it. So
// the scrubber removes every run of characters that also occurs in the key
// and is long enough to tell: at least errorFragment characters in error
// text, where a false match costs a word of a message, and at least
// replyFragment characters in a model's reply, which is data.
const (
	errorFragment = 4
	replyFragment = 12
	redacted      = "[redacted]"
)

// scrubber removes a Client's secrets from text.
type scrubber struct {
	key string
	// origin is the base URL's scheme://host; path its path ("" if none).
	origin, path string
}

func newScrubber(key, baseURL string) scrubber {
	s := scrubber{key: key}
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		s.origin = u.Scheme + "://" + u.Host
		if p := strings.TrimRight(u.EscapedPath(), "/"); p != "" {
			s.path = p
		}
	}
	return s
}

// reply returns text from a model's reply without the key (or a long piece
// of it).
func (s scrubber) reply(text string) string {
	return s.fragments(text, replyFragment)
}

// text returns error text without the key, any piece of it, or the path of
// any URL of the endpoint's host (printed as scheme://host).
func (s scrubber) text(text string) string {
	text = s.fragments(text, errorFragment)
	if s.origin == "" {
		return text
	}
	var b strings.Builder
	for {
		i := strings.Index(text, s.origin)
		if i < 0 {
			break
		}
		end := i + len(s.origin)
		b.WriteString(text[:end])
		// Drop what follows the host up to the end of the URL, unless
		// the host merely goes on (a longer host, a port).
		if end < len(text) && strings.IndexByte("/?#;", text[end]) >= 0 {
			j := end
			for j < len(text) && !strings.ContainsRune(" \t\n\"'<>`)]},", rune(text[j])) {
				j++
			}
			end = j
		}
		text = text[end:]
	}
	b.WriteString(text)
	text = b.String()
	if s.path != "" {
		text = strings.ReplaceAll(text, s.path, "/"+redacted)
	}
	return text
}

// fragments replaces every run of at least min characters of text that
// also occurs in the key (the whole key included) with redacted. Keys
// shorter than 2*min are only removed whole.
func (s scrubber) fragments(text string, min int) string {
	key := s.key
	if key == "" || text == "" {
		return text
	}
	if len(key) < 2*min {
		return strings.ReplaceAll(text, key, redacted)
	}
	grams := make(map[string]bool, len(key))
	for i := 0; i+min <= len(key); i++ {
		grams[key[i:i+min]] = true
	}
	var b strings.Builder
	last := 0
	for i := 0; i+min <= len(text); {
		if !grams[text[i:i+min]] {
			i++
			continue
		}
		end := i + min
		for end < len(text) && strings.Contains(key, text[i:end+1]) {
			end++
		}
		b.WriteString(text[last:i])
		b.WriteString(redacted)
		last, i = end, end
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

// scrubbedError is an error whose text had secrets removed; it still
// unwraps to the original (whose own text must not be printed).
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubReply returns st with the key removed from every text of the
// model's message, so that no stored reply holds it.
func (s scrubber) scrubReply(st stored) stored {
	st.Message.Content = s.reply(st.Message.Content)
	st.Message.Name = s.reply(st.Message.Name)
	if len(st.Message.ToolCalls) > 0 {
		calls := make([]schema.ToolCall, len(st.Message.ToolCalls))
		copy(calls, st.Message.ToolCalls)
		for i := range calls {
			calls[i].ID = s.reply(calls[i].ID)
			calls[i].Function.Name = s.reply(calls[i].Function.Name)
			calls[i].Function.Arguments = s.reply(calls[i].Function.Arguments)
		}
		st.Message.ToolCalls = calls
	}
	return st
}
