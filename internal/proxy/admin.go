package proxy

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
)

// WriterStatser is what the admin endpoints read from the capture writer.
type WriterStatser interface {
	Stats() capture.WriterStats
}

var _ WriterStatser = (*capture.Writer)(nil)

// metrics are the Prometheus series the proxy observes per request. The
// counters are read from atomics at scrape time (a Collector), so only the
// two histogram observations touch the request path.
type metrics struct {
	ttft *prometheus.HistogramVec
	e2e  *prometheus.HistogramVec
	toks *prometheus.CounterVec
}

// latencyBuckets span 5 ms .. 2 min: TTFT and e2e of LLM requests.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

func newMetrics() *metrics {
	return &metrics{
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "reprise_proxy_time_to_first_token_seconds", Help: "Arrival to first content event, streamed requests.", Buckets: latencyBuckets,
		}, []string{"endpoint"}),
		e2e: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "reprise_proxy_request_duration_seconds", Help: "Arrival to end of response.", Buckets: latencyBuckets,
		}, []string{"endpoint"}),
		toks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reprise_proxy_tokens_total", Help: "Tokens seen in responses, by kind (prompt, output).",
		}, []string{"kind"}),
	}
}

func (m *metrics) observe(rec *capture.Record) {
	ep := string(openai.EndpointForPath(rec.Path))
	if rec.TTFTNs > 0 {
		m.ttft.WithLabelValues(ep).Observe(time.Duration(rec.TTFTNs).Seconds())
	}
	m.e2e.WithLabelValues(ep).Observe(time.Duration(rec.E2ENs).Seconds())
	if rec.PromptTokens > 0 {
		m.toks.WithLabelValues("prompt").Add(float64(rec.PromptTokens))
	}
	if rec.OutputTokens > 0 {
		m.toks.WithLabelValues("output").Add(float64(rec.OutputTokens))
	}
}

// statsCollector exports Proxy and writer counters at scrape time.
type statsCollector struct {
	p *Proxy
	w WriterStatser
}

var (
	descRequests = prometheus.NewDesc("reprise_proxy_requests_total", "Requests received.", nil, nil)
	descInFlight = prometheus.NewDesc("reprise_proxy_requests_in_flight", "Requests being served.", nil, nil)
	descRecorded = prometheus.NewDesc("reprise_proxy_records_total", "Records handed to the capture writer.", nil, nil)
	descDropped  = prometheus.NewDesc("reprise_proxy_records_dropped_total", "Records the writer refused (queue full or failed); traffic was not affected.", nil, nil)
	descAborted  = prometheus.NewDesc("reprise_proxy_aborted_total", "Requests that ended abnormally (client gone, upstream reset).", nil, nil)
	descUpErr    = prometheus.NewDesc("reprise_proxy_upstream_errors_total", "Requests the upstream could not serve (answered 502).", nil, nil)
	descUpRetry  = prometheus.NewDesc("reprise_proxy_upstream_retried_total", "Requests sent to the upstream again because it closed a kept-alive connection as they went out (they never reached it).", nil, nil)
	descUsageByp = prometheus.NewDesc("reprise_proxy_usage_filter_bypassed_total", "--ensure-usage streams passed through unfiltered: an event outgrew the filter's 1 MiB bound.", nil, nil)
)

// WriterCollector exports a capture writer's counters at scrape time:
// the proxy's admin handler and the collector-only admin (ext_proc,
// ingest) both register it.
type WriterCollector struct{ W WriterStatser }

var (
	descWritten = prometheus.NewDesc("reprise_capture_records_written_total", "Records stored in segments.", nil, nil)
	descLost    = prometheus.NewDesc("reprise_capture_records_lost_total", "Records accepted but not stored because of write errors.", nil, nil)
	descWErr    = prometheus.NewDesc("reprise_capture_write_errors_total", "Failed disk operations.", nil, nil)
	descQueue   = prometheus.NewDesc("reprise_capture_queue_depth", "Records waiting to be written.", nil, nil)
	descBytes   = prometheus.NewDesc("reprise_capture_bytes", "Compressed bytes written, all segments.", nil, nil)
	descHealthy = prometheus.NewDesc("reprise_capture_healthy", "1 when the latest disk operation succeeded.", nil, nil)
)

// HasherCollector exports the prefix hasher's losses at scrape time: one
// hasher serves every front end of the program (proxy, ext_proc, ingest),
// so it is registered once, beside them.
type HasherCollector struct{ H *capture.Hasher }

