package engine

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// failingSend is fakeSend(d) whose requests fail (http 500) when fail says so.
func failingSend(d time.Duration, origin time.Time, fail func(index int) bool) sendFunc {
	ok := fakeSend(d, origin)
	return func(ctx context.Context, req *workload.Request, _ *prebuilt, intended time.Duration) Result {
		r := ok(ctx, req, nil, intended)
		if r.OK() && fail(req.Index) {
			r.Status, r.Err = 500, "http 500"
		}
		return r
	}
}

func runWith(t *testing.T, cfg Config, src workload.Source, send func(origin time.Time) sendFunc) *Run {
	t.Helper()
	if cfg.Target == "" {
		cfg.Target = "http://127.0.0.1:1"
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c := cfg.withDefaults()
	origin := c.Now()
	run, err := execute(context.Background(), c, src, origin, send(origin))
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestGammaProfileSendsOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		run := runFake(t, context.Background(), Config{Profile: ProfileGamma, Rate: 20, Burstiness: 0.3, Seed: 4, MaxSeconds: 2}, evenly(1000, 0), 50*ms)
		var want []time.Duration
		for g := NewGamma(20, 0.3, 4); ; {
			off, _ := g.Next()
			if off >= 2*time.Second {
				break
			}
			want = append(want, off)
		}
		equalDurations(t, "gamma intended", offsets(run, intended), want)
		equalDurations(t, "gamma sent", offsets(run, sent), want)
		if run.StopReason != StopMaxSeconds || run.StoppedAt != 2*time.Second {
			t.Errorf("stop %q at %v, want max_seconds at 2s", run.StopReason, run.StoppedAt)
		}
	})
}

func TestStopReasons(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			name string
			cfg  Config
			want string
		}{
			{"workload end", Config{Profile: ProfileTrace}, StopWorkloadEnd},
			{"max requests", Config{Profile: ProfileTrace, MaxRequests: 3}, StopMaxRequests},
			{"max seconds", Config{Profile: ProfileTrace, MaxSeconds: 0.25}, StopMaxSeconds},
			{"closed loop workload end", Config{Profile: ProfileConcurrent, Concurrency: 2}, StopWorkloadEnd},
			{"closed loop max requests", Config{Profile: ProfileSynchronous, MaxRequests: 2}, StopMaxRequests},
			{"closed loop max seconds", Config{Profile: ProfileSynchronous, MaxSeconds: 0.05}, StopMaxSeconds},
		} {
			run := runFake(t, context.Background(), tc.cfg, evenly(10, 100*ms), 10*ms)
			if run.StopReason != tc.want {
				t.Errorf("%s: stop reason %q, want %q", tc.name, run.StopReason, tc.want)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 250*ms)
		defer cancel()
		if run := runFake(t, ctx, Config{Profile: ProfileTrace}, evenly(10, 100*ms), 10*ms); run.StopReason != StopCancelled {
			t.Errorf("cancelled context: stop reason %q", run.StopReason)
		}
	})
}

func TestMaxErrorsStopsScheduling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Requests every 10 ms lasting 25 ms; every third fails (0, 3, 6, …).
		// The third failure (request 6) ends at 85 ms; requests 7 and 8 were
		// sent before that and drain; nothing is sent after it.
		fail := func(i int) bool { return i%3 == 0 }
		for _, profile := range []string{ProfileConstant, ProfileConcurrent} {
			run := runWith(t, Config{Profile: profile, Rate: 100, Concurrency: 3, MaxErrors: 3}, evenly(1000, 0),
				func(o time.Time) sendFunc { return failingSend(25*ms, o, fail) })
			failed := 0
			for _, r := range run.Results {
				if !r.OK() {
					failed++
				}
			}
			if run.StopReason != StopMaxErrors || failed < 3 || len(run.Results) > 12 {
				t.Errorf("%s: stop %q after %d results, %d failed", profile, run.StopReason, len(run.Results), failed)
			}
			if profile == ProfileConstant && (len(run.Results) != 9 || run.StoppedAt != 85*ms || run.InFlightAtStop != 2 || run.Cancelled != 0) {
				t.Errorf("constant: %d results, stopped at %v, %d in flight at stop, %d cancelled; want 9, 85ms, 2, 0",
					len(run.Results), run.StoppedAt, run.InFlightAtStop, run.Cancelled)
			}
		}
	})
}

func TestMaxErrorRateWaitsForItsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Synchronous 10 ms requests. Window 10, rate 0.5.
		cfg := Config{Profile: ProfileSynchronous, MaxErrorRate: 0.5, ErrorWindow: 10}
		// Every request fails: the window must fill first, so exactly 10.
		run := runWith(t, cfg, evenly(100, 0), func(o time.Time) sendFunc { return failingSend(10*ms, o, func(int) bool { return true }) })
		if run.StopReason != StopMaxErrorRate || len(run.Results) != 10 {
			t.Errorf("all failing: stop %q after %d requests, want max_error_rate after 10", run.StopReason, len(run.Results))
		}
		// The first 20 succeed, then every other one fails: the window of
		// the last 10 reaches 5 failures when request 29 ends.
		run = runWith(t, cfg, evenly(100, 0), func(o time.Time) sendFunc {
			return failingSend(10*ms, o, func(i int) bool { return i >= 20 && i%2 == 1 })
		})
		if run.StopReason != StopMaxErrorRate || len(run.Results) != 30 {
			t.Errorf("failing late: stop %q after %d requests, want max_error_rate after 30", run.StopReason, len(run.Results))
		}
		// 40% failing never reaches 50%.
		run = runWith(t, cfg, evenly(100, 0), func(o time.Time) sendFunc {
			return failingSend(10*ms, o, func(i int) bool { return i%5 < 2 })
		})
		if run.StopReason != StopWorkloadEnd || len(run.Results) != 100 {
			t.Errorf("40%% failing: stop %q after %d requests", run.StopReason, len(run.Results))
		}
	})
}

func TestDrainCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One request every 100 ms, each lasting 250 ms, for 1 s with a
		// 100 ms drain: at 1 s requests 8 and 9 are in flight (7 ended at
		// 950 ms); 8 ends at 1.05 s within the drain, 9 (due to end at
		// 1.15 s) is cancelled at 1.1 s.
		run := runFake(t, context.Background(), Config{Profile: ProfileTrace, MaxSeconds: 1, Drain: 100 * ms}, evenly(100, 100*ms), 250*ms)
		if run.StopReason != StopMaxSeconds || run.InFlightAtStop != 2 || run.Cancelled != 1 || len(run.Results) != 10 {
			t.Errorf("stop %q, in flight at stop %d, cancelled %d, %d results; want max_seconds, 2, 1, 10",
				run.StopReason, run.InFlightAtStop, run.Cancelled, len(run.Results))
		}
		if r := run.Results[9]; !strings.HasPrefix(r.Err, "cancelled") || r.End != 1100*ms {
			t.Errorf("request 9: %q at %v", r.Err, r.End)
		}
	})
}

func phases(run *Run) []string {
	out := make([]string, len(run.Results))
	for i, r := range run.Results {
		out[i] = r.Phase
		if out[i] == "" {
			out[i] = "-"
		}
	}
	return out
}

