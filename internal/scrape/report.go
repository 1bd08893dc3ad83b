package scrape

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Report is what the scrapes of one benchmark saw: benchmarks.json's
// server_metrics (docs/results.md).
type Report struct {
	// URL is the endpoint scraped, without credentials.
	URL string `json:"url"`
	// IntervalS is the time between scrapes, in seconds.
	IntervalS float64 `json:"interval_s"`
	// Scrapes counts successful scrapes; Errors failed ones (unreachable,
	// a status other than 200, or a malformed exposition), and FirstError
	// is the first failure's message.
	Scrapes    int    `json:"scrapes"`
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// Gauges summarises every gauge (and untyped series) seen, by name.
	Gauges map[string]GaugeSummary `json:"gauges,omitempty"`
	// Counters summarises every counter seen, by name as exposed.
	Counters map[string]CounterSummary `json:"counters,omitempty"`
	// Engine names the inference server whose series were found: "vLLM",
	// "SGLang", "llama.cpp" or "TGI" (Engines); empty when none was.
	Engine string `json:"engine,omitempty"`
	// PrefixCacheHitRate is the prefix cache's hit rate over the run, 0..1,
	// in prompt tokens: the increase of the engine's cached-token counter
	// over the increase of the prompt tokens it looked up —
	// vllm:prefix_cache_hits / vllm:prefix_cache_queries,
	// sglang:cached_tokens / sglang:prompt_tokens, llamacpp:
	// prompt_tokens_cached / (prompt_tokens_cached + prompt_tokens) —
	// when the target exposes them and saw prompts; otherwise the mean of
	// the engine's hit-rate gauge (vLLM V0's vllm:gpu_prefix_cache_hit_rate,
	// sglang:cache_hit_rate). PrefixCacheHitRateFrom says which ("counters"
	// or "gauge NAME"). Both are omitted when neither is available.
	PrefixCacheHitRate     *float64 `json:"prefix_cache_hit_rate,omitempty"`
	PrefixCacheHitRateFrom string   `json:"prefix_cache_hit_rate_from,omitempty"`
	// Series holds every successful scrape in time order.
	Series []Sample `json:"series"`
}

// GaugeSummary summarises a gauge over the scrapes that carried it.
type GaugeSummary struct {
	Mean    float64 `json:"mean"` // of the samples (evenly spaced, so a time average)
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Last    float64 `json:"last"`
	Samples int     `json:"samples"`
}

// CounterSummary summarises a counter over the scrapes that carried it.
type CounterSummary struct {
	First float64 `json:"first"` // value at the first scrape
	Last  float64 `json:"last"`  // value at the last scrape
	// Delta is the increase between the first and last scrapes. A decrease
	// is taken as a reset (the server restarted) and the new value counted
	// as increase, as Prometheus's increase() does; Resets counts them.
	Delta  float64 `json:"delta"`
	Resets int     `json:"resets"`
	// RatePerS is Delta over the time between the first and last scrapes
	// that carried the counter (0 with fewer than two).
	RatePerS float64 `json:"rate_per_s"`
}

// Sample is one scrape: TS seconds since the run origin, at the midpoint
// of the scrape's request and response (the first scrape, just before the
// run starts, has a small negative offset), and the value of each kept
// series, aggregated over label sets.
type Sample struct {
	TS     float64            `json:"t_s"`
	Values map[string]float64 `json:"values"`
}

