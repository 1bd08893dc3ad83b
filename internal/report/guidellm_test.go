package report

import (
	"bytes"
	"encoding/json"
	"github.com/reprise-llm/reprise/internal/testenv"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/stats"
)

func TestInterpolate(t *testing.T) {
	known := []quantilePoint{{0, 10}, {0.5, 20}, {0.9, 60}, {1, 100}}
	for _, c := range []struct{ p, want float64 }{
		{0, 10}, {0.5, 20}, {0.25, 15}, {0.75, 45}, {0.9, 60}, {0.95, 80}, {1, 100}, {1.5, 100}, {-1, 10},
	} {
		if got := interpolate(known, c.p); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("interpolate(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestFromDistributionUsesCDF(t *testing.T) {
	f := fixtureFile()
	m := &f.Benchmarks[0].Metrics
	cdf := m.CDF[stats.CDFTimeToFirstToken]
	g := fromDistribution(m.TimeToFirstToken, &cdf, 1)
	// The CDF holds every percent: p25 and p75 are its values, not guesses.
	if g.Percentiles.P25 != cdf.V[25] || g.Percentiles.P75 != cdf.V[75] || g.Percentiles.P01 != cdf.V[1] {
		t.Errorf("percentiles %+v, CDF p1 %v p25 %v p75 %v", g.Percentiles, cdf.V[1], cdf.V[25], cdf.V[75])
	}
	if g.Percentiles.P99 != m.TimeToFirstToken.P99 || g.Count != m.TimeToFirstToken.Count || g.Min != m.TimeToFirstToken.Min {
		t.Errorf("measured figures changed: %+v", g)
	}
	if want := m.TimeToFirstToken.Mean * float64(m.TimeToFirstToken.Count); math.Abs(g.TotalSum-want) > 1e-6 {
		t.Errorf("total_sum %v, want %v", g.TotalSum, want)
	}
	// Seconds for request latency.
	if s := fromDistribution(m.RequestLatency, nil, 0.001); math.Abs(s.Mean-m.RequestLatency.Mean/1000) > 1e-12 {
		t.Errorf("request latency mean %v s, want %v", s.Mean, m.RequestLatency.Mean/1000)
	}
	if empty := fromDistribution(stats.Distribution{}, nil, 1); empty.Count != 0 || empty.Mean != 0 {
		t.Errorf("empty distribution %+v", empty)
	}
}

func TestFromValues(t *testing.T) {
	g := fromValues([]float64{4, 1, 3, 2, 2})
	if g.Count != 5 || g.Mean != 2.4 || g.Min != 1 || g.Max != 4 || g.Median != 2 || g.Mode != 2 || g.TotalSum != 12 {
		t.Errorf("%+v", g)
	}
	if g.Percentiles.P99 != 4 || g.Percentiles.P001 != 1 || g.Percentiles.P75 != 3 {
		t.Errorf("percentiles %+v", g.Percentiles)
	}
}

func TestGuideLLMMapping(t *testing.T) {
	for _, c := range []struct {
		profile string
		config  RunConfig
		want    map[string]any
	}{
		{"synchronous", RunConfig{}, map[string]any{"type_": "synchronous"}},
		{"concurrent", RunConfig{Concurrency: 8}, map[string]any{"type_": "concurrent", "streams": 8}},
		{"constant", RunConfig{Rate: 12.5}, map[string]any{"type_": "constant", "rate": 12.5}},
		{"poisson", RunConfig{Rate: 3, Seed: Ptr[int64](42)}, map[string]any{"type_": "poisson", "rate": 3.0, "random_seed": int64(42)}},
		{"trace", RunConfig{TimeScale: 0.5}, map[string]any{"type_": "trace", "time_scale": 0.5}},
		{"captured", RunConfig{}, map[string]any{"type_": "trace", "time_scale": 1.0}},
		{"throughput", RunConfig{MaxConcurrency: Ptr(64)}, map[string]any{"type_": "throughput", "max_concurrency": 64}},
	} {
		s := strategy(&Benchmark{Profile: c.profile, Config: c.config})
		for k, v := range c.want {
			if s[k] != v {
				t.Errorf("%s: strategy[%s] = %v (%T), want %v", c.profile, k, s[k], s[k], v)
			}
		}
	}
	if got := workloadSpec([]string{"replay", "run", "--target", "x", "--workload", "mooncake:/t.jsonl"}); got != "mooncake:/t.jsonl" {
		t.Errorf("workloadSpec = %q", got)
	}
	if got := workloadSpec([]string{"run", "-workload=synthetic:prompt_tokens=5"}); got != "synthetic:prompt_tokens=5" {
		t.Errorf("workloadSpec = %q", got)
	}
	d := guidellmData("synthetic:prompt_tokens=256,output_tokens=128,prompt_tokens_stdev=10")
	if d["kind"] != "synthetic_text" || d["prompt_tokens"] != 256 || d["output_tokens"] != 128 || d["prompt_tokens_stdev"] != 10 {
		t.Errorf("synthetic data %v", d)
	}
	// GuideLLM's tpot_ms is checked against inter_token_latency: Reprise's itl.
	slo := guidellmSLO(&stats.Goodput{SLO: stats.SLO{TTFTMs: 200, ITLMs: 20}})
	if slo["ttft_ms"] != 200.0 || slo["tpot_ms"] != 20.0 || slo["e2el_ms"] != nil {
		t.Errorf("slo %v", slo)
	}
	if guidellmSLO(&stats.Goodput{SLO: stats.SLO{TPOTMs: 20}}) != nil || guidellmSLO(&stats.Goodput{SLO: stats.SLO{TTFTMs: 1, FromIntended: true}}) != nil {
		t.Error("an SLO GuideLLM cannot express was mapped")
	}
}

// guidellmPython is the Python of the GuideLLM virtualenv `make test`
// installs (REPRISE_GUIDELLM names its guidellm program).
func guidellmPython(t *testing.T) (python, guidellm string) {
	t.Helper()
	exe := testenv.Need(t, "REPRISE_GUIDELLM", "`make test` installs GuideLLM and sets it")
	python = filepath.Join(filepath.Dir(exe), "python")
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("REPRISE_GUIDELLM=%s: no python beside it: %v", exe, err)
	}
	return python, exe
}

// validateScript loads each export with GuideLLM's own pydantic models and
// prints figures read back through them, one list per file.
const validateScript = `
import json, sys
from guidellm.benchmark.schemas import GenerativeBenchmarksReport
files = []
for path in sys.argv[1:]:
    r = GenerativeBenchmarksReport.load_file(path)
    out = []
    for b in r.benchmarks:
        m = b.metrics
        out.append({
            "strategy": b.config.strategy.type_,
            "ttft_p99": m.time_to_first_token_ms.successful.percentiles.p99,
            "itl_p50": m.inter_token_latency_ms.successful.percentiles.p50,
            "latency_mean_s": m.request_latency.successful.mean,
            "successful": m.request_totals.successful,
            "errored": m.request_totals.errored,
            "rps": m.requests_per_second.successful.mean,
            "slo_attainment": m.slo_attainment,
            "requests": len(b.requests.successful) + len(b.requests.errored) + len(b.requests.incomplete),
            "duration": b.duration,
        })
    files.append(out)
print(json.dumps(files))
`

type readBack struct {
	Strategy                      string
	TTFTP99                       float64 `json:"ttft_p99"`
	ITLP50                        float64 `json:"itl_p50"`
	LatencyMeanS                  float64 `json:"latency_mean_s"`
	Successful, Errored, Requests int64
	RPS                           float64
	SLOAttainment                 *float64 `json:"slo_attainment"`
	Duration                      float64
}

// TestGuideLLMExportValidates writes the export of a comparison file and of
// a sweep with per-request records, loads both with GuideLLM's
// GenerativeBenchmarksReport.load_file, reads figures back through its
// models, and has GuideLLM's own `guidellm export` render the sweep as its
// console tables and CSV.
func TestGuideLLMExportValidates(t *testing.T) {
	python, guidellm := guidellmPython(t)
	dir := t.TempDir()
	files := []*File{fixtureFile(), smallSweep(t)}
	// Each fixed-rate and closed-loop profile: GuideLLM's profile arguments
	// require their rates and stream counts.
	for _, p := range []struct {
		profile string
		config  RunConfig
	}{
		{"constant", RunConfig{Rate: 20}},
		{"poisson", RunConfig{Rate: 15, Seed: Ptr[int64](42)}},
		{"concurrent", RunConfig{Concurrency: 4}},
		{"synchronous", RunConfig{}},
		{"throughput", RunConfig{MaxConcurrency: Ptr(64)}},
	} {
		f := fixtureFile()
		f.Benchmarks = f.Benchmarks[1:] // the target's benchmark alone
		f.Benchmarks[0].Profile, f.Benchmarks[0].Config = p.profile, p.config
		files = append(files, f)
	}
	var paths []string
	for i, f := range files {
		var buf bytes.Buffer
		if err := WriteGuideLLM(&buf, f); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, strconv.Itoa(i), "benchmarks.json")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	cmd := exec.Command(python, append([]string{"-c", validateScript}, paths...)...)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GuideLLM rejected the export: %v\n%s", err, stderr.Bytes())
	}
	var got [][]readBack
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(files) {
		t.Fatalf("reading the script's output %q: %v", out, err)
	}
	for fi, f := range files {
		if len(got[fi]) != len(f.Benchmarks) {
			t.Fatalf("file %d: GuideLLM read %d benchmarks, want %d", fi, len(got[fi]), len(f.Benchmarks))
		}
		for i, g := range got[fi] {
			m := &f.Benchmarks[i].Metrics
			// GuideLLM's ITL is token-weighted.
			if g.TTFTP99 != m.TimeToFirstToken.P99 || g.ITLP50 != m.InterTokenLatencyTokenWeighted.P50 {
				t.Errorf("file %d benchmark %d: ttft p99 %v itl p50 %v, want %v %v", fi, i, g.TTFTP99, g.ITLP50, m.TimeToFirstToken.P99, m.InterTokenLatencyTokenWeighted.P50)
			}
			if math.Abs(g.LatencyMeanS-m.RequestLatency.Mean/1000) > 1e-9 {
				t.Errorf("file %d benchmark %d: latency %v s, want %v ms", fi, i, g.LatencyMeanS, m.RequestLatency.Mean)
			}
			if g.Successful != m.Requests.Successful || g.Errored != m.Requests.Errored || g.RPS != m.RequestsPerSecond {
				t.Errorf("file %d benchmark %d: counts %d/%d rps %v, want %d/%d %v", fi, i, g.Successful, g.Errored, g.RPS, m.Requests.Successful, m.Requests.Errored, m.RequestsPerSecond)
			}
			if want := int64(len(f.Benchmarks[i].Requests)); g.Requests != want {
				t.Errorf("file %d benchmark %d: %d request records, want %d", fi, i, g.Requests, want)
			}
			if (g.SLOAttainment != nil) != (m.Goodput != nil) || (g.SLOAttainment != nil && *g.SLOAttainment != m.Goodput.Attainment) {
				t.Errorf("file %d benchmark %d: slo attainment %v, goodput %+v", fi, i, g.SLOAttainment, m.Goodput)
			}
			if math.Abs(g.Duration-m.WindowS) > 1e-3 {
				t.Errorf("file %d benchmark %d: duration %v, window %v", fi, i, g.Duration, m.WindowS)
			}
		}
	}
	// GuideLLM's own tools read it: its console tables and CSV.
	csvPath := filepath.Join(dir, "guidellm.csv")
	exp := exec.Command(guidellm, "export", paths[1], "--output", "kind=console", "--output", "kind=csv,path="+csvPath)
	exp.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "COLUMNS=200")
	text, err := exp.CombinedOutput()
	if err != nil {
		t.Fatalf("guidellm export: %v\n%s", err, text)
	}
	csv, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatalf("guidellm export wrote no CSV: %v\n%s", err, text)
	}
	if lines := strings.Count(string(csv), "\n"); lines < len(files[1].Benchmarks) {
		t.Errorf("guidellm's CSV has %d lines for %d benchmarks", lines, len(files[1].Benchmarks))
	}
	if !strings.Contains(string(text), "constant@") {
		t.Errorf("guidellm's console output names no constant-rate benchmark:\n%s", text)
	}
}

