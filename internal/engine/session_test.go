package engine

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// turnOf is a session turn recorded at offset with think time delay.
func turnOf(session string, turn int, offset, delay time.Duration) workload.Request {
	return workload.Request{Offset: offset, Session: session, Turn: turn, Delay: delay, Endpoint: openai.Chat, Stream: true}
}

func sessionSource(reqs ...workload.Request) *sliceSource {
	for i := range reqs {
		reqs[i].Index = i
	}
	return &sliceSource{reqs: reqs}
}

func TestOpenLoopSessionTurnsWaitForThePreviousTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 100 ms requests. Session a's turn 1 (recorded at 50 ms, 30 ms
		// think time) waits for turn 0 to end at 100 ms, then 30 ms; turn
		// 2 (140 ms, no think time) for turn 1 to end at 230 ms. Session b
		// and the request without a session go at their recorded times,
		// except b's turn 1 whose think time after b/0 (ended 160 ms) runs
		// past its recorded 200 ms. b's turn 2 is ready by its time.
		src := sessionSource(
			turnOf("a", 0, 0, 0),
			turnOf("a", 1, 50*ms, 30*ms),
			turnOf("b", 0, 60*ms, 0),
			turnOf("", 0, 70*ms, 0),
			turnOf("a", 2, 140*ms, 0),
			turnOf("b", 1, 200*ms, 50*ms),
			turnOf("b", 2, 400*ms, 10*ms),
		)
		run := runFake(t, context.Background(), Config{Profile: ProfileTrace}, src, 100*ms)
		want := []time.Duration{0, 130 * ms, 60 * ms, 70 * ms, 230 * ms, 210 * ms, 400 * ms}
		equalDurations(t, "sent", offsets(run, sent), want)
		// A turn held back by its session is intended for when it may go:
		// its wait is the conversation's, not the load generator's lag.
		equalDurations(t, "intended", offsets(run, intended), want)
		if run.Late != 0 || run.Dropped != 0 || run.StopReason != StopWorkloadEnd {
			t.Errorf("late %d dropped %d stop %q", run.Late, run.Dropped, run.StopReason)
		}

		// The workload ends while a turn is held back: scheduling waits for
		// it. A limit reached first drops it.
		run = runFake(t, context.Background(), Config{Profile: ProfileTrace},
			sessionSource(turnOf("a", 0, 0, 0), turnOf("a", 1, 10*ms, time.Second)), 100*ms)
		equalDurations(t, "sent", offsets(run, sent), []time.Duration{0, 1100 * ms})
		run = runFake(t, context.Background(), Config{Profile: ProfileTrace, MaxSeconds: 0.5},
			sessionSource(turnOf("a", 0, 0, 0), turnOf("a", 1, 10*ms, time.Second)), 100*ms)
		if len(run.Results) != 1 || run.Dropped != 1 || run.StopReason != StopMaxSeconds || run.Scheduled != 2 {
			t.Errorf("cut by the limit: %d results, %d dropped, %d scheduled, stop %q", len(run.Results), run.Dropped, run.Scheduled, run.StopReason)
		}
	})
}

func TestClosedLoopSessionTurnsWaitForThePreviousTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Two loops, 100 ms requests. One loop takes a/0 at 0, the other
		// a/1, which waits for a/0 to end (100 ms) plus 50 ms. The first
		// loop then takes b/0 at 100 ms and b/1 when b/0 ends at 200 ms.
		src := sessionSource(
			turnOf("a", 0, 0, 0),
			turnOf("a", 1, 0, 50*ms),
			turnOf("b", 0, 0, 0),
			turnOf("b", 1, 0, 0),
		)
		run := runFake(t, context.Background(), Config{Profile: ProfileConcurrent, Concurrency: 2}, src, 100*ms)
		equalDurations(t, "sent", offsets(run, sent), []time.Duration{0, 150 * ms, 100 * ms, 200 * ms})
		equalDurations(t, "intended", offsets(run, intended), []time.Duration{0, 150 * ms, 100 * ms, 200 * ms})
		if run.Duration != 300*ms {
			t.Errorf("duration %v", run.Duration)
		}
	})
}
