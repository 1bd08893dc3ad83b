package compare

import (
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/stats"
)

// Metric names of the comparison, as in benchmarks.json's metrics.
const (
	TTFT              = "time_to_first_token_ms"
	ITL               = "inter_token_latency_ms"
	ICL               = "inter_chunk_latency_ms"
	TPOT              = "time_per_output_token_ms"
	NTPOT             = "normalized_time_per_output_token_ms"
	E2E               = "request_latency_ms"
	RequestsPerSecond = "requests_per_second"
	OutputTokensPerS  = "output_tokens_per_second"
	GoodputPerSecond  = "goodput_requests_per_second"
	GoodputAttainment = "goodput_attainment"
	ErrorRate         = "error_rate"
)

// Statistics of a latency metric compared; rates and proportions have the
// single statistic StatValue.
const (
	StatP50   = "p50"
	StatP90   = "p90"
	StatP99   = "p99"
	StatMean  = "mean"
	StatValue = "value"
)

// latencyStats are compared for every latency metric, in this order.
var latencyStats = []string{StatP50, StatP90, StatP99, StatMean}

// statQuantile is the quantile of a percentile statistic.
var statQuantile = map[string]float64{StatP50: 0.50, StatP90: 0.90, StatP99: 0.99}

// latencyMetric is a per-request latency: value extracts it from a record
// when it is defined for that request.
type latencyMetric struct {
	name  string
	value func(r *report.RequestRecord) (float64, bool)
}

// latencyMetrics are every per-request latency the comparison covers, in
// milliseconds, all lower-is-better. The definitions match docs/metrics.md
// except inter_chunk_latency_ms, compared per request (see there).
var latencyMetrics = []latencyMetric{
	{TTFT, func(r *report.RequestRecord) (float64, bool) {
		return r.FirstTokenMs - r.SentMs, r.FirstTokenMs > 0
	}},
	{ITL, func(r *report.RequestRecord) (float64, bool) {
		if !r.Stream || r.FirstTokenMs <= 0 || r.OutputTokens < 2 {
			return 0, false
		}
		return (max(r.LastTokenMs, r.FirstTokenMs) - r.FirstTokenMs) / float64(r.OutputTokens-1), true
	}},
	// Pooled chunk gaps are not independent observations (a slow request
	// contributes many), so resampling them would understate the spread;
	// the comparison uses each request's mean gap between content events,
	// (last − first) / (chunks − 1), whose samples are independent.
	{ICL, func(r *report.RequestRecord) (float64, bool) {
		if !r.Stream || r.FirstTokenMs <= 0 || r.Chunks < 2 {
			return 0, false
		}
		return (max(r.LastTokenMs, r.FirstTokenMs) - r.FirstTokenMs) / float64(r.Chunks-1), true
	}},
	{TPOT, func(r *report.RequestRecord) (float64, bool) {
		if r.FirstTokenMs <= 0 || r.OutputTokens < 1 {
			return 0, false
		}
		return (max(r.LastTokenMs, r.FirstTokenMs) - r.SentMs) / float64(r.OutputTokens), true
	}},
	{NTPOT, func(r *report.RequestRecord) (float64, bool) {
		if r.OutputTokens < 1 {
			return 0, false
		}
		return latency(r) / float64(r.OutputTokens), true
	}},
	{E2E, func(r *report.RequestRecord) (float64, bool) { return latency(r), true }},
}

func latency(r *report.RequestRecord) float64 { return max(r.EndMs-r.SentMs, 0) }

// outcome classifies a record as stats does: successful, cancelled by the
// client side (excluded from the error rate), or errored.
type outcome int

const (
	outcomeOK outcome = iota
	outcomeCancelled
	outcomeErrored
)

func classify(r *report.RequestRecord) outcome {
	res := engine.Result{Status: r.Status, Err: r.Error}
	switch {
	case res.OK():
		return outcomeOK
	case stats.IsCancelled(&res):
		return outcomeCancelled
	}
	return outcomeErrored
}

// meetsSLO reports whether a successful record met every set threshold of
// s, with the conventions of stats (an ITL threshold is vacuously met where
// ITL is undefined, a TPOT threshold where there is no output).
func meetsSLO(s *stats.SLO, r *report.RequestRecord) bool {
	from := r.SentMs
	if s.FromIntended {
		from = r.IntendedMs
	}
	hasFirst := r.FirstTokenMs > 0
	last := max(r.LastTokenMs, r.FirstTokenMs)
	if s.TTFTMs > 0 && (!hasFirst || r.FirstTokenMs-from > s.TTFTMs) {
		return false
	}
	if s.ITLMs > 0 && hasFirst && r.Stream && r.OutputTokens >= 2 && (last-r.FirstTokenMs)/float64(r.OutputTokens-1) > s.ITLMs {
		return false
	}
	if s.E2EMs > 0 && max(r.EndMs, r.SentMs)-from > s.E2EMs {
		return false
	}
	if s.TPOTMs > 0 && hasFirst && r.OutputTokens >= 1 && (last-from)/float64(r.OutputTokens) > s.TPOTMs {
		return false
	}
	return true
}
