// Package variate draws random variates the schedules and the statistics
// need beyond math/rand/v2's: gamma and beta.
package variate

import (
	"math"
	"math/rand/v2"
)

// Gamma draws from the gamma distribution of shape k > 0 and scale 1
// (mean k, variance k) by Marsaglia and Tsang's method ("A simple method
// for generating gamma variables", ACM TOMS 26(3), 2000): with d = k − 1/3
// and c = 1/√(9d), v = (1 + c·x)³ for a standard normal x is accepted as
// d·v with the squeeze u < 1 − 0.0331·x⁴ or, failing that, the exact test
// ln u < x²/2 + d − d·v + d·ln v. Shapes below 1 use the boost
// Gamma(k) = Gamma(k + 1) · u^(1/k).
func Gamma(rng *rand.Rand, k float64) float64 {
	if k < 1 {
		u := 1 - rng.Float64() // (0, 1]: u^(1/k) is never 0^(1/k) by accident
		return Gamma(rng, k+1) * math.Pow(u, 1/k)
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

// Beta draws from Beta(a, b), a, b > 0, as X/(X+Y) with X ~ Gamma(a) and
// Y ~ Gamma(b).
func Beta(rng *rand.Rand, a, b float64) float64 {
	x := Gamma(rng, a)
	y := Gamma(rng, b)
	return x / (x + y)
}
