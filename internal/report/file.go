// Package report writes and reads benchmark results: benchmarks.json (the
// schema of docs/results.md), benchmarks.csv, a console table and one
// self-contained HTML report with inline SVG charts.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/scrape"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/stats"
)

// FormatName and Version identify benchmarks.json. ReadJSON accepts every
// version up to and including Version.
const (
	FormatName = "reprise-benchmarks"
	Version    = 1
)

// File is the content of benchmarks.json: one run of the replay tool, which
// may hold several benchmarks (a sweep, a comparison, production as captured
// next to a candidate).
type File struct {
	Format     string            `json:"format"`            // FormatName
	Version    int               `json:"version"`           // schema version, Version when written
	Tool       string            `json:"tool"`              // writer, e.g. "reprise"
	Created    time.Time         `json:"created"`           // when the file was written (RFC 3339)
	Command    []string          `json:"command,omitempty"` // argv, credentials redacted (RedactCommand)
	Labels     map[string]string `json:"labels,omitempty"`  // --label key=value pairs
	Benchmarks []Benchmark       `json:"benchmarks"`
	Comparison *Comparison       `json:"comparison,omitempty"` // replay compare's deltas and verdicts (comparison.go)
	Knee       *Knee             `json:"knee,omitempty"`       // a knee sweep's analysis (knee.go)
}

// Benchmark is one measured load against one target.
type Benchmark struct {
	Name    string `json:"name"`    // e.g. "candidate", "production (captured)", "rate=8"
	Target  string `json:"target"`  // base URL measured (or the captured upstream)
	Profile string `json:"profile"` // load profile: trace, poisson, constant, …, or "captured"
	// Baseline marks the reference benchmark that others are compared to
	// (production as captured, or the first target of a comparison).
	Baseline  bool          `json:"baseline,omitempty"`
	Config    RunConfig     `json:"config,omitzero"` // the settings that produced it
	Start     time.Time     `json:"start"`           // wall time of the run origin
	DurationS float64       `json:"duration_s"`      // seconds from the run origin to the last response
	Metrics   stats.Metrics `json:"metrics"`
	// Saturation is the over-saturation detector's report (--detect-saturation).
	Saturation *saturation.Report `json:"over_saturation,omitempty"`
	// SLO is the verdict against --slo.
	SLO *slo.Report `json:"slo,omitempty"`
	// ServerMetrics is what the target's Prometheus /metrics showed during
	// the run (--scrape-metrics): vLLM's running and waiting requests,
	// KV-cache usage and prefix-cache hit rate, as a time series and a
	// summary. Omitted when not scraped.
	ServerMetrics *scrape.Report `json:"server_metrics,omitempty"`
	// Labels are this benchmark's own --label key=value pairs. A file
	// that brings together benchmarks of different runs (replay compare on
	// saved results: gpu=A100 next to gpu=H100) keeps each run's labels
	// here; File.Labels holds those shared by every benchmark. Readers
	// take a key from here first, then from File.Labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Shards describes, for a benchmark merged from a split run (replay
	// merge), each shard: its requests, its start against the merged
	// origin, its own client lag.
	Shards []ShardSummary `json:"shards,omitempty"`
	// Requests holds per-request records when the run asked for them.
	Requests []RequestRecord `json:"requests,omitempty"`
}

// ShardSummary is one shard of a merged benchmark.
type ShardSummary struct {
	Shard         string  `json:"shard"`           // i/N
	Requests      int     `json:"requests"`        // results the shard recorded
	StartOffsetMs float64 `json:"start_offset_ms"` // its origin after the earliest shard's (0 for shards given one start instant)
	// FirstSendMs is when the shard sent its first request, from its
	// origin: with an agreed start, how late it really began.
	FirstSendMs float64 `json:"first_send_ms"`
	// ClientLag is the shard's own client lag (its send lag less its
	// waits): a shard host too slow for its part shows here.
	ClientLag    stats.Distribution `json:"client_lag_ms"`
	ClockOffsetS *float64           `json:"clock_offset_s,omitempty"` // its clock against the target's Date header
	StopReason   string             `json:"stop_reason"`
	// WriterStalls counts the shard's results that waited for its state
	// writer (its queue full): their requests held their slots longer.
	WriterStalls int `json:"writer_stalls,omitempty"`
}

// Label is the benchmark's value of label key: its own, else the file's.
func (f *File) Label(b *Benchmark, key string) (string, bool) {
	if v, ok := b.Labels[key]; ok {
		return v, true
	}
	v, ok := f.Labels[key]
	return v, ok
}

// LabelKeys are the keys of the file's labels and of every benchmark's,
// sorted.
func (f *File) LabelKeys() []string {
	all := map[string]string{}
	for k, v := range f.Labels {
		all[k] = v
	}
	for i := range f.Benchmarks {
		for k, v := range f.Benchmarks[i].Labels {
			all[k] = v
		}
	}
	return sortedKeys(all)
}

