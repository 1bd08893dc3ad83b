package stats

// Peer definitions: how GuideLLM 0.8.1, vLLM's `bench serve`, AIPerf 0.13.0
// and inference-perf 0.7.0 compute each latency metric from one request as
// their clients observe it, written from their sources (each function cites
// the file and function it follows). docs/metrics.md's "Peers" table lists
// them next to Reprise's own; peers_test.go runs one set of timelines
// through these functions and through Recorder, and checks that Reprise's
// figure equals the peer's where the definitions agree and how far apart
// they are where they do not.
//
// Peers that count tokens with their own tokenizer (AIPerf by default,
// inference-perf for its token times, vLLM when the server reports no
// usage) are given the counts of the Timeline, which stand for what the
// tokenizer would say.

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

// Event is one SSE data event of a streamed chat or completions response,
// as a client reads it ([DONE] excluded).
type Event struct {
	At time.Duration // arrival, offset from the run origin
	// Choices says the event carries a non-empty "choices" array: a role
	// delta, a content delta, a finish-only delta. A usage-only event
	// ("choices": []) has none.
	Choices bool
	// Tokens is the output tokens of its content (text, reasoning or a
	// tool call) as a tokenizer counts them; 0 for an event without any.
	Tokens int
}

// Content reports whether the event carried output.
func (e Event) Content() bool { return e.Tokens > 0 }

// Timeline is one successful streamed request as a client sees it on the
// wire: when it was sent, every data event, when the body ended ([DONE]
// read and the stream closed) and the token counts of the usage event.
type Timeline struct {
	Intended     time.Duration // when the schedule said to send it
	Sent         time.Duration
	Events       []Event
	End          time.Duration
	PromptTokens int
	OutputTokens int // usage completion_tokens; the sum of the events' Tokens
}

// Result is the engine.Result Reprise's client records for t (engine/client.go,
// streamAcc.event): every event, [DONE] too, counts in Events; the
// content events are the chunks, one token each (the usage event comes
// last, so there is no per-chunk usage), first and last token.
func (t Timeline) Result(index int) engine.Result {
	r := engine.Result{
		Index: index, Endpoint: "chat", Stream: true, Status: 200,
		Intended: t.Intended, Sent: t.Sent, FirstByte: t.Sent, End: t.End,
		Events: len(t.Events) + 1, PromptTokens: t.PromptTokens, OutputTokens: t.OutputTokens, TokensFromUsage: true,
	}
	if len(t.Events) > 0 {
		r.FirstEvent = t.Events[0].At
		r.FirstByte = t.Events[0].At
	}
	for _, e := range t.Events {
		if !e.Content() {
			continue
		}
		if len(r.Chunks) == 0 {
			r.FirstToken = e.At
		}
		r.LastToken = e.At
		r.Chunks = append(r.Chunks, e.At)
		r.ChunkTokens = append(r.ChunkTokens, 1)
	}
	return r
}

func durMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// content returns the arrival times of t's content events.
func (t Timeline) content() []time.Duration {
	var out []time.Duration
	for _, e := range t.Events {
		if e.Content() {
			out = append(out, e.At)
		}
	}
	return out
}

// Sample is one value a peer feeds its summariser, with its weight: 1, or
// a token count for GuideLLM's token-weighted metrics.
type Sample struct {
	V float64 // milliseconds or tokens
	W float64
}

// --- GuideLLM 0.8.1 ---
//
// Timings come from guidellm/backends/openai/http.py
// (OpenAIHTTPBackend._resolve_streaming): request_start when the request
// headers are written; every non-blank stream line counts in
// request_iterations ([DONE] too); a line whose delta has content,
// reasoning or a tool call (ChatCompletionsRequestHandler.add_streaming_line)
// sets first_token_iteration once and last_token_iteration each time and
// counts in token_iterations; request_end once the stream is closed.

// GuideLLMTTFT is time_to_first_token_ms: first token − request start
// (request_stats.py, GenerativeRequestStats.time_to_first_token_ms).
func GuideLLMTTFT(t Timeline) (float64, bool) {
	c := t.content()
	if len(c) == 0 {
		return 0, false
	}
	return durMs(c[0] - t.Sent), true
}

