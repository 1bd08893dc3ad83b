// Package stats turns the replayer's per-request observations
// (engine.Result) into the metrics of a benchmark: latency distributions
// under every inter-token convention, throughput, concurrency, error rate,
// goodput under an SLO, scheduling fidelity and a time series for charts.
// docs/metrics.md defines every figure.
package stats

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Metrics is everything Reprise reports about one benchmark. Its JSON form is
// the "metrics" object of benchmarks.json (docs/results.md).
type Metrics struct {
	Requests  RequestCounts `json:"requests"`
	ErrorRate float64       `json:"error_rate"` // errored / (successful + errored); cancelled excluded

	// WindowS is the benchmark window in seconds: first send to last end,
	// over every request. All rates below divide by it (0 when it is 0).
	WindowS               float64 `json:"window_s"`
	RequestsPerSecond     float64 `json:"requests_per_second"` // successful requests / window
	InputTokensPerSecond  float64 `json:"input_tokens_per_second"`
	OutputTokensPerSecond float64 `json:"output_tokens_per_second"`
	TotalTokensPerSecond  float64 `json:"total_tokens_per_second"`
	InputTokensTotal      int64   `json:"input_tokens_total"`  // prompt tokens, summed over successful requests
	OutputTokensTotal     int64   `json:"output_tokens_total"` // output tokens, summed over successful requests
	// ConcurrencyMean is the time-weighted mean number of requests in flight
	// (sent, not yet ended) over the window; ConcurrencyMax its peak.
	ConcurrencyMean float64 `json:"concurrency_mean"`
	ConcurrencyMax  int64   `json:"concurrency_max"`
	// InFlight is the time-weighted distribution of requests in flight
	// over the window (GuideLLM's request_concurrency): mean and max are
	// ConcurrencyMean and ConcurrencyMax, a percentile p the smallest level
	// at or below which the run spent p % of the window; its count is the
	// number of requests.
	InFlight Distribution `json:"requests_in_flight"`

	// Latency distributions, milliseconds, successful requests only.
	TimeToFirstToken             Distribution `json:"time_to_first_token_ms"`
	TimeToFirstTokenFromIntended Distribution `json:"time_to_first_token_from_intended_ms"`
	InterTokenLatency            Distribution `json:"inter_token_latency_ms"`
	InterChunkLatency            Distribution `json:"inter_chunk_latency_ms"`
	NormalizedTimePerOutputToken Distribution `json:"normalized_time_per_output_token_ms"`
	TimePerOutputToken           Distribution `json:"time_per_output_token_ms"`
	// The same per-token metrics weighted by tokens, as GuideLLM weights
	// them: a request with n output tokens counts n − 1 times in
	// InterTokenLatencyTokenWeighted (once per gap) and n times in the two
	// per-output-token ones, so count is a number of gaps or tokens and
	// the mean is a ratio of sums, e.g. Σ(last − first) / Σ(n − 1). The
	// distributions above count each request once.
	InterTokenLatencyTokenWeighted            Distribution `json:"inter_token_latency_token_weighted_ms"`
	TimePerOutputTokenTokenWeighted           Distribution `json:"time_per_output_token_token_weighted_ms"`
	NormalizedTimePerOutputTokenTokenWeighted Distribution `json:"normalized_time_per_output_token_token_weighted_ms"`
	RequestLatency                            Distribution `json:"request_latency_ms"`
	RequestLatencyFromIntended                Distribution `json:"request_latency_from_intended_ms"`
	PromptTokens                              Distribution `json:"prompt_tokens"` // tokens per successful request
	OutputTokens                              Distribution `json:"output_tokens"`
	CachedTokens                              Distribution `json:"cached_tokens"` // prompt tokens served from the prefix cache
	TotalTokens                               Distribution `json:"total_tokens"`  // prompt + output tokens per successful request
	// StreamEvents is the SSE events (every kind, [DONE] included) per
	// successful request, 0 for a non-streamed one; OutputTokensPerChunk
	// and OutputTokensPerChunkAfterFirst are output tokens per content
	// event as GuideLLM estimates them (its output_tokens_per_iteration and
	// iter_tokens_per_iteration; Recorder.recordCounts).
	StreamEvents                   Distribution `json:"stream_events"`
	OutputTokensPerChunk           Distribution `json:"output_tokens_per_chunk"`
	OutputTokensPerChunkAfterFirst Distribution `json:"output_tokens_per_chunk_after_first"`
	TimeToFirstByte                Distribution `json:"time_to_first_byte_ms"`
	SendLag                        Distribution `json:"send_lag_ms"` // sent − intended, every request
	// QueueWait is the wait for a free slot under the concurrency cap, of
	// the requests that waited (engine.Result.QueueWait > 0); ClientLag is
	// sent − intended − queue wait − order wait over every request: the
	// lag the load generator itself caused.
	QueueWait Distribution `json:"queue_wait_ms"`
	ClientLag Distribution `json:"client_lag_ms"`
	// Degraded is set when the client, not the server, limited the load or
	// distorted its shape, so the figures above describe what the client
	// managed rather than what was asked: ClientLag's p99 exceeds
	// LagThresholdMs, or (open loops) ArrivalShape strays from the
	// schedule (degradedBy in arrival.go). DegradedBy names the criteria
	// that fired (DegradedClientLag, DegradedArrivalKS,
	// DegradedCompressedGaps); empty when not degraded.
	Degraded       bool     `json:"degraded"`
	DegradedBy     []string `json:"degraded_by,omitempty"`
	LagThresholdMs float64  `json:"lag_threshold_ms"`
	// ArrivalShape compares the gaps between sends with the intended gaps;
	// nil for closed-loop profiles (Options.OpenLoop false), which have no
	// schedule, and for fewer than two requests.
	ArrivalShape *ArrivalShape `json:"arrival_shape,omitempty"`
	// Excluded counts the requests sent in the warmup and cooldown, which
	// no other figure includes.
	Excluded                ExcludedCounts `json:"excluded_requests"`
	RequestedRate           float64        `json:"requested_rate"`   // req/s the profile asked for (Options); 0 if none
	ScheduledRate           float64        `json:"scheduled_rate"`   // req/s implied by the intended send times
	AchievedRate            float64        `json:"achieved_rate"`    // req/s of the actual send times
	DroppedRequests         int64          `json:"dropped_requests"` // never sent: no free worker (Options)
	TokensFromUsageFraction float64        `json:"tokens_from_usage_fraction"`
	// CachedTokenShare is the share of prompt tokens the server said it
	// served from its prefix cache (usage.prompt_tokens_details.cached_tokens):
	// Σ cached / Σ prompt tokens over the successful requests whose counts
	// came from usage. CachedTokenRequests counts those of them that
	// reported cached tokens (more than 0). Both are 0, and left out of the
	// JSON, when nothing was cached: a server that reports no cached tokens
	// and one that reports 0 cannot be told apart. A share near 1 on a
	// benchmark that resent earlier prompts means its latencies are the
	// cache's, not prefill's.
	CachedTokenShare    float64 `json:"cached_token_share,omitempty"`
	CachedTokenRequests int64   `json:"cached_token_requests,omitempty"`
	// RetriedRequests counts the requests re-sent because they never
	// reached the server: a kept-alive connection the server closed as the
	// request went out (engine.Result.Retries > 0). Every outcome counts;
	// left out of the JSON when 0.
	RetriedRequests int64 `json:"retried_requests,omitempty"`
	// Conversations counts the conversations (a conversation graph's, or a
	// multi-turn session's) the benchmark's requests belong to;
	// ConversationLatency is the time each whole conversation took, from
	// its first call's intended send to its last call's end, over those
	// whose every call succeeded (conversation.go). Omitted without any.
	Conversations       int64         `json:"conversations,omitempty"`
	ConversationLatency *Distribution `json:"conversation_latency_ms,omitempty"`
	// LatencyByTurnKind is request latency (sent → end) of successful
	// calls by their role in a tool loop: plain, tool_call (asked for
	// tools), tool_result (sent tool results back); only for workloads
	// that record it (agentic traces).
	LatencyByTurnKind map[string]Distribution `json:"latency_by_turn_kind_ms,omitempty"`
	// PromptTokenMismatch and OutputTokenMismatch compare requested with
	// server-reported token counts (nil when no request had both).
	PromptTokenMismatch *TokenMismatch `json:"prompt_token_mismatch,omitempty"`
	OutputTokenMismatch *TokenMismatch `json:"output_token_mismatch,omitempty"`
	Goodput             *Goodput       `json:"goodput,omitempty"`
	CDF                 map[string]CDF `json:"cdf"`
	SeriesBucketS       float64        `json:"series_bucket_s"`
	Series              []Bucket       `json:"series"`
}

