package replaycli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/sim"
)

// smallSim serves a simulator with 4 slots and no jitter: each request of
// 20 output tokens holds a slot for about 5 + 20×5 = 105 ms, so capacity is
// about 4 / 0.105 ≈ 38 req/s.
func smallSim(t *testing.T) string {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Slots, cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq, cfg.Jitter = 4, 5*time.Millisecond, 0, 5*time.Millisecond, 0, 0
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

const (
	smallWorkload = "synthetic:prompt_tokens=30,output_tokens=20,samples=100000"
	simCapacity   = 4 / 0.105 // req/s
	// fastDetector checks from 3 s and counts TTFTs above 100 ms as
	// violations, so that seconds of overload on the small simulator are
	// enough.
	fastDetector = "min_seconds=3,minimum_ttft=0.1"
)

func runCLI(t *testing.T, args ...string) (*report.File, string, error) {
	t.Helper()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := Run(context.Background(), append(args, "--output-dir", dir, "--quiet"), &out, &errb)
	f, rerr := os.Open(filepath.Join(dir, "benchmarks.json"))
	if rerr != nil {
		return nil, out.String() + errb.String(), err
	}
	defer f.Close()
	file, rerr := report.ReadJSON(f)
	if rerr != nil {
		t.Fatal(rerr)
	}
	return file, out.String() + errb.String(), err
}

func TestDetectorFiresAboveCapacityAndStopsTheRun(t *testing.T) {
	t.Parallel()
	url := smallSim(t)
	file, out, err := runCLI(t, "run", "--target", url, "--workload", smallWorkload, "--profile", "constant",
		"--rate", "80", "--max-seconds", "30", "--drain", "1s", "--detect-saturation", "enforce,"+fastDetector)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b := file.Benchmarks[0]
	s := b.Saturation
	if s == nil || !s.Detected || s.Mode != "enforce" || s.DetectedAtS < 3 || s.DetectedAtS > 20 {
		t.Fatalf("saturation %+v\n%s", s, out)
	}
	if b.DurationS > 25 {
		t.Errorf("enforce mode did not stop the run: %.1fs", b.DurationS)
	}
	if b.Config["stop_reason"] != "saturated" {
		t.Errorf("stop_reason %v, want saturated", b.Config["stop_reason"])
	}
	if !strings.Contains(out, "over-saturated ("+s.Signal) {
		t.Errorf("output does not report the signal:\n%s", out)
	}
	t.Logf("fired: %+v at %.1fs; in flight by thirds %v", s.Fired, s.DetectedAtS, *s.InFlightThirds)
}

func TestDetectorQuietAtHalfCapacity(t *testing.T) {
	t.Parallel()
	url := smallSim(t)
	file, out, err := runCLI(t, "run", "--target", url, "--workload", smallWorkload, "--profile", "poisson",
		"--rate", "19", "--max-seconds", "9", "--detect-saturation", "monitor,"+fastDetector)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := file.Benchmarks[0].Saturation
	if s == nil || s.Detected || s.ConcurrentN == 0 || s.TTFTN == 0 || s.InFlightThirds == nil {
		t.Fatalf("at half capacity: %+v\n%s", s, out)
	}
}

// TestSweepFindsTheKnee: synchronous, throughput, then Poisson rates up to
// the throughput rate. The top of the sweep is the simulator's capacity,
// where Poisson arrivals queue (TTFT p99 many times the unloaded one).
func TestSweepFindsTheKnee(t *testing.T) {
	t.Parallel()
	url := smallSim(t)
	file, out, err := runCLI(t, "run", "--target", url, "--workload", smallWorkload, "--profile", "sweep",
		"--sweep-points", "5", "--rate-profile", "poisson", "--max-seconds", "3", "--max-concurrency", "32", "--drain", "2s",
		"--detect-saturation", "monitor,"+fastDetector, "--slo", "ttft_p50<=60ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	bs := file.Benchmarks
	if len(bs) < 3 || bs[0].Name != "synchronous" || bs[1].Name != "throughput" || !strings.HasPrefix(bs[2].Name, "poisson@") {
		t.Fatalf("benchmarks %v\n%s", names2(bs), out)
	}
	sync, tp := bs[0].Metrics.RequestsPerSecond, bs[1].Metrics.RequestsPerSecond
	if sync < 0.15*simCapacity || sync > 0.35*simCapacity || tp < 0.7*simCapacity || tp > 1.2*simCapacity {
		t.Errorf("synchronous %.1f req/s, throughput %.1f req/s; capacity ≈ %.1f", sync, tp, simCapacity)
	}
	first, last := bs[2], bs[len(bs)-1]
	if first.Config["rate"].(float64) >= last.Config["rate"].(float64) && len(bs) > 3 {
		t.Errorf("rates do not rise: %v", names2(bs))
	}
	// Below the knee TTFT is the simulator's 5 ms; at the knee requests queue.
	if f, l := first.Metrics.TimeToFirstToken.P99, last.Metrics.TimeToFirstToken.P99; !(l > 2*f) {
		t.Errorf("TTFT p99 %.1f ms at %s, %.1f ms at %s: no knee", f, first.Name, l, last.Name)
	}
	if first.SLO == nil || !first.SLO.Pass || bs[1].SLO == nil {
		t.Errorf("SLO verdicts: %+v, %+v", *first.SLO, *bs[1].SLO)
	}
	t.Logf("sweep %v", names2(bs))
}

func names2(bs []report.Benchmark) []string {
	var out []string
	for _, b := range bs {
		s := b.Name
		if b.Saturation != nil && b.Saturation.Detected {
			s += "(saturated)"
		}
		out = append(out, s)
	}
	return out
}

// TestCapacityLandsBelowTheKnee measures the simulator's knee with
// latency from the actual send (--slo-from sent): from the intended send
// (the default for constant rates) the test machine's own send lag, large
// when the cores are shared, would count against the simulator.
func TestCapacityLandsBelowTheKnee(t *testing.T) {
	t.Parallel()
	url := smallSim(t)
	var out, errb bytes.Buffer
	dir := t.TempDir()
	err := Run(context.Background(), []string{"capacity", "--target", url, "--workload", smallWorkload,
		"--slo", "ttft_p99<=60ms", "--min-rate", "5", "--max-rate", "80", "--precision", "0.15",
		"--max-seconds", "2.5", "--drain", "1s", "--slo-from", "sent", "--output-dir", dir, "--quiet"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	var rate float64
	line := out.String()[strings.Index(out.String(), "capacity: "):]
	if _, err := fmtSscanf(line, "capacity: %g req/s", &rate); err != nil {
		t.Fatalf("%v: %q", err, line)
	}
	if rate < 0.4*simCapacity || rate > 1.15*simCapacity {
		t.Fatalf("capacity %.1f req/s, simulator's ≈ %.1f\n%s", rate, simCapacity, out.String())
	}
	t.Logf("capacity %.1f req/s (simulator ≈ %.1f)", rate, simCapacity)
}

func TestCapacityFailsWhenNothingMeetsTheSLO(t *testing.T) {
	t.Parallel()
	url := smallSim(t)
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"capacity", "--target", url, "--workload", smallWorkload,
		"--slo", "e2e_p50<=10ms", "--min-rate", "5", "--max-rate", "10", "--max-requests", "5",
		"--output-dir", t.TempDir(), "--quiet"}, &out, &errb)
	if !errors.Is(err, ErrNoCapacity) || !strings.Contains(err.Error(), "5 req/s") {
		t.Fatalf("err %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "SLO FAIL") {
		t.Errorf("no verdict printed:\n%s", out.String())
	}
}

func TestGateFlagErrorsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--target", "http://127.0.0.1:1", "--workload", smallWorkload, "--slo", "ttft_p99<=fast"},
		{"run", "--target", "http://127.0.0.1:1", "--workload", smallWorkload, "--detect-saturation", "loud"},
		{"run", "--target", "http://127.0.0.1:1", "--workload", smallWorkload, "--profile", "sweep", "--sweep-points", "2"},
		{"run", "--target", "http://127.0.0.1:1", "--workload", smallWorkload, "--profile", "sweep"},
		{"capacity", "--target", "http://127.0.0.1:1", "--workload", smallWorkload, "--max-seconds", "1"},
	} {
		err := Run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestSweepRatesAreGuideLLMs(t *testing.T) {
	// numpy.linspace(2, 20, 9)[1:]
	got := sweepRates(2, 20, 10)
	want := []float64{4.25, 6.5, 8.75, 11, 13.25, 15.5, 17.75, 20}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if d := got[i] - want[i]; d > 1e-9 || d < -1e-9 {
			t.Fatalf("%v, want %v", got, want)
		}
	}
}

func fmtSscanf(s, format string, args ...any) (int, error) { return fmt.Sscanf(s, format, args...) }

// TestSweepAppliesTransformsAndEngineFlags: every benchmark of a sweep goes
// through the same path as replay run, so workload transforms, warmup and
// scraping the target's metrics apply to each point.
func TestSweepAppliesTransformsAndEngineFlags(t *testing.T) {
	t.Parallel()
	url := smallSim(t)
	file, out, err := runCLI(t, "run", "--target", url, "--workload", smallWorkload, "--profile", "sweep",
		"--sweep-points", "3", "--max-requests", "12", "--drain", "2s",
		"--max-output-tokens", "5", "--warmup", "2", "--scrape-interval", "200ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(file.Benchmarks) != 3 {
		t.Fatalf("%d benchmarks, want 3\n%s", len(file.Benchmarks), out)
	}
	for _, b := range file.Benchmarks {
		if b.Config["workload_transforms"] == nil {
			t.Errorf("%s: no workload_transforms in config %v", b.Name, b.Config)
		}
		if b.Metrics.Excluded.Warmup != 2 {
			t.Errorf("%s: %d warmup requests excluded, want the 2 of --warmup", b.Name, b.Metrics.Excluded.Warmup)
		}
		if mean := b.Metrics.OutputTokens.Mean; mean > 5 {
			t.Errorf("%s: mean output tokens %.1f, above --max-output-tokens 5", b.Name, mean)
		}
		if b.ServerMetrics == nil {
			t.Errorf("%s: the simulator's /metrics were not scraped", b.Name)
		}
	}
}
