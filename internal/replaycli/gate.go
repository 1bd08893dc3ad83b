package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/workload"
)

// gateOptions are the flags of over-saturation detection, SLOs and sweeps,
// shared by replay run and replay capacity.
type gateOptions struct {
	detect      string // --detect-saturation; "" is off
	slo         string
	sweepPoints int
	rateProfile string // --rate-profile: constant or poisson

	detector *saturation.Config // parsed detect; nil when off
	spec     *slo.Spec          // parsed slo; nil when off
}

func registerGateFlags(fs *flag.FlagSet, g *gateOptions) {
	fs.StringVar(&g.detect, "detect-saturation", "", "over-saturation detection, GuideLLM-compatible: enforce (stop the benchmark) or monitor (report only), optionally followed by ,key=value with GuideLLM's parameter names (min_seconds, max_window_seconds, moe_threshold, minimum_ttft, maximum_window_ratio, minimum_window_size, confidence) or the backlog signal's (backlog, backlog_growth, backlog_min, rate_deficit)")
	fs.StringVar(&g.slo, "slo", "", "service-level objectives, e.g. 'ttft_p99<=200ms,itl_p99<=50ms,e2e_p99<=3s' (metrics ttft, itl, tpot, e2e; p50…p99.9, mean, or none for every request; ms or s): pass/fail per benchmark, attainment and goodput")
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
	if g.sweepPoints < 3 {
		errs = append(errs, fmt.Errorf("--sweep-points %d: want at least 3 (synchronous, throughput and one rate)", g.sweepPoints))
	}
	if g.rateProfile != engine.ProfileConstant && g.rateProfile != engine.ProfilePoisson {
		errs = append(errs, fmt.Errorf("--rate-profile %q: want constant or poisson", g.rateProfile))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}

// gated is one benchmark's detector, watching the engine through its
// Progress and OnResult hooks and stopping the run in enforce mode.
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
	if cfg.Profile == engine.ProfileConstant || cfg.Profile == engine.ProfilePoisson {
		d.SetOfferedRate(cfg.Rate)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := &gated{det: d, cancel: cancel}
	progress, onResult := cfg.Progress, cfg.OnResult
	cfg.Progress = func(p engine.Progress) {
		if progress != nil {
			progress(p)
		}
		g.stopIf(d.Sample(p.Elapsed, p.Sent, p.Done))
	}
	cfg.OnResult = func(r engine.Result) {
		if onResult != nil {
			onResult(r)
		}
		if r.OK() && r.FirstToken > 0 {
			g.stopIf(d.FirstToken(r.FirstToken, r.FirstToken-r.Sent))
		}
	}
	run, err := engine.Execute(ctx, cfg, src, bodies)
	rep := d.Report()
	return run, &rep, err
}

func (g *gated) stopIf(stop bool) {
	if stop {
		g.once.Do(g.cancel)
	}
}

// attachGate adds the detector's report and the SLO verdict (with goodput
// under the SLO's per-request thresholds) to a benchmark.
func attachGate(b *report.Benchmark, run *engine.Run, sat *saturation.Report, spec *slo.Spec) {
	b.Saturation = sat
	if spec == nil {
		return
	}
	v := spec.Evaluate(run.Results)
	b.SLO = &v
	m := stats.Summarize(run.Results, stats.Options{SLO: spec.PerRequest()})
	b.Metrics.Goodput = m.Goodput
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
		return nil, fmt.Errorf("%w: %v", cli.ErrUsage, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	cfg, err := o.baseConfig(engine.ProfileSynchronous)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", cli.ErrUsage, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	cfg.Target, cfg.TimeScale = strings.TrimRight(o.target, "/"), 1
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", cli.ErrUsage, strings.ReplaceAll(err.Error(), "\n", "; "))
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
	cfg := e.cfg
	cfg.Profile, cfg.Rate = profile, rate
	b, run, err := e.o.benchmark(ctx, cfg, name, 0, e.bodies, det, stderr)
	if err != nil {
		return report.Benchmark{}, nil, fmt.Errorf("benchmark %s: %w", name, err)
	}
	if err := failureSummary(run); err != nil {
		return report.Benchmark{}, run, fmt.Errorf("benchmark %s: %w", name, err)
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
			parts = append(parts, fmt.Sprintf("%s=%.1fms %s", t.Text, t.ValueMs, mark))
		}
		att := 0.0
		if b.Metrics.Goodput != nil {
			att = b.Metrics.Goodput.Attainment
		}
		fmt.Fprintf(w, "%s: SLO %s (%s; attainment %.1f%%)\n", b.Name, verdict, strings.Join(parts, ", "), 100*att)
	}
}
