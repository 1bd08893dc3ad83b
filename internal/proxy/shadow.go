package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/redact"
)

// Shadow testing: a sample of requests is sent, asynchronously, to a
// candidate deployment as well. The candidate's response is read to the end
// and timed by its own capture.Tracker, never shown to the client, and
// written as a second record with the same id and Shadow set.
//
// Isolation from the primary path is structural, not timed:
//   - the shadow starts from a copy of the request body the tee already
//     holds, once the primary's transport has read all of it; nothing waits
//     for the shadow;
//   - concurrency is a buffered channel taken without blocking: when every
//     slot is busy (a stalled candidate holds them until --shadow-timeout)
//     the shadow is skipped and counted, the primary never waits;
//   - the candidate has its own http.Transport (its own connection pool and
//     dial/TLS/header timeouts), so a dead candidate cannot occupy
//     connections or idle slots the upstream needs;
//   - no lock is shared with the request path: sampling, slots and counters
//     are atomics and a channel.

// ShadowConfig configures shadow testing. Field comments are the user
// documentation of the matching --shadow-* flags.
type ShadowConfig struct {
	// URL is the candidate's base URL (http:// or https://); empty: off.
	// Paths and queries are appended as for --upstream.
	URL string
	// Fraction of requests mirrored, 0..1 (1: every request).
	Fraction float64
	// MaxInFlight bounds concurrent shadow requests; when all are busy a
	// sampled request is not mirrored (counted as skipped). Default 64.
	MaxInFlight int
	// Seed makes the sample reproducible: the same seed and request order
	// pick the same requests.
	Seed uint64
	// Timeout bounds one shadow exchange from send to the last response
	// byte; a candidate that stalls longer is recorded as aborted.
	// Default 2 minutes.
	Timeout time.Duration
	// ForwardAuth forwards the client's credentials (Authorization,
	// Cookie, X-Api-Key, Api-Key headers; api_key-style query parameters)
	// to the candidate. Off by default: they are removed.
	ForwardAuth bool
	// Headers are "Name: value" headers set on every shadow request,
	// replacing the client's (e.g. the candidate's own Authorization).
	Headers HeaderList
}

// HeaderList is a repeatable "Name: value" flag.
type HeaderList []string

// String implements flag.Value. Values are not shown: they may be secrets.
func (h *HeaderList) String() string {
	if h == nil || len(*h) == 0 {
		return ""
	}
	return fmt.Sprintf("%d header(s)", len(*h))
}

// Set implements flag.Value; each call adds one header.
func (h *HeaderList) Set(v string) error {
	if _, _, err := parseHeader(v); err != nil {
		return err
	}
	*h = append(*h, v)
	return nil
}

// Repeatable marks the flag as taking one value per use (cli.Repeatable).
func (h *HeaderList) Repeatable() bool { return true }

func parseHeader(v string) (name, value string, err error) {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return "", "", errors.New("want \"Name: value\"")
	}
	return textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value), nil
}

