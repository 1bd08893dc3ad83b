package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/compare"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/workload"
)

const compareSynopsis = `replay compare --target NAME=URL --target NAME=URL ... --workload SPEC [--profile P] [--mode sequential|parallel] [--repetitions N] [--fail-if GATES] [--output-dir DIR]
       replay compare [--fail-if GATES] [--baseline NAME] [--output-dir DIR] RESULTS_DIR RESULTS_DIR ...`

// ErrGateFailed is returned by replay compare when a --fail-if bound is
// exceeded with confidence (or, with --fail-on-undecided, cannot be
// decided); the program then exits 3 (ExitCode).
var ErrGateFailed = errors.New("comparison gate failed")

// Comparison modes.
const (
	modeSequential = "sequential"
	modeParallel   = "parallel"
	modeSaved      = "saved"
	baselineCapt   = "captured"
)

type compareOptions struct {
	bench       benchOptions // the load flags shared with replay run
	targets     listFlag
	mode        string
	repetitions int
	failIf      string
	// failUndecided makes an undecided gate fail the command.
	failUndecided bool
	baseline      string
	confidence    float64
	resamples     int

	gates []compare.Gate
}

// notCompareFlags are the replay run flags replay compare does not take:
// it names its targets itself, and compares one profile at a time (sweeps
// are compared point by point from two saved results directories, paired
// by benchmark name: loadSaved).
var notCompareFlags = map[string]bool{"target": true, "name": true, "no-baseline": true, "sweep-points": true, "rate-profile": true}

