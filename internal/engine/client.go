package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/certs"
	"github.com/reprise-llm/reprise/internal/keepalive"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// errDrained is the cause given to requests cancelled by the drain bound;
// their Result.Err is its text.
var errDrained = errors.New("cancelled: still in flight when the drain bound passed")

// client sends one request and observes it: every time is an offset from
// the run's origin, read on the request's goroutine as bytes arrive.
type client struct {
	hc *http.Client
	// fresh re-sends a request that never reached the server (do), on a
	// connection of its own (keep-alives off); nil under HTTP/2, whose
	// transport re-sends the streams a server refused itself.
	fresh   *http.Client
	target  string // base URL without a trailing slash
	headers http.Header
	host    string // Host header override (gateways route on it)
	model   string
	bodies  BodyBuilder
	replies ReplyObserver // bodies, when it observes replies (reply.go); else nil
	origin  time.Time
	now     func() time.Time
	timeout time.Duration
	onFirst func(FirstToken) // Config.OnFirstToken; nil: none
	discard bool             // Config.DiscardChunks
}

// Buffers reused across requests: one stream read buffer per request in
// flight, and growable buffers for non-streamed bodies.
var (
	readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

const (
	maxBody      = 64 << 20 // a non-streamed response body larger than this is an error
	errBodyBytes = 200      // bytes of a non-2xx body kept in Result.Err
	errBodyDrain = 64 << 10 // bytes of a non-2xx body read so the connection can be reused
	maxChunkHint = 4096     // bound on presizing Result.Chunks from the requested output length
)

func newClient(cfg *Config, bodies BodyBuilder, origin time.Time) (*client, error) {
	tr, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	replies, _ := bodies.(ReplyObserver)
	var fresh *http.Client
	if !cfg.HTTP2 {
		ft := tr.Clone()
		ft.DisableKeepAlives = true
		fresh = &http.Client{Transport: ft}
	}
	return &client{
		replies: replies,
		hc:      &http.Client{Transport: tr},
		fresh:   fresh,
		target:  strings.TrimRight(cfg.Target, "/"),
		headers: cfg.Headers,
		host:    cfg.Headers.Get("Host"),
		model:   cfg.Model,
		bodies:  bodies,
		origin:  origin,
		now:     cfg.Now,
		timeout: cfg.Timeout,
		onFirst: cfg.OnFirstToken,
		discard: cfg.DiscardChunks,
	}, nil
}

// newTransport is the run's connection pool: kept-alive connections sized
// to the load (one per request that can be in flight, so a steady load
// never pays for new connections), HTTP/1.1 unless cfg.HTTP2, and the TLS
// trust cfg asks for.
func newTransport(cfg *Config) (*http.Transport, error) {
	tr := &http.Transport{
		Proxy:               nil, // load goes to the target, never through an environment proxy
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: max(cfg.MaxConcurrency, cfg.Concurrency, 16),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // time the stream as the server sends it
	}
	var err error
	if tr.TLSClientConfig, err = TLSConfig(cfg.CACert, cfg.InsecureSkipVerify); err != nil {
		return nil, err
	}
	var p http.Protocols
	if cfg.HTTP2 {
		// HTTP/2 only: h2 by ALPN over TLS, and prior knowledge (h2c) for
		// http://, which net/http uses only when HTTP/1 is not allowed.
		p.SetHTTP2(true)
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	tr.Protocols = &p
	return tr, nil
}

func (c *client) since() time.Duration { return c.now().Sub(c.origin) }

// build builds req's body ahead of its due time.
func (c *client) build(req *workload.Request) *prebuilt {
	if c.replies != nil && c.replies.NeedsReplies(req) {
		return nil // its body needs earlier replies: built when sent
	}
	body, err := c.bodies.Body(req, c.model)
	return &prebuilt{body: body, err: err}
}

// send issues req, intended for offset intended, and returns what happened.
// Its body is pre's when given, else built here. Sent is read after the
// body is built, just before the request is handed to the transport, so
// building time on the critical path shows as lag rather than as latency;
// nothing that happens later (a timeout, the drain bound, a transport
// error) moves it.
func (c *client) send(ctx context.Context, req *workload.Request, pre *prebuilt, intended time.Duration) (out Result) {
	res := Result{Index: req.Index, Endpoint: string(req.Endpoint), Stream: req.Stream, Intended: intended,
		RequestedPromptTokens: req.PromptTokens, RequestedOutputTokens: req.OutputTokens}
	res.Session = req.Session
	if g := req.Graph; g != nil {
		res.Conversation, res.TurnKind = g.Conversation, g.Kind.String()
	}
	if res.Endpoint == "" {
		res.Endpoint = string(openai.Chat)
	}
	// fail ends a request that was handed to the transport: its Sent stays
	// the hand-off (issue 16: moving it to the failure made a timed-out
	// request's wait read as send lag, blaming the client exactly when the
	// target was overloaded).
	fail := func(err string) Result {
		res.End = c.since()
		res.Err = err
		return res
	}
	// unsent ends a request that failed before it could be handed out (its
	// body or request could not be built): it never went out, so its Sent is
	// the moment it failed, which is when it would have gone.
	unsent := func(err string) Result {
		res.Sent = c.since()
		res.End = res.Sent
		res.Err = err
		return res
	}
	if c.replies != nil && c.replies.KeepsReply(req) {
		res.reply = make([]byte, 0, 512)
		defer func() {
			c.replies.ObserveReply(req, string(out.reply))
			out.reply = nil // results are kept for the whole run; the text is not
		}()
	}
	var body []byte
	var err error
	if pre != nil {
		body, err = pre.body, pre.err
		pre.body = nil // the request's body reader lets go of it once sent
	} else {
		body, err = c.bodies.Body(req, c.model)
	}
	if err != nil {
		return unsent(fmt.Sprintf("building request: %v", err))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.target+openai.PathFor(openai.Endpoint(res.Endpoint)), &sentBody{b: body})
	if err != nil {
		return unsent(fmt.Sprintf("building request: %v", err))
	}
	hreq.ContentLength = int64(len(body))
	// A retry (a kept-alive connection the server closed as the request
	// went out) rebuilds the body: the builder gives equal requests equal
	// bodies, and keeping a copy would hold every prompt in flight.
	hreq.GetBody = func() (io.ReadCloser, error) {
		b, err := c.bodies.Body(req, c.model)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(&sentBody{b: b}), nil
	}
	body = nil
	for k, v := range c.headers {
		hreq.Header[k] = v
	}
	if c.host != "" {
		hreq.Host = c.host // net/http ignores a "Host" entry in Header
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	res.Sent = c.since()
	resp, err := c.do(ctx, hreq, &res)
	if err != nil {
		return fail(describe(ctx, err))
	}
	defer resp.Body.Close()
	res.FirstByte = c.since()
	res.Status = resp.StatusCode
	if resp.StatusCode/100 != 2 {
		res.Err = httpError(resp)
		res.End = c.since()
		return res
	}
	if isStream(resp.Header.Get("Content-Type"), req.Stream) {
		if req.OutputTokens > 0 {
			n := min(req.OutputTokens, maxChunkHint)
			res.Chunks, res.ChunkTokens = make([]time.Duration, 0, n), make([]int, 0, n)
		}
		c.readStream(ctx, resp.Body, &res)
	} else {
		c.readJSON(ctx, resp.Body, &res)
	}
	return res
}

// maxRetries bounds the re-sends of one request (Result.Retries).
const maxRetries = 2

// do hands hreq to the transport and re-sends it, at once and on a new
// connection, when it was provably not processed in the sense of issue 18:
// it went out on a reused kept-alive connection (httptrace GotConn:
// Reused), and that connection ended — EOF, a reset, a broken pipe, the
// transport's own close upon the server's EOF, or net/http's "server closed
// idle connection" — before any response byte (GotFirstResponseByte never
// fired). That is the keep-alive race: the server closed the idle
// connection as the request went out, which llama-server does without
// sending Connection: close. Nothing else is re-sent: not a request on a
// fresh connection (the server hung up on this very request, and
// re-sending could loop forever), not one that got a response byte (the
// server answered), not a timeout, a cancellation or an HTTP error status.
// Result.Retries counts the re-sends, at most maxRetries; Result.Sent stays
// the first hand-off (see Result.Sent).
//
// How this relates to net/http's own rule (net/http/transport.go,
// Transport.roundTrip and persistConn.shouldRetryRequest): it too re-sends
// only after a failure on a reused connection, never a fresh one. It
// already re-sends, on another connection, a request of which no byte was
// written (nothingWrittenError; hreq.GetBody makes that possible for a
// POST); such re-sends show as GotConn firing more than once for one Do and
// are counted here too. A request written whole or in part it re-sends only
// when idempotent (GET, HEAD, OPTIONS, TRACE or an Idempotency-Key header):
// a POST that met the close after it was written fails with
// transportReadFromServerError (unwrapped to the bare io.EOF or reset) or
// errServerClosedIdle — the case handled here. net/http's caution is that
// a server may have read such a request and begun it; an inference server
// aborts a request whose connection is gone, and in the race proper never
// read it, so a re-send costs at most a repeated prefill. The rule is
// narrower than net/http's idempotent one: a read error other than EOF or a
// reset (a TLS alert, say) is not re-sent.
func (c *client) do(ctx context.Context, hreq *http.Request, res *Result) (*http.Response, error) {
	hc := c.hc
	for {
		var a keepalive.Attempt
		resp, err := hc.Do(hreq.WithContext(httptrace.WithClientTrace(ctx, a.Trace())))
		res.Retries += a.Resent() // net/http re-sent it: nothing had been written
		if err == nil || c.fresh == nil || res.Retries >= maxRetries || !a.NeverReached(ctx, err) {
			return resp, err
		}
		body, berr := hreq.GetBody()
		if berr != nil {
			return nil, err
		}
		hreq = hreq.Clone(ctx)
		hreq.Body = body
		res.Retries++
		hc = c.fresh
	}
}

// sentBody is a request body that lets go of its bytes once they have all
// been read (sent): a body as large as its prompt
// (tens of kilobytes for long-context traces) is then not held while the
// response streams, which is most of a request's life, so memory per
// request in flight is what the response needs.
type sentBody struct{ b []byte }

func (s *sentBody) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		s.b = nil
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	if len(s.b) == 0 {
		s.b = nil
	}
	return n, nil
}

// isStream reports whether a response is Server-Sent Events: its media
// type says so, or a stream was asked for and the type is not JSON (some
// servers send no Content-Type on streams).
func isStream(contentType string, asked bool) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "text/event-stream" || (asked && mt != "application/json")
}

// httpError is "http <status>: <start of the body>", and reads a little
// more of the body so the connection can serve the next request.
func httpError(resp *http.Response) string {
	var b [errBodyBytes]byte
	n, _ := io.ReadFull(resp.Body, b[:])
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, errBodyDrain))
	msg := strings.Join(strings.Fields(strings.ToValidUTF8(string(b[:n]), "?")), " ")
	if msg == "" {
		return fmt.Sprintf("http %d", resp.StatusCode)
	}
	return fmt.Sprintf("http %d: %s", resp.StatusCode, msg)
}

