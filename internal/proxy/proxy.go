// Package proxy is the capturing reverse proxy: an httputil.ReverseProxy that
// forwards every request unchanged and feeds what it sees to a
// capture.Tracker, one record per request. Capture never alters or delays
// client traffic: a failure to parse or to record is counted, not returned.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/redact"
)

// RecordWriter receives finished records. Write must never block; it returns
// false when the record could not be queued (it is then counted as dropped).
// *capture.Writer implements it.
type RecordWriter interface {
	Write(r *capture.Record) bool
}

var _ RecordWriter = (*capture.Writer)(nil)

// Config configures a Proxy. Field comments are the user documentation of the
// matching flags.
type Config struct {
	// Upstream is the base URL every request is forwarded to
	// (the inference gateway or model server), e.g. http://gateway:8080.
	Upstream string
	// Content is the prompt capture mode: capture.ContentNone,
	// capture.ContentHashed (default: keyed prefix-block hashes only) or
	// capture.ContentFull (prompt text; must be asked for).
	Content string
	// SessionHeader names a request header whose value identifies a
	// conversation or user; it is stored only as a keyed hash. Empty: the
	// OpenAI "user" body field is used when present.
	SessionHeader string
	// UpstreamHeader names a response header that identifies the serving
	// endpoint (pod) behind the gateway; recorded as "upstream".
	UpstreamHeader string
	// MaxBody caps how many request/response body bytes are parsed per
	// request (forwarding is never capped). Bytes; default 16 MiB.
	MaxBody int
	// EnsureUsage asks the upstream for usage (stream_options.include_usage)
	// on streamed chat/completions requests that did not, and removes what
	// that adds from the stream the client receives (usage.go).
	EnsureUsage bool
	// Shadow mirrors a sample of requests to a candidate (shadow.go).
	Shadow ShadowConfig
	// TLS configures verification of an https:// Upstream (transport.go).
	TLS UpstreamTLS
	// ReadyRequiresCapture makes /readyz answer 503 while the capture cannot
	// be written. Off by default: readiness gates traffic, and a capture
	// problem must never take the proxy (or its pod) out of rotation.
	ReadyRequiresCapture bool
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Upstream == "" {
		errs = append(errs, errors.New("--upstream is required"))
	} else if u, err := url.Parse(c.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--upstream %s: want an http:// or https:// URL", redact.URL(c.Upstream)))
	} else {
		errs = append(errs, c.TLS.validate(u.Scheme))
	}
	switch c.Content {
	case "", capture.ContentNone, capture.ContentHashed, capture.ContentFull:
	default:
		errs = append(errs, fmt.Errorf("--capture-content %q: want none, hashed or full", c.Content))
	}
	if c.MaxBody < 0 {
		errs = append(errs, fmt.Errorf("--max-parse-bytes %d: must not be negative", c.MaxBody))
	}
	errs = append(errs, c.Shadow.Validate())
	return errors.Join(errs...)
}

// ErrDrainCut is the cause to cancel requests' contexts with when a
// shutdown's drain bound passes (context.WithCancelCause on the server's
// BaseContext): the records of the requests and tunnels it ends say aborted
// with this error.
var ErrDrainCut = errors.New("cut at shutdown drain bound")

// Stats are the proxy's counters since start.
type Stats struct {
	Requests    int64 // requests received
	InFlight    int64 // requests being served now
	Recorded    int64 // records handed to the writer
	Dropped     int64 // records the writer refused (queue full, writer failed)
	Aborted     int64 // requests that ended abnormally (client gone, upstream reset)
	UpstreamErr int64 // requests the upstream could not serve (502 from the proxy)
	// UpstreamRetried counts requests sent to the upstream again because
	// it closed a kept-alive connection as they went out (raceRetry).
	UpstreamRetried int64
	// UsageBypassed counts --ensure-usage streams passed through
	// unfiltered because an event outgrew the filter's 1 MiB bound.
	UsageBypassed int64
}

