package capturefilter

import (
	"errors"
	"strconv"
	"strings"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
)

// httpCtx adapts one HTTP stream's callbacks to a capture.Tracker. Every
// callback answers Continue: the filter observes and never holds a body.
// Envoy then hands each callback only the newest chunk, which is copied
// (request: up to MaxParseBytes, kept; response: passed to the Tracker,
// which keeps nothing of a stream).
type httpCtx struct {
	types.DefaultHttpContext
	p     *plugin
	opts  *capture.Options // as of the request's start
	keyID string           // opts.Hasher's key id
	tr    *capture.Tracker
	dead  bool // a callback panicked: no longer captured

	parse       bool   // an OpenAI endpoint: bodies are parsed
	upstream    string // the upstream header as the request carried it
	reqBuf      []byte // request body kept for parsing
	reqOver     bool   // the request body passed MaxParseBytes
	reqEncoded  bool   // request Content-Encoding: not parsed
	reqDone     bool   // the request body was handed to the Tracker
	sse         bool   // the response is an event stream
	respEncoded bool   // response Content-Encoding: not parsed
	respBytes   int    // response body bytes seen
	respDone    bool   // the response ended (end of stream or trailers)
}

var _ types.HttpContext = (*httpCtx)(nil)

// OnHttpRequestHeaders starts the Tracker: arrival is now.
func (c *httpCtx) OnHttpRequestHeaders(_ int, endOfStream bool) types.Action {
	defer c.p.guard("request headers", &c.dead)
	now := c.p.now()
	method := header(proxywasm.GetHttpRequestHeader, ":method")
	path, _, _ := strings.Cut(header(proxywasm.GetHttpRequestHeader, ":path"), "?")
	c.tr = capture.NewTracker(c.p.origin, now, c.p.nextID(), method, path, c.opts)
	c.parse = openai.EndpointForPath(path) != openai.Other
	if id := header(proxywasm.GetHttpRequestHeader, "x-request-id"); capture.UsableRequestID(id) {
		c.tr.SetRequestID(id)
	}
	if h := c.p.cfg.SessionHeader; h != "" {
		c.tr.SetSession(header(proxywasm.GetHttpRequestHeader, h))
	}
	if h := c.p.cfg.UpstreamHeader; h != "" {
		c.upstream = header(proxywasm.GetHttpRequestHeader, h)
	}
	if c.parse {
		if encoded(header(proxywasm.GetHttpRequestHeader, "content-encoding")) {
			c.reqEncoded = true
			c.p.m.notParsed.Increment(1)
		} else if n, err := strconv.Atoi(header(proxywasm.GetHttpRequestHeader, "content-length")); err == nil && n > 0 {
			c.reqBuf = make([]byte, 0, min(n, c.opts.MaxBody))
		}
	}
	if endOfStream {
		c.endRequest(true)
	}
	return types.ActionContinue
}

// OnHttpRequestBody keeps the body's first MaxParseBytes for parsing.
func (c *httpCtx) OnHttpRequestBody(bodySize int, endOfStream bool) types.Action {
	defer c.p.guard("request body", &c.dead)
	if c.dead || c.tr == nil || c.reqDone {
		return types.ActionContinue
	}
	if c.parse && !c.reqEncoded && bodySize > 0 && !c.reqOver {
		room := c.opts.MaxBody - len(c.reqBuf)
		if take := min(bodySize, room); take > 0 {
			if b, err := proxywasm.GetHttpRequestBody(0, take); err == nil {
				c.reqBuf = append(c.reqBuf, b...)
			}
		}
		c.reqOver = bodySize > room
	}
	if endOfStream {
		c.endRequest(true)
	}
	return types.ActionContinue
}

// OnHttpRequestTrailers ends the request body.
func (c *httpCtx) OnHttpRequestTrailers(int) types.Action {
	defer c.p.guard("request trailers", &c.dead)
	if !c.dead && c.tr != nil && !c.reqDone {
		c.endRequest(true)
	}
	return types.ActionContinue
}

// endRequest hands the kept body to the Tracker and frees it. complete is
// false when the stream ended before the body did.
func (c *httpCtx) endRequest(complete bool) {
	c.reqDone = true
	if c.parse && !c.reqEncoded && (len(c.reqBuf) > 0 || complete) {
		c.tr.RequestBody(c.reqBuf, complete && !c.reqOver)
	}
	c.reqBuf = nil
}