// describe turns a transport error into Result.Err: "cancelled: …" for the
// drain bound, "timeout: …" for the per-request timeout, else the error.
func describe(ctx context.Context, err error) string {
	if errors.Is(context.Cause(ctx), errDrained) {
		return errDrained.Error()
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "timeout: " + err.Error()
	}
	return err.Error()
}

// readStream decodes Server-Sent Events as they arrive. Every read is timed
// once; each content-bearing event in it gets that time.
func (c *client) readStream(ctx context.Context, body io.Reader, res *Result) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	var dec openai.Decoder
	acc := streamAcc{onFirst: c.onFirst}
	for {
		n, err := body.Read(buf)
		if n > 0 {
			at := c.since()
			dec.Feed(buf[:n])
			for {
				ev, ok := dec.Next()
				if !ok {
					break
				}
				acc.event(res, at, ev.Data)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if res.Err == "" {
				res.Err = describe(ctx, err)
			}
			break
		}
	}
	if ev, ok := dec.Flush(); ok {
		acc.event(res, c.since(), ev.Data)
	}
	res.End = c.since()
	setTokens(res, acc.usage, acc.sum)
	// Results are kept for the whole run (unless the run discards their
	// chunks): give back what presizing from the requested output length
	// over-allocated (a stream that stopped early).
	if !c.discard && cap(res.Chunks) > 2*len(res.Chunks)+8 {
		res.Chunks = slices.Clone(res.Chunks)
		res.ChunkTokens = slices.Clone(res.ChunkTokens)
	}
}

