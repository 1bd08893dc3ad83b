package compare

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/stats"
)

// sideFrom builds n streamed successful requests whose TTFT is drawn from
// a log-normal (median ~ 80 ms) plus shiftMs, with 20 output tokens 10 ms
// apart (± noise), one request every 10 ms.
func sideFrom(name string, r *rand.Rand, n int, shiftMs float64) Side {
	s := Side{Name: name, WindowS: float64(n) * 0.01}
	for i := range n {
		sent := float64(i) * 10
		ttft := math.Exp(math.Log(80)+0.4*r.NormFloat64()) + shiftMs
		first := sent + ttft
		last := first + 19*(10+r.Float64())
		s.Requests = append(s.Requests, report.RequestRecord{
			Index: i, Stream: true, IntendedMs: sent, SentMs: sent, FirstTokenMs: first, LastTokenMs: last,
			EndMs: last + 1, TTFTMs: ttft, LatencyMs: last + 1 - sent, Chunks: 20, Status: 200,
			PromptTokens: 100, OutputTokens: 20,
		})
	}
	return s
}

func row(t *testing.T, rows []report.ComparisonRow, metric, stat string) report.ComparisonRow {
	t.Helper()
	for _, r := range rows {
		if r.Metric == metric && r.Stat == stat {
			return r
		}
	}
	t.Fatalf("no row %s %s", metric, stat)
	return report.ComparisonRow{}
}

// TestIdenticalDistributionsNoDifference draws baseline and candidate from
// the same distribution 20 times (fixed seeds): the verdict on TTFT p50 and
// p99 must be "no significant difference" in at least 19 of them (the
// family-wise 95% level allows one spurious difference in 20 on average).
// 1000 resamples keep it cheap; the verdicts do not hinge on the count.
func TestIdenticalDistributionsNoDifference(t *testing.T) {
	same := 0
	for rep := range 20 {
		r := rand.New(rand.NewPCG(uint64(rep), 99))
		rows, err := Compare(sideFrom("a", r, 400, 0), sideFrom("b", r, 400, 0), Options{Seed: uint64(rep + 1), Resamples: 1000})
		if err != nil {
			t.Fatal(err)
		}
		p50, p99 := row(t, rows, TTFT, StatP50), row(t, rows, TTFT, StatP99)
		if p50.Verdict == report.VerdictNoDifference && p99.Verdict == report.VerdictNoDifference {
			same++
		} else {
			t.Logf("repetition %d: p50 %s %+.2f [%+.2f, %+.2f], p99 %s %+.2f [%+.2f, %+.2f]", rep,
				p50.Verdict, p50.DeltaAbs, p50.CILowAbs, p50.CIHighAbs, p99.Verdict, p99.DeltaAbs, p99.CILowAbs, p99.CIHighAbs)
		}
	}
	if same < 19 {
		t.Errorf("identical distributions: no significant difference in %d of 20 repetitions, want >= 19", same)
	}
}

