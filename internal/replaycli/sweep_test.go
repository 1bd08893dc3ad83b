package replaycli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

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
	if first.Config.Rate >= last.Config.Rate && len(bs) > 3 {
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
		if b.Config.Transforms == nil {
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

// shiftingTarget is a simulator whose capacity drops once the sweep's
// throughput benchmark is over (the first time more than burst requests
// were in flight and then none): a co-tenant took most of the GPU. The
// sweep's rates, interpolated up to what the big server achieved, are
// then above what the small one sustains.
type shiftingTarget struct {
	big, small http.Handler
	burst      int

	mu               sync.Mutex
	inFlight, peak   int
	shifted          bool
	servedAfterShift int
}

func (s *shiftingTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.big
	if s.shifted {
		h = s.small
		s.servedAfterShift++
	}
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		if s.peak > s.burst && s.inFlight == 0 {
			s.shifted = true
		}
		s.mu.Unlock()
	}()
	h.ServeHTTP(w, r)
}

// TestSweepStopsWhenTheDetectorFires: the sweep measures ≈ 150 req/s
// (16 slots), then the target drops to 4 slots (≈ 38 req/s); the first
// rate, ≈ 80 req/s, overloads it, the detector (enforce, fast parameters)
// fires and the sweep skips the higher rates.
func TestSweepStopsWhenTheDetectorFires(t *testing.T) {
	t.Parallel()
	target := &shiftingTarget{
		big:   simtest.New(t, smallConfig, func(c *sim.Config) { c.Slots = 16 }),
		small: simtest.New(t, smallConfig),
		burst: 32,
	}
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)
	const points = 4
	file, out, err := runCLI(t, "run", "--target", srv.URL, "--workload", smallWorkload, "--profile", "sweep",
		"--sweep-points", "4", "--max-seconds", "6", "--max-concurrency", "64", "--drain", "1s", "--scrape-metrics", "off",
		"--detect-saturation", "enforce,min_seconds=2,minimum_ttft=0.1,minimum_window_size=3")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	bs := file.Benchmarks
	if len(bs) >= points {
		t.Fatalf("%d benchmarks of --sweep-points %d: the sweep did not stop early: %v\n%s", len(bs), points, names2(bs), out)
	}
	last := bs[len(bs)-1]
	if !strings.HasPrefix(last.Name, "constant@") || last.Saturation == nil || !last.Saturation.Detected {
		t.Fatalf("last benchmark %s: saturation %+v\n%s", last.Name, last.Saturation, out)
	}
	if !strings.Contains(out, "higher rates skipped") {
		t.Errorf("no \"higher rates skipped\" line:\n%s", out)
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	if !target.shifted || target.servedAfterShift == 0 {
		t.Errorf("the target never shifted to its small capacity (peak in flight %d)", target.peak)
	}
	t.Logf("sweep %v; fired %+v", names2(bs), last.Saturation.Fired)
}