// Proxy is an http.Handler that forwards and captures.
type Proxy struct {
	cfg     Config
	rp      *httputil.ReverseProxy
	out     RecordWriter
	log     *zap.Logger
	origin  time.Time // monotonic origin of record offsets (Manifest.Start)
	opts    capture.Options
	idBase  string
	seq     atomic.Uint64
	wg      sync.WaitGroup
	bufPool sync.Pool
	metrics *metrics
	shadow  *shadower // nil: no --shadow
	// doubledV1 is set when the upstream's path ends in /v1: a client
	// calling /v1/... then reaches /v1/v1/..., most likely a 404.
	// doubledV1Once logs that the first time it happens (issue 16).
	doubledV1     bool
	doubledV1Once sync.Once
	// draining: shutdown began; /readyz answers 503 so load balancers
	// stop sending before the listener closes.
	draining atomic.Bool

	requests, inFlight, recorded, dropped, aborted, upstreamErr, usageBypassed atomic.Int64
	upstreamRetried                                                            atomic.Int64
}

// New builds a Proxy forwarding to cfg.Upstream and handing records to out.
// origin is the capture's time origin (the manifest's start).
func New(cfg Config, out RecordWriter, hasher *capture.Hasher, origin time.Time, log *zap.Logger) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Content == "" {
		cfg.Content = capture.ContentHashed
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 16 << 20
	}
	if log == nil {
		log = zap.NewNop()
	}
	target, _ := url.Parse(cfg.Upstream)
	tc, err := cfg.TLS.tlsConfig()
	if err != nil {
		return nil, err
	}
	if cfg.TLS.InsecureSkipVerify {
		log.Warn("--upstream-insecure-skip-verify: the upstream's TLS certificate is NOT verified; anyone able to intercept the proxy-to-upstream hop can read and alter all traffic, prompts and credentials included",
			zap.String("upstream", target.Host))
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	p := &Proxy{
		cfg:     cfg,
		out:     out,
		log:     log,
		origin:  origin,
		opts:    capture.Options{Content: cfg.Content, Hasher: hasher, MaxBody: cfg.MaxBody},
		idBase:  hex.EncodeToString(b[:]),
		metrics: newMetrics(),
	}
	p.doubledV1 = strings.HasSuffix(strings.TrimRight(target.Path, "/"), "/v1")
	if cfg.Shadow.URL != "" {
		p.shadow = newShadower(cfg.Shadow, out, origin, &p.opts, cfg.UpstreamHeader, log)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // forward the client's Host unchanged
			if p.doubledV1 && strings.HasPrefix(pr.In.URL.Path, "/v1/") {
				p.warnDoubledV1(pr.In.URL.Path, pr.Out.URL.Path)
			}
			// SetURL does not add X-Forwarded-*; Rewrite drops the client's
			// copies. Keep what the client sent: the proxy must be invisible.
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport:      &raceRetry{inner: upstreamTransport(tc), fresh: freshTransport(tc), retried: &p.upstreamRetried},
		BufferPool:     copyBuffers{}, // one 32 KiB copy buffer per response otherwise
		FlushInterval:  -1,            // flush every write: SSE events reach the client as they arrive
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		// Its one per-request message (a read error during the body copy)
		// carries no request id; finish logs that outcome with one.
		ErrorLog: stdlog.New(io.Discard, "", 0),
	}
	return p, nil
}

// warnDoubledV1 logs, once, a client path that the upstream's /v1 base
// turns into /v1/v1/...: forwarded unchanged (the proxy never alters
// traffic), but named so the operator can fix --upstream.
func (p *Proxy) warnDoubledV1(in, out string) {
	p.doubledV1Once.Do(func() {
		p.log.Warn("--upstream ends in /v1 and a client called a /v1/ path: forwarded to "+out+", which most servers answer with 404; give --upstream without /v1 unless the upstream really serves that path",
			zap.String("client_path", in), zap.String("upstream_path", out))
	})
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Requests: p.requests.Load(), InFlight: p.inFlight.Load(), Recorded: p.recorded.Load(),
		Dropped: p.dropped.Load(), Aborted: p.aborted.Load(), UpstreamErr: p.upstreamErr.Load(),
		UsageBypassed: p.usageBypassed.Load(), UpstreamRetried: p.upstreamRetried.Load(),
	}
}

// SetDraining marks the proxy as shutting down: /readyz answers 503
// "draining" from now on. Call it before the listener stops accepting.
func (p *Proxy) SetDraining() { p.draining.Store(true) }

// Wait blocks until every request being served has written its record, so a
// caller that stopped the listener can then close the writer without losing
// a completed record.
func (p *Proxy) Wait() { p.wg.Wait() }

type ctxKey struct{}