// RequestCounts partitions every request of a benchmark.
type RequestCounts struct {
	Total      int64 `json:"total"`
	Successful int64 `json:"successful"` // 2xx and no error
	Errored    int64 `json:"errored"`    // anything else that was not cancelled
	Cancelled  int64 `json:"cancelled"`  // ended by the client side (drain, aborted): see IsCancelled
}

// ExcludedCounts are requests sent but left out of the metrics
// (engine.Result.Phase).
type ExcludedCounts struct {
	Warmup   int64 `json:"warmup"`
	Cooldown int64 `json:"cooldown"`
}

// DefaultLagThreshold is Options.LagThreshold's default.
const DefaultLagThreshold = 10 * time.Millisecond

// SLO holds per-request thresholds in milliseconds; 0 means no threshold.
// A request meets the SLO when it succeeded and every set threshold holds.
type SLO struct {
	TTFTMs float64 `json:"ttft_ms,omitempty"` // time to first token
	ITLMs  float64 `json:"itl_ms,omitempty"`  // inter-token latency (inter_token_latency_ms convention)
	E2EMs  float64 `json:"e2e_ms,omitempty"`  // request latency
	TPOTMs float64 `json:"tpot_ms,omitempty"` // time_per_output_token_ms (GuideLLM's convention)
	// FromIntended measures TTFT and E2E from the intended send time, so a
	// late client cannot hide a slow server.
	FromIntended bool `json:"from_intended,omitempty"`
}

