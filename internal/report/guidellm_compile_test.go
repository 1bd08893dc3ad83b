package report

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/stats"
)

// compileResults is one constant-rate benchmark of 16 requests, one of them
// errored: streamed outputs of different lengths, some with several tokens
// per event, a role event (and on even indexes a usage event) before
// [DONE], send lag, and overlapping requests. Its counts are all odd (15
// successful, 185 output tokens, 170 token gaps), so no percentile falls on
// a boundary where GuideLLM's floating-point cumulative sums and Reprise's
// integer ranks could pick neighbouring values; sends and ends are never
// within GuideLLM's 0.1 ms merging threshold of each other.
func compileResults() []engine.Result {
	ns := []int{3, 17, 8, 1, 25, 12, 0, 30, 9, 14, 2, 21, 11, 19, 6, 7} // output tokens
	cs := []int{3, 9, 8, 1, 25, 4, 0, 30, 3, 14, 1, 7, 11, 19, 5, 7}    // content events
	var out []engine.Result
	for i := range ns {
		intended := ms(200 * float64(i))
		sent := intended + ms(0.7*float64(i%3))
		if i == 6 {
			out = append(out, engine.Result{Index: i, Endpoint: "chat", Stream: true, Status: 500, Err: "http 500",
				Intended: intended, Sent: sent, End: sent + ms(40)})
			continue
		}
		r := engine.Result{Index: i, Endpoint: "chat", Stream: true, Status: 200, Intended: intended, Sent: sent,
			PromptTokens: 100 + 7*i, OutputTokens: ns[i], TokensFromUsage: true, Events: cs[i] + 2}
		if i%2 == 0 {
			r.Events++ // a usage event
		}
		r.FirstByte = sent + ms(20)
		r.FirstEvent = sent + ms(30)
		at := sent + ms(60+13*float64(i%5))
		for range cs[i] {
			if r.FirstToken == 0 {
				r.FirstToken = at
			}
			r.Chunks = append(r.Chunks, at)
			r.ChunkTokens = append(r.ChunkTokens, 1)
			r.LastToken = at
			at += ms(5 + float64(i%3))
		}
		r.End = r.LastToken + ms(3)
		out = append(out, r)
	}
	return out
}

// compileScript loads Reprise's export with GuideLLM's own
// GenerativeBenchmarksReport and has GuideLLM compute its metrics over the
// export's per-request records its own way: GenerativeMetrics.compile
// (GuideLLM's code, unmodified) summarises those GenerativeRequestStats as
// at the end of a GuideLLM run. It prints, field by field, GuideLLM's own
// figures and the export's.
const compileScript = `
import json, sys
from types import SimpleNamespace
from guidellm.benchmark.schemas import GenerativeBenchmarksReport
from guidellm.benchmark.schemas.accumulator import GenerativeBenchmarkTimings, GenerativeRequestsAccumulator
from guidellm.benchmark.schemas.metrics import GenerativeMetrics
from guidellm.scheduler import AsyncConstantStrategy

export_path, fields = sys.argv[1], json.loads(sys.argv[2])
bench = GenerativeBenchmarksReport.load_file(export_path).benchmarks[0]
ok, bad = bench.requests.successful, bench.requests.errored
every = ok + bad
acc = SimpleNamespace(
    timings=GenerativeBenchmarkTimings(
        request_start=min(s.request_start_time for s in every),
        request_end=max(s.request_end_time for s in every)),
    completed=GenerativeRequestsAccumulator(requests_stats=ok),
    errored=GenerativeRequestsAccumulator(requests_stats=bad),
    incomplete=GenerativeRequestsAccumulator(requests_stats=[]),
    config=SimpleNamespace(confidence=None, slo=None, strategy=bench.config.strategy),
)
assert isinstance(bench.config.strategy, AsyncConstantStrategy)
own = GenerativeMetrics.compile(acc)

def flat(d):
    if d is None:
        return None
    out = {k: getattr(d, k) for k in ("count", "mean", "median", "std_dev", "variance", "min", "max", "total_sum")}
    out.update(d.percentiles.model_dump())
    return out

out = {}
for name, status in fields:
    out[name + "." + status] = {
        "guidellm": flat(getattr(getattr(own, name), status)),
        "export": flat(getattr(getattr(bench.metrics, name), status)),
    }
print(json.dumps(out))
`