// streamAcc accumulates what a stream's events say about tokens.
type streamAcc struct {
	onFirst func(FirstToken) // called at the first output event; nil: none
	usage   *openai.Usage    // the last usage seen
	cum     int              // completion tokens in the last usage seen
	haveCum bool             // a usage has been seen
	sum     int              // tokens attributed to content events so far
}

// event handles the data of one event received at offset at. Every event
// counts in Result.Events; an output-bearing one (content, or a tool-call
// delta) is timed in Chunks and counts 1 token, or, with vLLM's continuous usage
// stats (usage on every chunk, completion_tokens cumulative), the growth of
// completion_tokens since the previous chunk. Growth is only trusted when
// every earlier content event was measured the same way, so that a first
// usage arriving after unmeasured events cannot count them twice.
func (a *streamAcc) event(res *Result, at time.Duration, data []byte) {
	if res.Events == 0 {
		res.FirstEvent = at
	}
	res.Events++
	ch, err := openai.ParseChunk(data)
	if err != nil || ch.Done {
		return
	}
	if ch.Error != "" && res.Err == "" {
		res.Err = "stream error: " + ch.Error
	}
	if ch.FinishReason != "" {
		res.FinishReason = ch.FinishReason
	}
	tokens := 1
	if ch.Usage != nil {
		a.usage = ch.Usage
		if d := ch.Usage.CompletionTokens - a.cum; d > 0 && (a.haveCum || len(res.Chunks) == 0) {
			tokens = d
		}
		a.cum, a.haveCum = ch.Usage.CompletionTokens, true
	}
	if ch.Content == "" && !ch.ToolCall {
		return
	}
	if res.reply != nil {
		res.reply = append(res.reply, ch.Content...)
	}
	if len(res.Chunks) == 0 {
		res.FirstToken = at
		if a.onFirst != nil {
			a.onFirst(FirstToken{Index: res.Index, Intended: res.Intended, Sent: res.Sent, At: at})
		}
	}
	res.LastToken = at
	res.Chunks = append(res.Chunks, at)
	res.ChunkTokens = append(res.ChunkTokens, tokens)
	a.sum += tokens
}