func TestWarmupAndCooldownAreMarked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const w, c, m = PhaseWarmup, PhaseCooldown, "-"
		for _, tc := range []struct {
			name             string
			cfg              Config
			warmup, cooldown string
			want             []string
		}{
			{"counts", Config{Profile: ProfileTrace}, "2", "1", []string{w, w, m, m, m, m, m, m, m, c}},
			{"fractions of requests", Config{Profile: ProfileTrace}, "20%", "0.1", []string{w, w, m, m, m, m, m, m, m, c}},
			// Requests at 0, 100, … 900 ms; scheduling stops when the
			// workload ends, at 900 ms.
			{"durations", Config{Profile: ProfileTrace}, "150ms", "200ms", []string{w, w, m, m, m, m, m, c, c, c}},
			// Bounded by time only: a fraction is of --max-seconds (1 s):
			// 10% is 100 ms, so only request 0 is warmup; cooldown 10% is
			// the last 100 ms before 1 s, request 9 (at 900 ms).
			{"fractions of max seconds", Config{Profile: ProfileTrace, MaxSeconds: 1}, "10%", "10%", []string{w, m, m, m, m, m, m, m, m, c}},
			{"none", Config{Profile: ProfileTrace}, "", "", []string{m, m, m, m, m, m, m, m, m, m}},
			{"closed loop", Config{Profile: ProfileSynchronous}, "3", "3", []string{w, w, w, m, m, m, m, c, c, c}},
		} {
			var err error
			if tc.cfg.Warmup, err = ParsePortion(tc.warmup); err != nil {
				t.Fatal(err)
			}
			if tc.cfg.Cooldown, err = ParsePortion(tc.cooldown); err != nil {
				t.Fatal(err)
			}
			run := runFake(t, context.Background(), tc.cfg, evenly(10+10*b2i(tc.cfg.MaxSeconds > 0), 100*ms), 10*ms)
			if got := phases(run); !slices.Equal(got, tc.want) {
				t.Errorf("%s: phases %v, want %v", tc.name, got, tc.want)
			}
			nw, nc := 0, 0
			for _, p := range tc.want {
				nw += b2i(p == w)
				nc += b2i(p == c)
			}
			if run.Warmup != nw || run.Cooldown != nc || len(run.Results) != 10 {
				t.Errorf("%s: warmup %d cooldown %d results %d", tc.name, run.Warmup, run.Cooldown, len(run.Results))
			}
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestParsePortion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Portion
	}{
		{"", Portion{}},
		{"10s", Portion{Duration: 10 * time.Second}},
		{"1m30s", Portion{Duration: 90 * time.Second}},
		{"250ms", Portion{Duration: 250 * ms}},
		{"50", Portion{Count: 50}},
		{" 0 ", Portion{}},
		{"5%", Portion{Fraction: 0.05}},
		{"0.05", Portion{Fraction: 0.05}},
		{"12.5%", Portion{Fraction: 0.125}},
	} {
		got, err := ParsePortion(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParsePortion(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, err := ParsePortion(got.String()); err != nil || back != got {
			t.Errorf("%q: String %q reads back as %+v, %v", tc.in, got.String(), back, err)
		}
	}
	for _, bad := range []string{"-1", "1.5", "100%", "-5%", "x%", "10q", "-3s", "NaN", "Inf", "5 %%", "1e400"} {
		if p, err := ParsePortion(bad); err == nil {
			t.Errorf("ParsePortion(%q) = %+v, want an error", bad, p)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("ParsePortion(%q): error %q does not quote the value", bad, err)
		}
	}
}

func FuzzParsePortion(f *testing.F) {
	for _, s := range []string{"10s", "50", "5%", "0.05", "", "1e-3", "-0", "0x1p-3", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePortion(s)
		if err != nil {
			return
		}
		if err := p.validate(); err != nil {
			t.Fatalf("%q parsed to an invalid %+v: %v", s, p, err)
		}
		back, err := ParsePortion(p.String())
		if err != nil || back.IsZero() != p.IsZero() || back.Count != p.Count || back.Duration != p.Duration {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, p, p.String(), back, err)
		}
	})
}

