package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/reprise-llm/reprise/internal/bench"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
)

const capacitySynopsis = "replay capacity --target URL --workload SPEC --slo SPEC (--max-seconds S | --max-requests N) [--min-rate R] [--max-rate R] [--precision F] [--output-dir DIR]"

// ErrNoCapacity is returned when no rate tried meets the SLOs.
var ErrNoCapacity = bench.ErrNoCapacity

// capacityFlags are replay capacity's flags: no load profile, rate or
// name of its own (it runs fixed-rate probes it names by their rate).
func capacityFlags(o *planOptions, c *bench.Capacity) *cli.Flags {
	fs := cli.NewFlags("replay capacity")
	fs.Section("target", o.targetSection)
	fs.Section("workload", o.workloadSection)
	fs.Section("search", func(fs *flag.FlagSet) {
		fs.Float64Var(&c.MinRate, "min-rate", 0, "lowest rate tried, req/s (0: a tenth of the highest)")
		fs.Float64Var(&c.MaxRate, "max-rate", 0, "highest rate tried, req/s (0: 1.25 × the rate a throughput run achieves)")
		fs.Float64Var(&c.Precision, "precision", 0.05, "stop when the bracket is narrower than this fraction of its upper end")
		o.rateProfileFlag(fs, "the probes")
	})
	fs.Section("limits (every probe)", func(fs *flag.FlagSet) { o.limitsSection(fs, true) })
	fs.Section("client", o.clientSection)
	fs.Section("checks", o.gateSection)
	fs.Section("target's metrics", o.scrapeSection)
	fs.Section("results", func(fs *flag.FlagSet) { o.outputSection(fs, false) })
	return fs
}

// capacityPlan parses replay capacity's arguments.
func capacityPlan(args []string, stdout io.Writer) (built, bench.Capacity, error) {
	o := newPlanOptions()
	var c bench.Capacity
	fs := capacityFlags(o, &c)
	if err := fs.Parse(args, stdout, capacitySynopsis); err != nil {
		return built{}, c, err
	}
	if fs.NArg() > 0 {
		return built{}, c, cli.UsageError("replay capacity: unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if o.target == "" {
		errs = append(errs, errors.New("--target is required"))
	}
	if o.slo == "" {
		errs = append(errs, errors.New("--slo is required"))
	}
	c.RateProfile = o.rateProfile.value
	b, err := o.plan(fs, o.target, "")
	return b, c, usageErr(errors.Join(append(errs, err, c.Validate(), b.plan.Bounded(), tlsOnly(fs, o.target))...))
}

// runCapacity is replay capacity: the highest rate that meets --slo, by
// bisection over constant (or poisson) rates (bench.Runner.SearchCapacity).
func runCapacity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b, c, err := capacityPlan(args, stdout)
	if err != nil {
		return err
	}
	r, err := bench.NewRunner(b.plan, stderr)
	if err != nil {
		return runnerErr(err)
	}
	file := &report.File{Tool: "reprise", Created: time.Now().UTC(), Command: append([]string{"replay", "capacity"}, args...), Labels: b.labels}
	best, err := r.SearchCapacity(ctx, c, file)
	if len(file.Benchmarks) > 0 {
		if werr := report.WriteAll(b.outDir, file); werr != nil {
			return errors.Join(err, fmt.Errorf("writing results: %w", werr))
		}
		for i := range file.Benchmarks {
			gateSummary(stdout, &file.Benchmarks[i])
			serverLines(stdout, &file.Benchmarks[i])
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "capacity: %g req/s meets %s (results in %s)\n", best, b.plan.SLO.String(), b.outDir)
	return nil
}
