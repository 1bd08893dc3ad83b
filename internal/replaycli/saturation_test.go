package replaycli

import (
	"strings"
	"testing"
)

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
	if b.Config.StopReason != "saturated" {
		t.Errorf("stop_reason %v, want saturated", b.Config.StopReason)
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
