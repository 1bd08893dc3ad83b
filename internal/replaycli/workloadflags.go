package replaycli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/reprise-llm/reprise/internal/bench"
	"github.com/reprise-llm/reprise/internal/cli"
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
	models, paths, statuses    cli.List // --filter-model, --filter-path, --filter-status
	sample                     float64  // --sample F
	loop                       int      // --loop N
	maxPromptTokens, maxOutput int      // --max-prompt-tokens, --max-output-tokens
	modelMap                   cli.List // --model-map from=to
	shard                      string   // --shard i/N
	clampWait, packIdle        string   // --clamp-wait, --pack-idle
}

// registerWorkloadFlags adds the transform flags to fs; shard adds
// --shard as a transform (replay inspect: what one shard holds; replay
// run declares its own --shard, a shard of a split run).
func registerWorkloadFlags(fs *flag.FlagSet, w *workloadFlags, shard bool) {
	fs.StringVar(&w.window, "window", "", "keep requests whose offset is in START:END (durations like 10m:20m or seconds; either side may be empty), shifted to start at 0")
	fs.Var(&w.models, "filter-model", "keep requests whose model (or the model the trace names) matches this glob (any given may match)")
	fs.Var(&w.paths, "filter-path", "keep requests whose path matches this glob, e.g. /v1/chat/*")
	fs.Var(&w.statuses, "filter-status", "keep captured requests by production's answer: 200, 5xx, error, aborted; !TERM excludes")
	fs.Float64Var(&w.sample, "sample", 0, "keep this seeded fraction (0,1] of requests, whole sessions, chosen by --seed")
	fs.StringVar(&w.clampWait, "clamp-wait", "", "inside a session, cut every wait longer than this (gap between turns, think time) to it, before --time-scale; e.g. 5m (GuideLLM's max_wait)")
	fs.StringVar(&w.packIdle, "pack-idle", "", "cut every idle gap longer than this before a new session to it, after --clamp-wait and before --time-scale; e.g. 1m (GuideLLM's max_session_wait): an 8-hour trace with a night's idle becomes a short test that keeps every burst")
	fs.IntVar(&w.loop, "loop", 0, "play the (selected, rescaled) workload this many times back to back, each pass with its own sessions and prefix blocks")
	fs.IntVar(&w.maxPromptTokens, "max-prompt-tokens", 0, "cap synthesised prompt lengths (prefix blocks cut to match), for small test deployments")
	fs.IntVar(&w.maxOutput, "max-output-tokens", 0, "cap forced output lengths, and force this length where the workload sets none")
	fs.Var(&w.modelMap, "model-map", "rename a model: from=to, * for every other model (--model still overrides all)")
	if shard {
		fs.StringVar(&w.shard, "shard", "", "keep shard i of N (i/N, from 0): the requests replay run --shard i/N sends, whole sessions each")
	}
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
	if w.clampWait != "" {
		d, err := workload.ParseSessionWait("--clamp-wait", w.clampWait)
		if err != nil {
			errs = append(errs, err)
		}
		t.SessionTiming.MaxWait = d
	}
	if w.packIdle != "" {
		d, err := workload.ParseSessionWait("--pack-idle", w.packIdle)
		if err != nil {
			errs = append(errs, err)
		}
		t.SessionTiming.MaxIdle = d
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

// newWarnings prints workload warnings to w, each once (bench.Warnings).
func newWarnings(w io.Writer) *bench.Warnings { return bench.NewWarnings(w) }

// openWorkload opens spec, reading past invalid lines when skipInvalid,
// and applies t. Reader warnings go to warn as they happen.
func openWorkload(spec string, skipInvalid bool, t workload.Transforms, warn *bench.Warnings) (workload.Source, error) {
	opts := workload.OpenOptions{SkipInvalid: skipInvalid}
	if warn != nil {
		opts.Warn = warn.Print
	}
	return workload.OpenTransformed(spec, opts, t)
}
