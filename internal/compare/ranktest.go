package compare

import (
	"math"
	"slices"
)

// mannWhitney is the two-sided p-value of the Mann–Whitney U (Wilcoxon
// rank-sum) test of "neither sample tends to be larger than the other", by
// the normal approximation with the tie correction and a continuity
// correction of ½:
//
//	U  = R₁ − n₁(n₁+1)/2            (R₁: rank sum of sample a, midranks for ties)
//	μ  = n₁n₂/2
//	σ² = n₁n₂/12 · ((N+1) − Σ(t³−t)/(N(N−1)))   (t: size of each tie group)
//	z  = (|U − μ| − ½)/σ
//
// It also returns the probability of superiority P(A > B) + ½P(A = B) =
// U/(n₁n₂), an effect size. It returns p = −1 when either sample is empty
// or every value is tied (no test applies).
func mannWhitney(a, b []float64) (p, superiority float64) {
	n1, n2 := len(a), len(b)
	if n1 == 0 || n2 == 0 {
		return -1, math.NaN()
	}
	type obs struct {
		v     float64
		fromA bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range a {
		all = append(all, obs{v, true})
	}
	for _, v := range b {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(x, y obs) int {
		switch {
		case x.v < y.v:
			return -1
		case x.v > y.v:
			return 1
		}
		return 0
	})
	N := float64(n1 + n2)
	var rankA, tieSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mid := float64(i+j+1) / 2 // ranks i+1 … j, averaged
		for k := i; k < j; k++ {
			if all[k].fromA {
				rankA += mid
			}
		}
		if t := float64(j - i); t > 1 {
			tieSum += t*t*t - t
		}
		i = j
	}
	f1, f2 := float64(n1), float64(n2)
	u := rankA - f1*(f1+1)/2
	superiority = u / (f1 * f2)
	variance := f1 * f2 / 12 * ((N + 1) - tieSum/(N*(N-1)))
	if variance <= 0 || N < 2 {
		return -1, superiority
	}
	z := max(math.Abs(u-f1*f2/2)-0.5, 0) / math.Sqrt(variance)
	return normalTwoSided(z), superiority
}