func compareFlags(o *compareOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("replay compare", flag.ContinueOnError)
	benchFlags(&o.bench).VisitAll(func(f *flag.Flag) { // one registration, so help and defaults stay one
		if !notCompareFlags[f.Name] {
			fs.Var(f.Value, f.Name, f.Usage)
		}
	})
	fs.Var(&o.targets, "target", "NAME=URL of a deployment to compare (repeatable; the first is the baseline unless --baseline says otherwise)")
	fs.StringVar(&o.mode, "mode", modeSequential, "sequential (each target in turn, identical schedule) or parallel (every target at once, each with its own dispatcher)")
	fs.IntVar(&o.repetitions, "repetitions", 1, "run every target this many times (sequential: the order reversed every second time, to cancel drift); results are pooled per target")
	fs.StringVar(&o.failIf, "fail-if", "", "gates, e.g. 'ttft_p99>+10%,error_rate>0.5%,e2e_p50>+50ms': exit 3 when a candidate exceeds one with confidence (docs/compare.md)")
	fs.BoolVar(&o.failUndecided, "fail-on-undecided", false, "also exit 3 when a gate is undecided (too few samples for its statistic), instead of only warning")
	fs.StringVar(&o.baseline, "baseline", "", "the reference: a target or benchmark name, or captured (production's recorded timings, for a capture workload); default the first")
	fs.Float64Var(&o.confidence, "confidence", compare.DefaultConfidence, "family-wise confidence level per metric of the intervals and verdicts")
	fs.IntVar(&o.resamples, "resamples", compare.DefaultResamples, "bootstrap replicates")
	return fs
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o compareOptions
	fs := compareFlags(&o)
	if err := parse(fs, flagsFirst(fs, args), stdout, compareSynopsis, nil); err != nil { // nil: the environment, os.LookupEnv semantics
		return err
	}
	var errs []error
	if o.failIf != "" {
		g, err := compare.ParseFailIf(o.failIf)
		if err != nil {
			errs = append(errs, err)
		}
		o.gates = g
	}
	copts := compare.Options{Confidence: o.confidence, Resamples: o.resamples, Seed: uint64(o.bench.seed)}
	if err := copts.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, o.bench.listErrors()...)
	if err := errors.Join(errs...); err != nil {
		return cli.AsUsage(err)
	}
	if err := o.bench.gate.parse(); err != nil {
		return err
	}
	if o.bench.gate.spec != nil {
		copts.SLO = o.bench.gate.spec.PerRequest()
	}
	var pairs []sidePair
	var file *report.File
	var err error
	if fs.NArg() > 0 {
		if len(o.targets) > 0 || o.bench.workload != "" {
			return cli.UsageError("replay compare: give either result directories or --target and --workload, not both")
		}
		o.mode = modeSaved
		file, pairs, err = loadSaved(fs.Args(), o.baseline, stderr)
	} else {
		file, pairs, err = o.live(ctx, stderr)
		if o.baseline == baselineCapt {
			o.mode = baselineCapt
		}
	}
	if err != nil {
		return err
	}
	file.Tool, file.Created = "reprise", time.Now().UTC()
	file.Command = append([]string{"replay", "compare"}, args...)
	for k, v := range labels(o.bench.labels) {
		if file.Labels == nil {
			file.Labels = map[string]string{}
		}
		file.Labels[k] = v
	}
	cmp := &report.Comparison{Baseline: pairs[0].base.Name, Mode: o.mode, Confidence: o.confidence, Resamples: o.resamples, Seed: copts.Seed}
	if o.mode != modeSaved {
		cmp.Repetitions = o.repetitions
	}
	var names []string
	for _, p := range pairs {
		rows, err := compare.Compare(p.base, p.cand, copts)
		if err != nil {
			return err
		}
		cmp.Rows = append(cmp.Rows, rows...)
		cmp.Headlines = append(cmp.Headlines, compare.Headline(rows, p.cand.Name, o.confidence))
		names = append(names, p.cand.Name)
	}
	cmp.Gates = compare.Evaluate(o.gates, cmp.Rows, names)
	file.Comparison = cmp
	if err := report.WriteAll(o.bench.outputDir, file); err != nil {
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
		100*o.confidence, o.resamples, copts.Seed, compare.MinN(compare.StatP50), compare.MinN(compare.StatP90), compare.MinN(compare.StatP99))
	fmt.Fprintf(stdout, "results in %s (benchmarks.json, benchmarks.csv, comparison.csv, report.html)\n", o.bench.outputDir)
	for _, h := range cmp.Headlines {
		fmt.Fprintf(stdout, "overall %s (Holm across %d metrics at %.0f%%)\n", h.Text(), h.Families, 100*o.confidence)
	}
	var failed []string
	for _, g := range cmp.Gates {
		fmt.Fprintf(stdout, "gate %s (%s): %s — %s\n", g.Gate, g.Candidate, strings.ToUpper(g.Status), g.Detail)
		switch g.Status {
		case report.GateFail:
			failed = append(failed, fmt.Sprintf("%s for %s (%s)", g.Gate, g.Candidate, g.Detail))
		case report.GateUndecided:
			fmt.Fprintf(stderr, "warning: gate %s is undecided for %s: %s\n", g.Gate, g.Candidate, g.Detail)
			if o.failUndecided {
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

// sidePair is one comparison: a candidate against its baseline.
type sidePair struct{ base, cand compare.Side }

// against pairs sides[0], the baseline, with every other side.
func against(sides []compare.Side) []sidePair {
	var out []sidePair
	for _, c := range sides[1:] {
		out = append(out, sidePair{sides[0], c})
	}
	return out
}

// target is one --target NAME=URL.
type target struct{ name, url string }

func parseTargets(list []string) ([]target, error) {
	var out []target
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
		if seen[name] || name == baselineCapt {
			errs = append(errs, fmt.Errorf("--target %q: the name %s is taken", t, name))
			continue
		}
		seen[name] = true
		out = append(out, target{name, strings.TrimRight(u, "/")})
	}
	return out, errors.Join(errs...)
}

// live runs the workload against every target and returns the file (its
// benchmarks) and the comparisons: the baseline against every candidate.
func (o *compareOptions) live(ctx context.Context, stderr io.Writer) (*report.File, []sidePair, error) {
	targets, err := parseTargets(o.targets)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	captured := o.baseline == baselineCapt
	capPath, isCapture := workload.CapturePath(o.bench.workload)
	switch {
	case o.bench.workload == "":
		errs = append(errs, errors.New("--workload is required (or give result directories)"))
	case captured && !isCapture:
		errs = append(errs, fmt.Errorf("--baseline captured needs a capture workload, not %q", o.bench.workload))
	}
	if need := 2; len(targets) < need && !captured && err == nil {
		errs = append(errs, fmt.Errorf("need at least two --target NAME=URL (baseline first), or one with --baseline captured; have %d", len(targets)))
	} else if captured && len(targets) == 0 && err == nil {
		errs = append(errs, errors.New("--baseline captured needs at least one --target NAME=URL"))
	}
	if o.mode != modeSequential && o.mode != modeParallel {
		errs = append(errs, fmt.Errorf("--mode %q: want sequential or parallel", o.mode))
	}
	if o.repetitions < 1 {
		errs = append(errs, fmt.Errorf("--repetitions %d: want at least 1", o.repetitions))
	}
	if o.bench.profile == profileSweep {
		errs = append(errs, errors.New("--profile sweep is not supported by compare: compare one profile at a time"))
	}
	engineRate, rescale, rerr := traceRate(o.bench.profile, o.bench.rate, o.bench.timeScale)
	if rerr != nil {
		errs = append(errs, rerr)
	}
	if err := o.bench.scrape.Validate(); err != nil {
		errs = append(errs, err)
	}
	baseIdx := 0
	if o.baseline != "" && !captured {
		baseIdx = -1
		for i, t := range targets {
			if t.name == o.baseline {
				baseIdx = i
			}
		}
		if baseIdx < 0 && err == nil {
			errs = append(errs, fmt.Errorf("--baseline %q names no --target (nor captured)", o.baseline))
		}
	}
	cfg, cerr := o.bench.baseConfig(o.bench.profile)
	if cerr != nil {
		errs = append(errs, cerr)
	}
	cfg.Rate = engineRate
	if len(targets) > 0 {
		cfg.Target = targets[0].url
		if err := cfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, cli.AsUsage(err)
	}
	if baseIdx > 0 { // the baseline runs first and heads the sides
		targets = append([]target{targets[baseIdx]}, append(targets[:baseIdx:baseIdx], targets[baseIdx+1:]...)...)
	}
	// One body builder for every target, so each receives identical bodies.
	cfg.Target = targets[0].url
	bodies, err := o.bench.bodyBuilder(cfg)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range targets {
		if err := checkReachable(ctx, t.url); err != nil {
			return nil, nil, fmt.Errorf("target %s: %w", t.name, err)
		}
	}

	o.bench.plainProgress = o.mode == modeParallel
	if o.mode == modeParallel { // the targets' runs print at the same time
		stderr = &lockedWriter{w: stderr}
	}
	runs := make([][]*engine.Run, len(targets)) // per target, per repetition
	benches := make([][]report.Benchmark, len(targets))
	for rep := range o.repetitions {
		order := make([]int, len(targets))
		for i := range order {
			order[i] = i
			if rep%2 == 1 { // alternate the order to cancel drift
				order[i] = len(targets) - 1 - i
			}
		}
		one := func(i int) error {
			t := targets[i]
			name := t.name
			if o.repetitions > 1 {
				name = fmt.Sprintf("%s#%d", t.name, rep+1)
			}
			b, run, err := o.runOne(ctx, cfg, t, name, rescale, bodies, stderr)
			if err != nil {
				return err
			}
			runs[i] = append(runs[i], run)
			benches[i] = append(benches[i], b)
			return nil
		}
		if o.mode == modeSequential {
			for _, i := range order {
				if err := one(i); err != nil {
					return nil, nil, err
				}
			}
			continue
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var perr []error
		for _, i := range order {
			wg.Go(func() {
				if err := one(i); err != nil {
					mu.Lock()
					perr = append(perr, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if err := errors.Join(perr...); err != nil {
			return nil, nil, err
		}
	}

	file := &report.File{}
	var sides []compare.Side
	own := labels(o.bench.labels)
	if captured {
		base, side, err := capturedSide(capPath, runs[0][0])
		if err != nil {
			return nil, nil, fmt.Errorf("reading production's timings from the capture: %w", err)
		}
		file.Benchmarks = append(file.Benchmarks, base)
		sides = append(sides, side)
	}
	for i, t := range targets {
		side := compare.Side{Name: t.name}
		for k, run := range runs[i] {
			b := benches[i][k]
			b.Baseline = i == 0 && !captured
			b.Labels = own
			file.Benchmarks = append(file.Benchmarks, b)
			side.Requests = append(side.Requests, report.RequestRecords(run.Results)...)
			side.RunLengths = append(side.RunLengths, len(run.Results))
			side.WindowS += b.Metrics.WindowS
		}
		sides = append(sides, side)
	}
	return file, against(sides), nil
}

// runOne runs the workload once against t. Runs of different targets may
// overlap (parallel mode): nothing here is shared but the body builder,
// which is safe for concurrent use.
func (o *compareOptions) runOne(ctx context.Context, cfg engine.Config, t target, name string, rescale float64, bodies engine.BodyBuilder, stderr io.Writer) (report.Benchmark, *engine.Run, error) {
	cfg.Target = t.url
	b, run, err := o.bench.benchmark(ctx, cfg, name, rescale, bodies, o.bench.gate.detector, stderr)
	if err != nil {
		return report.Benchmark{}, nil, fmt.Errorf("target %s: %w", name, err)
	}
	if err := failureSummary(run); err != nil {
		return report.Benchmark{}, nil, fmt.Errorf("target %s: %w", name, err)
	}
	return b, run, nil
}

// capturedSide is production as captured (captured.go) for exactly the
// requests run replayed, as a benchmark and as the comparison's baseline
// side.
func capturedSide(path string, run *engine.Run) (report.Benchmark, compare.Side, error) {
	results, start := capturedResults(run)
	b := capturedBenchmark(path, results, start)
	if len(results) == 0 {
		return b, compare.Side{}, errors.New("the replayed requests carry no capture records")
	}
	return b, compare.Side{Name: b.Name, Requests: report.RequestRecords(results), WindowS: b.Metrics.WindowS}, nil
}

// savedDir is one results directory's benchmarks with records.
type savedDir struct {
	dir, path string
	benches   []report.Benchmark
}

// loadSaved reads benchmarks.json from every directory. Every benchmark
// with per-request records becomes a side, labelled with its own file's
// labels (Benchmark.Labels; the file gets those all share).
//
// Two directories of the same shape — two or more benchmarks, the same
// profiles in the same order, e.g. two sweeps with the same points — are
// compared point by point (pointKeys): each benchmark of the baseline
// directory (the first, or the one --baseline names) against the candidate
// directory's benchmark in the same place, both named DIR/NAME. Two sweeps
// of different shapes are refused. Otherwise the baseline is the benchmark
// named baseline, else the first, against every other; a name found in
// several directories is prefixed with its directory everywhere.
func loadSaved(dirs []string, baseline string, stderr io.Writer) (*report.File, []sidePair, error) {
	var loaded []savedDir
	for _, dir := range dirs {
		path := filepath.Join(dir, report.JSONFile)
		f, _, err := readResults(dir)
		if err != nil {
			return nil, nil, err
		}
		sd := savedDir{dir: dir, path: path}
		for _, b := range f.Benchmarks {
			if len(b.Requests) == 0 {
				if b.Profile == "captured" {
					fmt.Fprintf(stderr, "%s: skipping %q: production's captured timings carry no per-request records here (compare a capture with --baseline captured)\n", path, b.Name)
					continue
				}
				return nil, nil, fmt.Errorf("%s: benchmark %q has no per-request records, which the comparison needs: rerun it with --save-requests", path, b.Name)
			}
			merged := map[string]string{}
			for k, v := range f.Labels {
				merged[k] = v
			}
			for k, v := range b.Labels {
				merged[k] = v
			}
			b.Labels = nil
			if len(merged) > 0 {
				b.Labels = merged
			}
			b.Baseline = false
			sd.benches = append(sd.benches, b)
		}
		loaded = append(loaded, sd)
	}
	var out *report.File
	var pairs []sidePair
	var err error
	if pointByPoint(loaded) {
		out, pairs, err = pairSaved(loaded, baseline)
	} else if len(loaded) == 2 && isSweep(loaded[0].benches) && isSweep(loaded[1].benches) {
		return nil, nil, fmt.Errorf("replay compare: %s and %s hold sweeps of different points (%s vs %s); point-by-point comparison needs the same --sweep-points and profiles",
			loaded[0].dir, loaded[1].dir, strings.Join(pointKeys(loaded[0].benches), " "), strings.Join(pointKeys(loaded[1].benches), " "))
	} else {
		out, pairs, err = againstSaved(loaded, baseline)
	}
	if err != nil {
		return nil, nil, err
	}
	out.Labels = sharedLabels(out.Benchmarks)
	return out, pairs, nil
}

// pointKeys names each benchmark of a directory by its place rather than
// its name: its profile and its ordinal among the benchmarks of that
// profile (synchronous#1, throughput#1, constant#1, constant#2, …). A
// sweep's rate points are named after the rates each target reached, so two
// sweeps of different deployments share places, not names.
func pointKeys(benches []report.Benchmark) []string {
	seen := map[string]int{}
	keys := make([]string, len(benches))
	for i, b := range benches {
		seen[b.Profile]++
		keys[i] = fmt.Sprintf("%s#%d", b.Profile, seen[b.Profile])
	}
	return keys
}

// isSweep says the benchmarks are a sweep's: a synchronous and a
// throughput benchmark among them.
func isSweep(bs []report.Benchmark) bool {
	var sync, tp bool
	for _, b := range bs {
		sync = sync || b.Profile == engine.ProfileSynchronous
		tp = tp || b.Profile == engine.ProfileThroughput
	}
	return sync && tp
}

// pointByPoint says the directories are two runs of the same shape (at
// least two benchmarks each, the same profiles in the same order, e.g. two
// sweeps with the same --sweep-points): they are compared point by point.
func pointByPoint(ds []savedDir) bool {
	if len(ds) != 2 || len(ds[0].benches) < 2 || len(ds[0].benches) != len(ds[1].benches) {
		return false
	}
	return slices.Equal(pointKeys(ds[0].benches), pointKeys(ds[1].benches))
}

// pairSaved pairs the benchmarks of two directories by place (pointKeys).
func pairSaved(ds []savedDir, baseline string) (*report.File, []sidePair, error) {
	tag := []string{filepath.Base(filepath.Clean(ds[0].dir)), filepath.Base(filepath.Clean(ds[1].dir))}
	if tag[0] == tag[1] {
		tag = []string{filepath.Clean(ds[0].dir), filepath.Clean(ds[1].dir)}
	}
	bi := 0
	switch baseline {
	case "", tag[0], ds[0].dir:
	case tag[1], ds[1].dir:
		bi = 1
	default:
		return nil, nil, cli.UsageError("--baseline %q: comparing %s and %s point by point, the baseline is one of the directories", baseline, tag[0], tag[1])
	}
	base, cand := ds[bi], ds[1-bi]
	out := &report.File{}
	var pairs []sidePair
	side := func(b report.Benchmark, tag string, isBase bool) compare.Side {
		b.Name = tag + "/" + b.Name
		b.Baseline = isBase
		out.Benchmarks = append(out.Benchmarks, b)
		return compare.Side{Name: b.Name, Requests: b.Requests, WindowS: b.Metrics.WindowS}
	}
	for i := range base.benches { // pointByPoint: the same places in the same order
		pairs = append(pairs, sidePair{side(base.benches[i], tag[bi], true), side(cand.benches[i], tag[1-bi], false)})
	}
	return out, pairs, nil
}

// againstSaved compares the baseline benchmark with every other.
func againstSaved(ds []savedDir, baseline string) (*report.File, []sidePair, error) {
	out := &report.File{}
	var sides []compare.Side
	count := map[string]int{}
	for _, d := range ds {
		for _, b := range d.benches {
			count[b.Name]++
		}
	}
	for _, d := range ds {
		for _, b := range d.benches {
			if count[b.Name] > 1 { // every one of a repeated name says where it is from
				b.Name = filepath.Base(filepath.Clean(d.dir)) + "/" + b.Name
			}
			out.Benchmarks = append(out.Benchmarks, b)
			sides = append(sides, compare.Side{Name: b.Name, Requests: b.Requests, WindowS: b.Metrics.WindowS})
		}
	}
	if len(sides) < 2 {
		return nil, nil, fmt.Errorf("replay compare: the directories hold %d benchmark(s) with per-request records; need at least two", len(sides))
	}
	at := 0
	if baseline != "" {
		at = -1
		for i := range sides {
			if sides[i].Name == baseline {
				at = i
			}
		}
		if at < 0 {
			var names []string
			for _, s := range sides {
				names = append(names, s.Name)
			}
			return nil, nil, cli.UsageError("--baseline %q: no such benchmark (have %s)", baseline, strings.Join(names, ", "))
		}
	}
	out.Benchmarks[at].Baseline = true
	sides[0], sides[at] = sides[at], sides[0]
	return out, against(sides), nil
}

// sharedLabels are the labels every benchmark has with the same value.
func sharedLabels(bs []report.Benchmark) map[string]string {
	if len(bs) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, v := range bs[0].Labels {
		out[k] = v
	}
	for _, b := range bs[1:] {
		for k, v := range out {
			if w, ok := b.Labels[k]; !ok || w != v {
				delete(out, k)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
