package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
)

// Point runs one benchmark of the plan at profile and rate (0 for closed
// loops), named name, with the detector det (nil: none). A benchmark in
// which every request failed is still a result (a capacity probe that
// fails its SLOs), unless nothing was sent at all; PointOK also refuses it.
// The plan's time scale does not apply: a point's rate is its own.
func (r *Runner) Point(ctx context.Context, name, profile string, rate float64, det *saturation.Config) (Outcome, error) {
	cfg := r.plan.Engine
	cfg.Profile, cfg.Rate, cfg.TimeScale = profile, rate, 1
	if profile == engine.ProfileThroughput && r.plan.ThroughputConcurrency > 0 {
		cfg.MaxConcurrency = r.plan.ThroughputConcurrency
	}
	o, err := r.Run(ctx, cfg, name, 0, det)
	if err != nil {
		return Outcome{}, fmt.Errorf("benchmark %s: %w", name, err)
	}
	if len(o.Run.Results) == 0 {
		return Outcome{}, fmt.Errorf("benchmark %s: the workload produced no requests", name)
	}
	return o, nil
}

// PointOK is Point, failing when no request succeeded (FailureSummary).
func (r *Runner) PointOK(ctx context.Context, name, profile string, rate float64, det *saturation.Config) (Outcome, error) {
	o, err := r.Point(ctx, name, profile, rate, det)
	if err != nil {
		return o, err
	}
	if err := FailureSummary(o.Run); err != nil {
		return Outcome{}, fmt.Errorf("benchmark %s: %w", name, err)
	}
	return o, nil
}

// Bounded checks that every benchmark of a multi-benchmark command (a
// sweep, a capacity search) ends by itself.
func (p *Plan) Bounded() error {
	if p.Engine.MaxSeconds <= 0 && p.Engine.MaxRequests <= 0 {
		return &FieldError{Field: "MaxSeconds", Err: errors.New("every benchmark of a sweep or a capacity search needs a bound: a maximum duration or request count")}
	}
	return nil
}

// Sweep is a sweep's settings.
type Sweep struct {
	// Points is the total number of benchmarks: synchronous, throughput,
	// then Points − 2 fixed rates between their rates.
	Points int
	// RateProfile is the arrival process of the fixed-rate benchmarks:
	// constant (GuideLLM's default) or poisson.
	RateProfile string
}

// Validate checks the sweep's settings.
func (s Sweep) Validate() error {
	var errs []error
	if s.Points < 3 {
		errs = append(errs, &FieldError{Field: "Points", Value: strconv.Itoa(s.Points), Err: errors.New("want at least 3 (synchronous, throughput and one rate)")})
	}
	if err := validRateProfile(s.RateProfile); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func validRateProfile(p string) error {
	if p != engine.ProfileConstant && p != engine.ProfilePoisson {
		return &FieldError{Field: "RateProfile", Value: p, Err: errors.New("want constant or poisson")}
	}
	return nil
}

// sweepRates are the constant rates of a sweep of points benchmarks in
// total, GuideLLM's: numpy.linspace(sync, throughput, points−1)[1:], the
// points − 2 rates evenly spaced above the synchronous rate up to and
// including the throughput rate.
func sweepRates(sync, throughput float64, points int) []float64 {
	n := points - 2
	if n < 1 {
		return nil
	}
	out := make([]float64, n)
	for k := 1; k <= n; k++ {
		out[k-1] = sync + (throughput-sync)*float64(k)/float64(n)
	}
	return out
}

// sweepDetector is the detector a sweep runs in every benchmark: the
// plan's, or the defaults in monitor mode, so that a firing always ends
// the escalation.
func sweepDetector(det *saturation.Config) *saturation.Config {
	if det != nil {
		return det
	}
	c := saturation.DefaultConfig()
	c.Mode = saturation.Monitor
	return &c
}

// RateName is a benchmark's name for a constant rate, e.g. "constant@12.3".
func RateName(profile string, rate float64) string {
	return profile + "@" + strconv.FormatFloat(rate, 'f', -1, 64)
}

// RunSweep runs a sweep (synchronous, then throughput, then fixed rates
// interpolated between their achieved rates, GuideLLM's), each benchmark
// bounded by the plan's limits; the rates stop at the first benchmark where
// the over-saturation detector (the plan's, else the defaults in monitor
// mode) fires. It returns the benchmarks that completed.
func (r *Runner) RunSweep(ctx context.Context, s Sweep) ([]report.Benchmark, error) {
	if err := errors.Join(s.Validate(), r.plan.Bounded()); err != nil {
		return nil, err
	}
	det := sweepDetector(r.plan.Detector)
	stderr := r.stderr
	var out []report.Benchmark
	sync, err := r.PointOK(ctx, engine.ProfileSynchronous, engine.ProfileSynchronous, 0, det)
	if err != nil {
		return out, err
	}
	out = append(out, sync.Benchmark)
	tp, err := r.PointOK(ctx, engine.ProfileThroughput, engine.ProfileThroughput, 0, det)
	if err != nil {
		return out, err
	}
	out = append(out, tp.Benchmark)
	lo, hi := sync.Benchmark.Metrics.RequestsPerSecond, tp.Benchmark.Metrics.RequestsPerSecond
	if !(lo > 0) && !(hi > 0) {
		return out, errors.New("sweep: neither synchronous nor throughput completed a request per second")
	}
	rates := sweepRates(lo, hi, s.Points)
	for i, rate := range rates {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		rate = RoundRate(rate)
		if !(rate > 0) {
			continue
		}
		profile := s.RateProfile
		o, err := r.PointOK(ctx, RateName(profile, rate), profile, rate, det)
		if err != nil {
			return out, err
		}
		b := o.Benchmark
		out = append(out, b)
		if b.Saturation != nil && b.Saturation.Detected {
			if left := len(rates) - i - 1; left > 0 {
				fmt.Fprintf(stderr, "sweep: over-saturation at %g req/s (%s); higher rates skipped (%d)\n", rate, b.Saturation.Signal, left)
			} else {
				fmt.Fprintf(stderr, "sweep: over-saturation at %g req/s (%s), the highest rate\n", rate, b.Saturation.Signal)
			}
			break
		}
	}
	return out, nil
}

// RoundRate keeps three significant digits, so names and configs read well.
func RoundRate(r float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(r, 'g', 3, 64), 64)
	return v
}
