package engine

import (
	"math/rand/v2"
	"time"
)

// Schedule produces intended send offsets from the run's origin, in order.
// Schedules are pure: the same parameters (and seed) give the same offsets,
// so they are tested as tables, and the dispatcher consumes them separately.
type Schedule interface {
	// Next returns the offset of the next request; ok is false when the
	// schedule has no more.
	Next() (offset time.Duration, ok bool)
}

// Interface guards.
var (
	_ Schedule = (*Constant)(nil)
	_ Schedule = (*Poisson)(nil)
	_ Schedule = (*Trace)(nil)
)

// Constant sends request i at i/Rate seconds.
type Constant struct {
	Rate float64 // requests per second, > 0
	i    int64
}

// Next returns i/Rate. It is computed from i, never by accumulating gaps,
// so rounding does not drift over long runs (request 300,000 at 3 req/s is
// at exactly 100,000 s).
func (c *Constant) Next() (time.Duration, bool) {
	off := time.Duration(float64(c.i) / c.Rate * float64(time.Second))
	c.i++
	return off, true
}

// Poisson is a Poisson arrival process: gaps are independent and
// exponentially distributed with mean 1/Rate, drawn from a seeded source.
type Poisson struct {
	Rate float64 // mean requests per second, > 0
	rng  *rand.Rand
	t    float64 // seconds since the origin of the last arrival
	n    int64
}

// NewPoisson returns a Poisson schedule of rate req/s whose gaps come from
// a PCG generator seeded with seed.
func NewPoisson(rate float64, seed int64) *Poisson {
	return NewPoissonFrom(rate, rand.New(rand.NewPCG(uint64(seed), 0x9015)))
}

// NewPoissonFrom returns a Poisson schedule drawing its gaps from rng.
func NewPoissonFrom(rate float64, rng *rand.Rand) *Poisson {
	return &Poisson{Rate: rate, rng: rng}
}

// Next returns the next arrival; the first is at 0. ExpFloat64 draws from
// the exponential distribution of rate 1, so dividing by Rate gives mean
// 1/Rate. Arrival times are accumulated in float64 seconds: each addition
// rounds by at most t·2⁻⁵³, about 0.01 ns after a day of arrivals.
func (p *Poisson) Next() (time.Duration, bool) {
	if p.n > 0 {
		p.t += p.rng.ExpFloat64() / p.Rate
	}
	p.n++
	return time.Duration(p.t * float64(time.Second)), true
}

// Trace replays a workload's recorded arrival offsets multiplied by Scale
// (0.5 replays twice as fast, 2 half as fast). Offsets supplies the recorded
// offsets one at a time, lazily: the dispatcher feeds it the offset of the
// request it has just read, so a trace is never held in memory.
type Trace struct {
	Scale   float64 // > 0; 1 keeps the recorded timing
	Offsets func() (recorded time.Duration, ok bool)
}

// Next returns the next recorded offset × Scale.
func (t *Trace) Next() (time.Duration, bool) {
	rec, ok := t.Offsets()
	if !ok {
		return 0, false
	}
	return time.Duration(float64(rec) * t.Scale), true
}
