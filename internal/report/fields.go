package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/reprise-llm/reprise/internal/stats"
)

// distSpec names one distribution of stats.Metrics by its JSON key.
type distSpec struct {
	Key   string // JSON key under "metrics", and the CSV column prefix
	Title string // human name
	Get   func(*stats.Metrics) stats.Distribution
}

// distributions lists every distribution in stats.Metrics, in JSON order.
// A test checks it against the JSON tags, so a new metric cannot be left out
// of the CSV.
var distributions = []distSpec{
	{"requests_in_flight", "requests in flight, time-weighted", func(m *stats.Metrics) stats.Distribution { return m.InFlight }},
	{"time_to_first_token_ms", "time to first token (ms)", func(m *stats.Metrics) stats.Distribution { return m.TimeToFirstToken }},
	{"time_to_first_token_from_intended_ms", "TTFT from intended send (ms)", func(m *stats.Metrics) stats.Distribution { return m.TimeToFirstTokenFromIntended }},
	{"inter_token_latency_ms", "inter-token latency (ms)", func(m *stats.Metrics) stats.Distribution { return m.InterTokenLatency }},
	{"inter_chunk_latency_ms", "inter-chunk latency (ms)", func(m *stats.Metrics) stats.Distribution { return m.InterChunkLatency }},
	{"normalized_time_per_output_token_ms", "normalized time per output token (ms)", func(m *stats.Metrics) stats.Distribution { return m.NormalizedTimePerOutputToken }},
	{"time_per_output_token_ms", "time per output token, legacy (ms)", func(m *stats.Metrics) stats.Distribution { return m.TimePerOutputToken }},
	{"inter_token_latency_token_weighted_ms", "inter-token latency, token-weighted (ms)", func(m *stats.Metrics) stats.Distribution { return m.InterTokenLatencyTokenWeighted }},
	{"time_per_output_token_token_weighted_ms", "time per output token, legacy, token-weighted (ms)", func(m *stats.Metrics) stats.Distribution { return m.TimePerOutputTokenTokenWeighted }},
	{"normalized_time_per_output_token_token_weighted_ms", "normalized time per output token, token-weighted (ms)", func(m *stats.Metrics) stats.Distribution { return m.NormalizedTimePerOutputTokenTokenWeighted }},
	{"request_latency_ms", "request latency (ms)", func(m *stats.Metrics) stats.Distribution { return m.RequestLatency }},
	{"request_latency_from_intended_ms", "request latency from intended send (ms)", func(m *stats.Metrics) stats.Distribution { return m.RequestLatencyFromIntended }},
	{"prompt_tokens", "prompt tokens", func(m *stats.Metrics) stats.Distribution { return m.PromptTokens }},
	{"output_tokens", "output tokens", func(m *stats.Metrics) stats.Distribution { return m.OutputTokens }},
	{"cached_tokens", "cached prompt tokens", func(m *stats.Metrics) stats.Distribution { return m.CachedTokens }},
	{"total_tokens", "prompt + output tokens", func(m *stats.Metrics) stats.Distribution { return m.TotalTokens }},
	{"stream_events", "SSE events per request", func(m *stats.Metrics) stats.Distribution { return m.StreamEvents }},
	{"output_tokens_per_chunk", "output tokens per content event", func(m *stats.Metrics) stats.Distribution { return m.OutputTokensPerChunk }},
	{"output_tokens_per_chunk_after_first", "output tokens per content event after the first", func(m *stats.Metrics) stats.Distribution { return m.OutputTokensPerChunkAfterFirst }},
	{"time_to_first_byte_ms", "time to first byte (ms)", func(m *stats.Metrics) stats.Distribution { return m.TimeToFirstByte }},
	{"send_lag_ms", "send lag (ms)", func(m *stats.Metrics) stats.Distribution { return m.SendLag }},
	{"queue_wait_ms", "queue wait for a slot (ms)", func(m *stats.Metrics) stats.Distribution { return m.QueueWait }},
	{"client_lag_ms", "client lag (ms)", func(m *stats.Metrics) stats.Distribution { return m.ClientLag }},
}