// GuideLLMITL is one request's inter_token_latency_ms sample:
// (last token − first token) / (output tokens − 1), weighted by output
// tokens − 1 (request_stats.py, inter_token_latency_ms; metrics.py,
// GenerativeMetrics.compile: `(req.inter_token_latency_ms or 0.0,
// (req.output_tokens or 1.0) - 1.0)`). A request with one token weighs 0.
func GuideLLMITL(t Timeline) Sample {
	c := t.content()
	n := t.OutputTokens
	if n <= 1 || len(c) == 0 {
		return Sample{0, float64(max(n, 1) - 1)}
	}
	return Sample{durMs(c[len(c)-1]-c[0]) / float64(n-1), float64(n - 1)}
}

// GuideLLMTPOT is one request's time_per_output_token_ms sample: (last
// token, or request end without one, − request start) / output tokens,
// weighted by output tokens (request_stats.py, time_per_output_token_ms;
// metrics.py, GenerativeMetrics.compile).
func GuideLLMTPOT(t Timeline) Sample {
	if t.OutputTokens <= 0 {
		return Sample{0, 0}
	}
	last := t.End
	if c := t.content(); len(c) > 0 {
		last = c[len(c)-1]
	}
	return Sample{durMs(last-t.Sent) / float64(t.OutputTokens), float64(t.OutputTokens)}
}

// GuideLLMRequestLatency is request_latency in milliseconds (GuideLLM
// reports seconds): request end − request start (request_stats.py,
// request_latency).
func GuideLLMRequestLatency(t Timeline) float64 { return durMs(t.End - t.Sent) }

// GuideLLMStreamIterations is request_iterations, the sample of
// request_streaming_iterations_count: one per data line, [DONE] included.
func GuideLLMStreamIterations(t Timeline) float64 { return float64(len(t.Events) + 1) }

// GuideLLMOutputTokensPerIteration is one request's samples of
// output_tokens_per_iteration (request_stats.py, output_tokens_timings
// and iter_tokens_timings): with first and last token and more than one
// token iteration, 1 for the first iteration and (tokens − 1) /
// (iterations − 1) for each later one; otherwise the whole output once.
func GuideLLMOutputTokensPerIteration(t Timeline) []Sample {
	c, n := t.content(), t.OutputTokens
	if len(c) <= 1 {
		return []Sample{{float64(n), 1}}
	}
	out := []Sample{{float64(min(max(n, 0), 1)), 1}}
	if n > 1 {
		out = append(out, Sample{float64(n-1) / float64(len(c)-1), float64(len(c) - 1)})
	}
	return out
}

// GuideLLMSummary summarises samples as GuideLLM's DistributionSummary
// does (guidellm/schemas/base/statistics.py, DistributionSummary.from_values
// and from_pdf): zero-weight values dropped, equal values merged, weights
// normalised into probabilities; mean and variance weighted; a percentile
// p the first value whose cumulative probability reaches p
// (searchsorted side="left"); count the weights' sum, rounded.
func GuideLLMSummary(samples []Sample) PeerSummary {
	var s []Sample
	var total float64
	for _, x := range samples {
		if x.W > 0 {
			s = append(s, x)
			total += x.W
		}
	}
	if len(s) == 0 {
		return PeerSummary{}
	}
	slices.SortFunc(s, func(a, b Sample) int { return cmp.Compare(a.V, b.V) })
	var mean float64
	for _, x := range s {
		mean += x.V * x.W / total
	}
	var variance float64
	for _, x := range s {
		variance += (x.V - mean) * (x.V - mean) * x.W / total
	}
	at := func(p float64) float64 {
		var cum float64
		for _, x := range s {
			if cum += x.W / total; cum >= p {
				return x.V
			}
		}
		return s[len(s)-1].V
	}
	return PeerSummary{
		Count: math.Round(total), Mean: mean, StdDev: math.Sqrt(variance), Min: s[0].V, Max: s[len(s)-1].V,
		P50: at(0.5), P90: at(0.9), P95: at(0.95), P99: at(0.99),
	}
}

