package scrape

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestEnginesRecognisedAndMapped reads an exposition of each engine —
// testdata/llamacpp.txt is llama-server's own (--metrics, after two
// completions sharing a 300-token prompt); sglang.txt and tgi.txt follow
// those projects' documented series — as two scrapes a run apart, and
// checks that each lands in the same report fields: the engine named, its
// running/waiting/KV-cache gauges found, and the prefix-cache hit rate
// computed from its own counters' definitions.
func TestEnginesRecognisedAndMapped(t *testing.T) {
	for _, c := range []struct {
		file                      string
		engine                    string
		running, waiting, kvCache string
		runningMean, kvMean       float64
		// counters increased between the scrapes, and the hit rate that gives
		bump    map[string]float64
		hitRate float64
		from    string
	}{
		{"llamacpp.txt", "llama.cpp", "llamacpp:requests_processing", "llamacpp:requests_deferred", "", 0, 0,
			// llama.cpp's prompt_tokens excludes cached tokens: 300 / (300 + 100)
			map[string]float64{"llamacpp:prompt_tokens_cached_total": 300, "llamacpp:prompt_tokens_total": 100}, 0.75, "counters"},
		{"sglang.txt", "SGLang", "sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage", 24, 0.30,
			// SGLang's prompt_tokens counts every prompt token: 250 / 1000
			map[string]float64{"sglang:cached_tokens_total": 250, "sglang:prompt_tokens_total": 1000}, 0.25, "counters"},
		{"tgi.txt", "TGI", "tgi_batch_current_size", "tgi_queue_size", "", 16, 0, nil, -1, ""},
		{"vllm_v1.txt", "vLLM", "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", 21, 0.5,
			map[string]float64{"vllm:prefix_cache_hits_total": 100, "vllm:prefix_cache_queries_total": 400}, 0.25, "counters"},
	} {
		t.Run(c.engine, func(t *testing.T) {
			first := parseFile(t, "testdata/"+c.file)
			second := map[string]Value{}
			for k, v := range first {
				second[k] = v
			}
			for k, d := range c.bump {
				v, ok := first[k]
				if !ok || v.Kind != Counter {
					t.Fatalf("%s: no counter %s among %v", c.file, k, first)
				}
				second[k] = Value{Counter, v.V + d}
			}
			origin := time.Now()
			r := summarize([]sample{{origin, first}, {origin.Add(time.Second), second}}, origin, time.Second, "u", 0, "")
			if r.Engine != c.engine {
				t.Fatalf("engine %q, want %q", r.Engine, c.engine)
			}
			if n, ok := r.RunningGauge(); !ok || n != c.running || r.Gauges[n].Mean != c.runningMean {
				t.Errorf("running %q %v (mean %v), want %q mean %v", n, ok, r.Gauges[n].Mean, c.running, c.runningMean)
			}
			if n, ok := r.WaitingGauge(); !ok || n != c.waiting {
				t.Errorf("waiting %q %v, want %q", n, ok, c.waiting)
			}
			n, ok := r.KVCacheGauge()
			if c.kvCache == "" && ok || c.kvCache != "" && (n != c.kvCache || math.Abs(r.Gauges[n].Mean-c.kvMean) > 1e-12) {
				t.Errorf("KV cache %q %v (mean %v), want %q mean %v", n, ok, r.Gauges[n].Mean, c.kvCache, c.kvMean)
			}
			switch {
			case c.hitRate < 0 && r.PrefixCacheHitRate != nil:
				t.Errorf("hit rate %v from %q, want none", *r.PrefixCacheHitRate, r.PrefixCacheHitRateFrom)
			case c.hitRate >= 0 && (r.PrefixCacheHitRate == nil || math.Abs(*r.PrefixCacheHitRate-c.hitRate) > 1e-12 || r.PrefixCacheHitRateFrom != c.from):
				t.Errorf("hit rate %v from %q, want %v from %q", r.PrefixCacheHitRate, r.PrefixCacheHitRateFrom, c.hitRate, c.from)
			}
			if l := r.Line(); !strings.HasPrefix(l, "metrics ("+c.engine+"): running mean") {
				t.Errorf("Line() = %q", l)
			}
		})
	}
}

// TestEngineHitRateGaugeFallback: without the token counters, SGLang's own
// hit-rate gauge is averaged.
func TestEngineHitRateGaugeFallback(t *testing.T) {
	origin := time.Now()
	r := summarize([]sample{
		{origin, map[string]Value{"sglang:cache_hit_rate": {Gauge, 0.5}, "sglang:num_running_reqs": {Gauge, 1}}},
		{origin.Add(time.Second), map[string]Value{"sglang:cache_hit_rate": {Gauge, 0.7}, "sglang:num_running_reqs": {Gauge, 3}}},
	}, origin, time.Second, "u", 0, "")
	if r.Engine != "SGLang" || r.PrefixCacheHitRate == nil || math.Abs(*r.PrefixCacheHitRate-0.6) > 1e-12 || r.PrefixCacheHitRateFrom != "gauge sglang:cache_hit_rate" {
		t.Errorf("engine %q hit rate %v from %q", r.Engine, r.PrefixCacheHitRate, r.PrefixCacheHitRateFrom)
	}
	// A target of no known engine: nothing recognised, said so.
	r = summarize([]sample{{origin, map[string]Value{"my_queue": {Gauge, 2}}}}, origin, time.Second, "u", 0, "")
	if r.Engine != "" || r.PrefixCacheHitRate != nil || r.Line() != "metrics: no series of a known engine (vLLM, SGLang, llama.cpp, TGI) (1 scrapes)" {
		t.Errorf("unknown engine: %q %q", r.Engine, r.Line())
	}
}