// distStats are a Distribution's fields by JSON key.
var distStats = []struct {
	Key string
	Get func(stats.Distribution) float64
}{
	{"mean", func(d stats.Distribution) float64 { return d.Mean }},
	{"median", func(d stats.Distribution) float64 { return d.Median }},
	{"min", func(d stats.Distribution) float64 { return d.Min }},
	{"max", func(d stats.Distribution) float64 { return d.Max }},
	{"std_dev", func(d stats.Distribution) float64 { return d.StdDev }},
	{"count", func(d stats.Distribution) float64 { return float64(d.Count) }},
	{"p50", func(d stats.Distribution) float64 { return d.P50 }},
	{"p90", func(d stats.Distribution) float64 { return d.P90 }},
	{"p95", func(d stats.Distribution) float64 { return d.P95 }},
	{"p99", func(d stats.Distribution) float64 { return d.P99 }},
	{"p999", func(d stats.Distribution) float64 { return d.P999 }},
}

// row is one line of the console table and of the HTML summary: a label and
// how to show it for a benchmark.
type row struct {
	Label string
	Value func(*Benchmark) string
}

func distRow(label string, get func(*stats.Metrics) stats.Distribution, pick func(stats.Distribution) float64) row {
	return row{label, func(b *Benchmark) string {
		d := get(&b.Metrics)
		if d.Count == 0 {
			return "-"
		}
		return fmtNum(pick(d))
	}}
}

func p50(d stats.Distribution) float64 { return d.P50 }
func p90(d stats.Distribution) float64 { return d.P90 }
func p99(d stats.Distribution) float64 { return d.P99 }

func ttft(m *stats.Metrics) stats.Distribution { return m.TimeToFirstToken }
func itl(m *stats.Metrics) stats.Distribution  { return m.InterTokenLatency }
func icl(m *stats.Metrics) stats.Distribution  { return m.InterChunkLatency }
func e2e(m *stats.Metrics) stats.Distribution  { return m.RequestLatency }
func lag(m *stats.Metrics) stats.Distribution  { return m.SendLag }

// summaryRows are the console table's rows; the HTML summary uses them too.
// Each label says what its number is (issue 17): the send rate apart from
// the completion rate, whose window runs from the first send to the last
// end and so includes the drain; ITL as the per-request mean gap, which
// vLLM calls TPOT, next to ICL, every gap between chunks, which vLLM
// calls ITL (docs/metrics.md).
func summaryRows(bs []Benchmark) []row {
	rows := []row{
		{"requests", func(b *Benchmark) string { return strconv.FormatInt(b.Metrics.Requests.Total, 10) }},
		{"errors", func(b *Benchmark) string {
			return fmt.Sprintf("%d (%.1f%%)", b.Metrics.Requests.Errored, 100*b.Metrics.ErrorRate)
		}},
		{"cancelled", func(b *Benchmark) string { return strconv.FormatInt(b.Metrics.Requests.Cancelled, 10) }},
		{"achieved send rate (req/s)", func(b *Benchmark) string { return fmtNum(b.Metrics.AchievedRate) }},
		{"successful req/s (window incl. drain)", func(b *Benchmark) string { return fmtNum(b.Metrics.RequestsPerSecond) }},
		{"output tok/s (window incl. drain)", func(b *Benchmark) string { return fmtNum(b.Metrics.OutputTokensPerSecond) }},
		{"concurrency mean / max", func(b *Benchmark) string {
			return fmtNum(b.Metrics.ConcurrencyMean) + " / " + strconv.FormatInt(b.Metrics.ConcurrencyMax, 10)
		}},
		distRow("TTFT p50 (ms)", ttft, p50),
		distRow("TTFT p90 (ms)", ttft, p90),
		distRow("TTFT p99 (ms)", ttft, p99),
		distRow("ITL p50 (ms, per request; vLLM TPOT)", itl, p50),
		distRow("ITL p99 (ms, per request; vLLM TPOT)", itl, p99),
		distRow("ICL p50 (ms, per chunk; vLLM ITL)", icl, p50),
		distRow("ICL p99 (ms, per chunk; vLLM ITL)", icl, p99),
		distRow("e2e p50 (ms)", e2e, p50),
		distRow("e2e p99 (ms)", e2e, p99),
		distRow("send lag p99 (ms)", lag, p99),
	}
	rows = append(rows, fidelityRows(bs)...)
	rows = append(rows, mismatchRows(bs)...)
	for i := range bs {
		if bs[i].SLO != nil {
			rows = append(rows, row{"SLO", func(b *Benchmark) string {
				switch {
				case b.SLO == nil:
					return "-"
				case b.SLO.Pass:
					return "PASS"
				}
				return "FAIL"
			}})
			break
		}
	}
	for i := range bs {
		if bs[i].Saturation != nil {
			rows = append(rows, row{"over-saturated", func(b *Benchmark) string {
				switch s := b.Saturation; {
				case s == nil:
					return "-"
				case s.Detected:
					return fmt.Sprintf("yes, %.1fs", s.DetectedAtS)
				}
				return "no"
			}})
			break
		}
	}
	for i := range bs {
		if bs[i].Metrics.Goodput != nil {
			rows = append(rows,
				row{"goodput req/s", func(b *Benchmark) string {
					if b.Metrics.Goodput == nil {
						return "-"
					}
					return fmtNum(b.Metrics.Goodput.RequestsPerSecond)
				}},
				row{"SLO attainment", func(b *Benchmark) string {
					if b.Metrics.Goodput == nil {
						return "-"
					}
					return fmt.Sprintf("%.1f%%", 100*b.Metrics.Goodput.Attainment)
				}})
			break
		}
	}
	return rows
}

