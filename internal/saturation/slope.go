package saturation

import "math"

// slope is an online least-squares fit of y on x over a window that points
// enter and leave, kept as running sums so each update is O(1). Its test is
// GuideLLM's: a positive slope whose relative margin of error,
// t·SE(slope)/slope, is below a threshold.
type slope struct {
	n                          int
	sx, sy, sxy, sxx, syy      float64
	threshold, confidence, eps float64
	lastSlope, lastMOE         float64
	haveSlope                  bool
}

func (s *slope) add(x, y float64) {
	s.n++
	s.sx += x
	s.sy += y
	s.sxy += x * y
	s.sxx += x * x
	s.syy += y * y
}

func (s *slope) remove(x, y float64) {
	s.n--
	s.sx -= x
	s.sy -= y
	s.sxy -= x * y
	s.sxx -= x * x
	s.syy -= y * y
}

// positive fits the window and reports whether its slope is positive with a
// margin of error below the threshold. effN is the sample size the
// t-distribution and the residual variance use: the caller caps it at the
// number of seconds observed, because requests of the same second are
// strongly correlated (GuideLLM's reasoning, kept for compatibility).
//
// With centred sums Sxx = Σx² − (Σx)²/n, Sxy and Syy likewise:
//
//	slope = Sxy / Sxx
//	RSS   = Syy − Sxy²/Sxx          (clamped at 0)
//	SE    = √(RSS / (effN − 2) / Sxx)
//	MOE   = t(1 − α/2, effN − 2) · SE / slope
func (s *slope) positive(effN float64) bool {
	if effN < 3 || s.n == 0 {
		return false
	}
	n := float64(s.n)
	cxx := max(s.sxx-s.sx*s.sx/n, s.eps)
	cxy := s.sxy - s.sx*s.sy/n
	cyy := s.syy - s.sy*s.sy/n
	b := cxy / cxx
	rss := max(cyy-cxy*cxy/cxx, 0)
	dof := effN - 2
	se := math.Sqrt(rss / dof / cxx)
	moe := tQuantile(1-(1-s.confidence)/2, dof) * se / max(b, s.eps)
	s.lastSlope, s.lastMOE, s.haveSlope = b, moe, true
	return b > 0 && moe < s.threshold
}

// tQuantile approximates the quantile p of Student's t with dof degrees of
// freedom the way GuideLLM does, so that thresholds mean the same: the
// normal quantile by Abramowitz & Stegun 26.2.23 (error < 4.5e-4), then the
// first two terms of the Cornish–Fisher expansion in 1/dof (A&S 26.7.5).
// The second term is GuideLLM's (5z⁴ + 16z³ + 3z²)/96, not the textbook
// (5z⁵ + 16z³ + 3z)/96: kept so that a margin of error means the same number
// in both tools. Within about 1% from 10 degrees of freedom up; it
// undershoots badly below that (about half at dof = 1).
func tQuantile(p, dof float64) float64 {
	if dof <= 0 {
		return math.NaN()
	}
	const c0, c1, c2 = 2.515517, 0.802853, 0.010328
	const d1, d2, d3 = 1.432788, 0.189269, 0.001308
	q, sign := 1-p, 1.0
	if p < 0.5 {
		q, sign = p, -1
	}
	t := math.Sqrt(-2 * math.Log(q))
	z := sign * (t - (c0+c1*t+c2*t*t)/(1+d1*t+d2*t*t+d3*t*t*t))
	z2 := z * z
	g1 := (z2*z + z) / 4
	g2 := (5*z2*z2 + 16*z2*z + 3*z2) / 96
	return z + g1/dof + g2/(dof*dof)
}