// TestGuideLLMExportMatchesGuideLLMsOwnMetrics is issue 17's "done when":
// over the requests of Reprise's export, GuideLLM's own metrics code
// computes the figures the export gives it, field by field (token counts
// per request, stream iterations, output tokens per iteration,
// token-weighted ITL and TPOT, time-weighted concurrency, dispatch delay
// and latency from the schedule), and each exported figure is Reprise's
// own from benchmarks.json.
func TestGuideLLMExportMatchesGuideLLMsOwnMetrics(t *testing.T) {
	python, _ := guidellmPython(t)
	res := compileResults()
	m := stats.Summarize(res, stats.Options{RequestedRate: 5})
	// The run starts 1000 s after the epoch, so GuideLLM's float epoch
	// seconds keep sub-microsecond precision.
	b := Benchmark{Name: "constant@5", Target: "http://sim:8000", Profile: "constant", Config: RunConfig{Rate: 5},
		Start: time.Unix(1000, 0), DurationS: m.WindowS, Metrics: m, Requests: RequestRecords(res)}
	f := &File{Tool: "reprise", Created: b.Start, Benchmarks: []Benchmark{b}}
	exportPath := filepath.Join(t.TempDir(), "guidellm.json")
	var buf bytes.Buffer
	if err := WriteGuideLLM(&buf, f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exportPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// Each GuideLLM field, the status compared (request_concurrency and
	// request_dispatch_delay count every request: "total"), Reprise's
	// distribution, its scale to GuideLLM's unit, and whether Reprise keeps
	// a CDF for it (then p1 … p75 are exact too, not interpolated).
	type field struct {
		name, status string
		d            stats.Distribution
		scale        float64
		cdf          bool
	}
	fields := []field{
		{"request_latency", "successful", m.RequestLatency, 0.001, true},
		{"request_scheduled_latency", "successful", m.RequestLatencyFromIntended, 0.001, false},
		{"request_dispatch_delay", "total", m.SendLag, 0.001, false},
		{"request_concurrency", "total", m.InFlight, 1, true},
		{"request_streaming_iterations_count", "successful", m.StreamEvents, 1, false},
		{"prompt_token_count", "successful", m.PromptTokens, 1, false},
		{"output_token_count", "successful", m.OutputTokens, 1, false},
		{"total_token_count", "successful", m.TotalTokens, 1, false},
		{"time_to_first_token_ms", "successful", m.TimeToFirstToken, 1, true},
		{"inter_token_latency_ms", "successful", m.InterTokenLatencyTokenWeighted, 1, true},
		{"time_per_output_token_ms", "successful", m.TimePerOutputTokenTokenWeighted, 1, true},
		{"output_tokens_per_iteration", "successful", m.OutputTokensPerChunk, 1, false},
		{"iter_tokens_per_iteration", "successful", m.OutputTokensPerChunkAfterFirst, 1, false},
	}
	var names [][2]string
	for _, fl := range fields {
		names = append(names, [2]string{fl.name, fl.status})
	}
	arg, _ := json.Marshal(names)
	cmd := exec.Command(python, "-c", compileScript, exportPath, string(arg))
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GuideLLM: %v\n%s", err, stderr.Bytes())
	}
	var got map[string]struct{ GuideLLM, Export map[string]float64 }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("reading %q: %v", out, err)
	}
	// Reprise keeps each request's ITL and TPOT in whole nanoseconds (the
	// quotient truncated), GuideLLM in float seconds: they agree to within a
	// nanosecond per value, a few parts in 10⁷ of a figure.
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-6*max(1, math.Abs(a), math.Abs(b)) }
	exact := []string{"count", "mean", "median", "std_dev", "variance", "min", "max", "total_sum", "p50", "p90", "p95", "p99"}
	withCDF := append(exact, "p01", "p05", "p10", "p25", "p75")
	for _, fl := range fields {
		key := fl.name + "." + fl.status
		g := got[key]
		if g.GuideLLM == nil || g.Export == nil || g.GuideLLM["count"] == 0 {
			t.Errorf("%s: GuideLLM %v, export %v: want both measured", key, g.GuideLLM, g.Export)
			continue
		}
		stats := exact
		if fl.cdf {
			stats = withCDF
		}
		for _, s := range stats {
			if s == "count" && fl.name == "request_concurrency" {
				// GuideLLM counts the requests, as Reprise does.
				if g.GuideLLM[s] != float64(len(res)) || g.Export[s] != float64(len(res)) {
					t.Errorf("%s count: GuideLLM %v, export %v, want %d requests", key, g.GuideLLM[s], g.Export[s], len(res))
				}
				continue
			}
			if !close(g.Export[s], g.GuideLLM[s]) {
				t.Errorf("%s %s: export %v, GuideLLM's own %v", key, s, g.Export[s], g.GuideLLM[s])
			}
		}
		// The export's figures are Reprise's own.
		for s, want := range map[string]float64{
			"count": float64(fl.d.Count), "mean": fl.scale * fl.d.Mean, "std_dev": fl.scale * fl.d.StdDev,
			"min": fl.scale * fl.d.Min, "max": fl.scale * fl.d.Max, "p50": fl.scale * fl.d.P50,
			"p90": fl.scale * fl.d.P90, "p95": fl.scale * fl.d.P95, "p99": fl.scale * fl.d.P99,
		} {
			if !close(g.Export[s], want) {
				t.Errorf("%s %s: export %v, Reprise's benchmarks.json %v", key, s, g.Export[s], want)
			}
		}
	}
	// The console figures: total tokens per request is prompt +
	// output (not 0), stream iterations count every SSE event.
	if g := got["total_token_count.successful"].Export; !close(g["mean"], m.PromptTokens.Mean+m.OutputTokens.Mean) {
		t.Errorf("total tokens per request %v, want %v + %v", g["mean"], m.PromptTokens.Mean, m.OutputTokens.Mean)
	}
}

// A closed-loop benchmark has no arrival schedule: GuideLLM's
// schedule-relative fields stay null, as GuideLLM leaves them.
func TestGuideLLMExportOmitsScheduleDelaysForClosedLoops(t *testing.T) {
	res := compileResults()
	for profile, want := range map[string]bool{"concurrent": false, "synchronous": false, "throughput": false, "constant": true, "poisson": true, "trace": true} {
		b := Benchmark{Name: profile, Profile: profile, Config: RunConfig{Rate: 5, Concurrency: 2}, Metrics: stats.Summarize(res, stats.Options{})}
		g := guidellmBenchmark(&File{Benchmarks: []Benchmark{b}}, 0)["metrics"].(map[string]any)
		for _, k := range []string{"request_dispatch_delay", "request_scheduled_latency"} {
			if has := g[k] != nil; has != want {
				t.Errorf("%s: %s present %v, want %v", profile, k, has, want)
			}
		}
	}
}
