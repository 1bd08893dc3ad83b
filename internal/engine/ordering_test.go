package engine

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func orderWaitOf(r *Result) time.Duration { return r.OrderWait }
func queueWaitOf(r *Result) time.Duration { return r.QueueWait }

// TestBackwardsTraceRowsRecordOrderWait: a trace row due before a row
// already dispatched (its timestamp goes backwards) is sent when the
// dispatcher reaches it, and the wait since its due time is recorded as
// OrderWait, apart from the generator's own lag (issue 16: it was blamed
// on the client and flagged the run degraded).
func TestBackwardsTraceRowsRecordOrderWait(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		offsets  []time.Duration
		took     time.Duration // each request's duration
		intended []time.Duration
		sent     []time.Duration
		order    []time.Duration
		queue    []time.Duration
	}{
		{
			// Row 2 (50 ms) is reached at 100 ms, row 4 (120 ms) at 150 ms.
			name: "in file order", cfg: Config{Profile: ProfileTrace},
			offsets: []time.Duration{0, 100 * ms, 50 * ms, 150 * ms, 120 * ms}, took: 10 * ms,
			intended: []time.Duration{0, 100 * ms, 50 * ms, 150 * ms, 120 * ms},
			sent:     []time.Duration{0, 100 * ms, 100 * ms, 150 * ms, 150 * ms},
			order:    []time.Duration{0, 0, 50 * ms, 0, 30 * ms},
			queue:    []time.Duration{0, 0, 0, 0, 0},
		},
		{
			// The order wait is in replayed time: the time scale applies.
			name: "time scale", cfg: Config{Profile: ProfileTrace, TimeScale: 2},
			offsets: []time.Duration{0, 100 * ms, 50 * ms, 150 * ms, 120 * ms}, took: 10 * ms,
			intended: []time.Duration{0, 200 * ms, 100 * ms, 300 * ms, 240 * ms},
			sent:     []time.Duration{0, 200 * ms, 200 * ms, 300 * ms, 300 * ms},
			order:    []time.Duration{0, 0, 100 * ms, 0, 60 * ms},
			queue:    []time.Duration{0, 0, 0, 0, 0},
		},
		{
			// One slot: row 2, reached at 100 ms, also waits for row 1 to
			// end at 120 ms. Each wait is counted once.
			name: "and a full cap", cfg: Config{Profile: ProfileTrace, MaxConcurrency: 1},
			offsets: []time.Duration{0, 100 * ms, 50 * ms}, took: 20 * ms,
			intended: []time.Duration{0, 100 * ms, 50 * ms},
			sent:     []time.Duration{0, 100 * ms, 120 * ms},
			order:    []time.Duration{0, 0, 50 * ms},
			queue:    []time.Duration{0, 0, 20 * ms},
		},
		{
			// One slot, rows in order: row 2 is read only once row 1 got
			// its slot at 100 ms; the 80 ms it was due before that are
			// the cap's doing (order wait), not the client's lag.
			name: "rows behind a full cap", cfg: Config{Profile: ProfileTrace, MaxConcurrency: 1},
			offsets: []time.Duration{0, 10 * ms, 20 * ms}, took: 100 * ms,
			intended: []time.Duration{0, 10 * ms, 20 * ms},
			sent:     []time.Duration{0, 100 * ms, 200 * ms},
			order:    []time.Duration{0, 0, 80 * ms},
			queue:    []time.Duration{0, 90 * ms, 100 * ms},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				run := runFake(t, context.Background(), tc.cfg, traceOf(tc.offsets...), tc.took)
				equalDurations(t, "intended", offsets(run, intended), tc.intended)
				equalDurations(t, "sent", offsets(run, sent), tc.sent)
				equalDurations(t, "order wait", offsets(run, orderWaitOf), tc.order)
				equalDurations(t, "queue wait", offsets(run, queueWaitOf), tc.queue)
			})
		})
	}
}

// TestHeldBackTurnOrderWait: a session turn read after a later row is
// intended for when its previous turn let it go; only the part of its lag
// beyond that, up to when the dispatcher reached it, is order wait.
func TestHeldBackTurnOrderWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// a/0 runs 0–100 ms; x is due at 200 ms; a/1 (recorded at 50 ms)
		// may go from 100 ms, but the dispatcher reaches it at 200 ms.
		src := sessionSource(turnOf("a", 0, 0, 0), turnOf("", 0, 200*ms, 0), turnOf("a", 1, 50*ms, 0))
		run := runFake(t, context.Background(), Config{Profile: ProfileTrace}, src, 100*ms)
		equalDurations(t, "intended", offsets(run, intended), []time.Duration{0, 200 * ms, 100 * ms})
		equalDurations(t, "sent", offsets(run, sent), []time.Duration{0, 200 * ms, 200 * ms})
		equalDurations(t, "order wait", offsets(run, orderWaitOf), []time.Duration{0, 0, 100 * ms})
	})
}