// Validate reports every problem with c at once. A zero ShadowConfig (no
// URL) is valid: shadowing is off.
func (c *ShadowConfig) Validate() error {
	if c.URL == "" {
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--shadow %s: want an http:// or https:// URL", redact.URL(c.URL)))
	}
	if !(c.Fraction >= 0 && c.Fraction <= 1) {
		errs = append(errs, fmt.Errorf("--shadow-fraction %v: want 0..1", c.Fraction))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("--shadow-max-inflight %d: must not be negative", c.MaxInFlight))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("--shadow-timeout %v: must not be negative", c.Timeout))
	}
	for _, h := range c.Headers {
		if _, _, err := parseHeader(h); err != nil {
			errs = append(errs, fmt.Errorf("--shadow-header: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ShadowStats are the shadow's counters since start.
type ShadowStats struct {
	Sampled     int64 // requests picked by the sample
	Sent        int64 // shadow requests started
	SkippedFull int64 // sampled but not sent: every slot busy
	SkippedBody int64 // sampled but not sent: the body was incomplete or over --max-parse-bytes
	Failed      int64 // shadow exchanges that ended in an error (no response, broken stream, timeout)
	Recorded    int64 // shadow records handed to the writer
	Dropped     int64 // shadow records the writer refused
	InFlight    int64 // shadow requests running now
}

// shadower mirrors sampled requests to the candidate.
type shadower struct {
	cfg     ShadowConfig
	target  *url.URL
	headers http.Header // parsed cfg.Headers
	rt      *http.Transport
	sem     chan struct{} // one token per running shadow
	ctx     context.Context
	cancel  context.CancelFunc
	closed  atomic.Bool
	n       atomic.Uint64 // requests offered to the sample

	out            RecordWriter
	origin         time.Time
	opts           *capture.Options
	upstreamHeader string
	log            *zap.Logger
	bufPool        sync.Pool

	sampled, sent, skippedFull, skippedBody, failed, recorded, dropped, inFlight atomic.Int64
}

func newShadower(cfg ShadowConfig, out RecordWriter, origin time.Time, opts *capture.Options, upstreamHeader string, log *zap.Logger) *shadower {
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	target, _ := url.Parse(cfg.URL)
	hdr := http.Header{}
	for _, h := range cfg.Headers {
		k, v, _ := parseHeader(h)
		hdr[k] = append(hdr[k], v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &shadower{
		cfg: cfg, target: target, headers: hdr, sem: make(chan struct{}, cfg.MaxInFlight),
		ctx: ctx, cancel: cancel, out: out, origin: origin, opts: opts, upstreamHeader: upstreamHeader,
		log: log.Named("shadow"),
		rt: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: cfg.MaxInFlight,
			MaxConnsPerHost:     cfg.MaxInFlight,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 5 * time.Second,
			DisableCompression:  true, // time the bytes as sent
		},
	}
}

// splitmix64 is a 64-bit mixing function (Steele, Lea and Flood, 2014):
// consecutive inputs give independent-looking outputs, so hashing a seeded
// counter samples without a shared random source or lock.
func splitmix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// sample reports whether the next request is mirrored: the top 53 bits of
// the hash as a uniform number in [0, 1), compared with the fraction.
func (s *shadower) sample() bool {
	switch f := s.cfg.Fraction; {
	case f >= 1:
		return true
	case f <= 0:
		return false
	default:
		x := splitmix64(s.cfg.Seed + s.n.Add(1)*0x9e3779b97f4a7c15)
		return float64(x>>11) < f*(1<<53)
	}
}

// shadowJob is one sampled request: what the shadow sends, captured on
// the handler goroutine before the primary is forwarded.
type shadowJob struct {
	id, reqID, method, path string
	url                     string
	header                  http.Header
	session                 string      // raw session header value; hashed by the tracker
	fired                   atomic.Bool // launched or given up; the body hook and finish race for it
}

// credentialHeaders are removed from shadow requests unless ForwardAuth.
var credentialHeaders = []string{"Authorization", "Cookie", "X-Api-Key", "Api-Key"}

// credentialParams are query parameters that carry API keys in some APIs
// (Azure's api-key, Google's key); removed like credentialHeaders.
var credentialParams = []string{"api_key", "api-key", "apikey", "key", "access_token"}

// hopHeaders are per-connection headers (RFC 9110 §7.6.1), never forwarded.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// prepare decides whether r is mirrored and, if so, captures what the
// shadow request needs from it. It returns nil for a request not sampled.
func (s *shadower) prepare(r *http.Request, id, reqID, session string) *shadowJob {
	if s.closed.Load() || !s.sample() {
		return nil
	}
	s.sampled.Add(1)
	h := r.Header.Clone()
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	if !s.cfg.ForwardAuth {
		for _, k := range credentialHeaders {
			h.Del(k)
		}
	}
	// The response is only timed, never relayed: ask for it unencoded.
	h.Del("Accept-Encoding")
	h.Del("Content-Length")
	for k, v := range s.headers {
		h[k] = v
	}
	u := *s.target
	u.Path = joinSlash(s.target.Path, r.URL.Path)
	if r.URL.RawPath != "" {
		u.RawPath = joinSlash(s.target.EscapedPath(), r.URL.EscapedPath())
	}
	u.RawQuery = s.query(r.URL.RawQuery)
	return &shadowJob{id: id, reqID: reqID, method: r.Method, path: r.URL.Path, url: u.String(), header: h, session: session}
}

// query joins the target's and the request's query, without credential
// parameters unless ForwardAuth.
func (s *shadower) query(raw string) string {
	if raw != "" && !s.cfg.ForwardAuth {
		if q, err := url.ParseQuery(raw); err == nil {
			drop := false
			for _, k := range credentialParams {
				if q.Has(k) {
					q.Del(k)
					drop = true
				}
			}
			if drop {
				raw = q.Encode()
			}
		} else {
			raw = "" // unparseable: it might hide a key
		}
	}
	switch {
	case s.target.RawQuery == "":
		return raw
	case raw == "":
		return s.target.RawQuery
	}
	return s.target.RawQuery + "&" + raw
}

func joinSlash(a, b string) string {
	switch as, bs := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/"); {
	case as && bs:
		return a + b[1:]
	case !as && !bs && b != "":
		return a + "/" + b
	}
	return a + b
}

// bodyDone is the request body's end: complete says body is all of it.
// The first of bodyDone and giveUp settles the job.
func (s *shadower) bodyDone(j *shadowJob, body []byte, complete bool) {
	if !j.fired.CompareAndSwap(false, true) {
		return
	}
	if !complete {
		s.skippedBody.Add(1)
		return
	}
	s.launch(j, body)
}

// giveUp settles a job whose body never ended (the primary failed before
// its transport read it all).
func (s *shadower) giveUp(j *shadowJob) { s.bodyDone(j, nil, false) }

// launch starts the shadow exchange if a slot is free; it never blocks.
func (s *shadower) launch(j *shadowJob, body []byte) {
	if s.closed.Load() {
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.skippedFull.Add(1)
		if ce := s.log.Check(zap.DebugLevel, "shadow skipped: every slot busy"); ce != nil {
			ce.Write(zap.String("request_id", j.reqID))
		}
		return
	}
	s.sent.Add(1)
	s.inFlight.Add(1)
	go s.run(j, body)
}

// run performs one shadow exchange and writes its record. It holds a slot
// (a token in sem) until the record is written.
func (s *shadower) run(j *shadowJob, body []byte) {
	defer func() {
		s.inFlight.Add(-1)
		<-s.sem
	}()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	sent := time.Now()
	tr := capture.NewTracker(s.origin, sent, j.id, j.method, j.path, s.opts)
	tr.SetRequestID(j.reqID)
	if j.session != "" {
		tr.SetSession(j.session)
	}
	if err := parseRequestBody(tr, contentEncoding(j.header), body, true, s.opts.MaxBody); err != nil {
		s.log.Debug("shadow request body not decoded for parsing", zap.String("request_id", j.reqID), errField(err))
	} // the body itself is sent encoded, as received
	aborted, err := s.exchange(ctx, j, body, tr)
	if err != nil && ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("shadow timeout after %v: %w", s.cfg.Timeout, err)
		} else {
			err = fmt.Errorf("shadow cancelled at shutdown: %w", err)
		}
	}
	rec := tr.Finish(time.Now(), err, aborted)
	rec.Shadow = true
	if err != nil {
		s.failed.Add(1)
	}
	if ce := s.log.Check(zap.DebugLevel, "shadow done"); ce != nil {
		ce.Write(zap.String("request_id", j.reqID), zap.String("path", j.path), zap.Int("status", rec.Status),
			zap.Duration("e2e", time.Duration(rec.E2ENs)), zap.Bool("aborted", rec.Aborted), zap.String("error", rec.Error))
	}
	if s.out == nil {
		return
	}
	if s.out.Write(rec) {
		s.recorded.Add(1)
	} else {
		s.dropped.Add(1)
	}
}

// exchange sends the shadow request and reads the response to its end,
// feeding the tracker. It returns whether the response broke off and the
// error that ended the exchange, if any.
func (s *shadower) exchange(ctx context.Context, j *shadowJob, body []byte, tr *capture.Tracker) (aborted bool, err error) {
	req, err := http.NewRequestWithContext(ctx, j.method, j.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("building shadow request: %w", err)
	}
	req.Header = j.header
	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		return false, fmt.Errorf("shadow request: %w", err)
	}
	defer resp.Body.Close()
	upstream := ""
	if s.upstreamHeader != "" {
		upstream = resp.Header.Get(s.upstreamHeader)
	}
	tr.ResponseStart(time.Now(), resp.StatusCode, resp.Header.Get("Content-Type"), upstream)
	bp, _ := s.bufPool.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 32<<10)
		bp = &b
	}
	defer s.bufPool.Put(bp)
	for {
		n, rerr := resp.Body.Read(*bp)
		if n > 0 {
			tr.ResponseData(time.Now(), (*bp)[:n])
		}
		if rerr == io.EOF {
			return false, nil
		}
		if rerr != nil {
			if tr.StreamDone() {
				return false, nil // complete; the connection failed after the end
			}
			return true, fmt.Errorf("reading shadow response: %w", rerr)
		}
	}
}

