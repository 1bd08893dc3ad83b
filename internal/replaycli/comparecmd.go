package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/bench"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/compare"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/workload"
)

const compareSynopsis = `replay compare --target NAME=URL --target NAME=URL ... --workload SPEC [--profile P] [--mode sequential|parallel] [--repetitions N] [--fail-if GATES] [--output-dir DIR]
       replay compare [--fail-if GATES] [--baseline NAME] [--output-dir DIR] RESULTS_DIR RESULTS_DIR ...`

// ErrGateFailed is returned by replay compare when a --fail-if bound is
// exceeded with confidence (or, with --fail-on-undecided, cannot be
// decided); the program then exits 3 (ExitCode).
var ErrGateFailed = errors.New("comparison gate failed")

// compareOptions are replay compare's own flags.
type compareOptions struct {
	targets       cli.List
	mode          choice
	repetitions   int
	failIf        string
	failUndecided bool // an undecided gate fails the command
	baseline      string
	confidence    float64
	resamples     int
}

// compareFlags are replay compare's flags: the benchmark flags of replay
// run without --target URL, --name and the sweep (it names its targets
// and compares one profile at a time; sweeps are compared point by point
// from saved results), and its own.
func compareFlags(o *planOptions, c *compareOptions) *cli.Flags {
	c.mode = newChoice(bench.ModeSequential, bench.ModeSequential, bench.ModeParallel)
	fs := cli.NewFlags("replay compare")
	fs.Section("comparison", func(fs *flag.FlagSet) {
		fs.Var(&c.targets, "target", "NAME=URL of a deployment to compare (the first is the baseline unless --baseline says otherwise)")
		fs.StringVar(&c.baseline, "baseline", "", "the reference: a target or benchmark name, or captured (production's recorded timings, for a capture workload); default the first")
		fs.Var(&c.mode, "mode", "sequential (each target in turn, identical schedule) or parallel (every target at once, each with its own dispatcher)")
		fs.IntVar(&c.repetitions, "repetitions", 1, "run every target this many times (sequential: the order reversed every second time, to cancel drift); results are pooled per target")
		fs.StringVar(&c.failIf, "fail-if", "", "gates, e.g. 'ttft_p99>+10%,error_rate>0.5%,e2e_p50>+50ms': exit 3 when a candidate exceeds one with confidence (docs/compare.md)")
		fs.BoolVar(&c.failUndecided, "fail-on-undecided", false, "also exit 3 when a gate is undecided (too few samples for its statistic), instead of only warning")
		fs.Float64Var(&c.confidence, "confidence", compare.DefaultConfidence, "family-wise confidence level per metric of the intervals and verdicts")
		fs.IntVar(&c.resamples, "resamples", compare.DefaultResamples, "bootstrap replicates")
	})
	fs.Section("workload (live comparison)", o.workloadSection)
	fs.Section("load (live comparison)", o.loadSection)
	fs.Section("limits (live comparison)", func(fs *flag.FlagSet) { o.limitsSection(fs, true) })
	fs.Section("client (live comparison)", o.clientSection)
	fs.Section("checks", o.gateSection)
	fs.Section("target's metrics (live comparison)", o.scrapeSection)
	fs.Section("results", func(fs *flag.FlagSet) { o.outputSection(fs, false) })
	return fs
}

// savedOK are the flags a comparison of saved results reads: its own,
// --seed (the bootstrap's), --slo (goodput), the results' directory and
// labels. Any other is a live comparison's, refused with saved results.
var savedOK = map[string]bool{"baseline": true, "fail-if": true, "fail-on-undecided": true, "confidence": true, "resamples": true,
	"seed": true, "slo": true, "output-dir": true, "label": true}

// comparePlan is what a replay compare command line asks for.
type comparePlan struct {
	built
	cmp   bench.Comparison
	saved []string // result directories: compare them, run nothing
	gates []compare.Gate
	copts compare.Options
	opts  compareOptions
}

