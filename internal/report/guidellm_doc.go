package report

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/stats"
)

// guidellmReport builds GuideLLM's GenerativeBenchmarksReport for f.
func guidellmReport(f *File) map[string]any {
	labels := map[string]string{}
	maps.Copy(labels, f.Labels)
	labels["exported_by"] = "reprise"
	if w := workloadSpec(f.Command); w != "" {
		labels["reprise_workload"] = w
	}
	target := ""
	if len(f.Benchmarks) > 0 {
		target = f.Benchmarks[0].Target
	}
	benchmarks := make([]map[string]any, len(f.Benchmarks))
	overrides := make([]any, len(f.Benchmarks))
	for i := range f.Benchmarks {
		benchmarks[i] = guidellmBenchmark(f, i)
		overrides[i] = nil
	}
	return map[string]any{
		"metadata": map[string]any{
			"version": 2,
			// Not GuideLLM: say which tool wrote it and which schema it follows.
			"guidellm_version": "reprise export (guidellm " + GuideLLMVersion + " schema)",
			"python_version":   "n/a",
			"platform":         "unknown",
		},
		"config": map[string]any{
			"metadata": map[string]any{"labels": labels},
			"spec": map[string]any{
				"backend": map[string]any{"kind": "openai_http", "target": target},
				"profile": profileSpec(f),
				"data":    []any{guidellmData(workloadSpec(f.Command))},
			},
			"benchmarks": overrides,
		},
		"benchmarks":  benchmarks,
		"conclusions": []any{},
	}
}

