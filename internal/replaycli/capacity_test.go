package replaycli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// capacityOf returns the rate of the "capacity: R req/s" line replay
// capacity printed in out.
func capacityOf(t *testing.T, out string) float64 {
	t.Helper()
	i := strings.Index(out, "capacity: ")
	if i < 0 {
		t.Fatalf("no capacity line in:\n%s", out)
	}
	var rate float64
	if _, err := fmt.Sscanf(out[i:], "capacity: %g req/s", &rate); err != nil {
		t.Fatalf("%v: %q", err, out[i:])
	}
	return rate
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
	rate := capacityOf(t, out.String())
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

// TestCapacityIgnoresRatesWhereMostRequestsFail: a target that rejects
// what it cannot queue (429) answers the requests it keeps fast, so the
// survivors of an overloaded rate meet a latency SLO (TTFT at most one
// request's 105 ms wait, far under 300 ms). Failed requests count as
// violations, so capacity lands near the simulator's ≈ 38 req/s instead
// of at the top of the range, where most requests fail. (Latency from the
// actual send, so that the shared test machine's own lag does not count.)
func TestCapacityIgnoresRatesWhereMostRequestsFail(t *testing.T) {
	t.Parallel()
	url, _ := simtest.Start(t, smallConfig, boundedQueue)
	var out, errb bytes.Buffer
	dir := t.TempDir()
	err := Run(context.Background(), []string{"capacity", "--target", url, "--workload", smallWorkload,
		"--slo", "ttft_p90<=300ms", "--slo-from", "sent", "--min-rate", "5", "--max-rate", "120", "--precision", "0.25",
		"--max-seconds", "1.5", "--drain", "1s", "--scrape-metrics", "off", "--output-dir", dir, "--quiet"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	rate := capacityOf(t, out.String())
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
