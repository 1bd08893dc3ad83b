package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/workload"
)

// workloadFlags are the workload transforms as flags, shared by `replay run`
// and `replay inspect`. They are applied in workload.Transforms' fixed order
// (docs/workloads.md): window, filter, sample, time-scale, rate, loop, caps,
// model map, shard. The time scale and the rate are not here: `replay run`
// has them already (--time-scale, which the trace schedule applies, and
// --rate, which with --profile trace rescales the trace), and inspect
// registers its own.
type workloadFlags struct {
	window                     string   // --window START:END
	models, paths, statuses    listFlag // --filter-model, --filter-path, --filter-status
	sample                     float64  // --sample F
	loop                       int      // --loop N
	maxPromptTokens, maxOutput int      // --max-prompt-tokens, --max-output-tokens
	modelMap                   listFlag // --model-map from=to
	shard                      string   // --shard i/N
}

// registerWorkloadFlags adds the transform flags to fs.
func registerWorkloadFlags(fs *flag.FlagSet, w *workloadFlags) {
	fs.StringVar(&w.window, "window", "", "keep requests whose offset is in START:END (durations like 10m:20m or seconds; either side may be empty), shifted to start at 0")
	fs.Var(&w.models, "filter-model", "keep requests whose model (or the model the trace names) matches this glob (repeatable: any may match)")
	fs.Var(&w.paths, "filter-path", "keep requests whose path matches this glob, e.g. /v1/chat/* (repeatable)")
	fs.Var(&w.statuses, "filter-status", "keep captured requests by production's answer: 200, 5xx, error, aborted; !TERM excludes (repeatable)")
	fs.Float64Var(&w.sample, "sample", 0, "keep this seeded fraction (0,1] of requests, whole sessions, chosen by --seed")
	fs.IntVar(&w.loop, "loop", 0, "play the (selected, rescaled) workload this many times back to back, each pass with its own sessions and prefix blocks")
	fs.IntVar(&w.maxPromptTokens, "max-prompt-tokens", 0, "cap synthesised prompt lengths (prefix blocks cut to match), for small test deployments")
	fs.IntVar(&w.maxOutput, "max-output-tokens", 0, "cap forced output lengths, and force this length where the workload sets none")
	fs.Var(&w.modelMap, "model-map", "rename a model: from=to, * for every other model (repeatable; --model still overrides all)")
	fs.StringVar(&w.shard, "shard", "", "keep shard i of N (i/N, from 0): N replayers started together split one trace, whole sessions each")
}

// transforms turns the flags into workload.Transforms. seed seeds the
// sample; rate (> 0) rescales the workload to that mean rate and timeScale
// multiplies its offsets (inspect; `replay run` leaves the time scale to
// the trace schedule). Every problem is reported at once.
func (w *workloadFlags) transforms(seed int64, rate, timeScale float64) (workload.Transforms, error) {
	t := workload.Transforms{
		Models: w.models, Paths: w.paths, Statuses: w.statuses, Fraction: w.sample, Seed: uint64(seed),
		Rate: rate, TimeScale: timeScale, Loop: w.loop,
		MaxPromptTokens: w.maxPromptTokens, MaxOutputTokens: w.maxOutput,
	}
	var errs []error
	if w.window != "" {
		start, end, err := workload.ParseWindow(w.window)
		if err != nil {
			errs = append(errs, err)
		}
		t.WindowStart, t.WindowEnd = start, end
	}
	if w.sample != 0 && !(w.sample > 0 && w.sample <= 1) {
		errs = append(errs, fmt.Errorf("--sample %v: want a fraction in (0, 1]", w.sample))
	}
	if len(w.modelMap) > 0 {
		m, err := workload.ParseModelMap(w.modelMap)
		if err != nil {
			errs = append(errs, err)
		}
		t.ModelMap = m
	}
	if w.shard != "" {
		i, n, err := workload.ParseShard(w.shard)
		if err != nil {
			errs = append(errs, err)
		}
		t.ShardIndex, t.ShardCount = i, n
	}
	if len(errs) == 0 {
		if err := t.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return t, errors.Join(errs...)
}

// timeScaleFlag is --time-scale, one declaration for every command that
// takes it (run, sweep, capacity, compare: benchFlags; inspect): a factor
// multiplying recorded times, which must be a positive number. 0 is
// refused rather than read as 1 (issue 16: it replayed at real time,
// silently) or as "as fast as possible", which the closed-loop profiles
// already say plainly.
type timeScaleFlag float64

// registerTimeScale adds --time-scale to fs, defaulting *p to 1.
func registerTimeScale(fs *flag.FlagSet, p *float64) {
	*p = 1
	fs.Var((*timeScaleFlag)(p), "time-scale", "multiply recorded times by this, > 0 (0.5 replays twice as fast, 2 half as fast): trace offsets, and session think times with every profile")
}

func (f *timeScaleFlag) String() string {
	if f == nil {
		return "1"
	}
	return strconv.FormatFloat(float64(*f), 'g', -1, 64)
}

func (f *timeScaleFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return errors.New("want a number such as 0.5 (twice as fast) or 2 (half as fast)")
	case v == 0:
		return errors.New("0 would squeeze the whole trace into one instant; to send as fast as the target allows, use --profile throughput (or --profile concurrent --concurrency N) instead of a time scale")
	case !(v > 0) || math.IsInf(v, 0):
		return errors.New("must be a positive number (0.5 replays twice as fast, 2 half as fast)")
	}
	*f = timeScaleFlag(v)
	return nil
}

