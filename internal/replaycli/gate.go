package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/workload"
)

// gateOptions are the flags of over-saturation detection, SLOs and sweeps,
// shared by replay run and replay capacity.
type gateOptions struct {
	detect      string // --detect-saturation; "" is off
	slo         string
	sloFrom     string // --slo-from: auto, sent or intended
	sweepPoints int
	rateProfile string // --rate-profile: constant or poisson

	detector *saturation.Config // parsed detect; nil when off
	spec     *slo.Spec          // parsed slo; nil when off
}

func registerGateFlags(fs *flag.FlagSet, g *gateOptions) {
	fs.StringVar(&g.detect, "detect-saturation", "", "over-saturation detection, GuideLLM-compatible: enforce (stop the benchmark) or monitor (report only), optionally followed by ,key=value with GuideLLM's parameter names (enabled: false is monitor, min_seconds, max_window_seconds, moe_threshold, minimum_ttft, maximum_window_ratio, minimum_window_size, confidence) or the backlog signal's (backlog, backlog_growth, backlog_min, rate_deficit)")
	fs.StringVar(&g.slo, "slo", "", "service-level objectives, e.g. 'ttft_p99<=200ms,itl_p99<=50ms,e2e_p99<=3s' (metrics ttft; itl, each request's mean gap between tokens after the first (GuideLLM's ITL formula and vLLM's TPOT, weighted per request); tpot, GuideLLM's TPOT formula, (last token − send) / output tokens, TTFT included, per request; e2e. p50…p99.9, mean, or none for every request; ms or s): pass/fail per benchmark, attainment and goodput")
	fs.StringVar(&g.sloFrom, "slo-from", sloFromAuto, "where --slo measures ttft, tpot and e2e from: sent (the actual send), intended (the schedule's send time, so client-side queueing under --max-concurrency cannot hide delay), or auto: intended for open-loop profiles (constant, poisson, gamma, trace), sent for closed loops (synchronous, concurrent, throughput)")
	fs.StringVar(&g.rateProfile, "rate-profile", engine.ProfileConstant, "sweep and capacity: arrival process of the fixed-rate benchmarks, constant (GuideLLM's default) or poisson")
	fs.IntVar(&g.sweepPoints, "sweep-points", 10, "sweep: total benchmarks (synchronous, throughput, then this minus 2 constant rates between their rates)")
}

// parse checks and parses the gate flags; errors are usage errors.
func (g *gateOptions) parse() error {
	var errs []error
	if g.detect != "" {
		c, err := saturation.Parse(g.detect)
		if err != nil {
			errs = append(errs, err)
		} else {
			g.detector = &c
		}
	}
	if g.slo != "" {
		s, err := slo.Parse(g.slo)
		if err != nil {
			errs = append(errs, err)
		} else {
			g.spec = s
		}
	}
	switch g.sloFrom {
	case sloFromAuto, slo.FromSent, slo.FromIntended:
	default:
		errs = append(errs, fmt.Errorf("--slo-from %q: want auto, sent or intended", g.sloFrom))
	}
	if g.sweepPoints < 3 {
		errs = append(errs, fmt.Errorf("--sweep-points %d: want at least 3 (synchronous, throughput and one rate)", g.sweepPoints))
	}
	if g.rateProfile != engine.ProfileConstant && g.rateProfile != engine.ProfilePoisson {
		errs = append(errs, fmt.Errorf("--rate-profile %q: want constant or poisson", g.rateProfile))
	}
	if err := errors.Join(errs...); err != nil {
		return cli.AsUsage(err)
	}
	return nil
}

// sloFromAuto is --slo-from's default: intended for open loops, sent for
// closed loops.
const sloFromAuto = "auto"