// exchange is the per-request capture state, reached from the ReverseProxy
// hooks through the request context.
type exchange struct {
	tr      *capture.Tracker
	body    *teeBody
	respErr error // upstream body read error
	// upstreamEOF: the whole upstream body was read. A client that closes
	// its connection after that (SDKs stop reading at [DONE]) did not abort.
	upstreamEOF bool
	proxErr     error // transport error before a response
	status      int
	reqID       string     // the client's X-Request-Id, else the record id
	usageAdded  bool       // --ensure-usage edited the request (usage.go)
	shadow      *shadowJob // waiting for the request body (shadow.go)
	// reqEncoding is the request's Content-Encoding: the tee keeps the
	// bytes as sent and finish decodes a bounded copy (encoding.go).
	reqEncoding string
	// resp holds the encoded response body's first bytes when the
	// response has a Content-Encoding; decoded for parsing in finish.
	resp *encodedCopy
	// upgraded: the upstream switched protocols (101, a WebSocket); the
	// exchange is complete when the tunnel closes.
	upgraded bool
}

func (p *Proxy) newID() string {
	return p.idBase + "-" + strconv.FormatUint(p.seq.Add(1), 10)
}

// ServeHTTP forwards r and records it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrival := time.Now()
	p.requests.Add(1)
	p.inFlight.Add(1)
	p.wg.Add(1)
	defer p.wg.Done()
	defer p.inFlight.Add(-1)

	id := p.newID()
	ex := &exchange{tr: capture.NewTracker(p.origin, arrival, id, r.Method, r.URL.Path, &p.opts), reqID: requestID(r.Header, id)}
	ex.tr.SetRequestID(ex.reqID)
	if p.cfg.SessionHeader != "" {
		if v := r.Header.Get(p.cfg.SessionHeader); v != "" {
			ex.tr.SetSession(v)
		}
	}
	if p.cfg.EnsureUsage {
		ex.usageAdded = p.ensureUsage(r)
	}
	if r.Body != nil && r.Body != http.NoBody {
		ex.reqEncoding = contentEncoding(r.Header)
		ex.body = p.newTee(r.Body)
		r.Body = ex.body
	}
	if p.shadow != nil {
		p.startShadow(ex, r, id)
	}
	r = r.WithContext(contextWith(r.Context(), ex))

	finished := false
	defer func() {
		if finished {
			return
		}
		// ReverseProxy panics with http.ErrAbortHandler when the upstream
		// body fails after headers went out; record, then let net/http abort
		// the client connection as it would without us.
		v := recover()
		p.finish(ex, r, true)
		if v != nil {
			panic(v)
		}
	}()
	p.rp.ServeHTTP(w, r)
	finished = true
	p.finish(ex, r, false)
}

