package engine

import (
	"math/rand/v2"
	"time"
)

// Schedule produces intended send offsets from the run's origin. Schedules
// are pure: the same parameters give the same offsets, so they are tested
// as tables, and dispatch consumes them separately.
type Schedule interface {
	// Next returns the offset of the next request; ok is false when the
	// schedule has no more.
	Next() (offset time.Duration, ok bool)
}

// Constant sends request i at i/rate seconds.
type Constant struct {
	Rate float64 // requests per second
	i    int64
}

var _ Schedule = (*Constant)(nil)

// Next returns i/rate. Computed from i, never by accumulating gaps, so
// there is no drift over long runs.
func (c *Constant) Next() (time.Duration, bool) {
	off := time.Duration(float64(c.i) / c.Rate * float64(time.Second))
	c.i++
	return off, true
}

// Poisson sends with exponentially distributed gaps of mean 1/rate: a
// Poisson arrival process, seeded.
type Poisson struct {
	Rate float64
	rng  *rand.Rand
	t    float64 // seconds
	n    int
}

var _ Schedule = (*Poisson)(nil)

// NewPoisson returns a Poisson schedule at rate req/s from seed.
func NewPoisson(rate float64, seed int64) *Poisson {
	return &Poisson{Rate: rate, rng: rand.New(rand.NewPCG(uint64(seed), 0x9015)), n: 0}
}

// Next returns the next arrival; the first is at 0.
func (p *Poisson) Next() (time.Duration, bool) {
	if p.n > 0 {
		p.t += p.rng.ExpFloat64() / p.Rate
	}
	p.n++
	return time.Duration(p.t * float64(time.Second)), true
}

// Scaled multiplies recorded trace offsets by Scale (0.5 replays twice as fast).
type Scaled struct {
	Scale float64
}

// At returns the scaled offset of a recorded one.
func (s Scaled) At(recorded time.Duration) time.Duration {
	return time.Duration(float64(recorded) * s.Scale)
}
