// Package reporttest is the report package's test kit. Sweep builds large,
// realistic report.File values for tests and benchmarks of the report
// writers: a rate sweep whose latency grows with load until it saturates,
// with SLO verdicts and the saturation detector's report, as replay run
// --profile sweep writes them. Read reads back the results a command wrote.
package reporttest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/scrape"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/stats"
)

// SweepOptions shapes Sweep's file.
type SweepOptions struct {
	Points   int    // benchmarks (rates); default 10
	Requests int    // requests over all benchmarks; default 100,000
	Seed     uint64 // every random choice
	// SaveRequests includes per-request records (as --save-requests does),
	// which the HTML report must never draw one by one.
	SaveRequests bool
	// SLO is the --slo spec evaluated per benchmark; default
	// "ttft_p99<=400ms,itl_p99<=40ms".
	SLO string
	// ServerMetrics adds what scraping the server's vLLM metrics once a
	// second would have shown (ServerSlots batch slots).
	ServerMetrics bool
}

// ServerSlots is the simulated server's batch size: requests in flight
// beyond it wait.
const ServerSlots = 48

// Capacity is the simulated server's saturation rate in requests per
// second: latency grows as the rate approaches it, and the detector fires
// at the first benchmark above it.
const Capacity = 40.0

// Sweep returns a sweep of opts.Points benchmarks at rates from 4 req/s up
// to 1.25 × Capacity, opts.Requests requests in all, each streamed with
// 32–160 output tokens. TTFT and inter-token latency follow a queueing
// curve, 1/(1 − load), with log-normal noise; about 0.5% of requests fail.
func Sweep(opts SweepOptions) (*report.File, error) {
	if opts.Points == 0 {
		opts.Points = 10
	}
	if opts.Requests == 0 {
		opts.Requests = 100_000
	}
	if opts.SLO == "" {
		opts.SLO = "ttft_p99<=400ms,itl_p99<=40ms"
	}
	if opts.Points < 2 || opts.Requests < opts.Points {
		return nil, fmt.Errorf("reporttest: %d points and %d requests: want at least 2 points and a request per point", opts.Points, opts.Requests)
	}
	spec, err := slo.Parse(opts.SLO)
	if err != nil {
		return nil, fmt.Errorf("reporttest: %w", err)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := &report.File{
		Tool: "reprise", Created: start.Add(time.Hour),
		Command: []string{"replay", "run", "--profile", "sweep", "--target", "http://sim:8000", "--slo", opts.SLO},
		Labels:  map[string]string{"gpu": "sim", "fixture": "reporttest.Sweep"},
	}
	lo, hi := 4.0, 1.25*Capacity
	for p := range opts.Points {
		rate := lo + (hi-lo)*float64(p)/float64(opts.Points-1)
		n := opts.Requests / opts.Points
		if p == opts.Points-1 {
			n = opts.Requests - n*(opts.Points-1)
		}
		results := sweepResults(rng, n, rate)
		name := fmt.Sprintf("constant@%.3g", rate)
		b := report.Benchmark{
			Name: name, Target: "http://sim:8000", Profile: "constant",
			Config: report.RunConfig{Profile: "constant", Rate: rate, MaxRequests: n},
			Start:  start.Add(time.Duration(p) * 10 * time.Minute),
		}
		b.Metrics = stats.Summarize(results, stats.Options{RequestedRate: rate, SLO: spec.PerRequest()})
		b.DurationS = results[len(results)-1].End.Seconds()
		v := spec.Evaluate(results)
		b.SLO = &v
		b.Saturation = saturationReport(rate, b.DurationS)
		if opts.SaveRequests {
			b.Requests = report.RequestRecords(results)
		}
		if opts.ServerMetrics {
			b.ServerMetrics = serverMetrics(rng, &b.Metrics)
		}
		f.Benchmarks = append(f.Benchmarks, b)
	}
	return f, nil
}

// sweepResults simulates n requests at a constant rate.
func sweepResults(rng *rand.Rand, n int, rate float64) []engine.Result {
	load := min(rate/Capacity, 0.97)
	queue := 1 / (1 - load) // mean-delay growth of an M/M/1-like server
	gap := time.Duration(float64(time.Second) / rate)
	out := make([]engine.Result, n)
	for i := range out {
		intended := time.Duration(i) * gap
		sent := intended + time.Duration(rng.ExpFloat64()*float64(50*time.Microsecond))
		r := engine.Result{
			Index: i, Endpoint: "chat", Stream: true, Status: 200, Intended: intended, Sent: sent,
			RequestedPromptTokens: 128 + rng.IntN(896), TokensFromUsage: true, FinishReason: "length",
		}
		r.PromptTokens = r.RequestedPromptTokens
		if rng.Float64() < 0.005 {
			r.Status, r.Err, r.End = 503, "http 503", sent+time.Duration(2+rng.IntN(10))*time.Millisecond
			out[i] = r
			continue
		}
		out[i] = r
		tokens := 32 + rng.IntN(129)
		r.RequestedOutputTokens, r.OutputTokens = tokens, tokens
		ttft := ms(lognormal(rng, 60*queue, 0.35))
		itl := lognormal(rng, 12*math.Sqrt(queue), 0.2)
		r.FirstByte = sent + ttft/2
		t := sent + ttft
		r.FirstToken = t
		r.Chunks = make([]time.Duration, tokens)
		r.ChunkTokens = make([]int, tokens)
		for k := range tokens {
			r.Chunks[k], r.ChunkTokens[k] = t, 1
			r.LastToken = t
			t += ms(lognormal(rng, itl, 0.3))
		}
		r.End = r.LastToken + time.Millisecond
		out[i] = r
	}
	return out
}

// saturationReport is what the detector says at a rate: over-saturated
// above Capacity, detected a third of the way in.
func saturationReport(rate, duration float64) *saturation.Report {
	slope := 0.0005 * rate / Capacity
	moe := 0.4
	r := &saturation.Report{
		TTFTSlope: &slope, TTFTSlopeMOE: &moe, TTFTN: 200, ConcurrentSlope: &slope, ConcurrentSlopeMOE: &moe, ConcurrentN: 200,
		Mode: "monitor", OfferedRate: rate, CompletedRate: min(rate, Capacity),
		Params: map[string]any{"min_seconds": 30.0, "moe_threshold": 2.0},
	}
	if rate > Capacity {
		at := duration / 3
		r.IsOverSaturated, r.Detected, r.Signal, r.DetectedAtS = true, true, "backlog", at
		r.Fired = []saturation.Firing{{Signal: "backlog", AtS: at}}
	}
	return r
}

// serverMetrics is a scrape every second of a vLLM V1 server whose batch
// holds ServerSlots requests: running and waiting requests from the
// benchmark's requests in flight, KV-cache usage growing with the batch,
// and prefix-cache counters at a hit rate of about 30%.
func serverMetrics(rng *rand.Rand, m *stats.Metrics) *scrape.Report {
	const (
		running = "vllm:num_requests_running"
		waiting = "vllm:num_requests_waiting"
		kv      = "vllm:kv_cache_usage_perc"
		hits    = "vllm:prefix_cache_hits_total"
		queries = "vllm:prefix_cache_queries_total"
	)
	r := &scrape.Report{URL: "http://sim:8000/metrics", IntervalS: m.SeriesBucketS}
	var h, q float64
	vals := map[string][]float64{}
	for i, b := range m.Series {
		inflight := b.InFlight
		if i == 0 {
			inflight = 0 // the scrape before the run
		}
		run := math.Min(math.Round(inflight), ServerSlots)
		smp := scrape.Sample{TS: b.T - 0.004, Values: map[string]float64{
			running: run,
			waiting: math.Max(0, math.Round(inflight)-ServerSlots),
			kv:      math.Min(1, run/ServerSlots*(0.85+0.1*rng.Float64())),
		}}
		qq := float64(b.Started) * 576
		q += qq
		h += math.Round(qq * (0.25 + 0.1*rng.Float64()))
		smp.Values[hits], smp.Values[queries] = h, q
		for _, n := range []string{running, waiting, kv} {
			vals[n] = append(vals[n], smp.Values[n])
		}
		r.Series = append(r.Series, smp)
	}
	r.Scrapes = len(r.Series)
	r.Gauges = map[string]scrape.GaugeSummary{}
	for n, v := range vals {
		g := scrape.GaugeSummary{Min: v[0], Max: v[0], Last: v[len(v)-1], Samples: len(v)}
		for _, x := range v {
			g.Mean += x / float64(len(v))
			g.Min, g.Max = math.Min(g.Min, x), math.Max(g.Max, x)
		}
		r.Gauges[n] = g
	}
	span := float64(len(r.Series) - 1)
	r.Counters = map[string]scrape.CounterSummary{
		hits:    {Last: h, Delta: h, RatePerS: h / math.Max(span, 1)},
		queries: {Last: q, Delta: q, RatePerS: q / math.Max(span, 1)},
	}
	if q > 0 {
		rate := h / q
		r.PrefixCacheHitRate, r.PrefixCacheHitRateFrom = &rate, "counters"
	}
	return r
}

// lognormal draws a log-normal value with the given median and shape.
func lognormal(rng *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*rng.NormFloat64())
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
