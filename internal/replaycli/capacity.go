package replaycli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
)

const capacitySynopsis = "replay capacity --target URL --workload SPEC --slo SPEC (--max-seconds S | --max-requests N) [--min-rate R] [--max-rate R] [--precision F] [--output-dir DIR]"

// ErrNoCapacity is returned when no rate tried meets the SLOs.
var ErrNoCapacity = errors.New("no rate meets the SLOs")

type capacityOptions struct {
	minRate, maxRate, precision float64
}

// runCapacity is replay capacity: the highest rate that meets --slo, by
// bisection over constant (or poisson) rates.
func runCapacity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o benchOptions
	var c capacityOptions
	fs := benchFlags(&o)
	fs.Init("replay capacity", fs.ErrorHandling())
	fs.Float64Var(&c.minRate, "min-rate", 0, "lowest rate tried, req/s (0: a tenth of the highest)")
	fs.Float64Var(&c.maxRate, "max-rate", 0, "highest rate tried, req/s (0: 1.25 × the rate a throughput run achieves)")
	fs.Float64Var(&c.precision, "precision", 0.05, "stop when the bracket is narrower than this fraction of its upper end")
	if err := parse(fs, args, stdout, capacitySynopsis, nil); err != nil { // nil: the environment, os.LookupEnv semantics
		return err
	}
	if fs.NArg() > 0 {
		return cli.UsageError("replay capacity: unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if err := o.validate(); err != nil {
		errs = append(errs, err)
	}
	if o.gate.slo == "" {
		errs = append(errs, errors.New("--slo is required"))
	}
	if c.minRate < 0 || c.maxRate < 0 || (c.maxRate > 0 && c.minRate >= c.maxRate) || math.IsInf(c.maxRate, 0) || math.IsNaN(c.minRate+c.maxRate) {
		errs = append(errs, fmt.Errorf("--min-rate %v --max-rate %v: want 0 <= min < max", c.minRate, c.maxRate))
	}
	if !(c.precision > 0 && c.precision < 1) {
		errs = append(errs, fmt.Errorf("--precision %v: want a fraction strictly between 0 and 1", c.precision))
	}
	if err := errors.Join(errs...); err != nil {
		return cli.AsUsage(err)
	}
	if err := o.gate.parse(); err != nil {
		return err
	}
	env, err := newBenchEnv(ctx, &o, stderr)
	if err != nil {
		return err
	}
	file := &report.File{Tool: "reprise", Created: time.Now().UTC(), Command: append([]string{"replay", "capacity"}, args...), Labels: labels(o.labels)}
	best, err := searchCapacity(ctx, env, &c, o.gate.detector, file, stderr)
	if len(file.Benchmarks) > 0 {
		if werr := report.WriteAll(o.outputDir, file); werr != nil {
			return errors.Join(err, fmt.Errorf("writing results: %w", werr))
		}
		for i := range file.Benchmarks {
			gateSummary(stdout, &file.Benchmarks[i])
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "capacity: %g req/s meets %s (results in %s)\n", best, o.gate.spec.String(), o.outputDir)
	return nil
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
func searchCapacity(ctx context.Context, env *benchEnv, c *capacityOptions, det *saturation.Config, file *report.File, stderr io.Writer) (float64, error) {
	lo, hi := c.minRate, c.maxRate
	if hi == 0 {
		tp, _, err := env.bench(ctx, engine.ProfileThroughput, engine.ProfileThroughput, 0, nil, stderr)
		if err != nil {
			return 0, err
		}
		file.Benchmarks = append(file.Benchmarks, tp)
		// A quarter above what the closed loop achieved, so that a short
		// throughput run's underestimate does not cap the answer.
		hi = roundRate(1.25 * tp.Metrics.RequestsPerSecond)
		if !(hi > 0) {
			return 0, errors.New("capacity: the throughput run completed no requests")
		}
	}
	if lo == 0 {
		lo = roundRate(hi / 10)
	}
	if lo >= hi {
		return 0, fmt.Errorf("capacity: --min-rate %g is not below the top of the range, %g req/s", lo, hi)
	}
	probe := func(rate float64) (bool, error) {
		// A rate where every request fails is a failing probe, not an
		// error: its SLO terms are +Inf.
		b, _, err := env.benchFailing(ctx, rateName(env.o.gate.rateProfile, rate), env.o.gate.rateProfile, rate, det, stderr)
		if err != nil {
			return false, err
		}
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
	for (hi-lo)/hi > c.precision {
		if err := ctx.Err(); err != nil {
			return lo, err
		}
		mid := roundRate((lo + hi) / 2)
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
