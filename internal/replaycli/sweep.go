package replaycli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
)

// profileSweep is --profile sweep: several benchmarks, not an engine profile.
const profileSweep = "sweep"

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
// --detect-saturation one, or the defaults in monitor mode, so that a
// firing always ends the escalation.
func sweepDetector(g *gateOptions) *saturation.Config {
	if g.detector != nil {
		return g.detector
	}
	c := saturation.DefaultConfig()
	c.Mode = saturation.Monitor
	return &c
}

// rateName is a benchmark's name for a constant rate, e.g. "constant@12.3".
func rateName(profile string, rate float64) string {
	return profile + "@" + strconv.FormatFloat(rate, 'f', -1, 64)
}

// runSweep is replay run --profile sweep: synchronous, then throughput,
// then constant (or, with --rate-profile, poisson) rates interpolated
// between their achieved rates, each
// bounded by --max-seconds/--max-requests; the rates stop at the first
// benchmark where the over-saturation detector fires.
func runSweep(ctx context.Context, o *benchOptions, args []string, stdout, stderr io.Writer) error {
	env, err := newBenchEnv(ctx, o, stderr)
	if err != nil {
		return err
	}
	det := sweepDetector(&o.gate)
	file := &report.File{Tool: "reprise", Created: time.Now().UTC(), Command: append([]string{"replay", "run"}, args...), Labels: labels(o.labels)}
	benchmarks, err := sweep(ctx, env, det, o.gate.sweepPoints, stderr)
	file.Benchmarks = benchmarks
	if len(benchmarks) > 0 {
		if werr := report.WriteAll(o.outputDir, file); werr != nil {
			return errors.Join(err, fmt.Errorf("writing results: %w", werr))
		}
		if werr := report.WriteTable(stdout, file); werr != nil {
			return errors.Join(err, werr)
		}
		fmt.Fprintf(stdout, "\nresults in %s (benchmarks.json, benchmarks.csv, report.html)\n", o.outputDir)
		for i := range benchmarks {
			gateSummary(stdout, &benchmarks[i])
		}
	}
	return err
}

// sweep runs the benchmarks of a sweep and returns those that completed.
func sweep(ctx context.Context, env *benchEnv, det *saturation.Config, points int, stderr io.Writer) ([]report.Benchmark, error) {
	var out []report.Benchmark
	sync, _, err := env.bench(ctx, engine.ProfileSynchronous, engine.ProfileSynchronous, 0, det, stderr)
	if err != nil {
		return out, err
	}
	out = append(out, sync)
	tp, _, err := env.bench(ctx, engine.ProfileThroughput, engine.ProfileThroughput, 0, det, stderr)
	if err != nil {
		return out, err
	}
	out = append(out, tp)
	lo, hi := sync.Metrics.RequestsPerSecond, tp.Metrics.RequestsPerSecond
	if !(lo > 0) && !(hi > 0) {
		return out, errors.New("sweep: neither synchronous nor throughput completed a request per second")
	}
	rates := sweepRates(lo, hi, points)
	for i, rate := range rates {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		rate = roundRate(rate)
		if !(rate > 0) {
			continue
		}
		profile := env.o.gate.rateProfile
		b, _, err := env.bench(ctx, rateName(profile, rate), profile, rate, det, stderr)
		if err != nil {
			return out, err
		}
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

// roundRate keeps three significant digits, so names and configs read well.
func roundRate(r float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(r, 'g', 3, 64), 64)
	return v
}

// sloError is the error of a benchmark that failed its SLOs (wrapping
// ErrSLOFailed: exit code 3).
func sloError(b *report.Benchmark) error {
	if b.SLO == nil || b.SLO.Pass {
		return nil
	}
	return fmt.Errorf("%w: benchmark %s does not meet --slo %s", ErrSLOFailed, b.Name, b.SLO.Spec)
}
