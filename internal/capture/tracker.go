package capture

import (
	"math"
	"strings"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/redact"
)

// DefaultMaxBody is Options.MaxBody when it is zero: 16 MiB.
const DefaultMaxBody = 16 << 20

// Options configure Trackers. One Options value is shared by every request
// of a capture and is never modified by a Tracker.
type Options struct {
	// Content is ContentNone, ContentHashed or ContentFull; "" means
	// ContentHashed. Hashed needs Hasher; without one no ids are recorded.
	Content string
	// Hasher computes prefix-block ids and session hashes.
	Hasher *Hasher
	// MaxBody caps, in bytes, how much of a request body is parsed and how
	// much of a non-streamed response body is buffered for parsing.
	// 0 means DefaultMaxBody.
	MaxBody int
	// Chains makes Trackers keep the prompt's chain values (Hasher.Chain,
	// read with Tracker.HashChain) instead of recording HashIDs: for a
	// front end running as many processes that ships records to one
	// collector, whose Hasher remaps them (the proxy-wasm filter).
	Chains bool
}

func (o *Options) maxBody() int {
	if o == nil || o.MaxBody <= 0 {
		return DefaultMaxBody
	}
	return o.MaxBody
}

// Tracker is the per-request capture state machine. A front end feeds it
// what it observes, in order: the request body (at any time before Finish),
// the response start, response bytes as they arrive, and the end; Finish
// returns the record. It never sees headers, so credentials cannot reach a
// record through it.
//
// A Tracker is not safe for concurrent use; a request's events come from one
// goroutine at a time.
type Tracker struct {
	sawDone  bool // the stream's [DONE] sentinel arrived
	rec      Record
	opts     *Options
	content  string
	endpoint openai.Endpoint
	arrival  time.Time

	started     bool
	sse         bool
	dec         openai.Decoder
	lastData    time.Time // when the latest response bytes arrived
	lastOffUS   int64     // offset of the previous content event, µs since arrival
	contentSeen bool
	cum         int // latest cumulative completion_tokens (vLLM continuous usage)
	haveCum     bool
	usage       openai.Usage // latest usage object seen
	haveUsage   bool
	sumTokens   int     // tokens of content events
	estChunks   bool    // some content event's tokens were estimated
	body        *[]byte // buffered non-streamed response, pooled
	bodyOver    bool    // response body passed MaxBody
	reqPrompt   int     // estimated prompt tokens from the request text
	sessionSet  bool
	chain       []uint64 // prompt chain values with Options.Chains
	errText     string   // first in-stream or response error
	finished    bool
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// NewTracker starts tracking a request that arrived at arrival. origin is
// the capture's monotonic origin (Manifest.Start); both should come from
// time.Now so that T uses the monotonic clock. opts may be nil.
func NewTracker(origin, arrival time.Time, id, method, path string, opts *Options) *Tracker {
	t := &Tracker{opts: opts, arrival: arrival, endpoint: openai.EndpointForPath(path)}
	t.content = ContentHashed
	if opts != nil && opts.Content != "" {
		t.content = opts.Content
	}
	t.rec = Record{ID: id, T: int64(arrival.Sub(origin)), Wall: arrival.UTC(), Method: method, Path: path}
	return t
}

func (t *Tracker) hasher() *Hasher {
	if t.opts == nil {
		return nil
	}
	return t.opts.Hasher
}

// RequestBody parses the request body. complete is false when the front end
// kept only a prefix of it (its parse cap): the record is then marked
// BodyTruncated and gets whatever top-level scalar fields the prefix holds,
// never an error. The Tracker keeps nothing that aliases body, so the caller
// may reuse it once RequestBody returns.
func (t *Tracker) RequestBody(body []byte, complete bool) {
	if t.endpoint == openai.Other || t.finished {
		return
	}
	if max := t.opts.maxBody(); len(body) > max {
		body, complete = body[:max], false
	}
	info, err := openai.ParseRequest(t.rec.Path, body)
	if err != nil {
		if complete {
			// The client sent something that is not a valid request; the
			// upstream's answer (status, error) tells the story.
			return
		}
		t.rec.BodyTruncated = true
		info = salvageRequest(body)
	}
	r := &t.rec
	r.Model, r.Stream, r.MaxTokens = info.Model, info.Stream, info.MaxTokens
	r.Temperature, r.TopP, r.N = info.Temperature, info.TopP, info.N
	r.NMessages, r.PromptChars = info.NMessages, info.PromptChars
	t.reqPrompt = openai.EstimateTokens(info.Prompt)
	if info.PromptTokenIDs > 0 {
		t.reqPrompt = info.PromptTokenIDs // sent as token ids: exact
	}
	h := t.hasher()
	// A session is a keyed hash, not content: recorded in every mode, the
	// same as SetSession's.
	if h != nil && !t.sessionSet && info.User != "" {
		r.Session = h.Session(info.User)
	}
	if t.content == ContentNone {
		return
	}
	if h != nil && !r.BodyTruncated {
		if t.opts.Chains {
			t.chain = h.Chain(info.Prompt)
		} else {
			r.HashIDs = h.HashIDs(info.Prompt)
		}
		if len(r.HashIDs) > 0 || len(t.chain) > 0 {
			r.Block = h.BlockChars()
		}
	}
	if t.content == ContentFull {
		r.Prompt = info.Prompt
		if len(info.Messages) > 0 {
			r.Messages = append([]byte(nil), info.Messages...)
		}
	}
}

// HashChain returns the prompt's chain values when Options.Chains is set
// (else nil): what HashIDs would hold before remapping.
func (t *Tracker) HashChain() []uint64 { return t.chain }

// SetSession records the keyed hash of a session key taken from a request
// header the operator named; it takes precedence over the request's "user"
// field. Like the "user" field's, it is recorded in every content mode.
// Without a Hasher it records nothing.
func (t *Tracker) SetSession(key string) {
	if h := t.hasher(); h != nil && key != "" {
		t.rec.Session = h.Session(key)
		t.sessionSet = true
	}
}

// SetRequestID records the request id the client sent (X-Request-Id),
// when it differs from the record's id.
func (t *Tracker) SetRequestID(id string) {
	if id != t.rec.ID {
		t.rec.RequestID = id
	}
}

// ResponseStart records the response status and headers' arrival. A second
// call (an error handler after a failed response) updates the status only.
func (t *Tracker) ResponseStart(now time.Time, status int, contentType, upstream string) {
	t.rec.Status = status
	if t.started {
		return
	}
	t.started = true
	t.rec.TTFBNs = int64(now.Sub(t.arrival))
	t.rec.Upstream = upstream
	t.sse = t.endpoint != openai.Other && isEventStream(contentType)
}

// isEventStream reports whether a Content-Type names text/event-stream,
// ignoring case and parameters.
func isEventStream(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// ResponseData observes response bytes that arrived at now. Streams are
// decoded incrementally, so every event is timed when its last byte
// arrived; other bodies of OpenAI endpoints are buffered (up to MaxBody)
// for Finish. p is not retained.
func (t *Tracker) ResponseData(now time.Time, p []byte) {
	if t.finished || len(p) == 0 {
		return
	}
	t.lastData = now
	if t.sse {
		t.dec.Feed(p)
		for {
			ev, ok := t.dec.Next()
			if !ok {
				return
			}
			t.event(now, ev.Data)
		}
	}
	if t.endpoint == openai.Other || t.bodyOver {
		return
	}
	if t.body == nil {
		t.body = bodyPool.Get().(*[]byte)
	}
	if len(*t.body)+len(p) > t.opts.maxBody() {
		t.bodyOver = true
		return
	}
	*t.body = append(*t.body, p...)
}

// event handles one SSE event's data.
func (t *Tracker) event(now time.Time, data []byte) {
	if len(data) == 0 {
		return
	}
	c, err := openai.ParseChunk(data)
	if err == nil && c.Done {
		t.sawDone = true
	}
	if err != nil || c.Done {
		return // keep-alives and non-JSON events carry no tokens
	}
	if c.Error != "" && t.errText == "" {
		t.errText = c.Error
	}
	if c.FinishReason != "" {
		t.rec.FinishReason = c.FinishReason
	}
	// Output is text (content, reasoning, refusal) or part of a tool
	// call, as the replayer counts it.
	output := c.Content != "" || c.ToolCall
	tokens := 0
	if c.Usage != nil {
		t.usage, t.haveUsage = *c.Usage, true
		// vLLM's continuous usage (stream_options.continuous_usage_stats)
		// puts a cumulative completion_tokens on every chunk. Usage that
		// first appears on a later content chunk is a total, not a step:
		// that chunk counts as one, as a chunk without usage does, instead
		// of getting every token.
		d := c.Usage.CompletionTokens - t.cum
		if output && d > 0 && (t.haveCum || !t.contentSeen) {
			tokens = d
		}
		t.cum, t.haveCum = c.Usage.CompletionTokens, true
	}
	if !output {
		return
	}
	if tokens == 0 {
		// Serving engines (vLLM, SGLang, TGI, OpenAI's API) stream about
		// one token per event, so an event without usage counts 1. Its
		// text says little: estimating ceil(chars/4) per event recorded a
		// stream of 6-character tokens at twice its length (issue 16).
		// Finish caps the total at what the request allowed.
		tokens = 1
		t.estChunks = true
	}
	off := int64(now.Sub(t.arrival))
	if !t.contentSeen {
		t.contentSeen = true
		t.rec.TTFTNs = off
	}
	// Deltas of truncated absolute offsets, so that summing ChunksUS gives
	// each event's offset exactly (to the µs) with no drift.
	offUS := off / int64(time.Microsecond)
	t.rec.ChunksUS = append(t.rec.ChunksUS, offUS-t.lastOffUS)
	t.rec.ChunkTokens = append(t.rec.ChunkTokens, tokens)
	t.lastOffUS = offUS
	t.sumTokens += tokens
}

// Finish ends the request at now and returns its record. err is the
// transport or stream error, if any; aborted says the client went away or
// the stream broke. An unterminated last event is still counted, timed at
// the arrival of the bytes that carried it. Later calls return the same
// record.
func (t *Tracker) Finish(now time.Time, err error, aborted bool) *Record {
	r := &t.rec
	if t.finished {
		return r
	}
	t.finished = true
	if t.sse {
		for {
			ev, ok := t.dec.Flush()
			if !ok {
				break
			}
			t.event(t.lastData, ev.Data)
		}
		r.EventsDropped = t.dec.Overflows
		t.dec = openai.Decoder{}
	}
	output, outputKnown := t.sumTokens, t.sse
	if t.body != nil {
		if !t.bodyOver && len(*t.body) > 0 {
			if resp, perr := openai.ParseResponse(*t.body); perr == nil {
				if resp.Usage != nil {
					t.usage, t.haveUsage = *resp.Usage, true
				}
				if resp.FinishReason != "" {
					r.FinishReason = resp.FinishReason
				}
				if resp.Error != "" && t.errText == "" {
					t.errText = resp.Error
				}
				output, outputKnown = openai.EstimateTokens(resp.Content), true
			}
		}
		if cap(*t.body) <= 1<<20 {
			*t.body = (*t.body)[:0]
			bodyPool.Put(t.body)
		}
		t.body = nil
	}
	if t.endpoint != openai.Other {
		switch {
		case t.haveUsage:
			r.PromptTokens = t.usage.PromptTokens
			r.OutputTokens = t.usage.CompletionTokens
			r.CachedTokens = t.usage.CachedTokens
			r.TokensSource = TokensUsage
		case t.reqPrompt > 0 || (outputKnown && output > 0):
			r.PromptTokens = t.reqPrompt
			r.OutputTokens = min(output, t.outputLimit())
			r.TokensSource = TokensEstimate
		}
	}
	if len(r.ChunkTokens) > 0 {
		r.ChunkTokensSource = TokensUsage
		if t.estChunks {
			r.ChunkTokensSource = TokensEstimate
		}
	}
	r.Error = t.errText
	if err != nil {
		if r.Error == "" {
			r.Error = err.Error()
		} else {
			r.Error += "; " + err.Error()
		}
	}
	// Upstream error text is copied verbatim by servers (a rejected key
	// echoed back); records keep it scrubbed and bounded.
	r.Error = redact.Text(r.Error)
	r.Aborted = aborted
	r.E2ENs = int64(now.Sub(t.arrival))
	return r
}

// outputLimit is the most output tokens the request allowed: max_tokens
// (or max_completion_tokens, or the Responses API's max_output_tokens) for
// each of its n choices. Estimates never pass it: a server stops there, so
// a larger count is the estimate's error. Without a limit it is MaxInt.
func (t *Tracker) outputLimit() int {
	limit, n := t.rec.MaxTokens, max(t.rec.N, 1)
	if limit <= 0 || limit > math.MaxInt/n {
		return math.MaxInt
	}
	return limit * n
}

// StreamDone reports whether the response stream delivered its end: the
// [DONE] sentinel, or a finish_reason followed by the final usage (some
// clients, the OpenAI SDKs among them, may close the connection then). The
// response is complete even if the connection fails afterwards.
func (t *Tracker) StreamDone() bool {
	return t.sawDone || (t.rec.FinishReason != "" && t.haveUsage)
}