// TestKnownShiftIsFound adds 30 ms to every candidate TTFT: TTFT is worse
// at every statistic, the true delta (30 ms) lies inside each interval,
// and the rank test sees the shift; inter-token latency is unchanged.
func TestKnownShiftIsFound(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	base, cand := sideFrom("base", r, 1000, 0), sideFrom("cand", r, 1000, 30)
	rows, err := Compare(base, cand, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, stat := range latencyStats {
		x := row(t, rows, TTFT, stat)
		if x.Verdict != report.VerdictWorse || x.CILowAbs > 30 || x.CIHighAbs < 30 || x.PValue > 1e-6 {
			t.Errorf("ttft %s: verdict %s, delta %.2f, interval [%.2f, %.2f], p %g; want worse with 30 inside", stat, x.Verdict, x.DeltaAbs, x.CILowAbs, x.CIHighAbs, x.PValue)
		}
		if x.CILowPct <= 0 || x.DeltaPct <= 0 || x.Confidence != 1-0.05/4 {
			t.Errorf("ttft %s: relative %.1f%% [%.1f, %.1f] at %v", stat, x.DeltaPct, x.CILowPct, x.CIHighPct, x.Confidence)
		}
	}
	if x := row(t, rows, ITL, StatP50); x.Verdict != report.VerdictNoDifference {
		t.Errorf("itl p50: %s (delta %.3f [%.3f, %.3f])", x.Verdict, x.DeltaAbs, x.CILowAbs, x.CIHighAbs)
	}
	// Swapped roles: the candidate is better.
	rows, _ = Compare(cand, base, Options{})
	if x := row(t, rows, TTFT, StatP50); x.Verdict != report.VerdictBetter || x.CILowAbs > -30 || x.CIHighAbs < -30 {
		t.Errorf("swapped: %s [%.2f, %.2f]", x.Verdict, x.CILowAbs, x.CIHighAbs)
	}
}

func TestSmallSamplesAreInsufficientForTails(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rows, err := Compare(sideFrom("a", r, 60, 0), sideFrom("b", r, 60, 200), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if x := row(t, rows, TTFT, StatP99); x.Verdict != report.VerdictInsufficient || x.Note == "" {
		t.Errorf("p99 of 60: %s %q", x.Verdict, x.Note)
	}
	if x := row(t, rows, TTFT, StatP50); x.Verdict != report.VerdictWorse {
		t.Errorf("p50 of 60 with +200 ms: %s", x.Verdict)
	}
	if MinN(StatP50) != 20 || MinN(StatP90) != 30 || MinN(StatP99) != 300 || MinN(StatMean) != 20 {
		t.Errorf("MinN: %d %d %d %d", MinN(StatP50), MinN(StatP90), MinN(StatP99), MinN(StatMean))
	}
	rows, _ = Compare(sideFrom("a", r, 5, 0), Side{Name: "empty"}, Options{})
	if x := row(t, rows, TTFT, StatP50); x.Verdict != report.VerdictInsufficient {
		t.Errorf("empty candidate: %s", x.Verdict)
	}
}

func TestErrorRateAndGoodput(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base, cand := sideFrom("a", r, 3000, 0), sideFrom("b", r, 3000, 0) // 30 s each
	// 10% errors in the candidate
	for i := 0; i < 300; i++ {
		cand.Requests[i*10].Status, cand.Requests[i*10].Error = 500, "http 500"
	}
	cand.Requests[1].Error = "context canceled" // cancelled: excluded
	rows, err := Compare(base, cand, Options{SLO: &stats.SLO{TTFTMs: 100}})
	if err != nil {
		t.Fatal(err)
	}
	e := row(t, rows, ErrorRate, StatValue)
	if e.Verdict != report.VerdictWorse || e.CandidateN != 2999 || math.Abs(e.CandidateValue-300.0/2999) > 1e-12 || e.CILowAbs <= 0 || e.CILowAbs > e.DeltaAbs || e.PValue < 0 || e.PValue > 1e-6 {
		t.Errorf("error rate: %+v", e)
	}
	g := row(t, rows, GoodputAttainment, StatValue)
	if g.Verdict != report.VerdictWorse || g.LowerIsBetter {
		t.Errorf("attainment with 10%% errors: %+v", g)
	}
	rps := row(t, rows, RequestsPerSecond, StatValue)
	if rps.Verdict != report.VerdictWorse || math.Abs(rps.BaselineValue-100) > 1e-9 {
		t.Errorf("requests per second: %+v", rps)
	}
	row(t, rows, GoodputPerSecond, StatValue)
	if x := row(t, rows, OutputTokensPerS, StatValue); x.BaselineN != 30 || x.CILowAbs > x.DeltaAbs || x.CIHighAbs < x.DeltaAbs {
		t.Errorf("output tokens per second: %+v", x)
	}
	// Ten seconds of requests are too few buckets to call a throughput.
	rows, _ = Compare(sideFrom("a", r, 1000, 0), sideFrom("b", r, 1000, 0), Options{})
	if x := row(t, rows, RequestsPerSecond, StatValue); x.Verdict != report.VerdictInsufficient || x.BaselineN != 9 && x.BaselineN != 10 {
		t.Errorf("10 s run: %+v", x)
	}
}

func TestBucketRatesPerRun(t *testing.T) {
	one := func(r *report.RequestRecord) float64 { return 1 }
	s := Side{RunLengths: []int{3, 2}, Requests: []report.RequestRecord{
		{SentMs: 0, EndMs: 100}, {SentMs: 0, EndMs: 1500}, {SentMs: 0, EndMs: 2100}, // run 1: 2 whole buckets
		{SentMs: 10, EndMs: 500}, {SentMs: 10, EndMs: 1020}, // run 2: 1 whole bucket
	}}
	if got := bucketRates(s, one); !slices.Equal(got, []float64{1, 1, 1}) {
		t.Errorf("buckets %v, want [1 1 1]", got)
	}
}

// TestNewcombeExample checks the interval against Newcombe (1998), Table
// II, example (a): 56/70 − 48/80 = 0.2, hybrid score interval 0.0524 to
// 0.3339 at 95%.
func TestNewcombeExample(t *testing.T) {
	lo, hi := newcombe(56, 70, 48, 80, normalQuantile(0.975))
	if math.Abs(lo-0.0524) > 5e-5 || math.Abs(hi-0.3339) > 5e-5 {
		t.Errorf("newcombe: [%.4f, %.4f], want [0.0524, 0.3339]", lo, hi)
	}
	if z := normalQuantile(0.975); math.Abs(z-1.959964) > 1e-6 {
		t.Errorf("z = %v", z)
	}
}

// TestMannWhitneyByHand: a = {1,2,3}, b = {4,5,6}: U = 0, μ = 4.5,
// σ² = 9/12·7 = 5.25, z = (4.5 − 0.5)/√5.25 = 1.7457, p = 0.0809. With
// ties a = {1,2,2}, b = {2,3,4}: midranks 1, 3, 3 | 3, 5, 6, R₁ = 7, U = 1,
// tie group of 3 gives σ² = 9/12·(7 − 24/30) = 4.65, z = 3/√4.65 = 1.3912,
// p = 0.1642.
func TestMannWhitneyByHand(t *testing.T) {
	p, sup := mannWhitney([]float64{1, 2, 3}, []float64{4, 5, 6})
	if math.Abs(p-0.08086) > 1e-4 || sup != 0 {
		t.Errorf("p = %v, superiority %v", p, sup)
	}
	p, sup = mannWhitney([]float64{1, 2, 2}, []float64{2, 3, 4})
	if math.Abs(p-0.16417) > 1e-4 || math.Abs(sup-1.0/9) > 1e-12 {
		t.Errorf("ties: p = %v, superiority %v", p, sup)
	}
	if p, _ := mannWhitney([]float64{1, 1}, []float64{1, 1}); p != -1 {
		t.Errorf("all tied: p = %v, want -1", p)
	}
}

// TestBootQuantileMatchesResampling holds the Beta shortcut to the
// definition: the replicates' mean and spread equal those of resampling
// and sorting, within Monte Carlo error.
func TestBootQuantileMatchesResampling(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	xs := make([]float64, 300)
	for i := range xs {
		xs[i] = math.Exp(r.NormFloat64())
	}
	slices.Sort(xs)
	const b = 4000
	for _, q := range []float64{0.5, 0.9, 0.99} {
		fast := bootQuantile(r, xs, q, b)
		slow := make([]float64, b)
		buf := make([]float64, len(xs))
		for i := range slow {
			for j := range buf {
				buf[j] = xs[r.IntN(len(xs))]
			}
			slices.Sort(buf)
			slow[i] = quantileSorted(buf, q)
		}
		fm, fs := meanSD(fast)
		sm, ss := meanSD(slow)
		if math.Abs(fm-sm) > 4*ss/math.Sqrt(b)*math.Sqrt2 || math.Abs(fs-ss) > 0.1*ss {
			t.Errorf("q=%v: shortcut mean %.4f sd %.4f, resampling mean %.4f sd %.4f", q, fm, fs, sm, ss)
		}
	}
}

func TestDeterministicAndFinite(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	a, b := sideFrom("a", r, 200, 0), sideFrom("b", r, 200, 5)
	x, _ := Compare(a, b, Options{Seed: 3})
	y, _ := Compare(a, b, Options{Seed: 3})
	if !slices.Equal(x, y) {
		t.Error("equal seeds gave different results")
	}
	// A baseline of zeros: no relative delta, nothing NaN.
	for i := range a.Requests {
		a.Requests[i].FirstTokenMs = a.Requests[i].SentMs
	}
	a.Requests[0].SentMs = 1 // keeps FirstTokenMs > 0 only where SentMs > 0
	rows, _ := Compare(a, b, Options{})
	for _, r := range rows {
		for _, v := range []float64{r.DeltaPct, r.CILowPct, r.CIHighPct, r.DeltaAbs, r.CILowAbs, r.CIHighAbs, r.PValue} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("non-finite in %+v", r)
			}
		}
	}
	if _, err := Compare(a, b, Options{Confidence: 1.5}); err == nil {
		t.Error("confidence 1.5 accepted")
	}
	if _, err := Compare(a, b, Options{Resamples: 3}); err == nil {
		t.Error("3 resamples accepted")
	}
}

// BenchmarkCompare100k times a full comparison of 100,000 requests a side
// (go test -run XXX -bench Compare100k -benchtime 1x ./internal/compare/).
func BenchmarkCompare100k(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	x, y := sideFrom("a", r, 100_000, 0), sideFrom("b", r, 100_000, 1)
	b.ResetTimer()
	for range b.N {
		if _, err := Compare(x, y, Options{SLO: &stats.SLO{TTFTMs: 100}}); err != nil {
			b.Fatal(err)
		}
	}
}
