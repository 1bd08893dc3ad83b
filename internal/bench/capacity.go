package bench

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
)

// ErrNoCapacity is returned when no rate tried meets the SLOs.
var ErrNoCapacity = errors.New("no rate meets the SLOs")

// Capacity is a capacity search's settings.
type Capacity struct {
	// MinRate and MaxRate bound the rates tried, req/s; 0: a tenth of the
	// top, and 1.25 × the rate a throughput run achieves.
	MinRate, MaxRate float64
	// Precision: stop when the bracket is narrower than this fraction of
	// its upper end.
	Precision float64
	// RateProfile is the arrival process of the probes: constant or poisson.
	RateProfile string
}

// Validate checks the search's settings.
func (c Capacity) Validate() error {
	var errs []error
	if c.MinRate < 0 || c.MaxRate < 0 || (c.MaxRate > 0 && c.MinRate >= c.MaxRate) || math.IsInf(c.MaxRate, 0) || math.IsNaN(c.MinRate+c.MaxRate) {
		errs = append(errs, &FieldError{Field: "MinRate", Value: fmt.Sprintf("%v", c.MinRate), Err: fmt.Errorf("with a maximum rate of %v: want 0 <= min < max", c.MaxRate)})
	}
	if !(c.Precision > 0 && c.Precision < 1) {
		errs = append(errs, &FieldError{Field: "Precision", Value: fmt.Sprintf("%v", c.Precision), Err: errors.New("want a fraction strictly between 0 and 1")})
	}
	if err := validRateProfile(c.RateProfile); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// searchCapacity bisects over rates. A probe passes when its benchmark
// meets every SLO term and the detector (when on) did not fire; failed,
// timed-out and drain-cancelled requests count against every term
// (slo.Evaluate), so a rate at which most requests fail does not pass on
// the speed of the few that succeed. The bracket
// is [--min-rate, --max-rate], the top bootstrapped as 1.25 × a throughput
// run's rate when not given, the bottom a tenth of the top; the lower end must pass (else ErrNoCapacity), a passing
// upper end is the answer; otherwise the bracket halves until it is
// narrower than precision × its upper end, and the highest passing rate
// is returned. Every probe is appended to file.
func (r *Runner) SearchCapacity(ctx context.Context, c Capacity, file *report.File) (float64, error) {
	if r.plan.SLO == nil {
		return 0, &FieldError{Field: "SLO", Err: errors.New("is required: a capacity search looks for the highest rate that meets it")}
	}
	if err := errors.Join(c.Validate(), r.plan.Bounded()); err != nil {
		return 0, err
	}
	det, stderr := r.plan.Detector, r.stderr
	lo, hi := c.MinRate, c.MaxRate
	if hi == 0 {
		o, err := r.PointOK(ctx, engine.ProfileThroughput, engine.ProfileThroughput, 0, nil)
		if err != nil {
			return 0, err
		}
		tp := o.Benchmark
		file.Benchmarks = append(file.Benchmarks, tp)
		// A quarter above what the closed loop achieved, so that a short
		// throughput run's underestimate does not cap the answer.
		hi = RoundRate(1.25 * tp.Metrics.RequestsPerSecond)
		if !(hi > 0) {
			return 0, errors.New("capacity: the throughput run completed no requests")
		}
	}
	if lo == 0 {
		lo = RoundRate(hi / 10)
	}
	if lo >= hi {
		return 0, fmt.Errorf("capacity: --min-rate %g is not below the top of the range, %g req/s", lo, hi)
	}
	probe := func(rate float64) (bool, error) {
		// A rate where every request fails is a failing probe, not an
		// error: its SLO terms are +Inf.
		o, err := r.Point(ctx, RateName(c.RateProfile, rate), c.RateProfile, rate, det)
		if err != nil {
			return false, err
		}
		b := o.Benchmark
		file.Benchmarks = append(file.Benchmarks, b)
		ok := b.SLO != nil && b.SLO.Pass && (b.Saturation == nil || !b.Saturation.Detected)
		fmt.Fprintf(stderr, "capacity: %g req/s %s\n", rate, map[bool]string{true: "meets the SLOs", false: "does not"}[ok])
		return ok, nil
	}
	ok, err := probe(lo)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: even %g req/s, the lowest rate tried, fails (lower --min-rate to search below it)", ErrNoCapacity, lo)
	}
	if ok, err = probe(hi); err != nil || ok {
		if ok {
			fmt.Fprintf(stderr, "capacity: the top of the range, %g req/s, meets the SLOs; raise --max-rate to search above it\n", hi)
		}
		return hi, err
	}
	for (hi-lo)/hi > c.Precision {
		if err := ctx.Err(); err != nil {
			return lo, err
		}
		mid := RoundRate((lo + hi) / 2)
		if mid <= lo || mid >= hi {
			break
		}
		ok, err := probe(mid)
		if err != nil {
			return lo, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}
