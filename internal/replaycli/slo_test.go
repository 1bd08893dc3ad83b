package replaycli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/sim/simtest"
	"github.com/reprise-llm/reprise/internal/slo"
)

// TestRunFailsSLOWhenMostRequestsFail: a target that rejects what it
// cannot queue (429), at 3× its capacity; the fast survivors do not pass
// the SLO, and attainment counts the failures as missed.
func TestRunFailsSLOWhenMostRequestsFail(t *testing.T) {
	t.Parallel()
	url, _ := simtest.Start(t, smallConfig, boundedQueue)
	file, out, err := runCLI(t, "run", "--target", url, "--workload", smallWorkload, "--profile", "constant",
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

func TestSLOFromIsChecked(t *testing.T) {
	err := Run(context.Background(), []string{"run", "--target", "http://127.0.0.1:1", "--workload", smallWorkload, "--slo", "ttft_p99<=1s", "--slo-from", "queue"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "usage") || !strings.Contains(err.Error(), "--slo-from") {
		t.Errorf("--slo-from queue: %v", err)
	}
}

// The check flags (--slo, --detect-saturation) and the sweep's and
// capacity's limits are refused as usage errors.
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
