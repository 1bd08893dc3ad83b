package bench

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/scrape"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// Issue 18's engine behaviours, on the built-in simulator made to behave
// as real engines do (a prompt cache, cancelled requests kept queued,
// kept-alive connections closed without notice). Timings are compared as
// orderings with wide margins, never as absolute times.

// cachedSim is a 4-slot simulator whose prefill costs 1 ms a prompt token
// not in its prefix cache: a 400-token prompt takes 400 ms fresh, a few ms
// cached.
func cachedSim(t *testing.T, mods ...func(*sim.Config)) string {
	url, _ := simtest.Start(t, append([]func(*sim.Config){func(c *sim.Config) {
		c.Slots, c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq, c.Jitter = 4, 2*time.Millisecond, time.Millisecond, time.Millisecond, 0, 0
		c.PrefixCache = true
	}}, mods...)...)
	return url
}

func testPlan(url, wl string, mods ...func(*Plan)) Plan {
	p := Plan{
		Engine: engine.Config{Target: url, Profile: engine.ProfileConstant, Rate: 20, MaxRequests: 12, MaxConcurrency: 64,
			Drain: 10 * time.Second, Timeout: time.Minute, TimeScale: 1, Headers: http.Header{}, Seed: 42, LagThreshold: 10 * time.Millisecond},
		Workload: wl, Tokenizer: "cl100k_base", Quiet: true, Scrape: scrape.Flags{Metrics: scrape.ModeOff, Interval: time.Second},
	}
	for _, m := range mods {
		m(&p)
	}
	return p
}

// Two benchmarks at equal load, one after the other against one target,
// see the same TTFT: the second gets fresh prompts (its own namespace)
// and finds none of the first's in the target's prefix cache. Sending the
// same prompts again (ReusePrompts), as every sweep point used to, makes
// the second look many times faster.
func TestEqualLoadEqualTTFTWhateverTheOrder(t *testing.T) {
	const wl = "synthetic:prompt_tokens=400,output_tokens=2,samples=12"
	for _, reuse := range []bool{false, true} {
		url := cachedSim(t)
		var warned bytes.Buffer
		r, err := NewRunner(testPlan(url, wl, func(p *Plan) { p.ReusePrompts = reuse }), &warned)
		if err != nil {
			t.Fatal(err)
		}
		var p50 [2]float64
		var share [2]float64
		for i := range 2 {
			o, err := r.PointOK(context.Background(), "constant@20", engine.ProfileConstant, 20, nil)
			if err != nil {
				t.Fatal(err)
			}
			p50[i], share[i] = o.Benchmark.Metrics.TimeToFirstToken.P50, o.Benchmark.Metrics.CachedTokenShare
		}
		ratio := p50[1] / p50[0]
		switch {
		case !reuse && (ratio < 0.5 || ratio > 2 || share[1] > 0.1):
			t.Errorf("fresh prompts: TTFT p50 %.1f then %.1f ms, cached share of the second %.2f: want equal TTFT and nothing cached", p50[0], p50[1], share[1])
		case reuse && (ratio > 0.25 || share[1] < 0.9):
			t.Errorf("reused prompts: TTFT p50 %.1f then %.1f ms, cached share %.2f: the second should hit the first's prompts in the cache", p50[0], p50[1], share[1])
		}
		if got := strings.Contains(warned.String(), "of prompt tokens from its prefix cache, while the workload's own prefix structure predicts 0%"); got != reuse {
			t.Errorf("reuse %v: cache warning %v:\n%s", reuse, got, warned.String())
		}
		t.Logf("reuse %v: TTFT p50 %.1f → %.1f ms, cached share %.2f → %.2f", reuse, p50[0], p50[1], share[0], share[1])
	}
}

// A benchmark that gave up on requests (its drain cancelled them) leaves
// them in a target that keeps cancelled requests queued, as llama.cpp
// does; the next benchmark waits until the target's metrics show it idle,
// records the wait, and succeeds.
func TestBenchmarkAfterCancelledOnesSucceeds(t *testing.T) {
	for _, metrics := range []string{scrape.ModeAuto, scrape.ModeOff} { // idle by the metrics, or by probing
		t.Run(metrics, func(t *testing.T) {
			url := cachedSim(t, func(c *sim.Config) {
				c.Slots, c.HoldCancelled, c.PrefixCache, c.ITLBase = 2, true, false, 20*time.Millisecond
			})
			plan := testPlan(url, "synthetic:prompt_tokens=10,output_tokens=30,samples=100000", func(p *Plan) {
				p.Scrape = scrape.Flags{Metrics: metrics, Interval: time.Second}
				p.Engine.MaxRequests, p.Engine.MaxSeconds, p.Engine.Drain = 0, 0.3, 50*time.Millisecond
			})
			r, err := NewRunner(plan, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			// 24 in flight on 2 slots of 600 ms each: the drain cancels most.
			r.plan.ThroughputConcurrency = 24
			tp, err := r.Point(context.Background(), "throughput", engine.ProfileThroughput, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tp.Run.Cancelled == 0 {
				t.Fatalf("the throughput benchmark cancelled nothing (%+v): the test needs it to", tp.Run.StopReason)
			}
			r.plan.Engine.MaxSeconds, r.plan.Engine.MaxRequests, r.plan.Engine.Drain = 0, 4, 10*time.Second
			next, err := r.PointOK(context.Background(), "constant@5", engine.ProfileConstant, 5, nil)
			if err != nil {
				t.Fatalf("the benchmark after the cancelled one: %v", err)
			}
			c := next.Benchmark.Config
			if c.SettledS == nil || *c.SettledS <= 0 {
				t.Errorf("settled %v s: want a recorded wait", deref(c.SettledS))
			}
			if metrics == scrape.ModeAuto && (c.BacklogAtStart == nil || *c.BacklogAtStart == 0) {
				t.Errorf("backlog at start %v: the metrics showed the cancelled requests", deref(c.BacklogAtStart))
			}
			// Idle when it started: each request had a slot at once.
			if m := next.Benchmark.Metrics; m.Requests.Successful != 4 || m.Requests.Errored != 0 || m.TimeToFirstToken.Max > 500 {
				t.Errorf("requests after settling: %+v, TTFT max %.0f ms", m.Requests, m.TimeToFirstToken.Max)
			}
		})
	}
}

// A target that closes kept-alive connections without notice (as
// llama.cpp's server sometimes does right after a stream) costs no
// request: each that met such a close is sent again, and counted.
func TestKeepAliveClosesFailNoRequest(t *testing.T) {
	url := cachedSim(t, func(c *sim.Config) { c.KeepAliveCloseRate, c.PrefixCache = 0.3, false })
	r, err := NewRunner(testPlan(url, "synthetic:prompt_tokens=10,output_tokens=3,samples=40", func(p *Plan) {
		p.Engine.Profile, p.Engine.MaxRequests = engine.ProfileSynchronous, 40
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o, err := r.PointOK(context.Background(), "synchronous", engine.ProfileSynchronous, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := o.Benchmark.Metrics
	if m.Requests.Successful != 40 || m.Requests.Errored != 0 || m.RetriedRequests == 0 {
		t.Errorf("requests %+v, retried %d: want 40 successful, none failed, some retried", m.Requests, m.RetriedRequests)
	}
}

func deref(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}