// set reports whether any transform flag was given.
func (w *workloadFlags) set() bool {
	return w.window != "" || len(w.models)+len(w.paths)+len(w.statuses)+len(w.modelMap) > 0 || w.sample != 0 ||
		w.loop > 1 || w.maxPromptTokens > 0 || w.maxOutput > 0 || w.shard != ""
}

// describe returns the transforms in use, for a benchmark's config, or nil.
func describeTransforms(t workload.Transforms) map[string]any {
	m := map[string]any{}
	if t.WindowStart > 0 || t.WindowEnd > 0 {
		m["window_start_s"] = t.WindowStart.Seconds()
		if t.WindowEnd > 0 {
			m["window_end_s"] = t.WindowEnd.Seconds()
		}
	}
	if len(t.Models) > 0 {
		m["filter_model"] = t.Models
	}
	if len(t.Paths) > 0 {
		m["filter_path"] = t.Paths
	}
	if len(t.Statuses) > 0 {
		m["filter_status"] = t.Statuses
	}
	if t.Fraction > 0 && t.Fraction < 1 {
		m["sample"] = t.Fraction
	}
	if t.Rate > 0 {
		m["trace_rate"] = t.Rate
	}
	if t.Loop > 1 {
		m["loop"] = t.Loop
	}
	if t.MaxPromptTokens > 0 {
		m["max_prompt_tokens"] = t.MaxPromptTokens
	}
	if t.MaxOutputTokens > 0 {
		m["max_output_tokens"] = t.MaxOutputTokens
	}
	if len(t.ModelMap) > 0 {
		m["model_map"] = t.ModelMap
	}
	if t.ShardCount > 1 {
		m["shard"] = fmt.Sprintf("%d/%d", t.ShardIndex, t.ShardCount)
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// traceRate splits `--rate` for `replay run`: with --profile trace it is
// the mean rate the trace is rescaled to (returned as rescale, and the
// engine's rate becomes 0); for other profiles it stays the engine's rate.
// A rescale and a time scale other than 1 contradict each other.
func traceRate(profile string, rate, timeScale float64) (engineRate, rescale float64, err error) {
	if profile != "trace" || rate == 0 {
		return rate, 0, nil
	}
	if !(rate > 0) || math.IsInf(rate, 0) {
		return 0, 0, fmt.Errorf("--rate %v: must be > 0", rate)
	}
	if timeScale != 0 && timeScale != 1 {
		return 0, 0, errors.New("--rate and --time-scale with --profile trace: a rescale to a mean rate replaces the time scale; give one of them")
	}
	return 0, rate, nil
}

// warnings prints a source's warnings to w, each once: as soon as a reader
// has one (a likely unit mistake is seen before a long replay starts, not
// after it), and at the end those only the transforms know, with the count
// of skipped invalid lines.
type warnings struct {
	mu      sync.Mutex
	w       io.Writer
	printed map[string]bool
}

func newWarnings(w io.Writer) *warnings { return &warnings{w: w, printed: map[string]bool{}} }

// print prints msg unless it was printed already.
func (p *warnings) print(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed[msg] {
		return
	}
	p.printed[msg] = true
	fmt.Fprintf(p.w, "warning: %s\n", msg)
}

// finish prints src's warnings not printed yet and returns the number of
// invalid lines it skipped (also printed when any).
func (p *warnings) finish(src workload.Source) int {
	if s, ok := src.(interface{ Warnings() []string }); ok {
		for _, msg := range s.Warnings() {
			p.print(msg)
		}
	}
	skipped := 0
	if s, ok := src.(interface{ Skipped() int }); ok {
		skipped = s.Skipped()
	}
	if skipped > 0 {
		p.mu.Lock()
		fmt.Fprintf(p.w, "skipped %d invalid workload lines (--skip-invalid)\n", skipped)
		p.mu.Unlock()
	}
	return skipped
}

// openWorkload opens spec, reading past invalid lines when skipInvalid,
// and applies t. Reader warnings go to warn as they happen.
func openWorkload(spec string, skipInvalid bool, t workload.Transforms, warn *warnings) (workload.Source, error) {
	opts := workload.OpenOptions{SkipInvalid: skipInvalid}
	if warn != nil {
		opts.Warn = warn.print
	}
	return workload.OpenTransformed(spec, opts, t)
}

// openSource opens the workload of a `replay run`-style command with its
// transforms: rescale (> 0) is the mean rate a trace is rescaled to (see
// traceRate); the time scale stays with the trace schedule. Warnings go to
// warn. Sweep and capacity can open their workload through it too.
func (o *benchOptions) openSource(rescale float64, warn *warnings) (workload.Source, workload.Transforms, error) {
	t, err := o.wl.transforms(o.seed, rescale, 0)
	if err != nil {
		return nil, t, cli.AsUsage(err)
	}
	src, err := openWorkload(o.workload, o.skipInvalid, t, warn)
	return src, t, err
}

// requestFlags are `replay run`'s flags on what each body asks of the
// server and on when the run starts: --ignore-eos and --start-at.
type requestFlags struct {
	ignoreEOS string // auto, on or off
	startAt   string // RFC 3339; empty: at once
	start     time.Time
	mu        sync.Mutex
	reached   bool // a benchmark started at --start-at; later ones do not wait
}

// registerRequestFlags adds --ignore-eos and --start-at to fs.
func registerRequestFlags(fs *flag.FlagSet, r *requestFlags) {
	fs.StringVar(&r.ignoreEOS, "ignore-eos", "auto", "send ignore_eos with max_tokens so outputs have the workload's lengths: auto (on), on, or off for strict OpenAI APIs that reject unknown fields (outputs may then stop early: the shortfall is reported)")
	fs.StringVar(&r.startAt, "start-at", "", "RFC 3339 instant (e.g. 2026-01-02T15:04:05Z) at which to send the first request, after the workload and tokenizer are ready: shards on machines with aligned clocks start together")
}

// parse checks the flags' values.
func (r *requestFlags) parse() error {
	var errs []error
	switch r.ignoreEOS {
	case "", "auto", "on", "off":
	default:
		errs = append(errs, fmt.Errorf("--ignore-eos %q: want auto, on or off", r.ignoreEOS))
	}
	if r.startAt != "" {
		t, err := time.Parse(time.RFC3339Nano, r.startAt)
		if err != nil {
			errs = append(errs, fmt.Errorf("--start-at %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", r.startAt))
		}
		r.start = t
	}
	return errors.Join(errs...)
}

// omitIgnoreEOS reports whether bodies leave ignore_eos out.
func (r *requestFlags) omitIgnoreEOS() bool { return r.ignoreEOS == "off" }

// startSlack is how far in the past --start-at may be when it is reached
// (the time opening the workload took, clock steps): beyond it the shards
// would not start together, which is an error.
const startSlack = time.Second

// waitStart waits until --start-at. Benchmarks that start together
// (compare --mode parallel) all wait for it; once it has been reached, later
// benchmarks (a sweep's) start when the earlier ones end. It returns the
// instant waited for (zero without --start-at or once it was reached), and
// an error when that instant passed more than startSlack ago or ctx ended.
func (r *requestFlags) waitStart(ctx context.Context, now func() time.Time) (time.Time, error) {
	r.mu.Lock()
	skip := r.start.IsZero() || r.reached
	r.mu.Unlock()
	if skip {
		return time.Time{}, nil
	}
	wait := r.start.Sub(now())
	if wait < -startSlack {
		return time.Time{}, fmt.Errorf("--start-at %s is %v in the past (the workload and tokenizer were ready at %s): give a later time",
			r.startAt, (-wait).Round(time.Millisecond), now().UTC().Format(time.RFC3339Nano))
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
	r.mu.Lock()
	r.reached = true
	r.mu.Unlock()
	return r.start, nil
}

// tokenShortfall prints, after the results table, one line when the target
// produced fewer output tokens than were forced (it ignored ignore_eos, or
// --ignore-eos off let it stop), and one when it counted prompts
// differently from what was synthesised (another tokenizer, a chat
// template's tokens, a multi-turn history).
func tokenShortfall(w io.Writer, name string, m *stats.Metrics) {
	if o := m.OutputTokenMismatch; o != nil && o.MeanDiff < 0 {
		fmt.Fprintf(w, "%s: output shortfall: %d of %d requests got a different output length than forced, %.1f tokens short on average (min diff %+g): "+
			"the target stopped early — it ignores ignore_eos (or --ignore-eos off); output-bound latencies are understated\n",
			name, o.Compared-o.Exact, o.Compared, -o.MeanDiff, o.MinDiff)
	}
	if p := m.PromptTokenMismatch; p != nil && p.Exact < p.Compared {
		fmt.Fprintf(w, "%s: prompt tokens: the target counted %d of %d prompts differently than requested, %+.1f tokens on average (%+g to %+g): "+
			"its tokenizer or chat template differs from --tokenizer (multi-turn history also adds tokens)\n",
			name, p.Compared-p.Exact, p.Compared, p.MeanDiff, p.MinDiff, p.MaxDiff)
	}
}
