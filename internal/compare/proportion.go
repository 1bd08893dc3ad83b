package compare

import "math"

// wilson is the Wilson score interval of a proportion x/n at normal
// quantile z (Wilson 1927), well behaved at 0 and 1 where the Wald
// interval collapses.
func wilson(x, n, z float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	p := x / n
	den := 1 + z*z/n
	centre := (p + z*z/(2*n)) / den
	half := z / den * math.Sqrt(p*(1-p)/n+z*z/(4*n*n))
	return max(centre-half, 0), min(centre+half, 1)
}

// newcombe is the interval of the difference p₁ − p₂ of two independent
// proportions by Newcombe's hybrid score method (method 10 of Newcombe,
// "Interval estimation for the difference between independent
// proportions", Statistics in Medicine 17, 1998), built from the two Wilson
// intervals:
//
//	L = δ − √((p₁−l₁)² + (u₂−p₂)²),  U = δ + √((u₁−p₁)² + (p₂−l₂)²)
func newcombe(x1, n1, x2, n2, z float64) (lo, hi float64) {
	p1, p2 := x1/n1, x2/n2
	l1, u1 := wilson(x1, n1, z)
	l2, u2 := wilson(x2, n2, z)
	d := p1 - p2
	return d - math.Sqrt((p1-l1)*(p1-l1)+(u2-p2)*(u2-p2)), d + math.Sqrt((u1-p1)*(u1-p1)+(p2-l2)*(p2-l2))
}

// twoProportionP is the two-sided p-value of the pooled two-proportion z
// test of p₁ = p₂; −1 when it does not apply (no trials, or a pooled
// proportion of 0 or 1, where both samples agree exactly).
func twoProportionP(x1, n1, x2, n2 float64) float64 {
	if n1 == 0 || n2 == 0 {
		return -1
	}
	p := (x1 + x2) / (n1 + n2)
	se := math.Sqrt(p * (1 - p) * (1/n1 + 1/n2))
	if se == 0 {
		return -1
	}
	return normalTwoSided((x1/n1 - x2/n2) / se)
}
