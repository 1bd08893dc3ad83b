package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

const (
	usD = time.Microsecond
	msT = time.Millisecond
)

func TestKSDistance(t *testing.T) {
	ms := func(vs ...float64) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v * float64(time.Millisecond))
		}
		return out
	}
	fixed := func(d time.Duration) func(time.Duration) time.Duration {
		return func(time.Duration) time.Duration { return d }
	}
	for _, tt := range []struct {
		name string
		a, b []time.Duration
		tol  func(time.Duration) time.Duration
		want float64
	}{
		{"identical", ms(1, 2, 3), ms(1, 2, 3), fixed(0), 0},
		{"disjoint", ms(1, 2), ms(3, 4), fixed(0), 1},
		// F_a(4) = 1, F_b(4) = 2/4.
		{"upper half moved", ms(1, 2, 3, 4), ms(1, 2, 5, 6), fixed(0), 0.5},
		// F_a(1) = 1/3 against F_b(1) = 0; F_b(2) = 1 against F_a(2) = 2/3.
		{"sizes differ", ms(1, 2, 3), ms(2), fixed(0), 1.0 / 3},
		// Half of a precedes b by 50 µs: all of it at tol 0, none at 0.1 ms.
		{"jitter below the tolerance, tol 0", ms(10, 20), ms(10.05, 20.05), fixed(0), 0.5},
		{"jitter below the tolerance", ms(10, 20), ms(10.05, 20.05), fixed(100 * usD), 0},
		// F_a(3) = 3/4 against F_b(3.1) = 2/4: gaps of 0.5 ms are beyond it.
		{"shift beyond the tolerance", ms(1, 2, 3, 4), ms(1.05, 2.05, 3.5, 4.5), fixed(100 * usD), 0.25},
		// A trace's ties (gaps of exactly 0) against sends microseconds apart.
		{"ties, tol 0", ms(0, 0, 0, 1), ms(0.001, 0.002, 0.003, 1), fixed(0), 0.75},
		{"ties", ms(0, 0, 0, 1), ms(0.001, 0.002, 0.003, 1), arrivalTolerance, 0},
		// 10 and 20 ms gaps 2 ms longer: within a quarter of them, not
		// within 0.1 ms (F_a(10) = 1/2 against F_b(10.1) = 0).
		{"relative tolerance", ms(10, 20), ms(12, 22), arrivalTolerance, 0},
		{"relative tolerance, 0.1 ms", ms(10, 20), ms(12, 22), fixed(100 * usD), 0.5},
		// 1 ms gaps sent as 0.5 and 1.5 ms: beyond a quarter of 1 ms
		// (F_a(1) = 1 against F_b(1.25) = 1/2).
		{"beyond the relative tolerance", ms(1, 1, 1, 1), ms(0.5, 0.5, 1.5, 1.5), arrivalTolerance, 0.5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ksDistance(tt.a, tt.b, tt.tol); math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("ksDistance = %v, want %v", got, tt.want)
			}
			if got := ksDistance(tt.b, tt.a, tt.tol); math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("ksDistance with the samples swapped = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKSCritical(t *testing.T) {
	for _, tt := range []struct {
		alpha float64
		n, m  int
		want  float64
	}{
		{0.01, 10_000, 10_000, 1.62762 * math.Sqrt(2.0/10_000)}, // 0.0230, issue 17's figure
		{0.01, 100, 100, 1.62762 * math.Sqrt(0.02)},
		{0.05, 50, 200, 1.35810 * math.Sqrt(250.0/(50*200))}, // c(0.05) = 1.358 in every table
		{0.01, 0, 5, 0},
	} {
		if got := ksCritical(tt.alpha, tt.n, tt.m); math.Abs(got-tt.want) > 1e-5 {
			t.Errorf("ksCritical(%v, %d, %d) = %v, want %v", tt.alpha, tt.n, tt.m, got, tt.want)
		}
	}
}

// poissonOffsets are the first n intended offsets of the engine's Poisson
// schedule.
func poissonOffsets(rate float64, seed int64, n int) []time.Duration {
	p := engine.NewPoisson(rate, seed)
	out := make([]time.Duration, n)
	for i := range out {
		out[i], _ = p.Next()
	}
	return out
}

func arrivalsOf(intended []time.Duration, sent func(i int, in time.Duration) time.Duration) []arrival {
	out := make([]arrival, len(intended))
	for i, in := range intended {
		out[i] = arrival{in, sent(i, in)}
	}
	return out
}

// batched is a dispatcher whose timer wakes on whole ticks and then sends
// everything due, 5 µs apart: every request within a tick of its due time,
// the shape bunched.
func batched(intended []time.Duration, tick time.Duration) []arrival {
	out := make([]arrival, len(intended))
	var last time.Duration = -1
	k := 0
	for i, in := range intended {
		wake := (in + tick - 1) / tick * tick
		if wake != last {
			last, k = wake, 0
		}
		out[i] = arrival{in, wake + time.Duration(k)*5*usD}
		k++
	}
	return out
}

func TestArrivalShape(t *testing.T) {
	const n = 5000
	poisson, other := poissonOffsets(1000, 7, n), poissonOffsets(1000, 8, n)
	rng := rand.New(rand.NewPCG(1, 2))
	constant, constant1k := make([]time.Duration, n), make([]time.Duration, n)
	c, c1k := &engine.Constant{Rate: 100}, &engine.Constant{Rate: 1000}
	for i := range constant {
		constant[i], _ = c.Next()
		constant1k[i], _ = c1k.Next()
	}
	crit := ksCritical(0.01, n-1, n-1)
	for _, tt := range []struct {
		name             string
		as               []arrival
		maxKS, minKS     float64
		compressedAbove  float64 // the compressed share is above this …
		compressedAtMost float64 // … and at most this
	}{
		{"poisson against itself", arrivalsOf(poisson, func(_ int, in time.Duration) time.Duration { return in }), 0, 0, -1, 0},
		// Another draw of the same process: a different sample of one
		// distribution, within the critical value.
		{"poisson against another draw", arrivalsOf(poisson, func(i int, _ time.Duration) time.Duration { return other[i] }), crit, 0, -1, 1},
		{"poisson with 20 µs of jitter", arrivalsOf(poisson, func(_ int, in time.Duration) time.Duration {
			return in + time.Duration(rng.IntN(20_000))
		}), crit, 0, -1, 0},
		// Every gap 10 ms, sent as 9 and 11 ms by a timer that wakes up to
		// 1 ms late: a plain KS distance reads 1.
		{"constant with the idle runtime's timer jitter", arrivalsOf(constant, func(i int, in time.Duration) time.Duration {
			return in + time.Duration(i%2)*time.Millisecond
		}), 0, 0, -1, 0},
		// 1,000 req/s, every other request 0.95 ms late: gaps of 1.95 and
		// 0.05 ms, half of them compressed.
		{"constant 1,000 req/s sent in pairs", arrivalsOf(constant1k, func(i int, in time.Duration) time.Duration {
			return in + time.Duration(i%2)*950*usD
		}), 1, 0.4, 0.45, 0.55},
		{"poisson batched on millisecond ticks", batched(poisson, time.Millisecond), 1, crit + ArrivalKSMargin, MaxCompressedGapFraction, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := arrivalShape(slices.Clone(tt.as))
			if s.Gaps != n-1 || math.Abs(s.KSCritical1Pct-crit) > 1e-12 {
				t.Fatalf("gaps %d, critical %v; want %d, %v", s.Gaps, s.KSCritical1Pct, n-1, crit)
			}
			if s.KSDistance > tt.maxKS || s.KSDistance < tt.minKS {
				t.Errorf("KS distance %v, want in [%v, %v]", s.KSDistance, tt.minKS, tt.maxKS)
			}
			if f := s.CompressedGapFraction; f <= tt.compressedAbove || f > tt.compressedAtMost {
				t.Errorf("compressed share %v (%d of %d), want in (%v, %v]", f, s.CompressedGaps, s.SpacedGaps, tt.compressedAbove, tt.compressedAtMost)
			}
			if s.SpacedGaps < n/2 {
				t.Errorf("%d spaced gaps: at 1,000 req/s about 60%% of gaps are 0.5 ms or more", s.SpacedGaps)
			}
			t.Logf("KS %.4f (critical %.4f), compressed %d of %d", s.KSDistance, s.KSCritical1Pct, s.CompressedGaps, s.SpacedGaps)
		})
	}
}

