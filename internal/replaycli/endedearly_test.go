package replaycli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A workload that runs out before --max-requests/--max-seconds says so on
// the console (issue 12: synthetic: stopped at its samples and only
// stop_reason in the JSON told); one that reaches its limit says nothing.
func TestWorkloadEndingBeforeTheLimitIsSaid(t *testing.T) {
	url := smallSim(t)
	for _, tc := range []struct {
		limit []string
		said  bool
	}{
		{[]string{"--max-requests", "50"}, true},
		{[]string{"--max-seconds", "30"}, true},
		{[]string{"--max-requests", "4"}, false},
	} {
		args := append([]string{"run", "--target", url, "--workload", "synthetic:prompt_tokens=10,output_tokens=2,samples=6",
			"--profile", "throughput", "--quiet", "--scrape-metrics", "off", "--output-dir", t.TempDir()}, tc.limit...)
		var out, errb bytes.Buffer
		if err := Run(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", tc.limit, err, errb.String())
		}
		line := "candidate: the workload ended after 6 requests"
		if got := strings.Contains(out.String(), line); got != tc.said || (tc.said && !strings.Contains(out.String(), "before "+strings.Join(tc.limit, " "))) {
			t.Errorf("%v: said %v, want %v:\n%s", tc.limit, got, tc.said, out.String())
		}
	}
}