// Validate reports every threshold that is negative or not finite.
func (s *SLO) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{{"ttft_ms", s.TTFTMs}, {"itl_ms", s.ITLMs}, {"e2e_ms", s.E2EMs}, {"tpot_ms", s.TPOTMs}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("slo %s: %v is not a non-negative number of milliseconds", f.name, f.v))
		}
	}
	if s.TTFTMs == 0 && s.ITLMs == 0 && s.E2EMs == 0 && s.TPOTMs == 0 {
		errs = append(errs, errors.New("slo: set at least one of ttft_ms, itl_ms, e2e_ms, tpot_ms"))
	}
	return errors.Join(errs...)
}

// Goodput is how much of the load met the SLO.
type Goodput struct {
	SLO               SLO     `json:"slo"`
	Met               int64   `json:"met"`                 // requests that met the SLO
	Attainment        float64 `json:"attainment"`          // met / (successful + errored + cancelled)
	RequestsPerSecond float64 `json:"requests_per_second"` // met / window
}

// Bucket is one step of the time series. T is the bucket's start in seconds
// since the run origin; counts are per bucket, rates per second of it.
type Bucket struct {
	T                float64 `json:"t_s"`
	Started          int64   `json:"started"`   // requests sent in the bucket
	Completed        int64   `json:"completed"` // requests ended in the bucket (any outcome)
	Errored          int64   `json:"errored"`   // of Completed, errored
	InFlight         float64 `json:"in_flight"` // time-weighted mean requests in flight
	OutputTokensPerS float64 `json:"output_tokens_per_s"`
	MeanTTFTMs       float64 `json:"mean_ttft_ms"` // of successful requests sent in the bucket; 0 if none
	TTFTCount        int64   `json:"ttft_count"`   // how many requests MeanTTFTMs averages
}

// Options tunes Summarize. The zero value is ready to use.
type Options struct {
	SLO           *SLO          // optional; enables Metrics.Goodput
	RequestedRate float64       // req/s the profile asked for, reported as is
	Dropped       int64         // requests the scheduler dropped, reported as is
	BucketWidth   time.Duration // time-series step; default 1 s
	MaxBuckets    int           // the series is coarsened (by whole multiples of BucketWidth) to at most this many; default 1800
	// LagThreshold is the client-lag p99 beyond which Metrics.Degraded is
	// set; default DefaultLagThreshold.
	LagThreshold time.Duration
	// OpenLoop says the requests had scheduled send times (trace, constant,
	// poisson, gamma): the recorder then keeps 16 more bytes a request,
	// intended and client send time, for Metrics.ArrivalShape.
	OpenLoop bool
}

// Validate reports every invalid option.
func (o *Options) Validate() error {
	var errs []error
	if o.SLO != nil {
		if err := o.SLO.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if o.RequestedRate < 0 || math.IsNaN(o.RequestedRate) || math.IsInf(o.RequestedRate, 0) {
		errs = append(errs, fmt.Errorf("requested rate %v: want a non-negative number", o.RequestedRate))
	}
	if o.Dropped < 0 {
		errs = append(errs, fmt.Errorf("dropped %d: want >= 0", o.Dropped))
	}
	if o.BucketWidth < 0 {
		errs = append(errs, fmt.Errorf("bucket width %v: want > 0 (or 0 for 1s)", o.BucketWidth))
	}
	if o.MaxBuckets < 0 {
		errs = append(errs, fmt.Errorf("max buckets %d: want > 0 (or 0 for 1800)", o.MaxBuckets))
	}
	if o.LagThreshold < 0 {
		errs = append(errs, fmt.Errorf("lag threshold %v: want > 0 (or 0 for %v)", o.LagThreshold, DefaultLagThreshold))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.BucketWidth <= 0 {
		o.BucketWidth = time.Second
	}
	if o.MaxBuckets <= 0 {
		o.MaxBuckets = 1800
	}
	if o.LagThreshold <= 0 {
		o.LagThreshold = DefaultLagThreshold
	}
	if o.RequestedRate < 0 || math.IsNaN(o.RequestedRate) || math.IsInf(o.RequestedRate, 0) {
		o.RequestedRate = 0
	}
	o.Dropped = max(o.Dropped, 0)
	return o
}

// ratio is a/b, or 0 when b is 0, so no figure is ever NaN or Inf.
func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	r := a / b
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return 0
	}
	return r
}
