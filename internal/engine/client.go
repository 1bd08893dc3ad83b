package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// errDrained is the cause given to requests cancelled by the drain bound.
var errDrained = errors.New("cancelled: still in flight when the drain bound passed")

// client sends one request and observes it: every time is an offset from
// the run's origin, taken on the caller's goroutine as bytes arrive.
type client struct {
	hc      *http.Client
	target  string
	headers http.Header
	model   string
	bodies  BodyBuilder
	origin  time.Time
	now     func() time.Time
	timeout time.Duration
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func newClient(cfg *Config, bodies BodyBuilder, origin time.Time) *client {
	tr := &http.Transport{
		Proxy:               nil, // load goes to the target, never through an environment proxy
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: max(cfg.MaxConcurrency, cfg.Concurrency, 16),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // measure the stream as the server sends it
		ForceAttemptHTTP2:   false,
	}
	return &client{hc: &http.Client{Transport: tr}, target: strings.TrimRight(cfg.Target, "/"), headers: cfg.Headers,
		model: cfg.Model, bodies: bodies, origin: origin, now: cfg.Now, timeout: cfg.Timeout}
}

func (c *client) since() time.Duration { return c.now().Sub(c.origin) }

// send issues req, intended for offset intended, and returns what happened.
func (c *client) send(ctx context.Context, req *workload.Request, intended time.Duration) Result {
	res := Result{Index: req.Index, Endpoint: string(req.Endpoint), Stream: req.Stream, Intended: intended,
		RequestedPromptTokens: req.PromptTokens, RequestedOutputTokens: req.OutputTokens}
	if res.Endpoint == "" {
		res.Endpoint = string(openai.Chat)
	}
	body, err := c.bodies.Body(req, c.model)
	if err != nil {
		res.Sent, res.End = c.since(), c.since()
		res.Err = fmt.Sprintf("building request: %v", err)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.target+openai.PathFor(openai.Endpoint(res.Endpoint)), bytes.NewReader(body))
	if err != nil {
		res.Err = err.Error()
		return res
	}
	hreq.Header.Set("Content-Type", "application/json")
	for k, v := range c.headers {
		hreq.Header[k] = v
	}
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	res.Sent = c.since()
	resp, err := c.hc.Do(hreq)
	if err != nil {
		res.End = c.since()
		res.Err = describe(ctx, err)
		return res
	}
	defer resp.Body.Close()
	res.FirstByte = c.since()
	res.Status = resp.StatusCode
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		res.End = c.since()
		res.Err = fmt.Sprintf("http %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		return res
	}
	if strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "text/event-stream") {
		c.readStream(ctx, resp.Body, &res)
	} else {
		c.readJSON(ctx, resp.Body, &res)
	}
	return res
}

func describe(ctx context.Context, err error) string {
	if cause := context.Cause(ctx); errors.Is(cause, errDrained) {
		return errDrained.Error()
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "timeout: " + err.Error()
	}
	return err.Error()
}

// readStream decodes SSE as it arrives, timing every content event.
func (c *client) readStream(ctx context.Context, body io.Reader, res *Result) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	var dec openai.Decoder
	var usage *openai.Usage
	cum, haveCum, sum := 0, false, 0
	handle := func(at time.Duration, data []byte) {
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
		tokens := 0
		if ch.Usage != nil {
			u := *ch.Usage
			usage = &u
			// vLLM continuous usage: cumulative completion tokens per chunk.
			if d := u.CompletionTokens - cum; ch.Content != "" && d > 0 && (haveCum || len(res.Chunks) == 0) {
				tokens = d
			}
			cum, haveCum = u.CompletionTokens, true
		}
		if ch.Content == "" {
			return
		}
		if tokens == 0 {
			tokens = 1
		}
		if len(res.Chunks) == 0 {
			res.FirstToken = at
		}
		res.LastToken = at
		res.Chunks = append(res.Chunks, at)
		res.ChunkTokens = append(res.ChunkTokens, tokens)
		sum += tokens
	}
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
				handle(at, ev.Data)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			res.Err = describe(ctx, err)
			break
		}
	}
	if ev, ok := dec.Flush(); ok {
		handle(c.since(), ev.Data)
	}
	res.End = c.since()
	c.tokens(res, usage, sum)
}

func (c *client) readJSON(ctx context.Context, body io.Reader, res *Result) {
	b, err := io.ReadAll(io.LimitReader(body, 64<<20))
	res.End = c.since()
	if err != nil {
		res.Err = describe(ctx, err)
		return
	}
	r, err := openai.ParseResponse(b)
	if err != nil {
		res.Err = err.Error()
		return
	}
	if r.Error != "" {
		res.Err = "response error: " + r.Error
	}
	res.FinishReason = r.FinishReason
	res.FirstToken, res.LastToken = res.End, res.End
	c.tokens(res, r.Usage, openai.EstimateTokens(r.Content))
}

// tokens fills token counts from usage, else from what was observed.
func (c *client) tokens(res *Result, usage *openai.Usage, observed int) {
	if usage != nil {
		res.PromptTokens, res.OutputTokens, res.CachedTokens = usage.PromptTokens, usage.CompletionTokens, usage.CachedTokens
		res.TokensFromUsage = true
		return
	}
	res.PromptTokens, res.OutputTokens = res.RequestedPromptTokens, observed
}