func TestCompressedGapsPairRequestsInIntendedOrder(t *testing.T) {
	// Intended 0, 1, 2, 3 ms. Requests 1 and 2 go out 50 µs apart (one
	// compressed gap); 3 is sent before 2, 20 µs away from it (a second).
	s := arrivalShape([]arrival{
		{3 * msT, 2*msT + 30*usD},
		{0, 0},
		{1 * msT, 2 * msT},
		{2 * msT, 2*msT + 50*usD},
	})
	if s.Gaps != 3 || s.SpacedGaps != 3 || s.CompressedGaps != 2 || math.Abs(s.CompressedGapFraction-2.0/3) > 1e-12 {
		t.Errorf("%+v: want 3 gaps, all spaced, 2 compressed", s)
	}
	if arrivalShape(nil) != nil || arrivalShape([]arrival{{0, 0}}) != nil {
		t.Error("fewer than two requests have a shape")
	}
}

// resultsOf turns arrivals into successful results sent at their send
// times, none of which waited.
func resultsOf(as []arrival) []engine.Result {
	rs := make([]engine.Result, len(as))
	for i, a := range as {
		rs[i] = okResult(i, a.intended, a.sent, 0)
	}
	return rs
}

func TestDegradedByArrivalShape(t *testing.T) {
	poisson := poissonOffsets(1000, 7, 2000)
	bunched := resultsOf(batched(poisson, time.Millisecond))
	m := Summarize(bunched, Options{OpenLoop: true})
	if !m.Degraded || !slices.Equal(m.DegradedBy, []string{DegradedArrivalKS, DegradedCompressedGaps}) {
		t.Errorf("tick-batched sends: degraded %v by %v, want by arrival_ks and compressed_gaps", m.Degraded, m.DegradedBy)
	}
	if m.ClientLag.P99 > 1 {
		t.Errorf("client lag p99 %v ms: the lag criterion alone must not see this", m.ClientLag.P99)
	}
	// Closed loops have no schedule: no shape, no arrival criterion.
	if m := Summarize(bunched, Options{}); m.ArrivalShape != nil || m.Degraded || m.DegradedBy != nil {
		t.Errorf("closed loop: shape %+v, degraded %v by %v", m.ArrivalShape, m.Degraded, m.DegradedBy)
	}
	// Below MinArrivalGaps the figures are reported but decide nothing.
	if m := Summarize(bunched[:MinArrivalGaps], Options{OpenLoop: true}); m.ArrivalShape == nil || m.ArrivalShape.Gaps != MinArrivalGaps-1 || m.Degraded {
		t.Errorf("%d requests: shape %+v, degraded %v by %v", MinArrivalGaps, m.ArrivalShape, m.Degraded, m.DegradedBy)
	}
	// Sends on schedule are not degraded.
	faithful := resultsOf(arrivalsOf(poisson, func(_ int, in time.Duration) time.Duration { return in + 3*usD }))
	if m := Summarize(faithful, Options{OpenLoop: true}); m.Degraded || m.ArrivalShape.KSDistance != 0 || m.ArrivalShape.CompressedGaps != 0 {
		t.Errorf("faithful sends: degraded %v by %v, shape %+v", m.Degraded, m.DegradedBy, m.ArrivalShape)
	}
	// Client lag still degrades on its own, listed first.
	lagging := resultsOf(arrivalsOf(poisson, func(_ int, in time.Duration) time.Duration { return in + 20*msT }))
	if m := Summarize(lagging, Options{OpenLoop: true}); !slices.Equal(m.DegradedBy, []string{DegradedClientLag}) {
		t.Errorf("20 ms late: degraded by %v", m.DegradedBy)
	}
}

