package replaycli

import (
	"strconv"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/report"
)

// TestCompareIdenticalHeadline20Seeds is issue 6's measured claim: two
// identical simulators (one configuration, one seed), driven at once by
// replay compare in parallel mode, get the headline "no significant
// difference" in at least 19 of 20 seeded repetitions. The headline tests
// every metric family with Holm's correction (compare.Headline), so a
// spurious difference on one of the many statistics does not make a
// verdict. Each repetition is 60 requests at 40 req/s a side.
func TestCompareIdenticalHeadline20Seeds(t *testing.T) {
	if testing.Short() {
		t.Skip("20 live comparisons; run without -short")
	}
	const reps = 20
	same := 0
	for i := range reps {
		seed := int64(1000 + i)
		a, b := compareSim(t, 15*time.Millisecond, seed), compareSim(t, 15*time.Millisecond, seed)
		f, out, err := runCLI(t, "compare", "--target", "a="+a, "--target", "b="+b,
			"--workload", "synthetic:prompt_tokens=20,output_tokens=5,samples=60", "--profile", "poisson", "--rate", "40",
			"--mode", "parallel", "--seed", strconv.FormatInt(seed, 10))
		if err != nil {
			t.Fatalf("repetition %d: %v\n%s", i, err, out)
		}
		if len(f.Comparison.Headlines) != 1 {
			t.Fatalf("repetition %d: headlines %+v", i, f.Comparison.Headlines)
		}
		h := f.Comparison.Headlines[0]
		if h.Families < 6 {
			t.Errorf("repetition %d: only %d metric families tested", i, h.Families)
		}
		for _, r := range f.Comparison.Rows {
			if r.Metric == "time_to_first_token_ms" && r.Stat == "p50" {
				t.Logf("repetition %d: ttft p50 %.1f vs %.1f ms; %s", i, r.CandidateValue, r.BaselineValue, h.Verdict)
			}
		}
		if h.Verdict == report.HeadlineNoDifference {
			same++
			continue
		}
		t.Logf("repetition %d (seed %d): %s", i, seed, h.Text())
		for _, r := range f.Comparison.Rows {
			if r.Verdict == report.VerdictBetter || r.Verdict == report.VerdictWorse {
				t.Logf("  %s %s: %.3f vs %.3f, p_delta %.4g", r.Metric, r.Stat, r.CandidateValue, r.BaselineValue, r.PDelta)
			}
		}
	}
	t.Logf("identical targets: %d of %d headlines say no significant difference", same, reps)
	if same < 19 {
		t.Errorf("identical targets: %d of %d headlines say no significant difference, want at least 19", same, reps)
	}
}