// --- vLLM `bench serve` ---
//
// vllm/benchmarks/lib/endpoint_request_func.py,
// async_request_openai_chat_completions (and _completions): st is taken
// before the POST; every event with a non-empty "choices" array, content
// or not (a role delta, a finish-only delta), is a token event: the first
// sets ttft, each later one appends its gap to itl, and latency is the last
// such event − st (the trailing usage event does not count; before
// vLLM moved the timestamp inside the choices branch it did, and latency
// then ran to the usage event). vllm/benchmarks/serve.py,
// calculate_metrics: output_len is usage completion_tokens (a tokenizer
// count without usage); summaries are np.mean, np.std (population) and
// np.percentile (linear interpolation).

// vllmChoices returns the arrival times of t's events with choices.
func vllmChoices(t Timeline) []time.Duration {
	var out []time.Duration
	for _, e := range t.Events {
		if e.Choices {
			out = append(out, e.At)
		}
	}
	return out
}

// VLLMTTFT is ttft: the first event with choices − st.
func VLLMTTFT(t Timeline) (float64, bool) {
	c := vllmChoices(t)
	if len(c) == 0 {
		return 0, false
	}
	return durMs(c[0] - t.Sent), true
}

// VLLMLatency is latency (E2EL): the last event with choices − st.
func VLLMLatency(t Timeline) float64 {
	c := vllmChoices(t)
	if len(c) == 0 {
		return 0
	}
	return durMs(c[len(c)-1] - t.Sent)
}

// VLLMTPOT is tpot: (latency − ttft) / (output_len − 1), for output_len > 1.
func VLLMTPOT(t Timeline) (float64, bool) {
	ttft, ok := VLLMTTFT(t)
	if !ok || t.OutputTokens <= 1 {
		return 0, false
	}
	return (VLLMLatency(t) - ttft) / float64(t.OutputTokens-1), true
}

// VLLMITL is the request's itl list, pooled over requests by the caller:
// the gaps between consecutive events with choices.
func VLLMITL(t Timeline) []float64 { return gaps(vllmChoices(t)) }

// --- AIPerf 0.13.0 ---
//
// aiperf/common/models/record_models.py, ParsedResponseRecord.content_responses:
// the responses whose parsed data is not empty (content, reasoning or a
// tool call; role-only and usage-only events excluded). Summaries:
// aiperf/metrics/metric_dicts.py, metric_result_from_array (mean,
// population std, linear-interpolation percentiles p1 … p99); inter-chunk
// latency through a t-digest (aiperf/metrics/list_metric_aggregation.py).

// AIPerfTTFT is time_to_first_token: the first content response − request
// start (aiperf/metrics/types/ttft_metric.py, TTFTMetric).
func AIPerfTTFT(t Timeline) (float64, bool) {
	c := t.content()
	if len(c) == 0 {
		return 0, false
	}
	return durMs(c[0] - t.Sent), true
}

// AIPerfRequestLatency is request_latency: the last content response −
// request start, not the end of the stream
// (aiperf/metrics/types/request_latency_metric.py, RequestLatencyMetric).
func AIPerfRequestLatency(t Timeline) (float64, bool) {
	c := t.content()
	if len(c) == 0 {
		return 0, false
	}
	return durMs(c[len(c)-1] - t.Sent), true
}

// AIPerfITL is inter_token_latency: (request_latency − TTFT) /
// (output sequence length − 1), for OSL ≥ 2
// (aiperf/metrics/types/inter_token_latency_metric.py,
// InterTokenLatencyMetric; with --per-chunk-usage the divisor is OSL − the
// first content chunk's tokens, not modelled here). OSL counts reasoning
// tokens too.
func AIPerfITL(t Timeline) (float64, bool) {
	ttft, ok := AIPerfTTFT(t)
	if !ok || t.OutputTokens < 2 {
		return 0, false
	}
	lat, _ := AIPerfRequestLatency(t)
	return (lat - ttft) / float64(t.OutputTokens-1), true
}

// AIPerfICL is the request's inter_chunk_latency list: the gaps between
// consecutive content responses
// (aiperf/metrics/types/inter_chunk_latency_metric.py, InterChunkLatencyMetric).
func AIPerfICL(t Timeline) []float64 { return gaps(t.content()) }