// guidellmBenchmark is f.Benchmarks[i] as GuideLLM's GenerativeBenchmark.
func guidellmBenchmark(f *File, i int) map[string]any {
	b := &f.Benchmarks[i]
	m := &b.Metrics
	start := epoch(b.Start)
	end := start + b.DurationS
	firstSend := end - m.WindowS // the window runs from the first send to the last end
	counts := gCounts{Successful: m.Requests.Successful, Errored: m.Requests.Errored, Incomplete: m.Requests.Cancelled, Total: m.Requests.Total}
	strat := strategy(b)
	// dist converts a distribution (scaled by scale: 0.001 for GuideLLM's
	// seconds) with its CDF when Reprise keeps one.
	dist := func(d stats.Distribution, cdfKey string, scale float64) gDist {
		var cdf *stats.CDF
		if c, ok := m.CDF[cdfKey]; ok && len(c.Q) > 0 {
			cdf = &c
		}
		return fromDistribution(d, cdf, scale)
	}
	// succ is a distribution of successful requests, in Reprise's unit.
	succ := func(d stats.Distribution, cdfKey string) gStatus { return successfulOnly(dist(d, cdfKey, 1), m) }
	reqLatency := successfulOnly(dist(m.RequestLatency, stats.CDFRequestLatency, 0.001), m) // GuideLLM: seconds
	ttft := succ(m.TimeToFirstToken, stats.CDFTimeToFirstToken)
	prompt := succ(m.PromptTokens, "")
	output := succ(m.OutputTokens, "")
	total := succ(m.TotalTokens, "")
	requests := map[string]any{"successful": []any{}, "errored": []any{}, "incomplete": []any{}, "total": nil}
	if len(b.Requests) > 0 {
		requests = fromRecords(b, start)
	}
	// Requests in flight count every request, whatever its outcome: GuideLLM's
	// "total" (what its console shows), and "successful" too when all succeeded.
	concurrency := allRequests(dist(m.InFlight, stats.CDFInFlight, 1), m)
	// GuideLLM reports the delays against the schedule only for strategies
	// with an arrival schedule (SchedulingStrategy.defines_arrival_schedule:
	// constant, poisson, trace), null for the closed loops.
	var dispatchDelay, scheduledLatency any
	if t := strat["type_"]; t == "constant" || t == "poisson" || t == "trace" {
		// request_dispatch_delay: request start − targeted start, every
		// request: Reprise's send lag.
		dispatchDelay = allRequests(dist(m.SendLag, "", 0.001), m)
		// request_scheduled_latency: request end − targeted start:
		// Reprise's request latency from the intended send (successful).
		scheduledLatency = successfulOnly(dist(m.RequestLatencyFromIntended, "", 0.001), m)
	}
	// A rate over the window is one observation (count 1). Token rates
	// count successful requests' tokens only, so "total" repeats them;
	// the request rate's total counts every request.
	rate := func(v float64) gStatus { return gStatus{Successful: point(v), Total: point(v)} }
	reqRate := gStatus{Successful: point(m.RequestsPerSecond)}
	if m.WindowS > 0 {
		reqRate.Total = point(float64(m.Requests.Total) / m.WindowS)
	}

	metrics := map[string]any{
		"request_totals":                     counts,
		"requests_per_second":                reqRate,
		"request_concurrency":                concurrency,
		"request_latency":                    reqLatency,
		"request_dispatch_delay":             dispatchDelay,
		"request_scheduled_latency":          scheduledLatency,
		"request_streaming_iterations_count": succ(m.StreamEvents, ""),
		"prompt_token_count":                 prompt,
		"output_token_count":                 output,
		"total_token_count":                  total,
		"time_to_first_token_ms":             ttft,
		// Reprise's first token includes reasoning, GuideLLM's first output
		// token does not: the same figure for a model that does not reason.
		"time_to_first_output_token_ms": ttft,
		// GuideLLM weights these two by tokens (n and n − 1 per request).
		"time_per_output_token_ms":    succ(m.TimePerOutputTokenTokenWeighted, stats.CDFTimePerOutputTokenTokenWeighted),
		"inter_token_latency_ms":      succ(m.InterTokenLatencyTokenWeighted, stats.CDFInterTokenLatencyTokenWeighted),
		"time_to_last_round_trip_ms":  gStatus{},
		"avg_round_trip_time_ms":      gStatus{},
		"prompt_tokens_per_second":    rate(m.InputTokensPerSecond),
		"output_tokens_per_second":    rate(m.OutputTokensPerSecond),
		"tokens_per_second":           rate(m.TotalTokensPerSecond),
		"output_tokens_per_iteration": succ(m.OutputTokensPerChunk, ""),
		"iter_tokens_per_iteration":   succ(m.OutputTokensPerChunkAfterFirst, ""),
		"text": map[string]any{
			"tokens": map[string]any{
				"input": prompt, "input_per_second": rate(m.InputTokensPerSecond), "input_concurrency": nil,
				"output": output, "output_per_second": rate(m.OutputTokensPerSecond), "output_concurrency": nil,
				"total": total, "total_per_second": rate(m.TotalTokensPerSecond), "total_concurrency": nil,
			},
			"words": nil, "characters": nil,
		},
		"image":                   map[string]any{"tokens": nil, "images": nil, "pixels": nil, "bytes": nil},
		"video":                   map[string]any{"tokens": nil, "frames": nil, "seconds": nil, "bytes": nil},
		"audio":                   map[string]any{"tokens": nil, "samples": nil, "seconds": nil, "bytes": nil},
		"tool_call":               map[string]any{"tokens": nil, "mixed_tokens": nil, "count": nil},
		"turns":                   nil,
		"slo_attainment":          nil,
		"slo_determined_requests": 0,
		"request_goodput":         nil,
	}
	slo := guidellmSLO(m.Goodput)
	if slo != nil {
		metrics["slo_attainment"] = m.Goodput.Attainment
		metrics["slo_determined_requests"] = m.Requests.Successful + m.Requests.Errored
		metrics["request_goodput"] = gStatus{Successful: point(m.Goodput.RequestsPerSecond), Total: point(m.Goodput.RequestsPerSecond)}
	}
	constraints := map[string]any{}
	if v := b.Config.MaxRequests; v > 0 {
		constraints["max_requests"] = map[string]any{"type_": "max_requests", "args": map[string]any{"kind": "max_requests", "count": int64(v)}}
	}
	if v := b.Config.MaxSeconds; v > 0 {
		constraints["max_duration"] = map[string]any{"type_": "max_duration", "args": map[string]any{"kind": "max_duration", "seconds": v}}
	}
	return map[string]any{
		"type_": "generative_benchmark",
		"config": map[string]any{
			"id_": runID(f) + "-" + strconv.Itoa(i), "run_id": runID(f), "run_index": i,
			"strategy": strat, "constraints": constraints, "sample_size": nil,
			"prefer_response_metrics": true, "slo": slo,
			"confidence": nil, // Reprise reports no per-distribution intervals
			"warnings":   []any{},
			"profile":    map[string]any{"kind": strat["type_"], "reprise_profile": b.Profile, "reprise_name": b.Name},
			"requests":   map[string]any{"kind": "reprise", "config": b.Config},
			"backend":    map[string]any{"kind": "openai_http", "target": b.Target},
			"environment": map[string]any{
				"kind": "reprise", "baseline": b.Baseline,
				"note": "exported from Reprise's benchmarks.json; GuideLLM's scheduler-internal timings (queue, resolve, finalize) are not measured and are 0",
			},
		},
		"scheduler_state": map[string]any{
			"node_id": 0, "num_processes": 1, "start_time": start, "end_time": end,
			"start_requests_time": firstSend, "end_requests_time": end,
			"created_requests": m.Requests.Total, "processed_requests": m.Requests.Total,
			"successful_requests": m.Requests.Successful, "errored_requests": m.Requests.Errored,
			"cancelled_requests": m.Requests.Cancelled,
		},
		"scheduler_metrics": map[string]any{
			"start_time": start, "request_start_time": firstSend, "measure_start_time": firstSend,
			"measure_end_time": end, "request_end_time": end, "end_time": end,
			"requests_made": counts,
			// Reprise has no queue/resolve/finalize pipeline: those are 0.
			"queued_time_avg": 0.0, "resolve_start_delay_avg": 0.0, "resolve_targeted_start_delay_avg": 0.0,
			"request_start_delay_avg":          0.0,
			"request_targeted_start_delay_avg": m.SendLag.Mean / 1000, // actual − intended send, seconds
			"request_time_avg":                 m.RequestLatency.Mean / 1000,
			"resolve_end_delay_avg":            0.0, "resolve_time_avg": m.RequestLatency.Mean / 1000,
			"finalized_delay_avg": 0.0, "processed_delay_avg": 0.0,
			"strategy_type": strat["type_"],
		},
		"metrics":  metrics,
		"requests": requests,
		"warnings": []any{},
	}
}

