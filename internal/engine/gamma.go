package engine

import (
	"math"
	"math/rand/v2"
	"time"
)

var _ Schedule = (*Gamma)(nil)

// Gamma is a bursty arrival process: gaps are independent and gamma
// distributed with shape Burstiness and scale 1/(Rate·Burstiness), so their
// mean is 1/Rate whatever the burstiness and their coefficient of variation
// is 1/√Burstiness (vLLM `bench serve --burstiness` and AIPerf define it the
// same way). Burstiness 1 is a Poisson process; below 1 arrivals come in
// bursts separated by longer silences; above 1 they are more even than
// Poisson, approaching Constant as it grows.
type Gamma struct {
	Rate       float64 // mean requests per second, > 0
	Burstiness float64 // shape of the gap distribution, > 0
	rng        *rand.Rand
	t          float64 // seconds since the origin of the last arrival
	n          int64
}

// NewGamma returns a gamma schedule of mean rate req/s and the given
// burstiness, drawing from a PCG generator seeded with seed.
func NewGamma(rate, burstiness float64, seed int64) *Gamma {
	return &Gamma{Rate: rate, Burstiness: burstiness, rng: rand.New(rand.NewPCG(uint64(seed), 0x6a33a))}
}

// Next returns the next arrival; the first is at 0. Arrival times are
// accumulated in float64 seconds, as Poisson's are.
func (g *Gamma) Next() (time.Duration, bool) {
	if g.n > 0 {
		g.t += gammaVariate(g.rng, g.Burstiness) / (g.Burstiness * g.Rate)
	}
	g.n++
	return time.Duration(g.t * float64(time.Second)), true
}

// gammaVariate draws from the gamma distribution of shape k and scale 1
// (mean k) by Marsaglia and Tsang's method ("A simple method for generating
// gamma variables", ACM TOMS 26(3), 2000): with d = k − 1/3 and
// c = 1/√(9d), v = (1 + c·x)³ for a standard normal x is accepted as d·v
// with the squeeze u < 1 − 0.0331·x⁴ or, failing that, the exact test
// ln u < x²/2 + d − d·v + d·ln v. Shapes below 1 use the boost
// Gamma(k) = Gamma(k + 1) · u^(1/k).
func gammaVariate(rng *rand.Rand, k float64) float64 {
	if k < 1 {
		u := 1 - rng.Float64() // (0, 1]: u^(1/k) is never 0^(1/k) by accident
		return gammaVariate(rng, k+1) * math.Pow(u, 1/k)
	}
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		x2 := x * x
		if u < 1-0.0331*x2*x2 {
			return d * v
		}
		if u > 0 && math.Log(u) < 0.5*x2+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
