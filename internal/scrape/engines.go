package scrape

import (
	"slices"
	"strings"
)

// Engine is one inference server's Prometheus vocabulary: which of its
// series stand for the figures the report shows for every target —
// requests running and waiting, KV-cache usage, the prefix cache's hit
// rate — so that vLLM, SGLang, llama.cpp and TGI land in the same fields.
type Engine struct {
	// Name is how results name the engine: "vLLM", "SGLang", "llama.cpp",
	// "TGI".
	Name string
	// Prefix starts every series of the engine's own; the engine is
	// recognised by the series of its that a scrape finds.
	Prefix string
	// Running, Waiting and KVCache are gauges, the first present of each
	// list used: requests in the running batch, requests queued for a
	// slot, and the KV cache's usage as a fraction, 0..1.
	Running, Waiting, KVCache []string
	// HitTokens and PromptTokens are counters of prompt tokens, the first
	// present of each used: found in the prefix cache, and looked up (or,
	// when PromptExcludesHits, computed — so the looked-up total is their
	// sum). The hit rate over a run is ΔHitTokens / Δlooked-up.
	HitTokens, PromptTokens []string
	PromptExcludesHits      bool
	// HitRateGauge is the engine's own hit-rate gauge, averaged over the
	// run when the counters are missing.
	HitRateGauge string
	// Fractions are gauges that are fractions without a _perc, _rate or
	// _ratio suffix: averaged, not summed, over label sets.
	Fractions []string
}

// Engines are the servers whose series Reprise reads. Counter names are
// those the engines expose (Prometheus clients add _total); Matcher accepts
// either spelling.
var Engines = []Engine{
	{
		// vLLM V1 (kv_cache_usage_perc, prefix_cache_* counters) and V0
		// (gpu_cache_usage_perc, gpu_prefix_cache_hit_rate).
		Name: "vLLM", Prefix: "vllm:",
		Running:      []string{"vllm:num_requests_running"},
		Waiting:      []string{"vllm:num_requests_waiting"},
		KVCache:      []string{"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"},
		HitTokens:    []string{"vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits"},
		PromptTokens: []string{"vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries"},
		HitRateGauge: "vllm:gpu_prefix_cache_hit_rate",
	},
	{
		// SGLang (python/sglang/srt/metrics/collector.py): prompt_tokens
		// counts every prompt token, cached_tokens those the radix cache
		// held (labelled by cache_source in recent versions; summed).
		Name: "SGLang", Prefix: "sglang:",
		Running:      []string{"sglang:num_running_reqs"},
		Waiting:      []string{"sglang:num_queue_reqs"},
		KVCache:      []string{"sglang:token_usage"},
		HitTokens:    []string{"sglang:cached_tokens_total"},
		PromptTokens: []string{"sglang:prompt_tokens_total"},
		HitRateGauge: "sglang:cache_hit_rate",
		Fractions:    []string{"sglang:token_usage"},
	},
	{
		// llama.cpp's llama-server with --metrics: prompt_tokens_total
		// counts the prompt tokens it computed, excluding those reused
		// from its prompt cache (prompt_tokens_cached_total). It has no
		// KV-cache usage gauge.
		Name: "llama.cpp", Prefix: "llamacpp:",
		Running:            []string{"llamacpp:requests_processing"},
		Waiting:            []string{"llamacpp:requests_deferred"},
		HitTokens:          []string{"llamacpp:prompt_tokens_cached_total"},
		PromptTokens:       []string{"llamacpp:prompt_tokens_total"},
		PromptExcludesHits: true,
	},
	{
		// Hugging Face TGI: the router's batch and queue; no cache series.
		Name: "TGI", Prefix: "tgi_",
		Running: []string{"tgi_batch_current_size"},
		Waiting: []string{"tgi_queue_size"},
	},
}

// series lists every series of e.
func (e *Engine) series() []string {
	out := slices.Concat(e.Running, e.Waiting, e.KVCache, e.HitTokens, e.PromptTokens)
	if e.HitRateGauge != "" {
		out = append(out, e.HitRateGauge)
	}
	return out
}

// EngineSeries are the series kept by default: every engine's.
func EngineSeries() []string {
	var out []string
	for i := range Engines {
		out = append(out, Engines[i].series()...)
	}
	return out
}

// isEngineFraction reports whether name is a fraction gauge an engine
// names without a fraction suffix.
func isEngineFraction(name string) bool {
	for i := range Engines {
		if slices.Contains(Engines[i].Fractions, name) {
			return true
		}
	}
	return false
}

// recognise returns the engine whose own series the report holds most of,
// nil when it holds none.
func (r *Report) recognise() *Engine {
	var best *Engine
	bestN := 0
	for i := range Engines {
		e := &Engines[i]
		n := 0
		for name := range r.Gauges {
			if strings.HasPrefix(name, e.Prefix) {
				n++
			}
		}
		for name := range r.Counters {
			if strings.HasPrefix(name, e.Prefix) {
				n++
			}
		}
		if n > bestN {
			best, bestN = e, n
		}
	}
	return best
}

// engine is the engine named in r.Engine, or nil.
func (r *Report) engine() *Engine {
	for i := range Engines {
		if Engines[i].Name == r.Engine {
			return &Engines[i]
		}
	}
	return nil
}

// gauge returns the first of names that r holds a gauge of.
func (r *Report) gauge(names []string) (string, bool) {
	for _, n := range names {
		if _, ok := r.Gauges[n]; ok {
			return n, true
		}
	}
	return "", false
}

// role finds the gauge that plays a role (running, waiting, KV cache):
// the recognised engine's first, then any engine's, so a report built by
// hand, or read from an older results file without "engine", still finds
// its series.
func (r *Report) role(pick func(*Engine) []string) (string, bool) {
	if e := r.engine(); e != nil {
		if n, ok := r.gauge(pick(e)); ok {
			return n, true
		}
	}
	for i := range Engines {
		if n, ok := r.gauge(pick(&Engines[i])); ok {
			return n, true
		}
	}
	return "", false
}

// RunningGauge names the gauge of requests running that r holds
// (vllm:num_requests_running, sglang:num_running_reqs,
// llamacpp:requests_processing, tgi_batch_current_size), if any.
func (r *Report) RunningGauge() (string, bool) {
	return r.role(func(e *Engine) []string { return e.Running })
}

// WaitingGauge names the gauge of requests waiting that r holds.
func (r *Report) WaitingGauge() (string, bool) {
	return r.role(func(e *Engine) []string { return e.Waiting })
}

// KVCacheGauge names the KV-cache usage gauge (0..1) that r holds.
func (r *Report) KVCacheGauge() (string, bool) {
	return r.role(func(e *Engine) []string { return e.KVCache })
}
