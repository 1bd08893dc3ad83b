package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/reprise-llm/reprise/internal/stats"
)

// csvColumn is one column of benchmarks.csv.
type csvColumn struct {
	Name string
	Get  func(*Benchmark) string
}

func num(get func(*stats.Metrics) float64) func(*Benchmark) string {
	return func(b *Benchmark) string { return fmtExact(get(&b.Metrics)) }
}

func count(get func(*stats.Metrics) int64) func(*Benchmark) string {
	return func(b *Benchmark) string { return strconv.FormatInt(get(&b.Metrics), 10) }
}

// csvColumns are the columns in order: identity, counts and rates, goodput,
// then every distribution as <metric>_<stat> (e.g.
// time_to_first_token_ms_p99), then the server metrics' summary as
// server_<figure> when any benchmark was scraped (serverCSVColumns), then
// the labels as label_<key>: each benchmark's own, else the file's.
func csvColumns(f *File) []csvColumn {
	bs := f.Benchmarks
	cols := []csvColumn{
		{"name", func(b *Benchmark) string { return b.Name }},
		{"target", func(b *Benchmark) string { return b.Target }},
		{"profile", func(b *Benchmark) string { return b.Profile }},
		{"baseline", func(b *Benchmark) string { return strconv.FormatBool(b.Baseline) }},
		{"start", func(b *Benchmark) string { return b.Start.UTC().Format(time.RFC3339Nano) }},
		{"duration_s", func(b *Benchmark) string { return fmtExact(b.DurationS) }},
		{"requests_total", count(func(m *stats.Metrics) int64 { return m.Requests.Total })},
		{"requests_successful", count(func(m *stats.Metrics) int64 { return m.Requests.Successful })},
		{"requests_errored", count(func(m *stats.Metrics) int64 { return m.Requests.Errored })},
		{"requests_cancelled", count(func(m *stats.Metrics) int64 { return m.Requests.Cancelled })},
		{"error_rate", num(func(m *stats.Metrics) float64 { return m.ErrorRate })},
		{"window_s", num(func(m *stats.Metrics) float64 { return m.WindowS })},
		{"requests_per_second", num(func(m *stats.Metrics) float64 { return m.RequestsPerSecond })},
		{"input_tokens_per_second", num(func(m *stats.Metrics) float64 { return m.InputTokensPerSecond })},
		{"output_tokens_per_second", num(func(m *stats.Metrics) float64 { return m.OutputTokensPerSecond })},
		{"total_tokens_per_second", num(func(m *stats.Metrics) float64 { return m.TotalTokensPerSecond })},
		{"input_tokens_total", count(func(m *stats.Metrics) int64 { return m.InputTokensTotal })},
		{"output_tokens_total", count(func(m *stats.Metrics) int64 { return m.OutputTokensTotal })},
		{"concurrency_mean", num(func(m *stats.Metrics) float64 { return m.ConcurrencyMean })},
		{"concurrency_max", count(func(m *stats.Metrics) int64 { return m.ConcurrencyMax })},
		{"requested_rate", num(func(m *stats.Metrics) float64 { return m.RequestedRate })},
		{"scheduled_rate", num(func(m *stats.Metrics) float64 { return m.ScheduledRate })},
		{"achieved_rate", num(func(m *stats.Metrics) float64 { return m.AchievedRate })},
		{"dropped_requests", count(func(m *stats.Metrics) int64 { return m.DroppedRequests })},
		{"tokens_from_usage_fraction", num(func(m *stats.Metrics) float64 { return m.TokensFromUsageFraction })},
		{"goodput_attainment", func(b *Benchmark) string {
			if g := b.Metrics.Goodput; g != nil {
				return fmtExact(g.Attainment)
			}
			return ""
		}},
		{"goodput_requests_per_second", func(b *Benchmark) string {
			if g := b.Metrics.Goodput; g != nil {
				return fmtExact(g.RequestsPerSecond)
			}
			return ""
		}},
	}
	cols = append(cols, mismatchCSVColumns("prompt_token_mismatch", func(m *stats.Metrics) *stats.TokenMismatch { return m.PromptTokenMismatch })...)
	cols = append(cols, mismatchCSVColumns("output_token_mismatch", func(m *stats.Metrics) *stats.TokenMismatch { return m.OutputTokenMismatch })...)
	for _, d := range distributions {
		for _, s := range distStats {
			cols = append(cols, csvColumn{d.Key + "_" + s.Key, func(b *Benchmark) string {
				return fmtExact(s.Get(d.Get(&b.Metrics)))
			}})
		}
	}
	cols = append(cols, serverCSVColumns(bs)...)
	for _, k := range f.LabelKeys() {
		cols = append(cols, csvColumn{"label_" + k, func(b *Benchmark) string {
			v, _ := f.Label(b, k)
			return v
		}})
	}
	return cols
}

// mismatchCSVColumns are <prefix>_compared, _exact and _mean_diff of a
// requested-vs-reported token summary; empty when nothing was compared.
func mismatchCSVColumns(prefix string, get func(*stats.Metrics) *stats.TokenMismatch) []csvColumn {
	return []csvColumn{
		{prefix + "_compared", func(b *Benchmark) string {
			if m := get(&b.Metrics); m != nil {
				return strconv.FormatInt(m.Compared, 10)
			}
			return ""
		}},
		{prefix + "_exact", func(b *Benchmark) string {
			if m := get(&b.Metrics); m != nil {
				return strconv.FormatInt(m.Exact, 10)
			}
			return ""
		}},
		{prefix + "_mean_diff", func(b *Benchmark) string {
			if m := get(&b.Metrics); m != nil {
				return fmtExact(m.MeanDiff)
			}
			return ""
		}},
	}
}

// WriteCSV writes a header and one row per benchmark (RFC 4180). Empty
// cells mean "not measured" (no SLO, for instance).
func WriteCSV(w io.Writer, f *File) error {
	cols := csvColumns(f)
	cw := csv.NewWriter(w)
	rec := make([]string, len(cols))
	for i, c := range cols {
		rec[i] = c.Name
	}
	if err := cw.Write(rec); err != nil {
		return fmt.Errorf("writing csv: %w", err)
	}
	for bi := range f.Benchmarks {
		for i, c := range cols {
			rec[i] = c.Get(&f.Benchmarks[bi])
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("writing csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing csv: %w", err)
	}
	return nil
}
