package stats

import (
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

// TestOrderWaitIsNotClientLag: a trace row due before a row already sent
// (its timestamp goes backwards) waits for the dispatcher to reach it;
// that wait (engine.Result.OrderWait) stays in send lag but is not the
// client's, so it neither counts as client lag nor flags the run degraded
// (issue 16: an Azure trace with a few unsorted rows read "degraded").
func TestOrderWaitIsNotClientLag(t *testing.T) {
	var rs []engine.Result
	for i := range 100 {
		in := time.Millisecond * 100 * time.Duration(i)
		rs = append(rs, okResult(i, in, in+time.Millisecond, 0))
	}
	// Rows 10 and 50 were due 204 ms before the row read ahead of them,
	// and were sent 1 ms after it; row 50 also waited 30 ms for a slot.
	rs[10].Intended -= 204 * time.Millisecond
	rs[10].OrderWait = 204 * time.Millisecond
	rs[50].Intended -= 204 * time.Millisecond
	rs[50].OrderWait = 204 * time.Millisecond
	rs[50].Sent += 30 * time.Millisecond
	rs[50].QueueWait = 30 * time.Millisecond
	m := Summarize(rs, Options{})
	if m.SendLag.Max != 235 {
		t.Errorf("send lag max %v ms, want 235: send lag is sent − intended, order wait included", m.SendLag.Max)
	}
	if m.ClientLag.Max != 1 || m.ClientLag.Min != 1 || m.ClientLag.Count != 100 {
		t.Errorf("client lag %+v: want 1 ms for every request", m.ClientLag)
	}
	if m.Degraded {
		t.Errorf("degraded at client lag p99 %v ms: the trace's order was blamed on the client", m.ClientLag.P99)
	}
}