func (p *Proxy) finish(ex *exchange, r *http.Request, panicked bool) {
	now := time.Now()
	if ex.body != nil {
		// A body of which nothing arrived (a client that sent
		// "Expect: 100-continue" to a failed upstream, or left before
		// sending any) has nothing to parse, and is not a truncated one.
		if buf, complete := ex.body.snapshot(); len(buf) > 0 || complete {
			if err := parseRequestBody(ex.tr, ex.reqEncoding, buf, complete, p.cfg.MaxBody); err != nil {
				p.log.Debug("request body not decoded for parsing", zap.String("request_id", ex.reqID), errField(err))
			}
		}
		ex.body.release(p)
	}
	err := ex.respErr
	if err == nil {
		err = ex.proxErr
	}
	// A client that closes its connection once it has the whole response
	// (SDKs stop reading at [DONE]; a JSON body ends at Content-Length)
	// did not abort anything.
	if ex.resp != nil {
		ex.resp.feed(ex, p)
	}
	complete := ex.upstreamEOF || ex.tr.StreamDone() || ex.upgraded
	clientGone := r.Context().Err() != nil && !complete
	// A tunnel (WebSocket) is complete when either side closes it. Its
	// context does not end when the client goes (the connection is
	// hijacked), only when the server cuts it (ErrDrainCut): an abort.
	cutTunnel := ex.upgraded && r.Context().Err() != nil
	// ReverseProxy panics with ErrAbortHandler when the upstream read fails
	// after headers went out; once the response was complete that is the
	// client's hang-up above, not an abort.
	aborted := (panicked && !complete) || clientGone || ex.respErr != nil || cutTunnel
	if aborted && errors.Is(context.Cause(r.Context()), ErrDrainCut) {
		// Cutting at the drain bound cancels the request (its context's
		// cause) before it closes connections; the read error or plain
		// cancellation that follows is the symptom, the cut the reason.
		err = ErrDrainCut
	}
	if aborted && err == nil {
		err = context.Cause(r.Context())
		if err == nil {
			err = errors.New("response aborted")
		}
	}
	if ex.shadow != nil {
		p.shadow.giveUp(ex.shadow) // no-op once the body ended
	}
	rec := ex.tr.Finish(now, err, aborted)
	if aborted {
		p.aborted.Add(1)
	}
	p.logFinish(ex, r, rec)
	p.metrics.observe(rec)
	if p.out == nil {
		return
	}
	if p.out.Write(rec) {
		p.recorded.Add(1)
	} else {
		p.dropped.Add(1)
	}
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	ex := exchangeFrom(resp.Request.Context())
	if ex == nil {
		return nil
	}
	now := time.Now()
	upstream := ""
	if p.cfg.UpstreamHeader != "" {
		upstream = resp.Header.Get(p.cfg.UpstreamHeader)
	}
	ex.status = resp.StatusCode
	ex.tr.ResponseStart(now, resp.StatusCode, resp.Header.Get("Content-Type"), upstream)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The ReverseProxy needs the body as the upstream's read-write
		// connection to tunnel the upgraded protocol; nothing to parse.
		ex.upgraded = true
		return nil
	}
	if resp.Body != nil && resp.Body != http.NoBody {
		ob := &observedBody{rc: resp.Body, ex: ex, want: resp.ContentLength}
		if enc := contentEncoding(resp.Header); enc != "" {
			ex.resp = p.newEncodedCopy(enc)
		}
		resp.Body = ob
		if ex.usageAdded {
			filterUsage(resp, func() { p.usageBypassed.Add(1) })
		}
	}
	return nil
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeFrom(r.Context())
	clientThere := r.Context().Err() == nil
	if clientThere {
		p.upstreamErr.Add(1)
		p.log.Warn("upstream request failed", zap.String("request_id", requestIDOf(ex)), zap.String("path", r.URL.Path), errField(err))
	}
	if ex != nil {
		ex.proxErr = err
		ex.tr.ResponseStart(time.Now(), http.StatusBadGateway, "", "")
	}
	// Like envoy's "upstream connect error ... reason", name the failure
	// (a refused connection, an unverifiable certificate) so the client's
	// operator need not find the proxy's log. Transport errors carry no
	// URL, so no query-string credential can leak here.
	msg := ""
	if clientThere {
		msg = fmt.Sprintf("upstream request failed: %v\n", err)
		if ex != nil && ex.body != nil {
			p.readRestOfBody(w, r, ex.body)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(w, msg)
}

// readRestOfBody reads the part of the request body that the failed
// upstream exchange did not, up to the parse cap, so that the record has
// the request's model, stream flag, max_tokens and prompt (issue 16: a
// refused connection left a record with none of them, marked
// body_truncated, replayed as an empty prompt).
//
// It runs before the answer is written, and is bounded so that it cannot
// hold a client: a client that sends its request whole before reading the
// answer (nearly all do; net/http itself reads up to 256 KiB of an unread
// body before answering, golang/go#15527) has its body in flight already,
// and one that is slow to send is waited for at most restReadWait. When
// the body was not read to its end (that wait, the parse cap, a read
// error), an HTTP/1 answer says "Connection: close", so that net/http
// neither waits for the rest nor reads leftover bytes as a next request.
// A client that sent "Expect: 100-continue" and nothing yet is not asked
// for its body.
func (p *Proxy) readRestOfBody(w http.ResponseWriter, r *http.Request, body *teeBody) {
	if !body.partial() {
		return
	}
	if !body.started() && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close") // else net/http would wait for the body
		}
		return
	}
	rc := http.NewResponseController(w)
	timed := rc.SetReadDeadline(time.Now().Add(restReadWait)) == nil
	body.readRest(math.MaxInt)
	if timed {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if !body.ended.Load() && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
}

// restReadWait bounds how long readRestOfBody waits for a client still
// sending its body to a failed upstream.
const restReadWait = 250 * time.Millisecond

// copyBuffers pools the ReverseProxy's body-copy buffers: without a pool
// it allocates (and zeroes) 32 KiB for every response.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }
