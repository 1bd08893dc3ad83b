package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/reprise-llm/reprise/internal/openai"
)

// --ensure-usage: a streamed chat or completions request that did not ask
// for usage gets stream_options.include_usage upstream, so the record has
// the server's token counts instead of estimates; what include_usage adds
// to the stream is taken out again before the client sees it
// (openai.IsUsageOnlyChunk, openai.StripNullUsage).

// ensureUsage reads a streamed chat/completions request body and, when it
// does not ask for usage, replaces r.Body with the edited one. It reports
// whether it did. A body it cannot or should not edit (encoded, larger than
// the parse cap, not a streamed request) is forwarded as received: the
// bytes read so far are put back in front of the rest.
func (p *Proxy) ensureUsage(r *http.Request) bool {
	if r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody || r.Header.Get("Content-Encoding") != "" {
		return false
	}
	if ep := openai.EndpointForPath(r.URL.Path); ep != openai.Chat && ep != openai.Completions {
		return false
	}
	if r.ContentLength > int64(p.cfg.MaxBody) {
		return false
	}
	orig := r.Body
	body, err := io.ReadAll(io.LimitReader(orig, int64(p.cfg.MaxBody)+1))
	if err != nil || len(body) > p.cfg.MaxBody {
		// Forward what was read, then the rest; a read error repeats
		// from orig, so the upstream request fails as it would have.
		r.Body = readCloser{io.MultiReader(bytes.NewReader(body), orig), orig}
		return false
	}
	info, perr := openai.ParseRequest(r.URL.Path, body)
	edited, changed := body, false
	if perr == nil && info.Stream && !info.IncludeUsage {
		edited, changed = openai.EnsureIncludeUsage(body)
	}
	r.Body = readCloser{bytes.NewReader(edited), orig}
	if changed {
		r.ContentLength = int64(len(edited))
		if r.Header.Get("Content-Length") != "" {
			r.Header.Set("Content-Length", strconv.Itoa(len(edited)))
		}
	}
	return changed
}

type readCloser struct {
	io.Reader
	io.Closer
}

// maxPendingEvent bounds the partial event a usageFilter holds back. A
// stream whose event grows past it (no blank line in a MiB: not an SSE
// stream the filter understands) is passed through unfiltered from there
// on, so memory stays bounded and nothing is held back.
const maxPendingEvent = 1 << 20

// usageFilter passes an SSE stream through event by event, dropping the
// usage-only event and the "usage": null members that include_usage added.
// It holds back at most one partial event (up to maxPendingEvent): every
// whole event is returned as soon as its blank line arrives, so events are
// not delayed. Used only on responses to requests ensureUsage edited.
type usageFilter struct {
	rc  io.ReadCloser
	in  []byte // bytes read, not yet split into whole events
	out []byte // filtered bytes not yet returned
	err error  // rc's error, returned once out is drained
	// scan is where in in the search for the pending event's end resumes
	// (a line start), so a long event is scanned once, not per read.
	scan int
	// passthrough: the pending event outgrew maxPendingEvent; the rest of
	// the stream is returned as read. bypassed is called once then.
	passthrough bool
	bypassed    func()
	buf         [16 << 10]byte
}

func newUsageFilter(rc io.ReadCloser, bypassed func()) *usageFilter {
	return &usageFilter{rc: rc, bypassed: bypassed}
}

func (f *usageFilter) Read(p []byte) (int, error) {
	if f.passthrough && len(f.out) == 0 && f.err == nil {
		return f.rc.Read(p)
	}
	for len(f.out) == 0 && f.err == nil {
		n, err := f.rc.Read(f.buf[:])
		f.in = append(f.in, f.buf[:n]...)
		f.split(err != nil)
		f.err = err
		if len(f.in) > maxPendingEvent {
			f.out = append(f.out, f.in...) // unfiltered from here on
			f.in, f.passthrough = nil, true
			if f.bypassed != nil {
				f.bypassed()
			}
		}
	}
	if len(f.out) > 0 {
		n := copy(p, f.out)
		f.out = f.out[n:]
		return n, nil
	}
	return 0, f.err
}