// --- inference-perf 0.7.0 ---
//
// inference_perf/apis/streaming_parser.py, parse_sse_stream: chunk_times
// are the arrivals of the events with delta content; start and end_time
// bracket the whole request (client/modelserver/openai_client.py, the end
// after the stream is read). inference_perf/reportgen/base.py,
// correct_streamed_response_metrics, gives every token of a chunk (as the
// client's tokenizer counts the chunk's text) the chunk's arrival time;
// compute_request_latency_metrics derives the figures below and
// summarize() reports np.mean and np.percentile (linear interpolation).

// inferencePerfTokenTimes is output_token_times: each content event's
// arrival repeated once per token.
func inferencePerfTokenTimes(t Timeline) []time.Duration {
	var out []time.Duration
	for _, e := range t.Events {
		for range e.Tokens {
			out = append(out, e.At)
		}
	}
	return out
}

// InferencePerfTTFT is time_to_first_token: the first token time − start,
// only for a request with more than one token time.
func InferencePerfTTFT(t Timeline) (float64, bool) {
	tt := inferencePerfTokenTimes(t)
	if len(tt) <= 1 {
		return 0, false
	}
	return durMs(tt[0] - t.Sent), true
}

// InferencePerfTPOT is time_per_output_token: (last token time − first
// token time) / (output tokens − 1), for more than one token time and
// output tokens > 1.
func InferencePerfTPOT(t Timeline) (float64, bool) {
	tt := inferencePerfTokenTimes(t)
	if len(tt) <= 1 || t.OutputTokens <= 1 {
		return 0, false
	}
	return durMs(tt[len(tt)-1]-tt[0]) / float64(t.OutputTokens-1), true
}

// InferencePerfITL is the request's inter_token_latency list, pooled by
// the caller: the gaps between consecutive token times, 0 between the
// tokens of one chunk.
func InferencePerfITL(t Timeline) []float64 { return gaps(inferencePerfTokenTimes(t)) }

// InferencePerfNTPOT is normalized_time_per_output_token: (end − start) /
// output tokens, 0 (and still counted) without output.
func InferencePerfNTPOT(t Timeline) float64 {
	if t.OutputTokens <= 0 {
		return 0
	}
	return durMs(t.End-t.Sent) / float64(t.OutputTokens)
}

// InferencePerfRequestLatency is request_latency: end − start.
func InferencePerfRequestLatency(t Timeline) float64 { return durMs(t.End - t.Sent) }

// gaps returns the differences between consecutive times, in ms.
func gaps(ts []time.Duration) []float64 {
	var out []float64
	for i := 1; i < len(ts); i++ {
		out = append(out, durMs(ts[i]-ts[i-1]))
	}
	return out
}

// PeerSummary is a peer's summary of one distribution (the figures every
// peer reports; Count is GuideLLM's weight sum for a weighted one).
type PeerSummary struct {
	Count                  float64
	Mean, StdDev, Min, Max float64
	P50, P90, P95, P99     float64
}

// LinearSummary summarises values as numpy does for vLLM, AIPerf and
// inference-perf: np.mean, np.std (population) and np.percentile's default
// linear interpolation, the value at rank p·(n − 1) between its neighbours.
func LinearSummary(values []float64) PeerSummary {
	if len(values) == 0 {
		return PeerSummary{}
	}
	s := slices.Clone(values)
	slices.Sort(s)
	n := float64(len(s))
	var mean float64
	for _, v := range s {
		mean += v / n
	}
	var ss float64
	for _, v := range s {
		ss += (v - mean) * (v - mean)
	}
	at := func(p float64) float64 {
		x := p * (n - 1)
		lo := int(math.Floor(x))
		hi := min(lo+1, len(s)-1)
		return s[lo] + (x-float64(lo))*(s[hi]-s[lo])
	}
	return PeerSummary{
		Count: n, Mean: mean, StdDev: math.Sqrt(ss / n), Min: s[0], Max: s[len(s)-1],
		P50: at(0.5), P90: at(0.9), P95: at(0.95), P99: at(0.99),
	}
}
