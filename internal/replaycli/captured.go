package replaycli

import (
	"errors"
	"io"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/workload"
)

// capturedBenchmark is production as captured: the recorded timings of the
// same requests the run replayed (the first len(run.Results) replayable
// records, in order), measured by the proxy from arrival. It lets a report
// put "what production did with these requests" next to the candidate.
func capturedBenchmark(path string, run *engine.Run) (report.Benchmark, error) {
	src, err := workload.OpenCapture(path)
	if err != nil {
		return report.Benchmark{}, err
	}
	defer src.Close()
	var results []engine.Result
	var t0 int64
	var start time.Time
	for len(results) < len(run.Results) {
		req, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return report.Benchmark{}, err
		}
		rec := req.Recorded
		if len(results) == 0 {
			t0, start = rec.T, rec.Wall
		}
		results = append(results, recordResult(len(results), rec, t0))
	}
	var dur time.Duration
	for i := range results {
		dur = max(dur, results[i].End)
	}
	return report.Benchmark{
		Name: "production (captured)", Baseline: true, Target: "production (as captured by the proxy)", Profile: "captured",
		Start: start, DurationS: dur.Seconds(),
		Config:  map[string]any{"capture": path},
		Metrics: stats.Summarize(results, stats.Options{}),
	}, nil
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