// stop stops mirroring: no new shadow starts, running ones may finish
// until ctx is done and are then cancelled (recorded as aborted). It
// returns once every shadow record has been handed to the writer.
func (s *shadower) stop(ctx context.Context) {
	s.closed.Store(true)
	// Holding every slot means no shadow runs.
	for range cap(s.sem) {
		select {
		case s.sem <- struct{}{}:
			continue
		case <-ctx.Done():
		}
		s.cancel()
		s.sem <- struct{}{}
	}
	s.cancel()
	s.rt.CloseIdleConnections()
}

// Stats returns the shadow counters.
func (s *shadower) stats() ShadowStats {
	return ShadowStats{
		Sampled: s.sampled.Load(), Sent: s.sent.Load(), SkippedFull: s.skippedFull.Load(),
		SkippedBody: s.skippedBody.Load(), Failed: s.failed.Load(), Recorded: s.recorded.Load(),
		Dropped: s.dropped.Load(), InFlight: s.inFlight.Load(),
	}
}

var (
	descShadowSent     = prometheus.NewDesc("reprise_proxy_shadow_requests_total", "Shadow requests sent to the candidate.", nil, nil)
	descShadowSkipped  = prometheus.NewDesc("reprise_proxy_shadow_skipped_total", "Sampled requests not mirrored: reason full (every --shadow-max-inflight slot busy) or body (incomplete or over --max-parse-bytes).", []string{"reason"}, nil)
	descShadowFailed   = prometheus.NewDesc("reprise_proxy_shadow_failed_total", "Shadow exchanges that ended in an error (no response, broken stream, timeout).", nil, nil)
	descShadowInFlight = prometheus.NewDesc("reprise_proxy_shadow_in_flight", "Shadow requests running.", nil, nil)
	descShadowDropped  = prometheus.NewDesc("reprise_proxy_shadow_records_dropped_total", "Shadow records the capture writer refused.", nil, nil)
)