func TestValidateNamesTheNewFields(t *testing.T) {
	cfg := Config{Target: "http://x", Profile: ProfileConstant, Rate: 1, Burstiness: 2, MaxErrors: -1, MaxErrorRate: 1,
		Warmup: Portion{Fraction: 0.6}, Cooldown: Portion{Fraction: 0.5}, CACert: "ca.pem", InsecureSkipVerify: true}
	err := cfg.Validate()
	for _, want := range []string{"Burstiness", "MaxErrors", "MaxErrorRate", "Warmup", "CACert"} {
		if !slices.Contains(configErrorFields(err), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "with cooldown") {
		t.Errorf("error %v does not say the warmup and cooldown fractions together leave nothing", err)
	}
	for _, b := range []float64{-1, 0.001} {
		cfg := Config{Target: "http://x", Profile: ProfileGamma, Rate: 1, Burstiness: b}
		if err := cfg.Validate(); !slices.Contains(configErrorFields(err), "Burstiness") {
			t.Errorf("burstiness %v: %v", b, err)
		}
	}
}

func TestQueueWaitIsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// As in TestTraceDispatchSendsLateWhenTheCapIsFull: requests 2 and
		// 3 wait 150 and 50 ms for a slot, all of their lag.
		run := runFake(t, context.Background(), Config{Profile: ProfileTrace, TimeScale: 0.5, MaxConcurrency: 2},
			traceOf(0, 100*ms, 100*ms, 400*ms, time.Second), 200*ms)
		equalDurations(t, "queue wait", offsets(run, func(r *Result) time.Duration { return r.QueueWait }),
			[]time.Duration{0, 0, 150 * ms, 50 * ms, 0})
	})
}

func TestBodiesAreBuiltBeforeTheirDueTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Building a body takes 3 ms. Requests not yet due have theirs
		// built while the dispatcher waits: no lag. The first, due at the
		// origin, has its body built on its own goroutine (as the client
		// does without a prebuilt body): 3 ms of lag.
		c := (&Config{Target: "http://x", Profile: ProfileTrace}).withDefaults()
		origin := time.Now()
		var built []int
		build := func(req *workload.Request) *prebuilt {
			time.Sleep(3 * ms)
			built = append(built, req.Index)
			return &prebuilt{body: []byte("{}")}
		}
		inner := fakeSend(10*ms, origin)
		send := func(ctx context.Context, req *workload.Request, pre *prebuilt, intended time.Duration) Result {
			if pre == nil {
				time.Sleep(3 * ms)
			}
			return inner(ctx, req, pre, intended)
		}
		run, err := executeWith(context.Background(), c, evenly(4, 100*ms), origin, send, build)
		if err != nil {
			t.Fatal(err)
		}
		equalDurations(t, "sent", offsets(run, sent), []time.Duration{3 * ms, 100 * ms, 200 * ms, 300 * ms})
		if !slices.Equal(built, []int{1, 2, 3}) {
			t.Errorf("built ahead: %v, want 1, 2, 3", built)
		}
	})
}

func TestSpinNeverSendsEarly(t *testing.T) {
	// Real time (a spinning loop never lets synctest's clock advance):
	// 20 requests at 200 req/s with a 2 ms spin. Only what holds on any
	// machine is checked: every request is sent, none before its due time.
	c := (&Config{Target: "http://x", Profile: ProfileConstant, Rate: 200, MaxRequests: 20, Spin: 2 * ms}).withDefaults()
	origin := time.Now()
	send := func(_ context.Context, req *workload.Request, _ *prebuilt, intended time.Duration) Result {
		s := time.Since(origin)
		return Result{Index: req.Index, Intended: intended, Sent: s, End: s, Status: 200}
	}
	run, err := execute(context.Background(), c, evenly(100, 0), origin, send)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 20 || run.StopReason != StopMaxRequests {
		t.Fatalf("%d results, stop %q", len(run.Results), run.StopReason)
	}
	for _, r := range run.Results {
		if r.Sent < r.Intended {
			t.Errorf("request %d sent at %v, before its due time %v", r.Index, r.Sent, r.Intended)
		}
	}
	// A cancelled context ends a spinning wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Spin = 2 * time.Hour // the whole wait is spun
	d := &dispatcher{cfg: c, origin: time.Now()}
	if d.waitUntil(ctx, time.NewTimer(time.Hour), time.Hour) {
		t.Error("waitUntil returned true on a cancelled context")
	}
	if err := (&Config{Target: "http://x", Profile: ProfileConstant, Rate: 1, Spin: -1}).Validate(); !slices.Contains(configErrorFields(err), "Spin") {
		t.Errorf("negative spin: %v", err)
	}
}

// configErrorFields are the fields the *ConfigErrors joined in err name.
func configErrorFields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if ce, ok := err.(*ConfigError); ok {
			out = append(out, ce.Field)
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}
