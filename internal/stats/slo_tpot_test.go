package stats

import (
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

// A TPOT threshold (GuideLLM's time_per_output_token: (last token − sent) /
// output tokens) counts in goodput; requests without output pass it.
func TestGoodputTPOT(t *testing.T) {
	ms := time.Millisecond
	rs := []engine.Result{
		{Status: 200, Stream: true, Sent: 0, FirstToken: 10 * ms, LastToken: 100 * ms, End: 100 * ms, OutputTokens: 10}, // 10 ms
		{Status: 200, Stream: true, Sent: 0, FirstToken: 10 * ms, LastToken: 300 * ms, End: 300 * ms, OutputTokens: 10}, // 30 ms
		{Status: 200, Stream: true, Sent: 0, FirstToken: 10 * ms, LastToken: 10 * ms, End: 10 * ms, OutputTokens: 0},    // no output
	}
	m := Summarize(rs, Options{SLO: &SLO{TPOTMs: 20}})
	if m.Goodput == nil || m.Goodput.Met != 2 {
		t.Fatalf("goodput %+v", m.Goodput)
	}
	if err := (&SLO{TPOTMs: -1}).Validate(); err == nil {
		t.Fatal("negative tpot_ms accepted")
	}
}
