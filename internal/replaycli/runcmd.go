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
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/workload"
)

const runSynopsis = "replay run --target URL --workload SPEC [--profile P] [--rate R] [--max-seconds S] [--max-requests N] [--output-dir DIR]"

// runFlags are replay run's flags: one benchmark (or, with --profile
// sweep, a sweep) of a workload against one target.
func runFlags(o *planOptions) *cli.Flags {
	fs := cli.NewFlags("replay run")
	fs.Section("target", o.targetSection)
	fs.Section("workload", o.workloadSection)
	fs.Section("load", o.loadSection)
	fs.Section("sweep (--profile sweep)", o.sweepSection)
	fs.Section("knee (--profile knee)", o.kneeSection)
	fs.Section("limits", func(f *flag.FlagSet) { o.limitsSection(f, true) })
	fs.Section("client", o.clientSection)
	fs.Section("split run", o.splitSection)
	fs.Section("checks", o.gateSection)
	fs.Section("target's metrics", o.scrapeSection)
	fs.Section("results", func(f *flag.FlagSet) { o.outputSection(f, true) })
	return fs
}

// runPlan parses replay run's arguments into what it runs.
func runPlan(args []string, stdout io.Writer) (built, error) {
	o := newPlanOptions()
	fs := runFlags(o)
	if err := fs.Parse(args, stdout, runSynopsis); err != nil {
		return built{}, err
	}
	if fs.NArg() > 0 {
		return built{}, cli.UsageError("replay run: unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if o.target == "" {
		errs = append(errs, errors.New("--target is required"))
	}
	b, err := o.plan(fs, o.target, o.profile.value)
	return b, usageErr(errors.Join(append(errs, err, tlsOnly(fs, o.target))...))
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b, err := runPlan(args, stdout)
	if err != nil {
		return err
	}
	r, err := bench.NewRunner(b.plan, stderr)
	if err != nil {
		return runnerErr(err)
	}
	file := &report.File{Tool: "reprise", Created: time.Now().UTC(), Command: append([]string{"replay", "run"}, args...), Labels: b.labels}
	if b.sweep != nil {
		return runSweep(ctx, r, *b.sweep, file, b.outDir, stdout, stderr)
	}
	if b.knee != nil {
		return runKnee(ctx, r, *b.knee, file, b.outDir, stdout)
	}
	cfg := b.plan.Engine
	out, err := r.Run(ctx, cfg, b.name, b.plan.Rescale, b.plan.Detector)
	if err != nil && !bench.Partial(out.Run, err) {
		return err
	}
	workloadErr := err // the results so far are written, then it is the exit error
	bm := out.Benchmark
	if path, ok := workload.CapturePath(b.plan.Workload); ok && !b.plan.NoBaseline {
		captured, _, _ := bench.Captured(path, out)
		file.Benchmarks = append(file.Benchmarks, captured)
	}
	file.Benchmarks = append(file.Benchmarks, bm)
	if err := report.WriteAll(b.outDir, file); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if err := report.WriteTable(stdout, file); err != nil {
		return err
	}
	tokenShortfall(stdout, bm.Name, &bm.Metrics)
	networkLine(stdout, &bm)
	conversationLine(stdout, &bm)
	if len(file.Benchmarks) > 1 {
		if note := bench.VantageNote(&file.Benchmarks[0], &bm); note != "" {
			fmt.Fprintf(stdout, "note: %s\n", note)
		}
	}
	fmt.Fprintf(stdout, "\nresults in %s (benchmarks.json, benchmarks.csv, report.html)\n", b.outDir)
	endedEarly(stdout, &bm)
	gateSummary(stdout, &bm)
	serverLines(stdout, &bm)
	if bm.ServerMetrics != nil {
		fmt.Fprintf(stdout, "%s: %s\n", bm.Name, bm.ServerMetrics.Line())
	}
	if workloadErr != nil {
		fmt.Fprintf(stdout, "%s: stopped early at a workload error; the results cover the %d requests sent before it\n", bm.Name, len(out.Run.Results))
		return workloadErr
	}
	if err := bench.FailureSummary(out.Run); err != nil {
		return err
	}
	if b.plan.Shard.Sharded() && bm.SLO != nil && !bm.SLO.Pass {
		// One shard's slice of the plan: replay merge decides on the whole.
		fmt.Fprintf(stdout, "%s: this shard's requests miss --slo; the run's verdict is replay merge's, on every shard's requests\n", bm.Name)
		return nil
	}
	return sloError(&bm)
}

// runSweep is replay run --profile sweep (bench.Runner.RunSweep).
func runSweep(ctx context.Context, r *bench.Runner, s bench.Sweep, file *report.File, outDir string, stdout, stderr io.Writer) error {
	benchmarks, err := r.RunSweep(ctx, s)
	file.Benchmarks = benchmarks
	if len(benchmarks) > 0 {
		if werr := report.WriteAll(outDir, file); werr != nil {
			return errors.Join(err, fmt.Errorf("writing results: %w", werr))
		}
		if werr := report.WriteTable(stdout, file); werr != nil {
			return errors.Join(err, werr)
		}
		fmt.Fprintf(stdout, "\nresults in %s (benchmarks.json, benchmarks.csv, report.html)\n", outDir)
		for i := range benchmarks {
			endedEarly(stdout, &benchmarks[i])
			gateSummary(stdout, &benchmarks[i])
			serverLines(stdout, &benchmarks[i])
		}
	}
	return err
}

// runKnee is replay run --profile knee (bench.Runner.RunKnee): the
// benchmarks and the knee's analysis, printed after the table.
func runKnee(ctx context.Context, r *bench.Runner, k bench.Knee, file *report.File, outDir string, stdout io.Writer) error {
	benchmarks, knee, err := r.RunKnee(ctx, k)
	file.Benchmarks, file.Knee = benchmarks, knee
	if len(benchmarks) == 0 {
		return err
	}
	if werr := report.WriteAll(outDir, file); werr != nil {
		return errors.Join(err, fmt.Errorf("writing results: %w", werr))
	}
	if werr := report.WriteTable(stdout, file); werr != nil {
		return errors.Join(err, werr)
	}
	fmt.Fprintf(stdout, "\nresults in %s (benchmarks.json, benchmarks.csv, report.html)\n", outDir)
	if knee != nil {
		if knee.Status == report.KneeFound {
			fmt.Fprintf(stdout, "knee: concurrency %.1f (first measured at or above it: %s); %s\n", knee.Concurrency, knee.SaturationBenchmark, knee.Reason)
		} else {
			fmt.Fprintf(stdout, "knee: none found over concurrencies %v: %s\n", knee.Concurrencies, knee.Reason)
		}
		if len(knee.Refined) > 0 {
			fmt.Fprintf(stdout, "knee: refined with concurrencies %v around the first estimate, %.1f\n", knee.Refined, knee.Initial.Concurrency)
		}
	}
	for i := range benchmarks {
		gateSummary(stdout, &benchmarks[i])
		serverLines(stdout, &benchmarks[i])
	}
	return err
}

// endedEarly says when a benchmark's workload ran out before its
// --max-seconds or --max-requests: a synthetic: workload stops at its
// samples (1,000 by default), a trace at its last line, and only the
// results' stop_reason would tell.
func endedEarly(w io.Writer, b *report.Benchmark) {
	c := &b.Config
	if c.StopReason != engine.StopWorkloadEnd || (c.MaxSeconds <= 0 && c.MaxRequests <= 0) {
		return
	}
	var limits []string
	if c.MaxSeconds > 0 {
		limits = append(limits, fmt.Sprintf("--max-seconds %g", c.MaxSeconds))
	}
	if c.MaxRequests > 0 {
		limits = append(limits, fmt.Sprintf("--max-requests %d", c.MaxRequests))
	}
	at := 0.0
	if c.StoppedAtS != nil {
		at = *c.StoppedAtS
	}
	fmt.Fprintf(w, "%s: the workload ended after %d requests at %.1fs, before %s: give it more requests (synthetic: samples=N, --loop N) to run to the limit\n",
		b.Name, b.Metrics.Requests.Total+b.Metrics.Excluded.Warmup+b.Metrics.Excluded.Cooldown, at, orList(limits))
}

// sloError is the error of a benchmark that failed its SLOs (wrapping
// ErrSLOFailed: exit code 3).
func sloError(b *report.Benchmark) error {
	if b.SLO == nil || b.SLO.Pass {
		return nil
	}
	return fmt.Errorf("%w: benchmark %s does not meet --slo %s", ErrSLOFailed, b.Name, b.SLO.Spec)
}
