package replaycli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
)

// engineFlags are replay run's flags for the engine's load shape, limits,
// measurement and client (beyond the basic ones in bench.go).
type engineFlags struct {
	burstiness       float64
	warmup, cooldown string
	maxErrors        int
	maxErrorRate     float64
	lagThreshold     time.Duration
	spin             time.Duration
	http2, insecure  bool
	caCert           string
}

func registerEngineFlags(fs *flag.FlagSet, e *engineFlags) {
	fs.Float64Var(&e.burstiness, "burstiness", 1, "gamma: shape of the gaps between requests (1 is Poisson, below 1 burstier, above 1 more even; as vLLM bench serve's --burstiness)")
	fs.StringVar(&e.warmup, "warmup", "", "requests at the start sent but left out of the metrics: a duration (10s), a count (50) or a fraction (5% or 0.05) of --max-requests, --max-seconds or the requests sent")
	fs.StringVar(&e.cooldown, "cooldown", "", "requests at the end sent but left out of the metrics, as --warmup")
	fs.IntVar(&e.maxErrors, "max-errors", 0, "stop scheduling once this many requests have failed (0: no limit)")
	fs.Float64Var(&e.maxErrorRate, "max-error-rate", 0, "stop scheduling once, of the last 30 finished requests (and at least 30 finished), this fraction or more failed (0: no limit)")
	fs.DurationVar(&e.lagThreshold, "lag-threshold", 10*time.Millisecond, "mark the benchmark degraded when the client's own send lag p99 exceeds this")
	fs.DurationVar(&e.spin, "spin", 0, "open-loop profiles: spend this much before each due time yielding in a loop rather than asleep (1ms meets due times within microseconds instead of up to 1 ms late, at the cost of CPU: about a core at 1,000 req/s and above)")
	fs.BoolVar(&e.http2, "http2", false, "use HTTP/2: h2 over TLS, prior knowledge (h2c) for http:// targets")
	fs.StringVar(&e.caCert, "ca-cert", "", "PEM file of certificate authorities to trust for an https:// target")
	fs.BoolVar(&e.insecure, "insecure-skip-verify", false, "do not verify the target's TLS certificate")
}

// apply sets the flags' fields of cfg.
func (e *engineFlags) apply(cfg *engine.Config) error {
	var errs []error
	var err error
	if cfg.Warmup, err = engine.ParsePortion(e.warmup); err != nil {
		errs = append(errs, fmt.Errorf("--warmup %w", err))
	}
	if cfg.Cooldown, err = engine.ParsePortion(e.cooldown); err != nil {
		errs = append(errs, fmt.Errorf("--cooldown %w", err))
	}
	if cfg.Profile == engine.ProfileGamma || e.burstiness != 1 {
		cfg.Burstiness = e.burstiness
	}
	cfg.MaxErrors, cfg.MaxErrorRate, cfg.LagThreshold, cfg.Spin = e.maxErrors, e.maxErrorRate, e.lagThreshold, e.spin
	cfg.HTTP2, cfg.CACert, cfg.InsecureSkipVerify = e.http2, e.caCert, e.insecure
	return errors.Join(errs...)
}

// engineConfig adds the engine settings and how the run ended to a
// benchmark's config object.
func engineConfig(m map[string]any, cfg engine.Config, run *engine.Run) {
	if cfg.Profile == engine.ProfileGamma {
		m["burstiness"] = cfg.Burstiness
	}
	if s := cfg.Warmup.String(); s != "" {
		m["warmup"] = s
	}
	if s := cfg.Cooldown.String(); s != "" {
		m["cooldown"] = s
	}
	if cfg.MaxErrors > 0 {
		m["max_errors"] = cfg.MaxErrors
	}
	if cfg.MaxErrorRate > 0 {
		m["max_error_rate"] = cfg.MaxErrorRate
		m["error_window"] = cfg.ErrorWindow
	}
	if cfg.HTTP2 {
		m["http2"] = true
	}
	if cfg.Spin > 0 {
		m["spin_s"] = cfg.Spin.Seconds()
	}
	m["drain_s"] = cfg.Drain.Seconds()
	if run == nil {
		return
	}
	m["stop_reason"] = run.StopReason
	m["stopped_at_s"] = run.StoppedAt.Seconds()
	m["in_flight_at_stop"] = run.InFlightAtStop
	m["cancelled_by_drain"] = run.Cancelled
}

// degradedWarning prints a warning line for a benchmark whose client lagged.
func degradedWarning(w io.Writer, b *report.Benchmark) {
	if m := &b.Metrics; m.Degraded {
		fmt.Fprintf(w, "warning: %s: degraded: the client's own send lag p99 is %.1f ms (threshold %.0f ms); the load generator, not the target, limited this benchmark\n",
			b.Name, m.ClientLag.P99, m.LagThresholdMs)
	}
}
