package bench

import (
	"context"
	"sync"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/workload"
)

// specFor is the SLO spec (nil: none) for a benchmark of profile, with
// latencies measured from the origin SLOFrom names. In an open loop a
// request's intended send is the schedule's: measuring from it counts the
// time the client held a due request back (a full max concurrency, a late
// generator), which capacity search must not miss. A closed loop has no
// schedule to be late on: its next request is due when it is sent.
func (r *Runner) specFor(profile string) *slo.Spec {
	if r.plan.SLO == nil {
		return nil
	}
	s := *r.plan.SLO
	switch r.plan.SLOFrom {
	case SLOFromIntended:
		s.FromIntended = true
	case SLOFromSent:
		s.FromIntended = false
	default:
		s.FromIntended = OpenLoop(profile)
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

// executeGated runs one benchmark with detector det (nil: none) wired in.
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
// of the max concurrency is taken: the detector counts them in the
// backlog (as sent, not done), so that a queue held in the client rather
// than the server is seen. The engine reports how long its next request
// has waited (p.Behind); those due behind it come at the schedule's rate
// (rate, or when unknown, as for a trace, the rate of sends so far).
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