func TestArrivalShapeLeavesOutTheCapsWait(t *testing.T) {
	// The client was ready on schedule, but requests waited for a slot
	// that freed every 10 ms, and went out together: the cap, hence the
	// server, bunched them (QueueWait), or the workload's order held them
	// back (OrderWait). The shape is the client's: faithful.
	bunched := batched(poissonOffsets(1000, 7, 2000), 10*time.Millisecond)
	if m := Summarize(resultsOf(bunched), Options{OpenLoop: true}); !m.Degraded {
		t.Fatalf("sent 10 ms-batched by the client: not degraded (%+v)", m.ArrivalShape)
	}
	for _, wait := range []string{"queue", "order"} {
		var rs []engine.Result
		for i, a := range bunched {
			r := okResult(i, a.intended, a.sent, 0)
			if wait == "queue" {
				r.QueueWait = a.sent - a.intended
			} else {
				r.OrderWait = a.sent - a.intended
			}
			rs = append(rs, r)
		}
		m := Summarize(rs, Options{OpenLoop: true})
		if m.ArrivalShape.KSDistance != 0 || m.ArrivalShape.CompressedGaps != 0 {
			t.Errorf("%s wait: shape %+v, degraded by %v: the wait counted as the client's", wait, m.ArrivalShape, m.DegradedBy)
		}
	}
}

func TestArrivalShapeMergesAndReadsAsJSON(t *testing.T) {
	rs := resultsOf(batched(poissonOffsets(500, 3, 600), time.Millisecond))
	want := Summarize(rs, Options{OpenLoop: true})
	// Recorders merged in any grouping, and Online's shards, agree.
	a, b := NewRecorder(Options{OpenLoop: true}), NewRecorder(Options{OpenLoop: true})
	for i := range rs {
		[]*Recorder{a, b}[i%3%2].Record(&rs[i])
	}
	b.Merge(a)
	on := newOnline(Options{OpenLoop: true}, 3)
	for i := range rs {
		on.Record(&rs[i])
	}
	for name, got := range map[string]Metrics{"merged": b.Metrics(), "online": on.Metrics()} {
		if *got.ArrivalShape != *want.ArrivalShape || !slices.Equal(got.DegradedBy, want.DegradedBy) {
			t.Errorf("%s: %+v by %v, want %+v by %v", name, got.ArrivalShape, got.DegradedBy, want.ArrivalShape, want.DegradedBy)
		}
	}
	js, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"arrival_shape":{"gaps":599,"ks_distance":`, `"ks_critical_1pct":`, `"spaced_gaps":`, `"compressed_gaps":`, `"compressed_gap_fraction":`, `"degraded_by":["arrival_ks","compressed_gaps"]`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("metrics JSON lacks %s", key)
		}
	}
	js, _ = json.Marshal(Summarize(rs, Options{}))
	if strings.Contains(string(js), "arrival_shape") || strings.Contains(string(js), "degraded_by") {
		t.Error("a closed loop's JSON has an arrival shape or degraded_by")
	}
}
