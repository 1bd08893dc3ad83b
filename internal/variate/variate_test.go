package variate

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestGammaMoments(t *testing.T) {
	// Gamma(k, 1) has mean k and variance k, for shapes on both sides of
	// Marsaglia–Tsang's k ≥ 1 branch, up to the large shapes the bootstrap
	// of percentiles draws.
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 100000
	for _, k := range []float64{0.05, 0.3, 1, 1.7, 9, 250, 90000} {
		var sum, sq float64
		for range n {
			x := Gamma(rng, k)
			if !(x >= 0) || math.IsInf(x, 0) {
				t.Fatalf("shape %v: variate %v", k, x)
			}
			sum += x
			sq += x * x
		}
		mean := sum / n
		variance := sq/n - mean*mean
		// Standard error of the mean √(k/n); of the variance about
		// k·√((2 + 6/k)/n).
		if se := math.Sqrt(k / n); math.Abs(mean-k) > 6*se {
			t.Errorf("shape %v: mean %.4f, want %v ± %.4f", k, mean, k, 6*se)
		}
		if se := k * math.Sqrt((2+6/k)/n); math.Abs(variance-k) > 6*se {
			t.Errorf("shape %v: variance %.4f, want %v ± %.4f", k, variance, k, 6*se)
		}
	}
}

func TestBetaMoments(t *testing.T) {
	// Beta(a, b): mean a/(a+b), variance ab/((a+b)²(a+b+1)).
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 100000
	for _, p := range [][2]float64{{1, 1}, {2, 5}, {50, 951}, {0.5, 0.5}} {
		a, b := p[0], p[1]
		var sum, sq float64
		for range n {
			x := Beta(rng, a, b)
			if !(x >= 0 && x <= 1) {
				t.Fatalf("beta(%v, %v): variate %v", a, b, x)
			}
			sum += x
			sq += x * x
		}
		mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
		wantMean := a / (a + b)
		wantVar := a * b / ((a + b) * (a + b) * (a + b + 1))
		if math.Abs(mean-wantMean) > 6*math.Sqrt(wantVar/n) {
			t.Errorf("beta(%v, %v): mean %.5f, want %.5f", a, b, mean, wantMean)
		}
		if math.Abs(variance-wantVar) > 0.05*wantVar {
			t.Errorf("beta(%v, %v): variance %.6f, want %.6f", a, b, variance, wantVar)
		}
	}
}