var (
	descForgotten = prometheus.NewDesc("reprise_capture_prefix_ids_forgotten_total",
		"Prefix-block chain values dropped from memory to keep it bounded: a block seen again after that gets a fresh id, so its reuse goes unseen.", nil, nil)
	descExhausted = prometheus.NewDesc("reprise_capture_prefix_ids_exhausted_total",
		"Prompts recorded without prefix ids because every 32-bit id had been given out (start a new capture).", nil, nil)
)

// Describe sends the hasher's metric descriptions.
func (HasherCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descForgotten
	ch <- descExhausted
}

// Collect sends the hasher's counters.
func (c HasherCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descForgotten, prometheus.CounterValue, float64(c.H.Forgotten()))
	ch <- prometheus.MustNewConstMetric(descExhausted, prometheus.CounterValue, float64(c.H.Exhausted()))
}

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descInFlight, descRecorded, descDropped, descAborted, descUpErr, descUpRetry, descUsageByp} {
		ch <- d
	}
	WriterCollector{}.Describe(ch)
}

// Describe sends the writer's metric descriptions.
func (WriterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWritten, descLost, descWErr, descQueue, descBytes, descHealthy} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stats()
	ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(st.Requests))
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight))
	ch <- prometheus.MustNewConstMetric(descRecorded, prometheus.CounterValue, float64(st.Recorded))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped))
	ch <- prometheus.MustNewConstMetric(descAborted, prometheus.CounterValue, float64(st.Aborted))
	ch <- prometheus.MustNewConstMetric(descUpErr, prometheus.CounterValue, float64(st.UpstreamErr))
	ch <- prometheus.MustNewConstMetric(descUpRetry, prometheus.CounterValue, float64(st.UpstreamRetried))
	ch <- prometheus.MustNewConstMetric(descUsageByp, prometheus.CounterValue, float64(st.UsageBypassed))
	if c.w != nil {
		WriterCollector{c.w}.Collect(ch)
	}
}

// Collect sends the writer's counters.
func (c WriterCollector) Collect(ch chan<- prometheus.Metric) {
	ws := c.W.Stats()
	healthy := 0.0
	if ws.Healthy {
		healthy = 1
	}
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(ws.Written))
	ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(ws.Lost))
	ch <- prometheus.MustNewConstMetric(descWErr, prometheus.CounterValue, float64(ws.WriteErrors))
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(ws.QueueDepth))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(ws.Bytes))
	ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy)
}

// AdminHandler serves /healthz (the process is up: always 200, its body
// naming a degraded capture), /readyz (200, its body naming a degraded
// capture; 503 "draining" once SetDraining was called; 503 while the
// capture writer is unhealthy only with Config.ReadyRequiresCapture) and /metrics (Prometheus). When token is non-empty, /metrics requires
// "Authorization: Bearer TOKEN"; the probes stay open for the kubelet.
// /metrics also serves extra's series (other front ends of the program).
func (p *Proxy) AdminHandler(w WriterStatser, token string, extra ...prometheus.Gatherer) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(statsCollector{p: p, w: w}, p.metrics.ttft, p.metrics.e2e, p.metrics.toks)
	if p.shadow != nil {
		reg.MustRegister(p.shadow)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		// Always 200: a capture problem must never get the proxy restarted
		// (traffic flows on); the body says so for whoever looks.
		if w != nil {
			if ws := w.Stats(); !ws.Healthy {
				fmt.Fprintf(rw, "ok (capture degraded: %s)\n", ws.LastError)
				return
			}
		}
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if p.draining.Load() {
			// Shutting down: out of rotation before the listener closes.
			rw.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(rw, "draining")
			return
		}
		if w != nil {
			if ws := w.Stats(); !ws.Healthy {
				if p.cfg.ReadyRequiresCapture {
					rw.WriteHeader(http.StatusServiceUnavailable)
				}
				fmt.Fprintf(rw, "ready (capture degraded: %s)\n", ws.LastError)
				return
			}
		}
		fmt.Fprintln(rw, "ready")
	})
	metricsH := promhttp.HandlerFor(append(prometheus.Gatherers{reg}, extra...), promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, r *http.Request) {
		if token != "" {
			want := "Bearer " + token
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
				http.Error(rw, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		metricsH.ServeHTTP(rw, r)
	})
	return mux
}
