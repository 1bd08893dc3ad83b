package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
		// Two loops, 100 ms requests. One loop takes a/0 at 0; the other
		// draws a/1, which must wait for a/0 to end (100 ms) plus 50 ms:
		// it parks it and takes b/0 at 0 instead. At 100 ms b/1 is ready
		// (no think time) and goes; a/1 goes at 150 ms from the loop left
		// free.
		src := sessionSource(
			turnOf("a", 0, 0, 0),
			turnOf("a", 1, 0, 50*ms),
			turnOf("b", 0, 0, 0),
			turnOf("b", 1, 0, 0),
		)
		run := runFake(t, context.Background(), Config{Profile: ProfileConcurrent, Concurrency: 2}, src, 100*ms)
		equalDurations(t, "sent", offsets(run, sent), []time.Duration{0, 150 * ms, 0, 100 * ms})
		equalDurations(t, "intended", offsets(run, intended), []time.Duration{0, 150 * ms, 0, 100 * ms})
		if run.Duration != 250*ms || run.Dropped != 0 || run.StopReason != StopWorkloadEnd {
			t.Errorf("duration %v dropped %d stop %q", run.Duration, run.Dropped, run.StopReason)
		}
	})
}

// sessionsOf is sessions × turns session turns, each session's turns in a
// row (as an AIPerf-style Mooncake file lists them), turns after the first
// with think time delay.
func sessionsOf(sessions, turns int, delay time.Duration) *sliceSource {
	var reqs []workload.Request
	for s := range sessions {
		for n := range turns {
			d := delay
			if n == 0 {
				d = 0
			}
			reqs = append(reqs, turnOf(fmt.Sprintf("s%02d", s), n, 0, d))
		}
	}
	return sessionSource(reqs...)
}

// checkTurns checks that every session's turns were sent in order, each
// no earlier than its previous turn's end plus think (the first turn
// aside).
func checkTurns(t *testing.T, run *Run, src *sliceSource, think time.Duration) {
	t.Helper()
	last := map[string]*Result{}
	for i := range run.Results {
		r := &run.Results[i]
		req := src.reqs[r.Index]
		p := last[req.Session]
		if p == nil {
			if req.Turn != 0 {
				t.Errorf("session %s: turn %d sent first", req.Session, req.Turn)
			}
		} else if r.Sent < p.End+think {
			t.Errorf("session %s turn %d sent at %v, previous turn ended at %v, think time %v", req.Session, req.Turn, r.Sent, p.End, think)
		}
		last[req.Session] = r
	}
}

// inFlightAt counts the requests in flight at offset at.
func inFlightAt(run *Run, at time.Duration) int {
	n := 0
	for _, r := range run.Results {
		if r.Sent <= at && at < r.End {
			n++
		}
	}
	return n
}

func TestClosedLoopsKeepEveryStreamBusyAcrossSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 12 sessions × 3 turns listed session by session, no think time,
		// 100 ms requests, 4 loops. A loop that draws a turn whose
		// previous turn is in flight parks it and takes another session's
		// request, so 4 requests are in flight all along: 36 requests in
		// 9 rounds of 100 ms. (Waiting for the parked turn instead, one
		// loop in three idled: 2.33 in flight on average.)
		src := sessionsOf(12, 3, 0)
		run := runFake(t, context.Background(), Config{Profile: ProfileConcurrent, Concurrency: 4}, src, 100*ms)
		if len(run.Results) != 36 || run.Dropped != 0 || run.StopReason != StopWorkloadEnd {
			t.Fatalf("%d results, %d dropped, stop %q", len(run.Results), run.Dropped, run.StopReason)
		}
		if run.Duration != 900*ms {
			t.Errorf("duration %v, want 900ms (4 in flight throughout)", run.Duration)
		}
		for at := time.Duration(0); at < 900*ms; at += 50 * ms {
			if n := inFlightAt(run, at); n != 4 {
				t.Errorf("%d in flight at %v, want 4", n, at)
			}
		}
		checkTurns(t, run, src, 0)

		// With 30 ms of think time, a parked turn goes 30 ms after its
		// previous turn ends, from whichever loop is free: order and
		// think time hold, and the loops are never all idle while a
		// session has a turn ready.
		src = sessionsOf(12, 3, 30*ms)
		run = runFake(t, context.Background(), Config{Profile: ProfileConcurrent, Concurrency: 4}, src, 100*ms)
		if len(run.Results) != 36 || run.Dropped != 0 {
			t.Fatalf("%d results, %d dropped", len(run.Results), run.Dropped)
		}
		checkTurns(t, run, src, 30*ms)
		var busy time.Duration
		for _, r := range run.Results {
			busy += r.End - r.Sent
		}
		if mean := float64(busy) / float64(run.Duration); mean < 3.5 {
			t.Errorf("mean concurrency %.2f over %v, want at least 3.5 of 4", mean, run.Duration)
		}
	})
}

func TestClosedLoopParkedTurnsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One session of maxParked+100 turns, then a request of another
		// session, two loops. The second loop parks the first session's
		// turns as it draws them, but no more than maxParked: then it
		// waits for one to become ready instead of reading on, so the
		// other session's request, unbounded sent at once, waits its turn
		// in the reading.
		n := maxParked + 100
		reqs := make([]workload.Request, 0, n+1)
		for i := range n {
			reqs = append(reqs, turnOf("long", i, 0, 0))
		}
		reqs = append(reqs, turnOf("other", 0, 0, 0))
		src := sessionSource(reqs...)
		run := runFake(t, context.Background(), Config{Profile: ProfileConcurrent, Concurrency: 2}, src, 10*ms)
		if len(run.Results) != n+1 || run.Dropped != 0 {
			t.Fatalf("%d results, %d dropped", len(run.Results), run.Dropped)
		}
		checkTurns(t, run, src, 0)
		if other := run.Results[n]; other.Sent == 0 {
			t.Errorf("the other session's request was sent at 0: more than %d turns were parked", maxParked)
		}
		for i := 1; i < n; i++ { // the long session, back to back
			if got, want := run.Results[i].Sent, run.Results[i-1].End; got != want {
				t.Fatalf("turn %d sent at %v, previous turn ended at %v", i, got, want)
			}
		}
	})
}

func TestClosedLoopStopDropsParkedTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// --max-seconds 0.15 with 100 ms requests and 1 s of think time:
		// the second turns, parked, are still waiting when scheduling
		// stops, and are dropped; the other sessions' first turns went.
		src := sessionsOf(3, 2, time.Second)
		run := runFake(t, context.Background(), Config{Profile: ProfileConcurrent, Concurrency: 2, MaxSeconds: 0.15}, src, 100*ms)
		if run.StopReason != StopMaxSeconds || run.Scheduled != len(run.Results)+run.Dropped || run.Dropped == 0 {
			t.Errorf("stop %q: %d scheduled, %d results, %d dropped", run.StopReason, run.Scheduled, len(run.Results), run.Dropped)
		}
		for _, r := range run.Results {
			if src.reqs[r.Index].Turn != 0 {
				t.Errorf("request %d, a second turn, sent at %v", r.Index, r.Sent)
			}
		}
	})
}

func TestWorkloadErrorMidRunReturnsTheRunSoFar(t *testing.T) {
	bad := errors.New("line 7: garbage")
	for _, cfg := range []Config{
		{Profile: ProfileTrace},
		{Profile: ProfileConcurrent, Concurrency: 2},
	} {
		t.Run(cfg.Profile, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Six good requests, then an error: scheduling stops, the
				// requests in flight drain, and the run comes back with
				// the error.
				src := evenly(6, 10*ms)
				src.err = bad
				cfg.Target = "http://127.0.0.1:1"
				c := cfg.withDefaults()
				origin := c.Now()
				run, err := execute(context.Background(), c, src, origin, fakeSend(100*ms, origin))
				if !errors.Is(err, bad) || !strings.Contains(err.Error(), "reading the workload") {
					t.Fatalf("error %v, want the workload's, wrapped", err)
				}
				if run == nil || len(run.Results) != 6 || run.StopReason != StopWorkloadError {
					t.Fatalf("run %+v", run)
				}
				for _, r := range run.Results {
					if !r.OK() {
						t.Errorf("request %d: %s (the drain should let it finish)", r.Index, r.Err)
					}
				}
			})
		})
	}
}

func TestWorkloadErrorDropsHeldBackTurns(t *testing.T) {
	for _, cfg := range []Config{
		{Profile: ProfileTrace},
		{Profile: ProfileConcurrent, Concurrency: 2},
	} {
		t.Run(cfg.Profile, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// a/1 waits for a/0 plus 1 s of think time when the
				// workload fails: scheduling stops there, a/0 drains and
				// a/1 is dropped, as at --max-seconds.
				src := sessionSource(turnOf("a", 0, 0, 0), turnOf("a", 1, 0, time.Second))
				src.err = errors.New("line 3: garbage")
				cfg.Target = "http://127.0.0.1:1"
				c := cfg.withDefaults()
				origin := c.Now()
				run, err := execute(context.Background(), c, src, origin, fakeSend(100*ms, origin))
				if err == nil || run == nil {
					t.Fatalf("run %v, error %v", run, err)
				}
				if len(run.Results) != 1 || !run.Results[0].OK() || run.Dropped != 1 || run.Scheduled != 2 || run.StopReason != StopWorkloadError {
					t.Errorf("%d results, %d dropped, %d scheduled, stop %q", len(run.Results), run.Dropped, run.Scheduled, run.StopReason)
				}
				// Scheduling stopped at the error, with a/0 in flight.
				if run.StoppedAt != 0 || run.InFlightAtStop != 1 {
					t.Errorf("stopped at %v with %d in flight, want 0 and 1", run.StoppedAt, run.InFlightAtStop)
				}
			})
		})
	}
}
