package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
)

// Issue 15, the vantage point: a captured baseline's timings start where
// the capture happened (the proxy, or Envoy's ext_proc or wasm filter: the
// capture manifest's source), the replayer's at the replayer, a network
// away from the target. Before each benchmark the runner measures that
// network from the replayer: the time to connect, and the time to the
// first byte of a trivial request (GET /v1/models on a fresh connection,
// connect included). Both are recorded (report.RunConfig.NetworkConnectMs,
// NetworkFirstByteMs) and printed beside TTFT; a comparison against
// production as captured says when the two vantage points differ by more
// than that round trip.

// vantage is what measureVantage found; zero fields were not measured.
type vantage struct {
	connect, firstByte time.Duration
}

// measureVantage measures the network from here to target.
func measureVantage(ctx context.Context, target string, header http.Header, client *http.Client) vantage {
	var v vantage
	u, err := url.Parse(target)
	if err != nil {
		return v
	}
	t0 := time.Now()
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", cli.DialAddress(u))
	if err != nil {
		return v
	}
	v.connect = time.Since(t0)
	conn.Close()

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var start, first time.Time
	trace := &httptrace.ClientTrace{
		GetConn:              func(string) { start = time.Now() },
		GotFirstResponseByte: func() { first = time.Now() },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, strings.TrimRight(target, "/")+"/v1/models", nil)
	if err != nil {
		return v
	}
	for k, vals := range header {
		req.Header[k] = vals
	}
	resp, err := client.Do(req)
	if err != nil {
		return v
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if !first.IsZero() && !start.IsZero() {
		v.firstByte = first.Sub(start)
	}
	return v
}

// record puts the measurement in a benchmark's config.
func (v vantage) record(c *report.RunConfig) {
	ms := func(d time.Duration) *float64 {
		if d <= 0 {
			return nil
		}
		return report.Ptr(float64(d) / float64(time.Millisecond))
	}
	c.NetworkConnectMs, c.NetworkFirstByteMs = ms(v.connect), ms(v.firstByte)
}

// captureSource is the front end a capture's manifest names ("" when it
// names none or does not read).
func captureSource(path string) string {
	r, err := capture.Open(path)
	if err != nil {
		return ""
	}
	defer r.Close()
	return r.Manifest().Source
}

// VantageNote is the comparison's note when production's timings (taken
// at the capture's front end) and the candidate's (taken at the replayer)
// come from vantage points a round trip of more than the measured network
// apart — the note says how much of a TTFT difference that accounts for —
// or "" when the candidate's network was not measured.
func VantageNote(captured, cand *report.Benchmark) string {
	rt := cand.Config.NetworkFirstByteMs
	if rt == nil {
		return ""
	}
	front := captured.Config.CaptureSource
	if front == "" {
		front = "the capture's front end"
	}
	return fmt.Sprintf("production's timings were taken at %s, %s's at the replayer, a network away from it: a request's round trip from the replayer was %.2f ms "+
		"(connect %s); TTFT and latency differences smaller than that are the vantage point, not the deployment",
		front, cand.Name, *rt, fmtMs(cand.Config.NetworkConnectMs))
}

func fmtMs(p *float64) string {
	if p == nil {
		return "not measured"
	}
	return fmt.Sprintf("%.2f ms", *p)
}

// httpClient is the client the runner's own requests to a target use
// (settling, the clock check, the network measurement): the benchmark's
// TLS settings (a private CA, verification off), fresh connections, so
// each measures what it says.
func httpClient(cfg engine.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	if tc, err := engine.TLSConfig(cfg.CACert, cfg.InsecureSkipVerify); err == nil {
		tr.TLSClientConfig = tc
	}
	return &http.Client{Transport: tr}
}
