package replaycli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/slo"
)

// simWith serves a simulator like smallSim's (4 slots, 105 ms a request,
// ≈ 38 req/s) with slots slots and a waiting queue bounded to maxWaiting
// (beyond it, 429 at once; 0: unbounded).
func simWith(t *testing.T, slots, maxWaiting int) http.Handler {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Slots, cfg.MaxWaiting, cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq, cfg.Jitter = slots, maxWaiting, 5*time.Millisecond, 0, 5*time.Millisecond, 0, 0
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCapacityIgnoresRatesWhereMostRequestsFail: a target that rejects
// what it cannot queue (429) answers the requests it keeps fast, so the
// survivors of an overloaded rate meet a latency SLO (TTFT at most one
// request's 105 ms wait, far under 300 ms). Failed requests count as
// violations, so capacity lands near the simulator's ≈ 38 req/s instead
// of at the top of the range, where most requests fail. (Latency from the
// actual send, so that the shared test machine's own lag does not count.)
func TestCapacityIgnoresRatesWhereMostRequestsFail(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(simWith(t, 4, 1))
	t.Cleanup(srv.Close)
	var out, errb bytes.Buffer
	dir := t.TempDir()
	err := Run(context.Background(), []string{"capacity", "--target", srv.URL, "--workload", smallWorkload,
		"--slo", "ttft_p90<=300ms", "--slo-from", "sent", "--min-rate", "5", "--max-rate", "120", "--precision", "0.25",
		"--max-seconds", "1.5", "--drain", "1s", "--scrape-metrics", "off", "--output-dir", dir, "--quiet"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	var rate float64
	line := out.String()[strings.Index(out.String(), "capacity: "):]
	if _, err := fmtSscanf(line, "capacity: %g req/s", &rate); err != nil {
		t.Fatalf("%v: %q", err, line)
	}
	if rate > 1.5*simCapacity {
		t.Fatalf("capacity %.1f req/s, simulator's ≈ %.1f: a rate where most requests fail passed\n%s%s", rate, simCapacity, out.String(), errb.String())
	}
	// The top of the range was probed: most of its requests failed, and the
	// verdict says they count.
	if !strings.Contains(out.String(), "constant@120: SLO FAIL") || !strings.Contains(out.String(), "failed requests count as violations") {
		t.Errorf("no failing verdict for 120 req/s:\n%s", out.String())
	}
	t.Logf("capacity %.1f req/s (simulator ≈ %.1f)", rate, simCapacity)
}

// TestRunFailsSLOWhenMostRequestsFail: the same overloaded target at 3×
// its capacity; the fast survivors do not pass the SLO, and attainment
// counts the failures as missed.
func TestRunFailsSLOWhenMostRequestsFail(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(simWith(t, 4, 1))
	t.Cleanup(srv.Close)
	file, out, err := runCLI(t, "run", "--target", srv.URL, "--workload", smallWorkload, "--profile", "constant",
		"--rate", "120", "--max-seconds", "1.5", "--drain", "1s", "--scrape-metrics", "off", "--slo", "ttft_p50<=150ms,e2e_p50<=300ms")
	if err == nil || !strings.Contains(err.Error(), "does not meet --slo") {
		t.Fatalf("err %v\n%s", err, out)
	}
	b := file.Benchmarks[0]
	m := b.Metrics
	if m.Requests.Errored < m.Requests.Successful {
		t.Fatalf("the simulator did not reject most requests: %+v", m.Requests)
	}
	// The survivors alone would pass.
	if m.TimeToFirstToken.P50 > 150 || m.RequestLatency.P50 > 300 {
		t.Fatalf("survivors not fast: ttft p50 %.1f ms, e2e p50 %.1f ms", m.TimeToFirstToken.P50, m.RequestLatency.P50)
	}
	if b.SLO == nil || b.SLO.Pass || b.SLO.Terms[0].Failed != int(m.Requests.Errored+m.Requests.Cancelled) {
		t.Fatalf("slo %+v, requests %+v", b.SLO, m.Requests)
	}
	total := float64(m.Requests.Successful + m.Requests.Errored + m.Requests.Cancelled)
	if g := m.Goodput; g == nil || g.Attainment > float64(m.Requests.Successful)/total+1e-9 {
		t.Errorf("attainment %+v with %+v: failures not counted as missed", g, m.Requests)
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
	target := &shiftingTarget{big: simWith(t, 16, 0), small: simWith(t, 4, 0), burst: 32}
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

// TestDetectorSeesClientSideBacklog: with --max-concurrency equal to the
// simulator's slots, the server never queues (TTFT stays 5 ms) and in
// flight stays at 4; at twice the capacity the queue is in the client.
// The detector counts the due requests waiting for a slot, so it fires.
func TestDetectorSeesClientSideBacklog(t *testing.T) {
	t.Parallel()
	url := smallSim(t)
	file, out, err := runCLI(t, "run", "--target", url, "--workload", smallWorkload, "--profile", "constant",
		"--rate", "80", "--max-seconds", "12", "--max-concurrency", "4", "--drain", "1s", "--scrape-metrics", "off",
		"--detect-saturation", "enforce,"+fastDetector)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b := file.Benchmarks[0]
	s := b.Saturation
	if s == nil || !s.Detected {
		t.Fatalf("client-side backlog not detected: %+v\n%s", s, out)
	}
	if s.InFlightThirds == nil || s.InFlightThirds[2] <= 4 {
		t.Errorf("backlog by thirds %v: the requests waiting for a slot are not counted", s.InFlightThirds)
	}
	if b.Metrics.QueueWait.P50 <= 0 {
		t.Errorf("no queue wait reported: %+v", b.Metrics.QueueWait)
	}
	t.Logf("fired %+v; backlog by thirds %v", s.Fired, *s.InFlightThirds)
}

func TestDueWaiting(t *testing.T) {
	for _, tt := range []struct {
		p    engine.Progress
		rate float64
		want int
	}{
		{engine.Progress{Elapsed: 5 * time.Second, Sent: 100}, 20, 0},                                  // nothing waits
		{engine.Progress{Elapsed: 5 * time.Second, Sent: 100, Behind: 500 * time.Millisecond}, 20, 11}, // 1 + 0.5 s × 20/s
		{engine.Progress{Elapsed: 4 * time.Second, Sent: 100, Behind: 2 * time.Second}, 0, 51},         // rate unknown: 25/s sent
		{engine.Progress{Elapsed: 4 * time.Second, Sent: 100, Behind: time.Millisecond}, 1000, 2},      // 1 + 1
		{engine.Progress{Elapsed: 0, Sent: 0, Behind: time.Millisecond}, 0, 1},                         // no rate at all: the one in hand
	} {
		if got := dueWaiting(tt.p, tt.rate); got != tt.want {
			t.Errorf("dueWaiting(%+v, %v) = %d, want %d", tt.p, tt.rate, got, tt.want)
		}
	}
}

func TestSLOFrom(t *testing.T) {
	spec, err := slo.Parse("ttft_p99<=1s")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		from, profile string
		intended      bool
	}{
		{sloFromAuto, engine.ProfileConstant, true},
		{sloFromAuto, engine.ProfilePoisson, true},
		{sloFromAuto, engine.ProfileGamma, true},
		{sloFromAuto, engine.ProfileTrace, true},
		{sloFromAuto, engine.ProfileSynchronous, false},
		{sloFromAuto, engine.ProfileConcurrent, false},
		{sloFromAuto, engine.ProfileThroughput, false},
		{slo.FromSent, engine.ProfilePoisson, false},
		{slo.FromIntended, engine.ProfileThroughput, true},
	} {
		g := gateOptions{spec: spec, sloFrom: tt.from}
		s := g.specFor(tt.profile)
		if s.FromIntended != tt.intended || s.PerRequest().FromIntended != tt.intended {
			t.Errorf("--slo-from %s, %s: from intended %v, want %v", tt.from, tt.profile, s.FromIntended, tt.intended)
		}
	}
	if spec.FromIntended {
		t.Error("specFor changed the parsed spec")
	}
	if (&gateOptions{}).specFor(engine.ProfileConstant) != nil {
		t.Error("a spec without --slo")
	}
	err = Run(context.Background(), []string{"run", "--target", "http://127.0.0.1:1", "--workload", smallWorkload, "--slo", "ttft_p99<=1s", "--slo-from", "queue"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "usage") || !strings.Contains(err.Error(), "--slo-from") {
		t.Errorf("--slo-from queue: %v", err)
	}
}

// TestSLOFromIntendedCountsClientQueueing: at twice the capacity with
// --max-concurrency at the simulator's slots, TTFT from the actual send
// stays 5 ms; measured from the intended send (the default for constant)
// it holds the wait for a slot, and the SLO fails.
func TestSLOFromIntendedCountsClientQueueing(t *testing.T) {
	t.Parallel()
	url := smallSim(t)
	args := []string{"run", "--target", url, "--workload", smallWorkload, "--profile", "constant", "--rate", "80",
		"--max-seconds", "1.5", "--max-concurrency", "4", "--drain", "5s", "--scrape-metrics", "off", "--slo", "ttft_p90<=100ms"}
	file, out, err := runCLI(t, append(args, "--slo-from", "sent")...)
	if err != nil || !file.Benchmarks[0].SLO.Pass || file.Benchmarks[0].SLO.From != slo.FromSent {
		t.Fatalf("from sent: %v %+v\n%s", err, file.Benchmarks[0].SLO, out)
	}
	file, out, err = runCLI(t, args...)
	if err == nil || file.Benchmarks[0].SLO.Pass || file.Benchmarks[0].SLO.From != slo.FromIntended || !file.Benchmarks[0].Metrics.Goodput.SLO.FromIntended {
		t.Fatalf("from intended: %v %+v\n%s", err, file.Benchmarks[0].SLO, out)
	}
}

func TestRequestedRateOfARescaledTrace(t *testing.T) {
	for _, tt := range []struct {
		profile       string
		rate, rescale float64
		want          float64
	}{
		{engine.ProfileConstant, 5, 0, 5},
		{engine.ProfileGamma, 7, 0, 7},
		{engine.ProfileTrace, 0, 12.5, 12.5},
		{engine.ProfileTrace, 0, 0, 0},
		{engine.ProfileThroughput, 0, 0, 0},
	} {
		if got := requestedRate(engine.Config{Profile: tt.profile, Rate: tt.rate}, tt.rescale); got != tt.want {
			t.Errorf("%s rate %v rescale %v: %v, want %v", tt.profile, tt.rate, tt.rescale, got, tt.want)
		}
	}
}
