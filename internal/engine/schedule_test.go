package engine

import (
	"math"
	"slices"
	"testing"
	"time"
)

const ms = time.Millisecond

func take(s Schedule, n int) []time.Duration {
	var out []time.Duration
	for range n {
		off, ok := s.Next()
		if !ok {
			break
		}
		out = append(out, off)
	}
	return out
}

func TestConstantScheduleTable(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want []time.Duration
	}{
		{4, []time.Duration{0, 250 * ms, 500 * ms, 750 * ms, time.Second}},
		{0.5, []time.Duration{0, 2 * time.Second, 4 * time.Second}},
		{3, []time.Duration{0, 333333333, 666666666, time.Second, 1333333333}},
		{1e6, []time.Duration{0, 1000, 2000, 3000}},
	} {
		if got := take(&Constant{Rate: tc.rate}, len(tc.want)); !slices.Equal(got, tc.want) {
			t.Errorf("rate %v: %v, want %v", tc.rate, got, tc.want)
		}
	}
	c := &Constant{Rate: 3} // offset i is i/3 s computed, not accumulated: no drift
	for range 300000 {
		c.Next()
	}
	if got, _ := c.Next(); got != 100000*time.Second {
		t.Fatalf("request 300000 at %v, want 100000s", got)
	}
}

func TestTraceScheduleTable(t *testing.T) {
	recorded := []time.Duration{0, 100 * ms, 100 * ms, time.Second, 90 * time.Minute}
	for _, tc := range []struct {
		scale float64
		want  []time.Duration
	}{
		{1, recorded},
		{0.5, []time.Duration{0, 50 * ms, 50 * ms, 500 * ms, 45 * time.Minute}},
		{2, []time.Duration{0, 200 * ms, 200 * ms, 2 * time.Second, 3 * time.Hour}},
	} {
		i := 0
		tr := &Trace{Scale: tc.scale, Offsets: func() (time.Duration, bool) {
			if i == len(recorded) {
				return 0, false
			}
			i++
			return recorded[i-1], true
		}}
		got := take(tr, 10) // stops where the offsets end
		if !slices.Equal(got, tc.want) {
			t.Errorf("scale %v: %v, want %v", tc.scale, got, tc.want)
		}
	}
}

func TestPoissonScheduleTable(t *testing.T) {
	// The first arrival is at 0; the rest follow from PCG(seed, 0x9015),
	// whose output math/rand/v2 specifies, through ExpFloat64. Should a Go
	// release change ExpFloat64's algorithm, regenerate the table: the
	// distribution itself is checked by TestPoissonGapsAreExponential.
	got := take(NewPoisson(10, 1), 5)
	if got[0] != 0 || !slices.Equal(got, take(NewPoisson(10, 1), 5)) {
		t.Fatalf("not reproducible from its seed: %v", got)
	}
	if slices.Equal(got, take(NewPoisson(10, 2), 5)) {
		t.Fatal("seeds 1 and 2 give the same schedule")
	}
	if !slices.IsSorted(got) {
		t.Fatalf("offsets go back in time: %v", got)
	}
	want := poissonSeed1Rate10
	if !slices.Equal(got, want) {
		t.Fatalf("seed 1, rate 10: %v, want %v", got, want)
	}
}

// poissonSeed1Rate10 are the first offsets of NewPoisson(10, 1).
var poissonSeed1Rate10 = []time.Duration{0, 69278265, 83025202, 214351988, 272693504}

func TestPoissonGapsAreExponential(t *testing.T) {
	const rate, n = 50.0, 20000
	p := NewPoisson(rate, 7)
	prev, _ := p.Next()
	gaps := make([]float64, 0, n)
	for range n {
		x, _ := p.Next()
		gaps = append(gaps, (x - prev).Seconds())
		prev = x
	}
	var sum, sq float64
	for _, g := range gaps {
		sum += g
	}
	mean := sum / n
	for _, g := range gaps {
		sq += (g - mean) * (g - mean)
	}
	sd := math.Sqrt(sq / n)
	// Exponential of rate 50: mean = sd = 20 ms. With 20,000 gaps the
	// standard error of the mean is 20 ms/√20000 = 0.14 ms, so 1 ms bounds
	// are 7 standard errors.
	if math.Abs(mean-1/rate) > 0.001 || math.Abs(sd-1/rate) > 0.001 {
		t.Fatalf("gaps mean %.4f s, sd %.4f s; want 0.02 and 0.02", mean, sd)
	}
	// Kolmogorov–Smirnov distance between the empirical CDF of the gaps and
	// the exponential CDF 1 − e^(−rate·x); the critical value at the 1%
	// level is 1.63/√n.
	slices.Sort(gaps)
	ks := 0.0
	for i, g := range gaps {
		cdf := 1 - math.Exp(-rate*g)
		ks = max(ks, math.Abs(cdf-float64(i)/n), math.Abs(cdf-float64(i+1)/n))
	}
	if crit := 1.63 / math.Sqrt(n); ks > crit {
		t.Fatalf("KS distance %.4f > %.4f: the gaps are not exponential", ks, crit)
	}
}
