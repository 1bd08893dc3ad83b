package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/compare"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
)

// Comparison modes (report.Comparison.Mode).
const (
	ModeSequential = "sequential"
	ModeParallel   = "parallel"
	ModeSaved      = "saved"
	ModeCaptured   = "captured"
)

// BaselineCaptured names production's recorded timings as a comparison's
// baseline.
const BaselineCaptured = "captured"

// SidePair is one comparison: a candidate against its baseline.
type SidePair struct{ Base, Cand compare.Side }

// against pairs sides[0], the baseline, with every other side.
func against(sides []compare.Side) []SidePair {
	var out []SidePair
	for _, c := range sides[1:] {
		out = append(out, SidePair{sides[0], c})
	}
	return out
}

// Target is one deployment of a live comparison.
type Target struct{ Name, URL string }

// Comparison is a live comparison's settings: the plan's workload run
// against every target.
type Comparison struct {
	// Targets, the baseline first (unless Captured is set).
	Targets []Target
	// Parallel runs every target at once, each with its own dispatcher;
	// else each in turn, with an identical schedule.
	Parallel bool
	// Repetitions runs every target this many times (in sequence: the
	// order reversed every second time, to cancel drift); results are
	// pooled per target.
	Repetitions int
	// Captured, when set, is the capture the workload replays: production's
	// recorded timings are the baseline side.
	Captured string
	// Labels are carried into every benchmark.
	Labels map[string]string
}

// Validate checks the comparison's settings.
func (c Comparison) Validate() error {
	var errs []error
	switch {
	case len(c.Targets) < 2 && c.Captured == "":
		errs = append(errs, &FieldError{Field: "Targets", Err: fmt.Errorf("need at least two targets (baseline first), or one with the captured baseline; have %d", len(c.Targets))})
	case len(c.Targets) == 0:
		errs = append(errs, &FieldError{Field: "Targets", Err: errors.New("the captured baseline needs at least one target")})
	}
	if c.Repetitions < 1 {
		errs = append(errs, &FieldError{Field: "Repetitions", Value: fmt.Sprint(c.Repetitions), Err: errors.New("want at least 1")})
	}
	return errors.Join(errs...)
}

// Compare runs the plan's workload against every target and returns the
// file (its benchmarks) and the comparisons: the baseline against every
// candidate. Every target is dialled before any benchmark starts.
func (r *Runner) Compare(ctx context.Context, c Comparison) (*report.File, []SidePair, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	for _, t := range c.Targets {
		if err := checkReachable(ctx, t.URL); err != nil {
			return nil, nil, fmt.Errorf("target %s: %w", t.Name, err)
		}
	}
	targets := c.Targets
	outcomes := make([][]Outcome, len(targets)) // per target, per repetition
	for rep := range c.Repetitions {
		order := make([]int, len(targets))
		for i := range order {
			order[i] = i
			if rep%2 == 1 { // alternate the order to cancel drift
				order[i] = len(targets) - 1 - i
			}
		}
		one := func(i int) error {
			t := targets[i]
			name := t.Name
			if c.Repetitions > 1 {
				name = fmt.Sprintf("%s#%d", t.Name, rep+1)
			}
			o, err := r.runTarget(ctx, t, name, r.namespaceOf(rep))
			if err != nil {
				return err
			}
			outcomes[i] = append(outcomes[i], o)
			return nil
		}
		if !c.Parallel {
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
	if c.Captured != "" {
		base, side, err := capturedSide(c.Captured, outcomes[0][0])
		if err != nil {
			return nil, nil, fmt.Errorf("reading production's timings from the capture: %w", err)
		}
		file.Benchmarks = append(file.Benchmarks, base)
		sides = append(sides, side)
	}
	for i, t := range targets {
		side := compare.Side{Name: t.Name}
		for _, o := range outcomes[i] {
			b := o.Benchmark
			b.Baseline = i == 0 && c.Captured == ""
			b.Labels = c.Labels
			file.Benchmarks = append(file.Benchmarks, b)
			side.Requests = append(side.Requests, report.RequestRecords(o.Run.Results)...)
			side.RunLengths = append(side.RunLengths, len(o.Run.Results))
			side.WindowS += b.Metrics.WindowS
		}
		sides = append(sides, side)
	}
	return file, against(sides), nil
}

// runTarget runs the workload once against t, its prompts in namespace ns
// (every target of a repetition gets the same prompts). Runs of different
// targets may overlap (parallel mode): nothing here is shared but the body
// builder, which is safe for concurrent use.
func (r *Runner) runTarget(ctx context.Context, t Target, name, ns string) (Outcome, error) {
	cfg := r.plan.Engine
	cfg.Target = t.URL
	o, err := r.run(ctx, cfg, name, r.plan.Rescale, r.plan.Detector, ns)
	if err != nil {
		return Outcome{}, fmt.Errorf("target %s: %w", name, err)
	}
	if err := FailureSummary(o.Run); err != nil {
		return Outcome{}, fmt.Errorf("target %s: %w", name, err)
	}
	return o, nil
}

// capturedSide is production as captured for exactly the requests o's run
// replayed, as a benchmark and as the comparison's baseline side.
func capturedSide(path string, o Outcome) (report.Benchmark, compare.Side, error) {
	b, results, ok := Captured(path, o)
	if !ok {
		return b, compare.Side{}, errors.New("the replayed requests carry no capture records")
	}
	return b, compare.Side{Name: b.Name, Requests: report.RequestRecords(results), WindowS: b.Metrics.WindowS}, nil
}

// usageError is a problem with how the saved results were named.
func usageError(format string, args ...any) error { return cli.UsageError(format, args...) }

// savedDir is one results directory's benchmarks with records.
type savedDir struct {
	dir, path string
	benches   []report.Benchmark
}

// LoadSaved reads benchmarks.json from every directory. Every benchmark
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
func LoadSaved(dirs []string, baseline string, stderr io.Writer) (*report.File, []SidePair, error) {
	var loaded []savedDir
	for _, dir := range dirs {
		path := filepath.Join(dir, report.JSONFile)
		f, _, err := report.ReadResults(dir)
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
	var pairs []SidePair
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
func pairSaved(ds []savedDir, baseline string) (*report.File, []SidePair, error) {
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
		return nil, nil, usageError("--baseline %q: comparing %s and %s point by point, the baseline is one of the directories", baseline, tag[0], tag[1])
	}
	base, cand := ds[bi], ds[1-bi]
	out := &report.File{}
	var pairs []SidePair
	side := func(b report.Benchmark, tag string, isBase bool) compare.Side {
		b.Name = tag + "/" + b.Name
		b.Baseline = isBase
		out.Benchmarks = append(out.Benchmarks, b)
		return compare.Side{Name: b.Name, Requests: b.Requests, WindowS: b.Metrics.WindowS}
	}
	for i := range base.benches { // pointByPoint: the same places in the same order
		pairs = append(pairs, SidePair{side(base.benches[i], tag[bi], true), side(cand.benches[i], tag[1-bi], false)})
	}
	return out, pairs, nil
}

// againstSaved compares the baseline benchmark with every other.
func againstSaved(ds []savedDir, baseline string) (*report.File, []SidePair, error) {
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
			return nil, nil, usageError("--baseline %q: no such benchmark (have %s)", baseline, strings.Join(names, ", "))
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
