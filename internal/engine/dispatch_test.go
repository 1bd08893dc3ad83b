package engine

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// sliceSource yields a fixed list of requests, then err (io.EOF if nil).
type sliceSource struct {
	reqs []workload.Request
	i    int
	err  error
}

var _ workload.Source = (*sliceSource)(nil)

func (s *sliceSource) Next() (workload.Request, error) {
	if s.i >= len(s.reqs) {
		if s.err != nil {
			return workload.Request{}, s.err
		}
		return workload.Request{}, io.EOF
	}
	s.i++
	return s.reqs[s.i-1], nil
}

// traceOf is a workload of streamed chat requests recorded at offsets.
func traceOf(offsets ...time.Duration) *sliceSource {
	s := &sliceSource{}
	for i, o := range offsets {
		s.reqs = append(s.reqs, workload.Request{Index: i, Offset: o, Endpoint: openai.Chat, Stream: true, PromptTokens: 10, OutputTokens: 3})
	}
	return s
}

// evenly is a trace of n requests every gap.
func evenly(n int, gap time.Duration) *sliceSource {
	offs := make([]time.Duration, n)
	for i := range offs {
		offs[i] = time.Duration(i) * gap
	}
	return traceOf(offs...)
}

// fakeSend is the dispatcher's seam filled with a request that takes d of
// (synctest) time, or ends early as the real client does when cancelled.
func fakeSend(d time.Duration, origin time.Time) sendFunc {
	return func(ctx context.Context, req *workload.Request, _ *prebuilt, intended time.Duration) Result {
		sent := time.Since(origin)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return Result{Index: req.Index, Intended: intended, Sent: sent, End: time.Since(origin), Err: describe(ctx, ctx.Err())}
		}
		return Result{Index: req.Index, Intended: intended, Sent: sent, FirstToken: sent + d/2, LastToken: time.Since(origin), End: time.Since(origin), Status: 200}
	}
}

// runFake executes cfg over src with fakeSend(d), inside a synctest bubble.
func runFake(t *testing.T, ctx context.Context, cfg Config, src workload.Source, d time.Duration) *Run {
	t.Helper()
	if cfg.Target == "" {
		cfg.Target = "http://127.0.0.1:1"
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c := cfg.withDefaults()
	origin := c.Now()
	run, err := execute(ctx, c, src, origin, fakeSend(d, origin))
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func offsets(run *Run, field func(*Result) time.Duration) []time.Duration {
	out := make([]time.Duration, len(run.Results))
	for i := range run.Results {
		out[i] = field(&run.Results[i])
	}
	return out
}

func intended(r *Result) time.Duration { return r.Intended }
func sent(r *Result) time.Duration     { return r.Sent }

func equalDurations(t *testing.T, what string, got, want []time.Duration) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
}

func TestTraceDispatchSendsLateWhenTheCapIsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		run := runFake(t, context.Background(), Config{Profile: ProfileTrace, TimeScale: 0.5, MaxConcurrency: 2},
			traceOf(0, 100*ms, 100*ms, 400*ms, time.Second), 200*ms)
		// Offsets × 0.5, two slots of 200 ms: request 2 (due at 50 ms) waits
		// for request 0 to end at 200 ms, request 3 (due at 200 ms) for
		// request 1 at 250 ms; request 4 finds a free slot.
		equalDurations(t, "intended", offsets(run, intended), []time.Duration{0, 50 * ms, 50 * ms, 200 * ms, 500 * ms})
		equalDurations(t, "sent", offsets(run, sent), []time.Duration{0, 50 * ms, 200 * ms, 250 * ms, 500 * ms})
		if run.Late != 2 || run.Waited != 2 || run.Dropped != 0 || run.Scheduled != 5 || run.Duration != 700*ms {
			t.Errorf("late %d waited %d dropped %d scheduled %d duration %v", run.Late, run.Waited, run.Dropped, run.Scheduled, run.Duration)
		}
		for i, r := range run.Results {
			if r.Index != i {
				t.Errorf("result %d has index %d", i, r.Index)
			}
		}
	})
}

func TestConstantAndPoissonSendOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		run := runFake(t, context.Background(), Config{Profile: ProfileConstant, Rate: 10, MaxSeconds: 1}, evenly(1000, 0), 50*ms)
		want := take(&Constant{Rate: 10}, 10) // 0, 100 ms, … 900 ms; 1 s is the limit
		equalDurations(t, "constant intended", offsets(run, intended), want)
		equalDurations(t, "constant sent", offsets(run, sent), want)

		run = runFake(t, context.Background(), Config{Profile: ProfilePoisson, Rate: 20, Seed: 3, MaxSeconds: 2}, evenly(1000, 0), 50*ms)
		var wantP []time.Duration
		for p := NewPoisson(20, 3); ; {
			off, _ := p.Next()
			if off >= 2*time.Second {
				break
			}
			wantP = append(wantP, off)
		}
		if len(wantP) < 20 {
			t.Fatalf("seed 3 gives only %d arrivals in 2 s", len(wantP))
		}
		equalDurations(t, "poisson intended", offsets(run, intended), wantP)
		equalDurations(t, "poisson sent", offsets(run, sent), wantP)
		if run.Late != 0 || run.Scheduled != len(wantP) {
			t.Errorf("late %d scheduled %d", run.Late, run.Scheduled)
		}
	})
}

func TestMaxSecondsBoundsASaturatedOpenLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 100 req/s for 1 s, but two slots of 700 ms: only four requests can
		// start before the limit. The rest were due and never sent.
		run := runFake(t, context.Background(), Config{Profile: ProfileConstant, Rate: 100, MaxSeconds: 1, MaxConcurrency: 2, Drain: 10 * time.Second},
			evenly(1000, 0), 700*ms)
		equalDurations(t, "intended", offsets(run, intended), []time.Duration{0, 10 * ms, 20 * ms, 30 * ms})
		equalDurations(t, "sent", offsets(run, sent), []time.Duration{0, 10 * ms, 700 * ms, 710 * ms})
		if run.Late != 2 || run.Waited != 2 || run.Dropped != 96 || run.Scheduled != 100 {
			t.Errorf("late %d waited %d dropped %d scheduled %d; want 2, 2, 96, 100", run.Late, run.Waited, run.Dropped, run.Scheduled)
		}
		if run.Duration != 1410*ms {
			t.Errorf("duration %v: in-flight requests should finish within the drain", run.Duration)
		}
	})
}

func TestGeneratorLagCountsAsLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Free slots, but building a body takes 3 ms for odd requests and
		// 1 ms (not more than LateAfter) for even ones: the odd ones are
		// late although no request waited for a slot, and later requests
		// keep their absolute due times.
		c := (&Config{Target: "http://x", Profile: ProfileTrace}).withDefaults()
		origin := time.Now()
		inner := fakeSend(10*ms, origin)
		build := func(ctx context.Context, req *workload.Request, _ *prebuilt, intended time.Duration) Result {
			time.Sleep(time.Duration(1+2*(req.Index%2)) * ms)
			return inner(ctx, req, nil, intended)
		}
		run, err := execute(context.Background(), c, evenly(6, 100*ms), origin, build)
		if err != nil {
			t.Fatal(err)
		}
		equalDurations(t, "intended", offsets(run, intended), []time.Duration{0, 100 * ms, 200 * ms, 300 * ms, 400 * ms, 500 * ms})
		equalDurations(t, "sent", offsets(run, sent), []time.Duration{ms, 103 * ms, 201 * ms, 303 * ms, 401 * ms, 503 * ms})
		if run.Late != 3 || run.Waited != 0 || run.Dropped != 0 {
			t.Errorf("late %d waited %d dropped %d; want 3, 0, 0", run.Late, run.Waited, run.Dropped)
		}

		// A closed loop has no due time to miss.
		c = (&Config{Target: "http://x", Profile: ProfileSynchronous}).withDefaults()
		origin = time.Now()
		inner = fakeSend(10*ms, origin)
		run, err = execute(context.Background(), c, evenly(3, 0), origin, build)
		if err != nil || run.Late != 0 || len(run.Results) != 3 {
			t.Errorf("synchronous: err %v, late %d, %d results", err, run.Late, len(run.Results))
		}
	})
}

func TestDropWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One slot, requests every 10 ms lasting 25 ms: every third finds
		// the slot free.
		run := runFake(t, context.Background(), Config{Profile: ProfileConstant, Rate: 100, MaxRequests: 10, MaxConcurrency: 1, DropWhenFull: true},
			evenly(1000, 0), 25*ms)
		equalDurations(t, "sent", offsets(run, sent), []time.Duration{0, 30 * ms, 60 * ms, 90 * ms})
		equalDurations(t, "intended", offsets(run, intended), []time.Duration{0, 30 * ms, 60 * ms, 90 * ms})
		if run.Dropped != 6 || run.Late != 0 || run.Scheduled != 10 {
			t.Errorf("dropped %d late %d scheduled %d", run.Dropped, run.Late, run.Scheduled)
		}
	})
}

func TestMaxRequestsAndDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		run := runFake(t, context.Background(), Config{Profile: ProfileTrace, MaxRequests: 7}, evenly(1000, 10*ms), ms)
		if len(run.Results) != 7 || run.Scheduled != 7 || run.Results[6].Index != 6 {
			t.Fatalf("max-requests 7: %d results, %d scheduled", len(run.Results), run.Scheduled)
		}

		start := time.Now()
		run = runFake(t, context.Background(), Config{Profile: ProfileTrace, MaxSeconds: 1, Drain: 300 * ms}, evenly(1000, 10*ms), 2*time.Second)
		if len(run.Results) != 100 {
			t.Fatalf("max-seconds 1 at 100 req/s: %d results", len(run.Results))
		}
		for _, r := range run.Results {
			if !strings.HasPrefix(r.Err, "cancelled") || r.End != 1300*ms {
				t.Fatalf("request %d: err %q end %v; want cancelled at 1.3 s", r.Index, r.Err, r.End)
			}
		}
		if took := time.Since(start); took != 1300*ms {
			t.Errorf("run took %v, want 1 s of scheduling + 300 ms of drain", took)
		}
	})
}

func TestClosedLoopProfiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			profile string
			conc    int
			want    time.Duration // run duration for 6 requests of 100 ms
		}{{ProfileSynchronous, 0, 600 * ms}, {ProfileConcurrent, 3, 200 * ms}, {ProfileThroughput, 0, 100 * ms}} {
			run := runFake(t, context.Background(), Config{Profile: tc.profile, Concurrency: tc.conc, MaxConcurrency: 6}, evenly(6, time.Hour), 100*ms)
			if len(run.Results) != 6 || run.Duration != tc.want || run.Scheduled != 6 {
				t.Errorf("%s: %d results, duration %v, want %v", tc.profile, len(run.Results), run.Duration, tc.want)
			}
			for _, r := range run.Results {
				if r.Sent != r.Intended {
					t.Errorf("%s: a closed loop sends when it intends to", tc.profile)
				}
			}
		}
		// Synchronous 300 ms requests for 1 s: started at 0, 300, 600 and
		// 900 ms; the last one finishes in the drain.
		run := runFake(t, context.Background(), Config{Profile: ProfileSynchronous, MaxSeconds: 1}, evenly(100, 0), 300*ms)
		equalDurations(t, "synchronous sent", offsets(run, sent), []time.Duration{0, 300 * ms, 600 * ms, 900 * ms})
		if run.Duration != 1200*ms {
			t.Errorf("duration %v", run.Duration)
		}
	})
}

func TestCancellingTheContextStopsScheduling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, profile := range []string{ProfileTrace, ProfileConcurrent} {
			ctx, cancel := context.WithTimeout(context.Background(), 250*ms)
			run := runFake(t, ctx, Config{Profile: profile, Concurrency: 1}, evenly(100, 100*ms), 100*ms)
			cancel()
			// Requests at 0, 100 and 200 ms; the one in flight at 250 ms
			// completes within the drain (the context stops scheduling only).
			equalDurations(t, profile+" sent", offsets(run, sent), []time.Duration{0, 100 * ms, 200 * ms})
			for _, r := range run.Results {
				if !r.OK() {
					t.Errorf("%s: request %d: %s", profile, r.Index, r.Err)
				}
			}
		}
	})
}

func TestSourceErrorStopsAndIsReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, profile := range []string{ProfileTrace, ProfileSynchronous} {
			src := traceOf(0, 10*ms)
			src.err = errors.New("mooncake f.jsonl line 3: bad")
			c := (&Config{Target: "http://x", Profile: profile}).withDefaults()
			origin := time.Now()
			run, err := execute(context.Background(), c, src, origin, fakeSend(ms, origin))
			if err == nil || !strings.Contains(err.Error(), "line 3") || run == nil || len(run.Results) != 2 {
				t.Fatalf("%s: err %v, run %+v", profile, err, run)
			}
		}
	})
}

func TestProgressIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []Progress
		cfg := Config{Profile: ProfileTrace, Progress: func(p Progress) { mu.Lock(); got = append(got, p); mu.Unlock() }}
		runFake(t, context.Background(), cfg, evenly(4, time.Second), 1500*ms)
		mu.Lock()
		defer mu.Unlock()
		// Requests at 0, 1, 2, 3 s lasting 1.5 s; ticks at 1, 2, 3, 4 s.
		// At a tick the request due at that instant may or may not have
		// been sent yet, so only what is certain is checked.
		if len(got) != 4 {
			t.Fatalf("progress %+v", got)
		}
		for i, p := range got {
			if p.Elapsed != time.Duration(i+1)*time.Second || p.InFlight != p.Sent-p.Done || p.Errors != 0 || p.Done != i {
				t.Errorf("tick %d: %+v", i+1, p)
			}
		}
	})
}