// fidelityRows show, when any benchmark has them, its arrival shape (the
// KS distance of the sent gaps to the intended ones, with its 1% critical
// value; the share of compressed gaps) and whether the client degraded
// it, with the criteria that fired.
func fidelityRows(bs []Benchmark) []row {
	var rows []row
	if slices.ContainsFunc(bs, func(b Benchmark) bool { return b.Metrics.ArrivalShape != nil }) {
		rows = append(rows,
			row{"arrival gap KS (1% critical value)", func(b *Benchmark) string {
				if s := b.Metrics.ArrivalShape; s != nil {
					return fmt.Sprintf("%.3f (%.3f)", s.KSDistance, s.KSCritical1Pct)
				}
				return "-"
			}},
			row{"gaps compressed below 0.1 ms", func(b *Benchmark) string {
				if s := b.Metrics.ArrivalShape; s != nil && s.SpacedGaps > 0 {
					return fmt.Sprintf("%.1f%% (%d/%d)", 100*s.CompressedGapFraction, s.CompressedGaps, s.SpacedGaps)
				}
				return "-"
			}})
	}
	if slices.ContainsFunc(bs, func(b Benchmark) bool { return b.Metrics.Degraded }) {
		rows = append(rows, row{"degraded by the client", func(b *Benchmark) string {
			switch m := &b.Metrics; {
			case !m.Degraded:
				return "no"
			case len(m.DegradedBy) == 0: // results written before the criteria were named
				return "yes"
			default:
				return "yes: " + strings.Join(m.DegradedBy, ", ")
			}
		}})
	}
	return rows
}

// mismatchRows show, when any benchmark compared requested with reported
// token counts, how many matched exactly and the mean difference
// (reported − requested): "98/100 exact (mean difference +1.2 tokens)".
func mismatchRows(bs []Benchmark) []row {
	var rows []row
	for _, k := range []struct {
		label string
		get   func(*stats.Metrics) *stats.TokenMismatch
	}{
		{"prompt tokens vs requested", func(m *stats.Metrics) *stats.TokenMismatch { return m.PromptTokenMismatch }},
		{"output tokens vs requested", func(m *stats.Metrics) *stats.TokenMismatch { return m.OutputTokenMismatch }},
	} {
		for i := range bs {
			if m := k.get(&bs[i].Metrics); m != nil && m.Compared > 0 {
				rows = append(rows, row{k.label, func(b *Benchmark) string {
					m := k.get(&b.Metrics)
					if m == nil || m.Compared == 0 {
						return "-"
					}
					sign := ""
					if m.MeanDiff > 0 {
						sign = "+"
					}
					return fmt.Sprintf("%d/%d exact (mean difference %s%s tokens)", m.Exact, m.Compared, sign, fmtNum(m.MeanDiff))
				}})
				break
			}
		}
	}
	return rows
}

// fmtNum shows a figure with about three significant digits and no exponent.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case a == 0:
		return "0"
	case a < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 1000:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}

// fmtExact is the shortest exact decimal form of v, without exponent (CSV).
func fmtExact(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
