package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/scrape"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Issue 18: a benchmark that gives up on requests (cancelled by the drain,
// timed out) leaves them queued in a real engine, which keeps serving
// them: llama.cpp held 976 such requests after a sweep's throughput point,
// and the next point got no successes. Before each benchmark that follows
// one which left requests behind, the runner waits until the target is
// idle, bounded by Plan.SettleTimeout:
//
//   - from the target's metrics when it serves them (the running and
//     waiting gauges of the engine recognised, scrape.Engines): idle when
//     both are 0;
//   - otherwise by probing: one-token requests, one after another, until
//     two in a row take about the same time and no more than 1.5 times
//     the fastest probe (a backlog ahead of a probe shows as a probe far
//     slower than the one after it).
//
// The server's backlog (running + waiting) is read at every benchmark's
// start when metrics are available, and recorded with the wait
// (report.RunConfig.BacklogAtStart, SettledS).

// DefaultSettleTimeout bounds the wait for an idle target.
const DefaultSettleTimeout = 60 * time.Second

// settled is what settling before one benchmark found.
type settled struct {
	waited  time.Duration
	backlog *float64 // running + waiting at the start, when the metrics tell
	how     string   // "metrics", "probe" or "" (no wait was needed)
	idle    bool     // false: the bound ran out first
}

// leftBehind reports whether run gave up on requests the target may
// still be serving: cancelled by the drain or the stop, or timed out.
func leftBehind(run *engine.Run) bool {
	if run == nil {
		return false
	}
	if run.Cancelled > 0 {
		return true
	}
	for i := range run.Results {
		if e := run.Results[i].Err; strings.Contains(e, "timeout") || strings.Contains(e, "deadline") || strings.Contains(e, "canceled") {
			return true
		}
	}
	return false
}

// settle waits, before a benchmark of cfg, for the target to be idle when
// the previous benchmark left requests behind (wait), and reads its backlog.
func (r *Runner) settle(ctx context.Context, cfg engine.Config, wait bool, client *http.Client) settled {
	var s settled
	metricsURL := r.metricsURL(cfg.Target)
	backlog := func() (float64, bool) {
		if metricsURL == "" {
			return 0, false
		}
		return readBacklog(ctx, metricsURL, cfg.Headers, client)
	}
	start := time.Now()
	bound := r.plan.SettleTimeout
	if bound <= 0 {
		bound = DefaultSettleTimeout
	}
	n, ok := backlog()
	if ok {
		atStart := n
		s.backlog = &atStart
	}
	if !wait {
		return s
	}
	switch {
	case ok:
		s.how = "metrics"
		for n > 0 && time.Since(start) < bound && ctx.Err() == nil {
			sleepCtx(ctx, 250*time.Millisecond)
			if n, ok = backlog(); !ok {
				break
			}
		}
		s.idle = ok && n == 0
	default:
		s.how = "probe"
		s.idle = r.probeIdle(ctx, cfg, start.Add(bound), client)
	}
	s.waited = time.Since(start)
	return s
}

// metricsURL is where the target's metrics are read for settling: as the
// scraper reads them (auto: TARGET/metrics), "" when scraping is off.
func (r *Runner) metricsURL(target string) string {
	switch m := r.plan.Scrape.Metrics; m {
	case scrape.ModeOff:
		return ""
	case scrape.ModeAuto, "":
		return strings.TrimRight(target, "/") + "/metrics"
	default:
		return m
	}
}

// readBacklog reads the requests running and waiting from the metrics at
// url: ok is false when they are not there (no metrics, no engine
// recognised).
func readBacklog(ctx context.Context, url string, header http.Header, client *http.Client) (float64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	var names []string
	for _, e := range scrape.Engines {
		names = append(names, e.Running...)
		names = append(names, e.Waiting...)
	}
	values, err := scrape.Parse(io.LimitReader(resp.Body, 16<<20), scrape.Matcher(names))
	if err != nil {
		return 0, false
	}
	for _, e := range scrape.Engines {
		run, okR := first(values, e.Running)
		wait, okW := first(values, e.Waiting)
		if okR || okW {
			return run + wait, true
		}
	}
	return 0, false
}

// first is the value of the first of names present (with or without a
// _total suffix the exposition may add).
func first(values map[string]scrape.Value, names []string) (float64, bool) {
	for _, n := range names {
		if v, ok := values[n]; ok {
			return v.V, true
		}
	}
	return 0, false
}

// probeIdle sends one-token requests one after another until the target
// answers two in a row in about the same time, no slower than 1.5 times
// the fastest (idle), or until deadline (false).
func (r *Runner) probeIdle(ctx context.Context, cfg engine.Config, deadline time.Time, client *http.Client) bool {
	model := cfg.Model
	if model == "" {
		model = r.workloadModel()
	}
	body, _ := json.Marshal(map[string]any{
		"model": model, "max_tokens": 1, "stream": false,
		"messages": []map[string]string{{"role": "user", "content": "Reply with one word."}},
	})
	var prev, fastest time.Duration
	for time.Now().Before(deadline) && ctx.Err() == nil {
		d, ok := probeOnce(ctx, cfg, body, time.Until(deadline), client)
		if !ok {
			return false // the target cannot be probed: do not wait on it
		}
		if fastest == 0 || d < fastest {
			fastest = d
		}
		if prev > 0 && d <= prev*5/4 && prev <= d*5/4 && d <= fastest*3/2 {
			return true
		}
		prev = d
	}
	return false
}

// probeOnce times one probe request; ok is false when it failed.
func probeOnce(ctx context.Context, cfg engine.Config, body []byte, within time.Duration, client *http.Client) (time.Duration, bool) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(cfg.Target, "/")+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return 0, false
	}
	for k, v := range cfg.Headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(t0), resp.StatusCode == http.StatusOK
}

// workloadModel is the model the workload's first request names ("" when
// it names none or does not open).
func (r *Runner) workloadModel() string {
	src, err := workload.Open(r.plan.Workload, workload.OpenOptions{SkipInvalid: true})
	if err != nil {
		return ""
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	req, err := src.Next()
	if err != nil {
		return ""
	}
	if m, ok := r.plan.Transforms.ModelMap[req.Model]; ok {
		return m
	}
	if m, ok := r.plan.Transforms.ModelMap["*"]; ok {
		return m
	}
	return req.Model
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// settleLine is the console line about a wait for an idle target.
func (s settled) line(name string) string {
	if s.how == "" {
		return ""
	}
	state := "idle"
	if !s.idle {
		state = "still busy when the wait's bound ran out"
	}
	return fmt.Sprintf("%s: waited %.1fs for the target to finish the requests the previous benchmark gave up on (%s): %s", name, s.waited.Seconds(), s.how, state)
}