// OnHttpResponseHeaders records the status and the time of the headers.
func (c *httpCtx) OnHttpResponseHeaders(_ int, endOfStream bool) types.Action {
	defer c.p.guard("response headers", &c.dead)
	if c.dead || c.tr == nil {
		return types.ActionContinue
	}
	now := c.p.now()
	status, _ := strconv.Atoi(header(proxywasm.GetHttpResponseHeader, ":status"))
	ct := header(proxywasm.GetHttpResponseHeader, "content-type")
	upstream := c.upstream
	if h := c.p.cfg.UpstreamHeader; h != "" {
		if v := header(proxywasm.GetHttpResponseHeader, h); v != "" {
			upstream = v
		}
	}
	c.sse = isEventStream(ct)
	if c.parse && encoded(header(proxywasm.GetHttpResponseHeader, "content-encoding")) {
		c.respEncoded = true
		c.p.m.notParsed.Increment(1)
	}
	c.tr.ResponseStart(now, status, ct, upstream)
	if endOfStream {
		c.respDone = true
	}
	return types.ActionContinue
}

// OnHttpResponseBody times the chunk now and feeds it to the Tracker when
// it parses it: every chunk of an event stream, a non-streamed body up to
// one byte past the parse cap (which tells the Tracker it is over).
func (c *httpCtx) OnHttpResponseBody(bodySize int, endOfStream bool) types.Action {
	defer c.p.guard("response body", &c.dead)
	if c.dead || c.tr == nil {
		return types.ActionContinue
	}
	now := c.p.now()
	if bodySize > 0 && c.parse && !c.respEncoded {
		take := bodySize
		if !c.sse {
			take = min(bodySize, c.opts.MaxBody+1-c.respBytes)
		}
		if take > 0 {
			if b, err := proxywasm.GetHttpResponseBody(0, take); err == nil {
				c.tr.ResponseData(now, b)
			}
		}
	}
	c.respBytes += bodySize
	if endOfStream {
		c.respDone = true
	}
	return types.ActionContinue
}

// OnHttpResponseTrailers ends the response.
func (c *httpCtx) OnHttpResponseTrailers(int) types.Action {
	c.respDone = true
	return types.ActionContinue
}

// OnHttpStreamDone finishes the record and queues it for the collector.
func (c *httpCtx) OnHttpStreamDone() {
	defer c.p.guard("stream done", &c.dead)
	if c.dead || c.tr == nil {
		return
	}
	now := c.p.now()
	if !c.reqDone {
		c.endRequest(false)
	}
	// A response whose stream delivered its end is complete even if the
	// connection then broke (clients stop reading at [DONE]).
	complete := c.respDone || c.tr.StreamDone()
	var err error
	if !complete {
		err = abortCause()
	}
	rec := c.tr.Finish(now, err, !complete)
	rec.Source = capture.SourceWasm
	if c.opts.Hasher == nil && c.opts.Content != capture.ContentNone && rec.PromptChars > 0 {
		c.p.m.unhashed.Increment(1)
	}
	c.p.enqueue(rec, c.tr.HashChain(), c.keyID)
	c.tr = nil
}

// abortCause is the error of a stream that ended before its response did,
// with Envoy's reason when the host gives one (response.code_details, e.g.
// "downstream_remote_disconnect").
func abortCause() error {
	if d, err := proxywasm.GetProperty([]string{"response", "code_details"}); err == nil && len(d) > 0 {
		return errors.New("stream ended before its response did: " + string(d))
	}
	return errors.New("stream ended before its response did")
}

// header reads one header through get; "" when absent.
func header(get func(string) (string, error), name string) string {
	v, err := get(name)
	if err != nil {
		return ""
	}
	return v
}

// encoded says whether a Content-Encoding leaves the body unparsable as is.
func encoded(ce string) bool {
	ce = strings.TrimSpace(ce)
	return ce != "" && !strings.EqualFold(ce, "identity")
}

// isEventStream reports whether a Content-Type names text/event-stream
// (the Tracker decides the same from the same header).
func isEventStream(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}
