package stats

import "github.com/reprise-llm/reprise/internal/engine"

// recordCounts records a successful request's per-request counts that
// GuideLLM reports beside its token counts, each as GuideLLM 0.8.1 defines
// it (guidellm/benchmark/schemas/metrics.py, GenerativeMetrics.compile;
// guidellm/schemas/base/request_stats.py, GenerativeRequestStats):
//
//   - total_tokens: prompt + output tokens (total_token_count);
//   - stream_events: SSE events received, every kind, the final [DONE]
//     included; 0 for a non-streamed response (request_streaming_iterations_count:
//     GuideLLM counts the stream's non-blank lines, one per event for the
//     chat and completions APIs);
//   - output_tokens_per_chunk (output_tokens_per_iteration): a streamed
//     request with c ≥ 2 content events and n output tokens contributes its
//     first event as 1 token (0 when n is 0) and, when n ≥ 2, its c − 1
//     later events as (n − 1)/(c − 1) tokens each, GuideLLM's even spread;
//     any other request contributes n once;
//   - output_tokens_per_chunk_after_first (iter_tokens_per_iteration): the
//     later events alone, (n − 1)/(c − 1) with weight c − 1.
//
// Content events are those Reprise times in Chunks (NumChunks, so a run
// that discards chunk times still counts them): GuideLLM's token
// iterations, the events that carried content, reasoning or a tool call.
func (rec *Recorder) recordCounts(r *engine.Result) {
	n := max(r.OutputTokens, 0)
	rec.totalTok.Record(float64(max(r.PromptTokens, 0) + n))
	rec.events.Record(float64(r.Events))
	c := r.NumChunks()
	if !r.Stream || r.FirstToken <= 0 || c <= 1 {
		rec.perChunk.Record(float64(n))
		return
	}
	rec.perChunk.Record(float64(min(n, 1)))
	if n >= 2 {
		later := float64(n-1) / float64(c-1)
		rec.perChunk.RecordWeighted(later, int64(c-1))
		rec.perChunkLater.RecordWeighted(later, int64(c-1))
	}
}