// summarize builds the report from samples in time order.
func summarize(samples []sample, origin time.Time, interval time.Duration, url string, errs int, firstErr string) *Report {
	r := &Report{URL: url, IntervalS: interval.Seconds(), Scrapes: len(samples), Errors: errs, FirstError: firstErr,
		Series: make([]Sample, 0, len(samples))}
	type counterState struct {
		sum           CounterSummary
		firstT, lastT float64
		seen          bool
	}
	counters := map[string]*counterState{}
	gauges := map[string]*GaugeSummary{}
	sums := map[string]float64{}
	for _, s := range samples {
		t := s.at.Sub(origin).Seconds()
		vals := make(map[string]float64, len(s.values))
		for name, v := range s.values {
			vals[name] = v.V
			if v.Kind == Counter {
				c := counters[name]
				if c == nil {
					c = &counterState{}
					counters[name] = c
				}
				if !c.seen {
					c.seen, c.firstT, c.sum.First = true, t, v.V
				} else if v.V >= c.sum.Last {
					c.sum.Delta += v.V - c.sum.Last
				} else {
					c.sum.Delta += v.V
					c.sum.Resets++
				}
				c.sum.Last, c.lastT = v.V, t
				continue
			}
			g := gauges[name]
			if g == nil {
				g = &GaugeSummary{Min: v.V, Max: v.V}
				gauges[name] = g
			}
			g.Samples++
			sums[name] += v.V
			g.Min, g.Max, g.Last = math.Min(g.Min, v.V), math.Max(g.Max, v.V), v.V
		}
		r.Series = append(r.Series, Sample{TS: t, Values: vals})
	}
	if len(gauges) > 0 {
		r.Gauges = map[string]GaugeSummary{}
		for name, g := range gauges {
			g.Mean = sums[name] / float64(g.Samples)
			r.Gauges[name] = *g
		}
	}
	if len(counters) > 0 {
		r.Counters = map[string]CounterSummary{}
		for name, c := range counters {
			if span := c.lastT - c.firstT; span > 0 {
				c.sum.RatePerS = c.sum.Delta / span
			}
			r.Counters[name] = c.sum
		}
	}
	if e := r.recognise(); e != nil {
		r.Engine = e.Name
		r.prefixHitRate(e)
	}
	return r
}

// prefixHitRate fills PrefixCacheHitRate from e's series, as its doc
// comment says.
func (r *Report) prefixHitRate(e *Engine) {
	hits, okH := firstCounter(r.Counters, e.HitTokens)
	prompt, okP := firstCounter(r.Counters, e.PromptTokens)
	if okH && okP {
		looked := prompt.Delta
		if e.PromptExcludesHits {
			looked += hits.Delta
		}
		if looked > 0 {
			rate := hits.Delta / looked
			r.PrefixCacheHitRate, r.PrefixCacheHitRateFrom = &rate, "counters"
			return
		}
	}
	if g, ok := r.Gauges[e.HitRateGauge]; ok && e.HitRateGauge != "" {
		rate := g.Mean
		r.PrefixCacheHitRate, r.PrefixCacheHitRateFrom = &rate, "gauge "+e.HitRateGauge
	}
}

func firstCounter(m map[string]CounterSummary, names []string) (CounterSummary, bool) {
	for _, n := range names {
		if c, ok := m[n]; ok {
			return c, true
		}
	}
	return CounterSummary{}, false
}

// Line is a one-line human summary of the engine's series, for the
// console: the engine recognised, running and waiting requests (mean and
// max), KV-cache usage (max) and the prefix-cache hit rate, or the scrape
// failures when nothing was scraped.
func (r *Report) Line() string {
	if r.Scrapes == 0 {
		return fmt.Sprintf("metrics: %d scrapes failed (%s)", r.Errors, r.FirstError)
	}
	var parts []string
	gauge := func(label string, name string, ok bool) {
		if g := r.Gauges[name]; ok {
			parts = append(parts, fmt.Sprintf("%s mean %.1f max %.0f", label, g.Mean, g.Max))
		}
	}
	n, ok := r.RunningGauge()
	gauge("running", n, ok)
	n, ok = r.WaitingGauge()
	gauge("waiting", n, ok)
	if n, ok := r.KVCacheGauge(); ok {
		parts = append(parts, fmt.Sprintf("KV cache max %.0f%%", 100*r.Gauges[n].Max))
	}
	if r.PrefixCacheHitRate != nil {
		parts = append(parts, fmt.Sprintf("prefix-cache hit rate %.1f%%", 100**r.PrefixCacheHitRate))
	}
	if len(parts) == 0 {
		parts = append(parts, "no series of a known engine (vLLM, SGLang, llama.cpp, TGI)")
	}
	head := "metrics"
	if r.Engine != "" {
		head += " (" + r.Engine + ")"
	}
	line := fmt.Sprintf("%s: %s (%d scrapes", head, strings.Join(parts, ", "), r.Scrapes)
	if r.Errors > 0 {
		line += fmt.Sprintf(", %d failed", r.Errors)
	}
	return line + ")"
}