// RequestRecord is one request's observation in benchmarks.json. Times are
// milliseconds since the run origin; 0 means the event never happened.
type RequestRecord struct {
	Index        int     `json:"index"` // workload request index
	Endpoint     string  `json:"endpoint,omitempty"`
	Stream       bool    `json:"stream"`
	IntendedMs   float64 `json:"intended_ms"`
	SentMs       float64 `json:"sent_ms"`
	FirstByteMs  float64 `json:"first_byte_ms"`
	FirstEventMs float64 `json:"first_event_ms"` // first SSE event of any kind; 0 if none
	FirstTokenMs float64 `json:"first_token_ms"`
	LastTokenMs  float64 `json:"last_token_ms"`
	EndMs        float64 `json:"end_ms"`
	TTFTMs       float64 `json:"ttft_ms"`    // first token − sent; 0 without a first token
	LatencyMs    float64 `json:"latency_ms"` // end − sent
	Chunks       int     `json:"chunks"`     // output-bearing events received (content, tool-call deltas)
	Events       int     `json:"events"`     // SSE events received, every kind
	Status       int     `json:"status"`     // HTTP status; 0 if no response
	Error        string  `json:"error,omitempty"`
	PromptTokens int     `json:"prompt_tokens"` // from usage when reported, else estimated
	OutputTokens int     `json:"output_tokens"`
	CachedTokens int     `json:"cached_tokens"`
	// TokensFromUsage says the counts came from the server's usage object.
	TokensFromUsage       bool   `json:"tokens_from_usage"`
	FinishReason          string `json:"finish_reason,omitempty"`
	RequestedPromptTokens int    `json:"requested_prompt_tokens"` // what the workload asked for
	RequestedOutputTokens int    `json:"requested_output_tokens"`
	// Phase is "warmup" or "cooldown" for a request sent in the run's
	// warmup or cooldown (engine.Result.Phase): recorded, but left out of
	// the metrics and of replay compare. Omitted for measured requests.
	Phase string `json:"phase,omitempty"`
	// Retries is how many times the request was sent again because a
	// kept-alive connection closed before any byte of its response
	// (engine.Result.Retries).
	Retries int `json:"retries,omitempty"`
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// RequestRecords converts results for Benchmark.Requests.
func RequestRecords(results []engine.Result) []RequestRecord {
	out := make([]RequestRecord, len(results))
	for i := range results {
		r := &results[i]
		rec := RequestRecord{
			Index: r.Index, Endpoint: r.Endpoint, Stream: r.Stream,
			IntendedMs: msOf(r.Intended), SentMs: msOf(r.Sent), FirstByteMs: msOf(r.FirstByte),
			FirstTokenMs: msOf(r.FirstToken), LastTokenMs: msOf(r.LastToken), EndMs: msOf(r.End),
			LatencyMs: msOf(max(r.End-r.Sent, 0)), Chunks: r.NumChunks(),
			FirstEventMs: msOf(r.FirstEvent), Events: r.Events,
			Status: r.Status, Error: r.Err,
			PromptTokens: r.PromptTokens, OutputTokens: r.OutputTokens, CachedTokens: r.CachedTokens,
			TokensFromUsage: r.TokensFromUsage, FinishReason: r.FinishReason,
			RequestedPromptTokens: r.RequestedPromptTokens, RequestedOutputTokens: r.RequestedOutputTokens,
			Phase: r.Phase, Retries: r.Retries,
		}
		if r.FirstToken > 0 {
			rec.TTFTMs = msOf(max(r.FirstToken-r.Sent, 0))
		}
		out[i] = rec
	}
	return out
}

// secretFlags take a credential as their value.
var secretFlags = map[string]bool{"api-key": true, "apikey": true, "token": true, "password": true}

// secretHeaders are header names whose values are credentials.
var secretHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "api-key": true, "x-api-key": true,
	"cookie": true, "set-cookie": true,
}

// RedactCommand returns a copy of argv with credentials replaced by
// "REDACTED": the values of --api-key style flags and of --header flags
// carrying Authorization, API-key or cookie headers.
func RedactCommand(argv []string) []string {
	if argv == nil {
		return nil
	}
	out := make([]string, len(argv))
	copy(out, argv)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		prefix := a[:len(a)-len(strings.TrimLeft(a, "-"))] + name + "="
		switch {
		case secretFlags[strings.ToLower(name)]:
			if hasVal {
				out[i] = prefix + "REDACTED"
			} else if i+1 < len(out) {
				out[i+1] = "REDACTED"
				i++
			}
		case strings.ToLower(name) == "header":
			if hasVal {
				out[i] = prefix + redactHeader(val)
			} else if i+1 < len(out) {
				out[i+1] = redactHeader(out[i+1])
				i++
			}
		}
	}
	return out
}

func redactHeader(h string) string {
	name, _, ok := strings.Cut(h, ":")
	if ok && secretHeaders[strings.ToLower(strings.TrimSpace(name))] {
		return name + ": REDACTED"
	}
	return h
}

// WriteJSON writes f as indented JSON, filling in Format and Version and
// redacting the command line. Non-finite numbers are refused (encoding/json
// rejects NaN and ±Inf), so the output is always valid JSON.
func WriteJSON(w io.Writer, f *File) error {
	out := *f
	out.Format, out.Version = FormatName, Version
	out.Command = RedactCommand(f.Command)
	if out.Benchmarks == nil {
		out.Benchmarks = []Benchmark{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&out); err != nil {
		return fmt.Errorf("encoding benchmarks: %w", err)
	}
	return nil
}

// ErrFormat is returned by ReadJSON for input that is not a benchmarks file
// this build can read.
var ErrFormat = errors.New("not a readable reprise benchmarks file")

// ReadJSON reads a benchmarks.json. It rejects other formats and versions
// newer than Version with an error wrapping ErrFormat.
func ReadJSON(r io.Reader) (*File, error) {
	var f File
	if err := json.NewDecoder(r).Decode(&f); err != nil {
		return nil, fmt.Errorf("decoding benchmarks: %w", err)
	}
	switch {
	case f.Format != FormatName:
		return nil, fmt.Errorf("%w: format %q, want %q", ErrFormat, f.Format, FormatName)
	case f.Version > Version:
		return nil, fmt.Errorf("%w: version %d is newer than this reprise understands (up to %d); upgrade reprise", ErrFormat, f.Version, Version)
	case f.Version < 1:
		return nil, fmt.Errorf("%w: version %d", ErrFormat, f.Version)
	}
	return &f, nil
}