// smallSweep is three constant-rate benchmarks of one target with SLO
// verdicts, goodput and per-request records.
func smallSweep(t *testing.T) *File {
	t.Helper()
	f := &File{Tool: "reprise", Created: fixtureFile().Created, Command: []string{"replay", "run", "--profile", "sweep", "--workload", "synthetic:prompt_tokens=128,output_tokens=20"}}
	for i, rate := range []float64{2, 4, 8} {
		res := results(40, 1+float64(i))
		b := Benchmark{
			Name: rateLabel(rate), Target: "http://sim:8000", Profile: "constant",
			Config: RunConfig{Rate: rate, MaxRequests: 40}, Start: f.Created,
			Metrics:  stats.Summarize(res, stats.Options{RequestedRate: rate, SLO: &stats.SLO{TTFTMs: 150, ITLMs: 20}}),
			Requests: RequestRecords(res),
		}
		b.DurationS = b.Metrics.WindowS
		f.Benchmarks = append(f.Benchmarks, b)
	}
	return f
}

func rateLabel(r float64) string {
	return "constant@" + strings.TrimRight(strings.TrimRight(fmtExact(r), "0"), ".")
}

func TestGuideLLMExportRefusesGamma(t *testing.T) {
	f := fixtureFile()
	f.Benchmarks[1].Profile = "gamma"
	var buf bytes.Buffer
	err := WriteGuideLLM(&buf, f)
	if err == nil || !strings.Contains(err.Error(), "gamma") || !strings.Contains(err.Error(), f.Benchmarks[1].Name) {
		t.Fatalf("err %v: want a refusal naming the gamma benchmark", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes for a file it refused", buf.Len())
	}
}
