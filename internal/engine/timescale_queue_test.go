package engine

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

func TestTimeScaleScalesSessionThinkTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Open loop, 100 ms requests, offsets and think time × 0.5: a/1
		// (recorded at 10 ms, 1 s think time) goes when a/0 ends (100 ms)
		// plus 500 ms, not plus the recorded second.
		src := sessionSource(turnOf("a", 0, 0, 0), turnOf("a", 1, 10*ms, time.Second))
		run := runFake(t, context.Background(), Config{Profile: ProfileTrace, TimeScale: 0.5}, src, 100*ms)
		equalDurations(t, "open loop sent", offsets(run, sent), []time.Duration{0, 600 * ms})

		// Closed loop: the same halving.
		src = sessionSource(turnOf("a", 0, 0, 0), turnOf("a", 1, 0, 400*ms))
		run = runFake(t, context.Background(), Config{Profile: ProfileConcurrent, Concurrency: 2, TimeScale: 0.5}, src, 100*ms)
		equalDurations(t, "closed loop sent", offsets(run, sent), []time.Duration{0, 300 * ms})

		// Unscaled, the recorded think time is kept.
		src = sessionSource(turnOf("a", 0, 0, 0), turnOf("a", 1, 10*ms, time.Second))
		run = runFake(t, context.Background(), Config{Profile: ProfileTrace}, src, 100*ms)
		equalDurations(t, "unscaled sent", offsets(run, sent), []time.Duration{0, 1100 * ms})
	})
}

func TestTimeScaleIsValidatedForEveryProfile(t *testing.T) {
	c := Config{Target: "http://127.0.0.1:1", Profile: ProfileConcurrent, Concurrency: 1, TimeScale: -1}
	if err := c.Validate(); err == nil {
		t.Fatal("negative --time-scale with --profile concurrent accepted")
	}
}

// slowSource delays the read of the requests listed in slow by that much
// (synctest time): a workload that is slower than its arrivals.
type slowSource struct {
	*sliceSource
	slow map[int]time.Duration
}

func (s slowSource) Next() (workload.Request, error) {
	if d, ok := s.slow[s.i]; ok {
		time.Sleep(d)
	}
	return s.sliceSource.Next()
}

func TestQueueWaitExcludesGeneratorLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One slot, 300 ms requests. Request 1 is due at 10 ms, but the
		// workload takes until 150 ms to yield it; the slot frees at
		// 300 ms. It lagged 290 ms: 140 ms the generator's (client lag),
		// 150 ms waiting for the slot (queue wait).
		src := slowSource{traceOf(0, 10*ms), map[int]time.Duration{1: 150 * ms}}
		run := runFake(t, context.Background(), Config{Profile: ProfileTrace, MaxConcurrency: 1}, src, 300*ms)
		r := run.Results[1]
		if r.Intended != 10*ms || r.Sent != 300*ms {
			t.Fatalf("request 1 intended %v sent %v, want 10ms and 300ms", r.Intended, r.Sent)
		}
		if r.QueueWait != 150*ms {
			t.Errorf("queue wait %v, want 150ms (from when the dispatcher reached it, not from its due time)", r.QueueWait)
		}
		if run.Waited != 1 {
			t.Errorf("waited %d, want 1", run.Waited)
		}

		// Reached on time, the whole wait is the cap's.
		run = runFake(t, context.Background(), Config{Profile: ProfileTrace, MaxConcurrency: 1}, traceOf(0, 10*ms), 300*ms)
		if r := run.Results[1]; r.QueueWait != 290*ms {
			t.Errorf("on-time request: queue wait %v, want 290ms", r.QueueWait)
		}
	})
}

func TestQueueWait(t *testing.T) {
	for _, c := range []struct{ t0, due, got, want time.Duration }{
		{t0: 10, due: 10, got: 50, want: 40},
		{t0: 5, due: 10, got: 50, want: 40},  // waited before due: from due
		{t0: 30, due: 10, got: 50, want: 20}, // reached late: from t0
		{t0: 30, due: 10, got: 30, want: 0},
		{t0: 30, due: 60, got: 50, want: 0},
	} {
		if got := queueWait(c.t0, c.due, c.got); got != c.want {
			t.Errorf("queueWait(%d, %d, %d) = %d, want %d", c.t0, c.due, c.got, got, c.want)
		}
	}
}

func TestStopReasonSaturated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, c := range []struct {
			cause error
			want  string
		}{{ErrSaturated, StopSaturated}, {nil, StopCancelled}} {
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(250*ms, func() { cancel(c.cause) })
			run := runFake(t, ctx, Config{Profile: ProfileConstant, Rate: 10}, evenly(100, 0), 50*ms)
			if run.StopReason != c.want {
				t.Errorf("cancelled with cause %v: stop reason %q, want %q", c.cause, run.StopReason, c.want)
			}
			// In-flight requests were drained, not cut: the stop only ends scheduling.
			if run.Cancelled != 0 || len(run.Results) == 0 {
				t.Errorf("cause %v: %d results, %d cancelled", c.cause, len(run.Results), run.Cancelled)
			}
			cancel(nil)
		}
	})
}