func (f *usageFilter) Close() error { return f.rc.Close() }

// split moves every whole event from in to out, filtered. At the end of the
// stream (final) a partial last event is passed on unchanged. The partial
// event left in in is scanned on from where this scan stopped.
func (f *usageFilter) split(final bool) {
	f.out = f.out[:0]
	start, from := 0, f.scan
	for {
		end, stop := eventEnd(f.in[start:], from, final)
		if end < 0 {
			f.scan = stop
			break
		}
		f.out = append(f.out, filterEvent(f.in[start:start+end])...)
		start += end
		from = 0
	}
	if final {
		f.out = append(f.out, f.in[start:]...)
		start, f.scan = len(f.in), 0
	}
	f.in = append(f.in[:0], f.in[start:]...)
}

// eventEnd returns the length of the first whole event in b, through the
// blank line that ends it, or -1 and the line start where the search
// stopped (to resume from once more bytes came). from is a line start in b
// where the search begins. Lines end in "\r\n", "\n" or "\r" (the SSE
// spec); a '\r' at the very end is undecided unless the stream is over.
func eventEnd(b []byte, from int, final bool) (end, stop int) {
	i := from
	for i < len(b) {
		j := bytes.IndexAny(b[i:], "\r\n")
		if j < 0 {
			return -1, i
		}
		next := lineStartAfter(b, i+j)
		if next < 0 {
			if !final {
				return -1, i
			}
			next = len(b)
		}
		if j == 0 { // i is always at a line start: a blank line
			return next, 0
		}
		i = next
	}
	return -1, i
}

// lineStartAfter returns the index after the line terminator at b[i], or
// -1 when b ends in a '\r' whose '\n' may still come.
func lineStartAfter(b []byte, i int) int {
	if b[i] == '\r' {
		if i+1 == len(b) {
			return -1
		}
		if b[i+1] == '\n' {
			return i + 2
		}
	}
	return i + 1
}

// filterEvent returns ev (one whole event, blank line included) as the
// client should see it: nil for the usage-only event, without a top-level
// "usage": null member otherwise. Events whose data spans several lines
// pass unchanged.
func filterEvent(ev []byte) []byte {
	if !bytes.Contains(ev, []byte(`"usage"`)) {
		return ev
	}
	var data []byte
	dataAt := -1
	for i := 0; i < len(ev); {
		j := bytes.IndexAny(ev[i:], "\r\n")
		if j < 0 {
			j = len(ev) - i
		}
		line := ev[i : i+j]
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if dataAt >= 0 {
				return ev // multi-line data
			}
			v, _ = bytes.CutPrefix(v, []byte(" "))
			data, dataAt = v, i+j-len(v)
		}
		if i+j >= len(ev) {
			break
		}
		i = lineStartAfter(ev, i+j)
		if i < 0 {
			break
		}
	}
	if dataAt < 0 {
		return ev
	}
	if openai.IsUsageOnlyChunk(data) {
		return nil
	}
	if stripped, ok := openai.StripNullUsage(data); ok {
		out := make([]byte, 0, len(ev))
		out = append(out, ev[:dataAt]...)
		out = append(out, stripped...)
		return append(out, ev[dataAt+len(data):]...)
	}
	return ev
}

// filterUsage puts a usageFilter on the response to a request ensureUsage
// edited, when it is a successful event stream. The length changes, so the
// response is sent chunked. An encoded (compressed) stream is passed as
// received: filtering it would mean decoding and re-encoding every event,
// and holding back bytes the filter cannot read would stall the stream.
// bypassed is called when the filter gives up on an overlong event.
func filterUsage(resp *http.Response, bypassed func()) {
	if resp.StatusCode != http.StatusOK || !isEventStream(resp.Header.Get("Content-Type")) ||
		resp.Header.Get("Content-Encoding") != "" {
		return
	}
	resp.Body = newUsageFilter(resp.Body, bypassed)
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
}

// isEventStream reports whether a Content-Type names text/event-stream.
func isEventStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}
