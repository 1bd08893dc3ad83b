package sim

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// collector exposes the simulator's counters under vLLM V1's metric names
// and label (model_name), read at scrape time, so that tools built for
// vLLM's /metrics — Reprise's own scraper first — work against the
// simulator unchanged.
type collector struct {
	s                                                    *Server
	running, waiting, kvUsage                            *prometheus.Desc
	prefixQueries, prefixHits, prompt, cached, gen, succ *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(s *Server) *collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, nil, prometheus.Labels{"model_name": s.cfg.Model})
	}
	return &collector{
		s:       s,
		running: d("vllm:num_requests_running", "Sequences in the batch (requests held after their client went away included)."),
		waiting: d("vllm:num_requests_waiting", "Requests waiting for a batch slot (requests held after their client went away included)."),
		// The simulator has no KV blocks; batch slots in use stand in for them.
		kvUsage:       d("vllm:kv_cache_usage_perc", "Fraction of batch slots in use (the simulator's stand-in for KV-cache usage), 0..1."),
		prefixQueries: d("vllm:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache."),
		prefixHits:    d("vllm:prefix_cache_hits_total", "Prompt tokens found in the prefix cache."),
		prompt:        d("vllm:prompt_tokens_total", "Prompt tokens processed."),
		cached:        d("vllm:prompt_tokens_cached_total", "Prompt tokens not computed: served from the prefix cache (the simulator has no KV transfer)."),
		gen:           d("vllm:generation_tokens_total", "Tokens generated."),
		succ:          d("vllm:request_success_total", "Requests completed."),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.running, c.waiting, c.kvUsage, c.prefixQueries, c.prefixHits, c.prompt, c.cached, c.gen, c.succ} {
		ch <- d
	}
}

// Collect implements prometheus.Collector with one consistent reading of
// the counters.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.running, float64(st.Running))
	gauge(c.waiting, float64(st.Waiting))
	gauge(c.kvUsage, float64(st.Running)/float64(c.s.cfg.Slots))
	counter(c.prefixQueries, st.PrefixQueryTokens)
	counter(c.prefixHits, st.PrefixHitTokens)
	counter(c.prompt, st.PromptTokens)
	counter(c.cached, st.PrefixHitTokens)
	counter(c.gen, st.GenerationTokens)
	counter(c.succ, st.Served)
}

// metricsHandler serves the collector in the Prometheus text format (or
// whatever format the scraper negotiates), from a registry of its own.
func metricsHandler(s *Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(s))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
