package openai

import (
	"bytes"

	"github.com/reprise-llm/reprise/internal/jsonscan"
)

// This file holds the byte-level edits behind the proxy's --ensure-usage:
// ask the server for the final usage event on a streamed request that did
// not, then take out of the stream exactly what that request added, so the
// client sees the protocol it asked for. The edits work on the raw JSON and
// leave every other byte where it was.
//
// What include_usage adds, per OpenAI's API reference for
// stream_options.include_usage: "an additional chunk will be streamed before
// the data: [DONE] message. The usage field on this chunk shows the token
// usage statistics for the entire request, and the choices field will
// always be an empty array. All other chunks will also include a usage
// field, but with a null value." vLLM adds the chunk but no null fields.

// member is one top-level object member: the byte ranges of its key
// (quotes included) and of its value.
type member struct {
	keyStart, valStart, valEnd int
	key                        []byte
}

// topMembers lists the members of the JSON object b. It fails (ok=false)
// on anything but one well-formed object whose keys have no escapes.
func topMembers(b []byte) (ms []member, ok bool) {
	s := jsonscan.New(b)
	empty, ok := s.OpenObject()
	if !ok {
		return nil, false
	}
	for !empty {
		s.Peek()
		m := member{keyStart: s.Pos()}
		if m.key, ok = plainKey(&s); !ok {
			return nil, false
		}
		val, ok := s.Value()
		if !ok {
			return nil, false
		}
		m.valEnd = s.Pos()
		m.valStart = m.valEnd - len(val)
		ms = append(ms, m)
		var more bool
		if more, ok = s.NextMember(); !ok {
			return nil, false
		}
		empty = !more
	}
	return ms, s.End()
}

// last returns the last member named key (encoding/json keeps the last of
// duplicate keys), or nil.
func last(ms []member, key string) *member {
	for i := len(ms) - 1; i >= 0; i-- {
		if string(ms[i].key) == key {
			return &ms[i]
		}
	}
	return nil
}

// splice returns b with b[from:to] replaced by with, in a new slice.
func splice(b []byte, from, to int, with string) []byte {
	out := make([]byte, 0, len(b)-(to-from)+len(with))
	out = append(out, b[:from]...)
	out = append(out, with...)
	return append(out, b[to:]...)
}

// EnsureIncludeUsage returns body with stream_options.include_usage set to
// true, and whether it changed anything. A body that already asks for
// usage, or that is not a JSON object this editor can read (escaped keys,
// malformed JSON, stream_options of the wrong type), is returned unchanged
// with false: the request is then forwarded exactly as received. The result
// is a new slice; body is not modified.
func EnsureIncludeUsage(body []byte) ([]byte, bool) {
	ms, ok := topMembers(body)
	if !ok {
		return body, false
	}
	so := last(ms, "stream_options")
	if so == nil {
		// Insert as the first member: the object has at least "stream".
		at := bytes.IndexByte(body, '{') + 1
		sep := ","
		if len(ms) == 0 {
			sep = ""
		}
		return splice(body, at, at, `"stream_options":{"include_usage":true}`+sep), true
	}
	val := body[so.valStart:so.valEnd]
	if string(val) == "null" {
		return splice(body, so.valStart, so.valEnd, `{"include_usage":true}`), true
	}
	inner, ok := topMembers(val)
	if !ok {
		return body, false
	}
	if iu := last(inner, "include_usage"); iu != nil {
		if string(val[iu.valStart:iu.valEnd]) == "true" {
			return body, false
		}
		return splice(body, so.valStart+iu.valStart, so.valStart+iu.valEnd, "true"), true
	}
	at := so.valStart + bytes.IndexByte(val, '{') + 1
	sep := ","
	if len(inner) == 0 {
		sep = ""
	}
	return splice(body, at, at, `"include_usage":true`+sep), true
}

// IsUsageOnlyChunk reports whether data (one SSE event's data) is the
// extra event include_usage adds: "choices" an empty array and "usage" an
// object.
func IsUsageOnlyChunk(data []byte) bool {
	if !bytes.Contains(data, []byte(`"usage"`)) {
		return false
	}
	data = bytes.TrimSpace(data)
	ms, ok := topMembers(data)
	if !ok {
		return false
	}
	ch, u := last(ms, "choices"), last(ms, "usage")
	if ch == nil || u == nil || data[ch.valStart] != '[' || data[u.valStart] != '{' {
		return false
	}
	return len(bytes.TrimSpace(data[ch.valStart+1:ch.valEnd-1])) == 0
}

// StripNullUsage removes a top-level "usage": null member from data (one
// SSE event's data), with the comma that joined it, and reports whether it
// did. Anything else is returned unchanged.
func StripNullUsage(data []byte) ([]byte, bool) {
	if !bytes.Contains(data, []byte(`"usage"`)) {
		return data, false
	}
	ms, ok := topMembers(data)
	if !ok {
		// Leading or trailing space around the object: keep it.
		t := bytes.TrimSpace(data)
		if len(t) == len(data) {
			return data, false
		}
		lead := bytes.Index(data, t)
		out, ok := StripNullUsage(t)
		if !ok {
			return data, false
		}
		return splice(data, lead, lead+len(t), string(out)), true
	}
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if string(m.key) != "usage" || string(data[m.valStart:m.valEnd]) != "null" {
			continue
		}
		if i > 0 {
			// From the end of the previous value (its comma and any
			// space) to the end of null.
			return splice(data, ms[i-1].valEnd, m.valEnd, ""), true
		}
		if len(ms) > 1 {
			// First member: from its key to the next key.
			return splice(data, m.keyStart, ms[1].keyStart, ""), true
		}
		// The only member: leave "{}" with the original spacing inside.
		return splice(data, m.keyStart, m.valEnd, ""), true
	}
	return data, false
}
