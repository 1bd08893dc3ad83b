package engine

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestGammaScheduleTable(t *testing.T) {
	// First arrival at 0; the rest follow from PCG(seed, 0x6a33a) through
	// NormFloat64 and Float64, whose outputs math/rand/v2 specifies. The
	// distribution itself is checked by TestGammaGapsMatchTheirShape.
	got := take(NewGamma(10, 0.5, 1), 5)
	want := []time.Duration{0, 202929170, 213743935, 267830390, 268466756}
	if !slices.Equal(got, want) {
		t.Fatalf("rate 10, burstiness 0.5, seed 1: %v, want %v", got, want)
	}
	if slices.Equal(got, take(NewGamma(10, 0.5, 2), 5)) {
		t.Fatal("seeds 1 and 2 give the same schedule")
	}
	for _, b := range []float64{0.01, 0.3, 1, 7.5, 100} {
		offs := take(NewGamma(1000, b, 9), 2000)
		if offs[0] != 0 || !slices.IsSorted(offs) || !slices.Equal(offs, take(NewGamma(1000, b, 9), 2000)) {
			t.Fatalf("burstiness %v: not a reproducible, ordered schedule from 0", b)
		}
	}
}

// gapStats returns the mean and coefficient of variation of n gaps.
func gapStats(s Schedule, n int) (gaps []float64, mean, cv float64) {
	prev, _ := s.Next()
	gaps = make([]float64, 0, n)
	for range n {
		x, _ := s.Next()
		gaps = append(gaps, (x - prev).Seconds())
		prev = x
	}
	var sum, sq float64
	for _, g := range gaps {
		sum += g
	}
	mean = sum / float64(n)
	for _, g := range gaps {
		sq += (g - mean) * (g - mean)
	}
	return gaps, mean, math.Sqrt(sq/float64(n)) / mean
}

// erlangCDF is the CDF of the gamma distribution of integer shape k and
// rate λ: 1 − Σ_{i<k} e^(−λx) (λx)^i / i!.
func erlangCDF(k int, lambda, x float64) float64 {
	term, sum := 1.0, 1.0
	for i := 1; i < k; i++ {
		term *= lambda * x / float64(i)
		sum += term
	}
	return 1 - math.Exp(-lambda*x)*sum
}

func TestGammaGapsMatchTheirShape(t *testing.T) {
	const rate, n = 50.0, 40000
	for _, b := range []float64{0.25, 0.5, 1, 2, 4, 16} {
		gaps, mean, cv := gapStats(NewGamma(rate, b, 11), n)
		// The mean is 1/rate whatever the burstiness; its standard error is
		// (1/rate)·CV/√n, at most 0.2 ms here: 1.5 ms is over 7 of them.
		// The CV is 1/√B; 5% covers its sampling error (heavy-tailed for
		// small B: about 1.3% at B = 0.25) several times over.
		wantCV := 1 / math.Sqrt(b)
		if math.Abs(mean-1/rate) > 0.0015 || math.Abs(cv-wantCV) > 0.05*wantCV {
			t.Errorf("burstiness %v: mean gap %.5f s, CV %.4f; want %.5f and %.4f", b, mean, cv, 1/rate, wantCV)
		}
		if k := int(b); float64(k) == b {
			// Integer shapes: Kolmogorov–Smirnov against the Erlang CDF of
			// rate rate·B, critical value 1.63/√n at the 1% level.
			slices.Sort(gaps)
			ks := 0.0
			for i, g := range gaps {
				cdf := erlangCDF(k, rate*b, g)
				ks = max(ks, math.Abs(cdf-float64(i)/n), math.Abs(cdf-float64(i+1)/n))
			}
			if crit := 1.63 / math.Sqrt(n); ks > crit {
				t.Errorf("burstiness %v: KS distance %.4f > %.4f from Erlang(%d)", b, ks, crit, k)
			}
		}
	}
}
