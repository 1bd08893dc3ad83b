package replaycli

import (
	"strings"
	"testing"
	"time"
)

// Issue 15, the vantage point: production's timings were taken at the
// capture's front end, the candidate's at the replayer; the replayer
// measures the network to the target before the run, records it, prints
// it beside TTFT, and the comparison says how much of a difference it
// accounts for.
func TestVantagePointIsMeasuredAndStated(t *testing.T) {
	capDir := writeCapture(t, 20, 5*time.Millisecond)
	cand := compareSim(t, 10*time.Millisecond, 7)
	f, out, err := runCLI(t, "compare", "--target", "cand="+cand, "--baseline", "captured", "--workload", capDir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	c := f.Benchmarks[1].Config
	if c.NetworkConnectMs == nil || c.NetworkFirstByteMs == nil || *c.NetworkFirstByteMs <= 0 {
		t.Fatalf("network not recorded: connect %v, first byte %v", c.NetworkConnectMs, c.NetworkFirstByteMs)
	}
	if len(f.Comparison.Notes) != 1 || !strings.Contains(f.Comparison.Notes[0], "cand's at the replayer") || !strings.Contains(f.Comparison.Notes[0], "are the vantage point") {
		t.Errorf("notes %q", f.Comparison.Notes)
	}
	if !strings.Contains(out, "note: production's timings were taken at") {
		t.Errorf("the note is not printed:\n%s", out)
	}
}