// specFor is the SLO spec (nil: none) for a benchmark of profile, with
// latencies measured from the origin --slo-from names. In an open loop a
// request's intended send is the schedule's: measuring from it counts the
// time the client held a due request back (a full --max-concurrency, a
// late generator), which capacity search must not miss. A closed loop has
// no schedule to be late on: its next request is due when it is sent.
func (g *gateOptions) specFor(profile string) *slo.Spec {
	if g.spec == nil {
		return nil
	}
	s := *g.spec
	switch g.sloFrom {
	case slo.FromIntended:
		s.FromIntended = true
	case slo.FromSent:
		s.FromIntended = false
	default:
		switch profile {
		case engine.ProfileConstant, engine.ProfilePoisson, engine.ProfileGamma, engine.ProfileTrace:
			s.FromIntended = true
		default:
			s.FromIntended = false
		}
	}
	return &s
}

// gated is one benchmark's detector, watching the engine through its
// Progress and OnFirstToken hooks and stopping the run in enforce mode
// (with cause engine.ErrSaturated, so the run's stop_reason is saturated).
type gated struct {
	det    *saturation.Detector
	cancel context.CancelFunc
	once   sync.Once
}

// execute runs one benchmark with detector cfg (nil: none) wired in.
func executeGated(ctx context.Context, det *saturation.Config, cfg engine.Config, src workload.Source, bodies engine.BodyBuilder) (*engine.Run, *saturation.Report, error) {
	if det == nil {
		run, err := engine.Execute(ctx, cfg, src, bodies)
		return run, nil, err
	}
	d, err := saturation.New(*det)
	if err != nil {
		return nil, nil, err
	}
	switch cfg.Profile {
	case engine.ProfileConstant, engine.ProfilePoisson, engine.ProfileGamma:
		d.SetOfferedRate(cfg.Rate)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	g := &gated{det: d, cancel: func() { cancel(engine.ErrSaturated) }}
	progress, onFirst := cfg.Progress, cfg.OnFirstToken
	cfg.Progress = func(p engine.Progress) {
		if progress != nil {
			progress(p)
		}
		g.stopIf(d.Sample(p.Elapsed, p.Sent+dueWaiting(p, cfg.Rate), p.Done))
	}
	// TTFT reaches the detector as the first token arrives, not when the
	// request ends: a long response must not delay the verdict.
	cfg.OnFirstToken = func(f engine.FirstToken) {
		if onFirst != nil {
			onFirst(f)
		}
		g.stopIf(d.FirstToken(f.At, f.TTFT()))
	}
	run, err := engine.Execute(ctx, cfg, src, bodies)
	rep := d.Report()
	return run, &rep, err
}

// dueWaiting estimates the requests due but not sent because every slot
// of --max-concurrency is taken: the detector counts them in the backlog
// (as sent, not done), so that a queue held in the client rather than the
// server is seen. The engine reports how long its next request has waited
// (p.Behind); those due behind it come at the schedule's rate (rate, or
// when unknown, as for a trace, the rate of sends so far).
func dueWaiting(p engine.Progress, rate float64) int {
	if p.Behind <= 0 {
		return 0
	}
	if !(rate > 0) && p.Elapsed > 0 {
		rate = float64(p.Sent) / p.Elapsed.Seconds()
	}
	return 1 + int(p.Behind.Seconds()*rate)
}

func (g *gated) stopIf(stop bool) {
	if stop {
		g.once.Do(g.cancel)
	}
}

// attachGate adds the detector's report and the SLO verdict to a benchmark
// (whose metrics carry goodput under the SLO's per-request thresholds).
func attachGate(b *report.Benchmark, run *engine.Run, sat *saturation.Report, spec *slo.Spec) {
	b.Saturation = sat
	if spec == nil {
		return
	}
	v := spec.Evaluate(run.Results)
	b.SLO = &v // goodput is in the metrics already (targetBenchmark)
}

// benchEnv is what every benchmark of one invocation shares: the load
// configuration without its profile, and the body builder. Each benchmark
// opens the workload afresh.
type benchEnv struct {
	o      *benchOptions
	cfg    engine.Config
	bodies engine.BodyBuilder
}

// newBenchEnv checks and prepares what runBench prepares, for commands that
// run several benchmarks (sweep, capacity).
func newBenchEnv(ctx context.Context, o *benchOptions, stderr io.Writer) (*benchEnv, error) {
	if o.maxSeconds <= 0 && o.maxRequests <= 0 {
		return nil, cli.UsageError("every benchmark of a sweep or a capacity search needs a bound: --max-seconds or --max-requests")
	}
	if err := o.scrape.Validate(); err != nil {
		return nil, cli.AsUsage(err)
	}
	cfg, err := o.baseConfig(engine.ProfileSynchronous)
	if err != nil {
		return nil, cli.AsUsage(err)
	}
	cfg.Target, cfg.TimeScale = strings.TrimRight(o.target, "/"), 1
	if err := cfg.Validate(); err != nil {
		return nil, cli.AsUsage(err)
	}
	bodies, err := o.bodyBuilder(cfg)
	if err != nil {
		return nil, err
	}
	return &benchEnv{o: o, cfg: cfg, bodies: bodies}, nil
}

// bench runs one benchmark of profile at rate (0 for closed loops), named
// name, with the detector det (nil: none) and the SLO spec (nil: none).
func (e *benchEnv) bench(ctx context.Context, name, profile string, rate float64, det *saturation.Config, stderr io.Writer) (report.Benchmark, *engine.Run, error) {
	b, run, err := e.benchFailing(ctx, name, profile, rate, det, stderr)
	if err != nil {
		return b, run, err
	}
	if err := failureSummary(run); err != nil {
		return report.Benchmark{}, run, fmt.Errorf("benchmark %s: %w", name, err)
	}
	return b, run, nil
}

// benchFailing is bench without its check that some request succeeded: a
// benchmark in which every request failed is still a result (a capacity
// probe that fails its SLOs), unless nothing was sent at all.
func (e *benchEnv) benchFailing(ctx context.Context, name, profile string, rate float64, det *saturation.Config, stderr io.Writer) (report.Benchmark, *engine.Run, error) {
	cfg := e.cfg
	cfg.Profile, cfg.Rate = profile, rate
	b, run, err := e.o.benchmark(ctx, cfg, name, 0, e.bodies, det, stderr)
	if err != nil {
		return report.Benchmark{}, nil, fmt.Errorf("benchmark %s: %w", name, err)
	}
	if len(run.Results) == 0 {
		return report.Benchmark{}, run, fmt.Errorf("benchmark %s: the workload produced no requests", name)
	}
	return b, run, nil
}

// gateSummary prints one line per benchmark about the detector and SLOs.
func gateSummary(w io.Writer, b *report.Benchmark) {
	if s := b.Saturation; s != nil {
		if s.Detected {
			fmt.Fprintf(w, "%s: over-saturated (%s at %.1fs, %s mode)\n", b.Name, s.Signal, s.DetectedAtS, s.Mode)
		} else {
			fmt.Fprintf(w, "%s: no over-saturation detected\n", b.Name)
		}
	}
	if v := b.SLO; v != nil {
		verdict := "PASS"
		if !v.Pass {
			verdict = "FAIL"
		}
		var parts []string
		for _, t := range v.Terms {
			mark := "ok"
			if !t.Pass {
				mark = "FAIL"
			}
			value := fmt.Sprintf("%.1fms", t.ValueMs)
			if math.IsInf(t.ValueMs, 1) {
				value = "∞ (a failed request)"
			}
			parts = append(parts, fmt.Sprintf("%s=%s %s", t.Text, value, mark))
		}
		att := 0.0
		if b.Metrics.Goodput != nil {
			att = b.Metrics.Goodput.Attainment
		}
		failed := ""
		if len(v.Terms) > 0 && v.Terms[0].Failed > 0 {
			failed = fmt.Sprintf("; %d failed requests count as violations", v.Terms[0].Failed)
		}
		from := v.From
		if from == "" {
			from = slo.FromSent
		}
		fmt.Fprintf(w, "%s: SLO %s (%s; latency from %s send; attainment %.1f%%%s)\n", b.Name, verdict, strings.Join(parts, ", "), from, 100*att, failed)
	}
}