var _ prometheus.Collector = (*shadower)(nil)

// Describe implements prometheus.Collector.
func (s *shadower) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descShadowSent, descShadowSkipped, descShadowFailed, descShadowInFlight, descShadowDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector, reading the counters at scrape
// time.
func (s *shadower) Collect(ch chan<- prometheus.Metric) {
	st := s.stats()
	ch <- prometheus.MustNewConstMetric(descShadowSent, prometheus.CounterValue, float64(st.Sent))
	ch <- prometheus.MustNewConstMetric(descShadowSkipped, prometheus.CounterValue, float64(st.SkippedFull), "full")
	ch <- prometheus.MustNewConstMetric(descShadowSkipped, prometheus.CounterValue, float64(st.SkippedBody), "body")
	ch <- prometheus.MustNewConstMetric(descShadowFailed, prometheus.CounterValue, float64(st.Failed))
	ch <- prometheus.MustNewConstMetric(descShadowInFlight, prometheus.GaugeValue, float64(st.InFlight))
	ch <- prometheus.MustNewConstMetric(descShadowDropped, prometheus.CounterValue, float64(st.Dropped))
}

// ShadowStats returns the shadow's counters (zero when shadowing is off).
func (p *Proxy) ShadowStats() ShadowStats {
	if p.shadow == nil {
		return ShadowStats{}
	}
	return p.shadow.stats()
}

// StopShadow stops mirroring: call it after the server stopped and Wait
// returned, before closing the writer. Running shadows may finish until
// ctx is done, then are cancelled and recorded as aborted.
func (p *Proxy) StopShadow(ctx context.Context) {
	if p.shadow != nil {
		p.shadow.stop(ctx)
	}
}

// startShadow samples r and arranges its shadow: at once for a request
// without a body, else when the primary's transport has read the body.
func (p *Proxy) startShadow(ex *exchange, r *http.Request, id string) {
	session := ""
	if p.cfg.SessionHeader != "" {
		session = r.Header.Get(p.cfg.SessionHeader)
	}
	j := p.shadow.prepare(r, id, ex.reqID, session)
	if j == nil {
		return
	}
	if ex.body == nil {
		j.fired.Store(true)
		p.shadow.launch(j, nil)
		return
	}
	ex.shadow = j
	ex.body.onEnd = func(body []byte, complete bool) { p.shadow.bodyDone(j, body, complete) }
}
