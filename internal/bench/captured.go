package bench

import (
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/stats"
)

// capturedBenchmark is production as captured (results and start from
// capturedResults): the recorded timings of exactly the requests the run
// replayed — each result's own capture record
// (joined on the request index), so the window, filters, sample, loop and shard
// select the same requests on both sides — measured by the proxy from
// arrival. A request of the run's warmup or cooldown keeps its phase, so
// it is left out of production's metrics too. It lets a report put "what
// production did with these requests" next to the candidate.
func capturedBenchmark(path string, results []engine.Result, start time.Time) report.Benchmark {
	var dur time.Duration
	for i := range results {
		dur = max(dur, results[i].End)
	}
	return report.Benchmark{
		Name: "production (captured)", Baseline: true, Target: "production (as captured by the proxy)", Profile: "captured",
		Start: start, DurationS: dur.Seconds(),
		Config:  report.RunConfig{Capture: path, CaptureSource: captureSource(path)},
		Metrics: stats.Summarize(results, stats.Options{}),
	}
}

// capturedResults converts the capture record (recorded, by request
// index: Outcome.Recorded) of every result of run, in the run's order, to
// production's observation, timed from the earliest of them (whose wall
// time is start). Results without a record (not from a capture) are left
// out. A looped request (--loop) repeats its record, at the record's own
// time.
func capturedResults(run *engine.Run, recorded map[int]*capture.Record) ([]engine.Result, time.Time) {
	var t0 int64
	var start time.Time
	first := true
	for i := range run.Results {
		if rec := recorded[run.Results[i].Index]; rec != nil && (first || rec.T < t0) {
			t0, start, first = rec.T, rec.Wall, false
		}
	}
	var results []engine.Result
	for i := range run.Results {
		r := &run.Results[i]
		rec := recorded[r.Index]
		if rec == nil {
			continue
		}
		res := recordResult(r.Index, rec, t0)
		res.Phase = r.Phase
		results = append(results, res)
	}
	return results, start
}

// Captured is production as captured for exactly the requests of o's run
// (capturedBenchmark), for a capture workload at path; ok is false when
// the run carries no capture records.
func Captured(path string, o Outcome) (b report.Benchmark, results []engine.Result, ok bool) {
	results, start := capturedResults(o.Run, o.Recorded)
	return capturedBenchmark(path, results, start), results, len(results) > 0
}

// recordResult converts a capture record to the replayer's per-request
// observation. The proxy measures from the request's arrival, so intended
// and actual send are both the arrival offset.
func recordResult(i int, rec *capture.Record, t0 int64) engine.Result {
	at := time.Duration(rec.T - t0)
	res := engine.Result{
		Index: i, Endpoint: string(openai.EndpointForPath(rec.Path)), Stream: rec.Stream,
		Intended: at, Sent: at, End: at + time.Duration(rec.E2ENs),
		Status: rec.Status, Err: rec.Error,
		PromptTokens: rec.PromptTokens, OutputTokens: rec.OutputTokens, CachedTokens: rec.CachedTokens,
		TokensFromUsage: rec.TokensSource == capture.TokensUsage, FinishReason: rec.FinishReason,
		RequestedPromptTokens: rec.PromptTokens, RequestedOutputTokens: rec.OutputTokens,
	}
	if rec.TTFBNs > 0 {
		res.FirstByte = at + time.Duration(rec.TTFBNs)
	}
	t := at
	for k, d := range rec.ChunksUS {
		t += time.Duration(d) * time.Microsecond
		res.Chunks = append(res.Chunks, t)
		n := 1
		if k < len(rec.ChunkTokens) {
			n = rec.ChunkTokens[k]
		}
		res.ChunkTokens = append(res.ChunkTokens, n)
	}
	if rec.TTFTNs > 0 {
		res.FirstToken = at + time.Duration(rec.TTFTNs)
		res.LastToken = res.FirstToken
		if len(res.Chunks) > 0 {
			res.LastToken = res.Chunks[len(res.Chunks)-1]
		}
	} else if !rec.Stream && rec.Status/100 == 2 {
		res.FirstToken, res.LastToken = res.End, res.End
	}
	if rec.Aborted && res.Err == "" {
		res.Err = "aborted"
	}
	return res
}