func parseCompare(args []string, stdout io.Writer) (comparePlan, error) {
	o := newPlanOptions()
	var c compareOptions
	fs := compareFlags(o, &c)
	if err := fs.Parse(args, stdout, compareSynopsis); err != nil {
		return comparePlan{}, err
	}
	p := comparePlan{opts: c, saved: fs.Args()}
	var errs []error
	if c.failIf != "" {
		g, err := compare.ParseFailIf(c.failIf)
		errs = append(errs, err)
		p.gates = g
	}
	p.copts = compare.Options{Confidence: c.confidence, Resamples: c.resamples, Seed: uint64(o.seed)}
	errs = append(errs, p.copts.Validate())
	if len(p.saved) > 0 {
		if len(c.targets) > 0 || o.workload != "" {
			return p, cli.UsageError("replay compare: give either result directories or --target and --workload, not both")
		}
		var live []string
		for _, n := range fs.Names() {
			if fs.Given(n) && !savedOK[n] {
				live = append(live, "--"+n)
			}
		}
		if len(live) > 0 {
			errs = append(errs, fmt.Errorf("%s: comparing saved results runs nothing; %s set a live comparison (--target NAME=URL ... --workload SPEC)",
				strings.Join(live, ", "), map[bool]string{true: "these", false: "it"}[len(live) > 1]))
		}
		labels, err := parseLabels(o.labels)
		errs = append(errs, err)
		p.labels, p.outDir = labels, o.outputDir
		if o.slo != "" {
			s, err := slo.Parse(o.slo)
			if err != nil {
				errs = append(errs, err)
			} else {
				p.copts.SLO = s.PerRequest()
			}
		}
		return p, usageErr(errors.Join(errs...))
	}

	targets, err := parseTargets(c.targets)
	errs = append(errs, err)
	captured := c.baseline == bench.BaselineCaptured
	if captured {
		path, ok := workload.CapturePath(o.workload)
		if !ok && o.workload != "" {
			errs = append(errs, fmt.Errorf("--baseline captured needs a capture workload, not %q", o.workload))
		}
		p.cmp.Captured = path
	} else if c.baseline != "" && err == nil {
		at := -1
		for i, t := range targets {
			if t.Name == c.baseline {
				at = i
			}
		}
		if at < 0 {
			errs = append(errs, fmt.Errorf("--baseline %q names no --target (nor captured)", c.baseline))
		} else if at > 0 { // the baseline runs first and heads the sides
			targets = append([]bench.Target{targets[at]}, append(targets[:at:at], targets[at+1:]...)...)
		}
	}
	if o.profile.value == profileSweep || o.profile.value == profileKnee {
		errs = append(errs, fmt.Errorf("--profile %s is not supported by compare: compare one profile at a time (or two saved sweeps, point by point)", o.profile.value))
	}
	first := ""
	var urls []string
	for _, t := range targets {
		urls = append(urls, t.URL)
	}
	if len(urls) > 0 {
		first = urls[0]
	}
	b, perr := o.plan(fs, first, o.profile.value)
	errs = append(errs, perr, tlsOnly(fs, urls...))
	b.plan.PlainProgress = c.mode.value == bench.ModeParallel
	if b.plan.SLO != nil {
		p.copts.SLO = b.plan.SLO.PerRequest()
	}
	p.built = b
	p.cmp.Targets, p.cmp.Parallel, p.cmp.Repetitions, p.cmp.Labels = targets, c.mode.value == bench.ModeParallel, c.repetitions, b.labels
	switch {
	case err != nil: // the targets' own errors say it
	case len(targets) < 2 && !captured:
		errs = append(errs, fmt.Errorf("need at least two --target NAME=URL (baseline first), or one with --baseline captured; have %d", len(targets)))
	case len(targets) == 0:
		errs = append(errs, errors.New("--baseline captured needs at least one --target NAME=URL"))
	default:
		errs = append(errs, p.cmp.Validate())
	}
	return p, usageErr(errors.Join(errs...))
}