// fromRecords is GuideLLM's per-request list from Reprise's per-request
// records: every SSE event is one of GuideLLM's request iterations, every
// content event one of its token iterations.
func fromRecords(b *Benchmark, start float64) map[string]any {
	groups := map[string][]any{"successful": {}, "errored": {}, "incomplete": {}}
	at := func(msSinceOrigin float64) any {
		if msSinceOrigin <= 0 {
			return nil
		}
		return start + msSinceOrigin/1000
	}
	for _, r := range b.Requests {
		res := engine.Result{Status: r.Status, Err: r.Error}
		status, group := "completed", "successful"
		switch {
		case stats.IsCancelled(&res):
			status, group = "cancelled", "incomplete"
		case !res.OK():
			status, group = "errored", "errored"
		}
		// GuideLLM times token iterations in streams only (a non-streamed
		// response has none); its first request iteration is the first
		// stream line, Reprise's first SSE event.
		streamed := func(ms float64) any {
			if !r.Stream {
				return nil
			}
			return at(ms)
		}
		// Every request was sent and ended, the first possibly at the
		// origin (0 ms); GuideLLM places a request by its resolve_end.
		sent, ended := start+r.SentMs/1000, start+r.EndMs/1000
		id := b.Name + "/" + strconv.Itoa(r.Index)
		var errText any
		if r.Error != "" {
			errText = r.Error
		} else if !res.OK() {
			errText = fmt.Sprintf("http %d", r.Status)
		}
		groups[group] = append(groups[group], map[string]any{
			"type_": "generative_request_stats", "request_id": id,
			"info": map[string]any{
				"request_id": id, "status": status, "scheduler_start_time": start, "error": errText,
				"timings": map[string]any{
					"targeted_start": start + r.IntendedMs/1000, "request_start": sent, "resolve_start": sent,
					"first_request_iteration": at(r.FirstEventMs), "first_token_iteration": streamed(r.FirstTokenMs),
					"first_output_token_iteration": streamed(r.FirstTokenMs), "last_token_iteration": streamed(r.LastTokenMs),
					"last_request_iteration": ended, "request_end": ended, "resolve_end": ended,
					"request_iterations": r.Events, "token_iterations": r.Chunks,
				},
			},
			"input_metrics":  map[string]any{"text_tokens": r.PromptTokens, "cached_tokens": r.CachedTokens},
			"output_metrics": map[string]any{"text_tokens": r.OutputTokens},
		})
	}
	return map[string]any{"successful": groups["successful"], "errored": groups["errored"], "incomplete": groups["incomplete"], "total": nil}
}

// workloadSpec is the --workload value of a replay command line, or "".
func workloadSpec(argv []string) string {
	for i, a := range argv {
		name, val, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "workload" {
			continue
		}
		if ok {
			return val
		}
		if i+1 < len(argv) {
			return argv[i+1]
		}
	}
	return ""
}

// guidellmData maps a Reprise workload spec to GuideLLM's nearest data
// argument: synthetic:… to synthetic_text, mooncake:PATH to mooncake, any
// other trace or capture to trace_synthetic (GuideLLM's "replay recorded
// lengths and times with synthesised prompts", which is what Reprise does
// with them) over the file it names.
func guidellmData(spec string) map[string]any {
	kind, rest, _ := strings.Cut(spec, ":")
	switch kind {
	case "synthetic":
		out := map[string]any{"kind": "synthetic_text", "prompt_tokens": 0}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "prompt_tokens", "prompt_tokens_stdev", "output_tokens", "output_tokens_stdev",
				"prompt_tokens_min", "prompt_tokens_max", "output_tokens_min", "output_tokens_max":
				if n, err := strconv.ParseFloat(v, 64); err == nil {
					out[k] = int(n)
				}
			}
		}
		return out
	case "mooncake":
		return map[string]any{"kind": "mooncake", "source": map[string]any{"kind": "json_file", "path": rest}}
	case "azure", "burstgpt":
		return map[string]any{"kind": "trace_synthetic", "source": map[string]any{"kind": "csv_file", "path": rest}}
	}
	return map[string]any{"kind": "trace_synthetic", "source": map[string]any{"kind": "json_file", "path": spec}}
}
