package engine

import (
	"math/rand/v2"
	"time"

	"github.com/reprise-llm/reprise/internal/variate"
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
		g.t += variate.Gamma(g.rng, g.Burstiness) / (g.Burstiness * g.Rate)
	}
	g.n++
	return time.Duration(g.t * float64(time.Second)), true
}