// readJSON reads a non-streamed response into a pooled buffer and parses it.
// For such a response FirstToken and LastToken are End: the whole output
// arrives at once.
func (c *client) readJSON(ctx context.Context, body io.Reader, res *Result) {
	b := bodyBufs.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= 1<<20 {
			b.Reset()
			bodyBufs.Put(b)
		}
	}()
	b.Reset()
	n, err := b.ReadFrom(io.LimitReader(body, maxBody+1))
	res.End = c.since()
	switch {
	case err != nil:
		res.Err = describe(ctx, err)
		return
	case n > maxBody:
		res.Err = fmt.Sprintf("response body larger than %d bytes", maxBody)
		return
	}
	r, err := openai.ParseResponse(b.Bytes())
	if err != nil {
		res.Err = err.Error()
		return
	}
	if r.Error != "" {
		res.Err = "response error: " + r.Error
	}
	res.FirstToken, res.LastToken = res.End, res.End
	res.FinishReason = r.FinishReason
	if res.reply != nil {
		res.reply = append(res.reply, r.Content...)
	}
	// Without usage the output is estimated from its text (about 4
	// characters a token), never above the max_tokens the request sent
	// (RequestedOutputTokens, when > 0): an estimate must not claim more
	// tokens than the server was allowed to generate (issue 16).
	est := openai.EstimateTokens(r.Content)
	if n := res.RequestedOutputTokens; n > 0 {
		est = min(est, n)
	}
	setTokens(res, r.Usage, est)
	if c.onFirst != nil && res.Err == "" {
		c.onFirst(FirstToken{Index: res.Index, Intended: res.Intended, Sent: res.Sent, At: res.FirstToken})
	}
}

// setTokens fills token counts from usage when the server reported it,
// else from what was requested (prompt) and observed (output).
func setTokens(res *Result, usage *openai.Usage, observed int) {
	if usage != nil {
		res.PromptTokens, res.OutputTokens, res.CachedTokens = usage.PromptTokens, usage.CompletionTokens, usage.CachedTokens
		res.TokensFromUsage = true
		return
	}
	res.PromptTokens, res.OutputTokens = res.RequestedPromptTokens, observed
}

// TLSConfig is the TLS client configuration of the target: TLS 1.2 or
// later, the system roots plus caCert (--ca-cert), verification off only
// with insecure (--insecure-skip-verify). Everything that talks to the
// target (the load, the metrics scraper) uses it.
func TLSConfig(caCert string, insecure bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // only on --insecure-skip-verify
	if caCert == "" {
		return tc, nil
	}
	pool, err := certs.Pool("CA file", caCert)
	if err != nil {
		return nil, &ConfigError{Field: "CACert", Value: caCert, Msg: err.Error()}
	}
	tc.RootCAs = pool
	return tc, nil
}