// parseTargets reads the --target NAME=URL list.
func parseTargets(list []string) ([]bench.Target, error) {
	var out []bench.Target
	var errs []error
	seen := map[string]bool{}
	for _, t := range list {
		name, u, ok := strings.Cut(t, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("--target %q: want NAME=URL, e.g. candidate=http://10.0.0.2:8000", t))
			continue
		}
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			errs = append(errs, fmt.Errorf("--target %q: want an http:// or https:// URL after the name", t))
			continue
		}
		if err := cli.CheckBaseURL("--target", name+"=", u); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[name] || name == bench.BaselineCaptured {
			errs = append(errs, fmt.Errorf("--target %q: the name %s is taken", t, name))
			continue
		}
		seen[name] = true
		out = append(out, bench.Target{Name: name, URL: strings.TrimRight(u, "/")})
	}
	return out, errors.Join(errs...)
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	p, err := parseCompare(args, stdout)
	if err != nil {
		return err
	}
	var pairs []bench.SidePair
	var file *report.File
	mode := bench.ModeSaved
	if len(p.saved) > 0 {
		file, pairs, err = bench.LoadSaved(p.saved, p.opts.baseline, stderr)
	} else {
		mode = p.opts.mode.value
		if p.cmp.Captured != "" {
			mode = bench.ModeCaptured
		}
		if p.cmp.Parallel { // the targets' runs print at the same time
			stderr = &lockedWriter{w: stderr}
		}
		var r *bench.Runner
		if r, err = bench.NewRunner(p.plan, stderr); err != nil {
			return runnerErr(err)
		}
		file, pairs, err = r.Compare(ctx, p.cmp)
	}
	if err != nil {
		return err
	}
	file.Tool, file.Created = "reprise", time.Now().UTC()
	file.Command = append([]string{"replay", "compare"}, args...)
	for k, v := range p.labels {
		if file.Labels == nil {
			file.Labels = map[string]string{}
		}
		file.Labels[k] = v
	}
	cmp := &report.Comparison{Baseline: pairs[0].Base.Name, Mode: mode, Confidence: p.opts.confidence, Resamples: p.opts.resamples, Seed: p.copts.Seed}
	if mode != bench.ModeSaved {
		cmp.Repetitions = p.opts.repetitions
	}
	var names []string
	for _, pr := range pairs {
		rows, err := compare.Compare(pr.Base, pr.Cand, p.copts)
		if err != nil {
			return err
		}
		cmp.Rows = append(cmp.Rows, rows...)
		cmp.Headlines = append(cmp.Headlines, compare.Headline(rows, pr.Cand.Name, p.opts.confidence))
		names = append(names, pr.Cand.Name)
	}
	cmp.Gates = compare.Evaluate(p.gates, cmp.Rows, names)
	if mode == bench.ModeCaptured {
		for i := 1; i < len(file.Benchmarks); i++ {
			if note := bench.VantageNote(&file.Benchmarks[0], &file.Benchmarks[i]); note != "" {
				cmp.Notes = append(cmp.Notes, note)
			}
		}
	}
	file.Comparison = cmp
	if err := report.WriteAll(p.outDir, file); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if err := report.WriteTable(stdout, file); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := report.WriteComparisonTable(stdout, cmp.Rows); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nintervals: %.0f%% family-wise per metric (bootstrap, %d resamples, seed %d); insufficient data: p50/mean need %d samples a side, p90 %d, p99 %d\n",
		100*p.opts.confidence, p.opts.resamples, p.copts.Seed, compare.MinN(compare.StatP50), compare.MinN(compare.StatP90), compare.MinN(compare.StatP99))
	fmt.Fprintf(stdout, "results in %s (benchmarks.json, benchmarks.csv, comparison.csv, report.html)\n", p.outDir)
	for _, h := range cmp.Headlines {
		fmt.Fprintf(stdout, "overall %s (Holm across %d metrics at %.0f%%)\n", h.Text(), h.Families, 100*p.opts.confidence)
	}
	for _, n := range cmp.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	var failed []string
	for _, g := range cmp.Gates {
		fmt.Fprintf(stdout, "gate %s (%s): %s — %s\n", g.Gate, g.Candidate, strings.ToUpper(g.Status), g.Detail)
		switch g.Status {
		case report.GateFail:
			failed = append(failed, fmt.Sprintf("%s for %s (%s)", g.Gate, g.Candidate, g.Detail))
		case report.GateUndecided:
			fmt.Fprintf(stderr, "warning: gate %s is undecided for %s: %s\n", g.Gate, g.Candidate, g.Detail)
			if p.opts.failUndecided {
				failed = append(failed, fmt.Sprintf("%s for %s undecided (--fail-on-undecided: %s)", g.Gate, g.Candidate, g.Detail))
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %s", ErrGateFailed, strings.Join(failed, "; "))
	}
	for i := range file.Benchmarks { // --slo is a check too: exit 3 when a benchmark misses it
		if err := sloError(&file.Benchmarks[i]); err != nil {
			return err
		}
	}
	return nil
}

// lockedWriter serialises writes to w, for runs printing at once.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
