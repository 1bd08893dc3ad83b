package stats

import (
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

const msD = time.Millisecond

// okResult is a successful streamed request intended at in, sent at sent,
// ending 100 ms later.
func okResult(i int, in, sent, queued time.Duration) engine.Result {
	return engine.Result{Index: i, Stream: true, Intended: in, Sent: sent, QueueWait: queued, FirstByte: sent + 10*msD,
		FirstToken: sent + 20*msD, LastToken: sent + 90*msD, End: sent + 100*msD, Status: 200, OutputTokens: 8}
}

func TestWarmupAndCooldownAreExcluded(t *testing.T) {
	var rs []engine.Result
	for i := range 10 {
		rs = append(rs, okResult(i, time.Duration(i)*100*msD, time.Duration(i)*100*msD, 0))
	}
	// Warmup and cooldown requests are slow and failing: none of it may show.
	for _, i := range []int{0, 1, 9} {
		rs[i].Status, rs[i].Err, rs[i].End = 500, "http 500", rs[i].Sent+5*time.Second
		rs[i].Phase = engine.PhaseWarmup
	}
	rs[9].Phase = engine.PhaseCooldown
	m := Summarize(rs, Options{})
	if m.Requests.Total != 7 || m.Requests.Errored != 0 || m.Excluded != (ExcludedCounts{Warmup: 2, Cooldown: 1}) {
		t.Fatalf("requests %+v excluded %+v", m.Requests, m.Excluded)
	}
	if m.RequestLatency.Max != 100 || m.WindowS != 0.7 {
		t.Errorf("latency max %v ms, window %v s: the excluded requests leaked in", m.RequestLatency.Max, m.WindowS)
	}
	// Merging recorders keeps the counts.
	a, b := NewRecorder(Options{}), NewRecorder(Options{})
	for i := range rs {
		[]*Recorder{a, b}[i%2].Record(&rs[i])
	}
	a.Merge(b)
	if got := a.Metrics(); got.Excluded != m.Excluded || got.Requests != m.Requests {
		t.Errorf("merged: %+v %+v", got.Excluded, got.Requests)
	}
}

func TestQueueWaitIsReportedApartFromClientLag(t *testing.T) {
	// Request 1 waited 40 ms for a slot and was sent 41 ms late: 1 ms of
	// it is the client's. The others were sent 2 ms late with no wait.
	rs := []engine.Result{
		okResult(0, 0, 2*msD, 0),
		okResult(1, 100*msD, 141*msD, 40*msD),
		okResult(2, 200*msD, 202*msD, 0),
	}
	m := Summarize(rs, Options{})
	if m.QueueWait.Count != 1 || m.QueueWait.Max != 40 {
		t.Errorf("queue wait %+v: want one wait of 40 ms", m.QueueWait)
	}
	if m.SendLag.Max != 41 || m.ClientLag.Count != 3 || m.ClientLag.Max != 2 || m.ClientLag.Min != 1 {
		t.Errorf("send lag max %v, client lag %+v", m.SendLag.Max, m.ClientLag)
	}
	// A cap that held requests back does not make the client degraded.
	if m.Degraded || m.LagThresholdMs != 10 {
		t.Errorf("degraded %v at threshold %v ms", m.Degraded, m.LagThresholdMs)
	}
}

func TestDegradedWhenClientLagP99PassesTheThreshold(t *testing.T) {
	var rs []engine.Result
	for i := range 200 {
		lag := time.Millisecond
		if i%50 == 0 { // 2% of requests 30 ms late: p99 is 30 ms
			lag = 30 * msD
		}
		in := time.Duration(i) * 10 * msD
		rs = append(rs, okResult(i, in, in+lag, 0))
	}
	if m := Summarize(rs, Options{}); !m.Degraded || m.ClientLag.P99 < 29 {
		t.Errorf("default threshold: degraded %v, client lag p99 %v", m.Degraded, m.ClientLag.P99)
	}
	if m := Summarize(rs, Options{LagThreshold: 50 * msD}); m.Degraded || m.LagThresholdMs != 50 {
		t.Errorf("50 ms threshold: degraded %v (threshold %v)", m.Degraded, m.LagThresholdMs)
	}
	if m := Summarize(nil, Options{}); m.Degraded {
		t.Error("an empty benchmark is not degraded")
	}
	if err := (&Options{LagThreshold: -1}).Validate(); err == nil {
		t.Error("a negative lag threshold is valid")
	}
}
