package replaycli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/stats"
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
	fs.DurationVar(&e.lagThreshold, "lag-threshold", 10*time.Millisecond, "mark the benchmark degraded when the client's own send lag p99 exceeds this (open-loop profiles are also degraded when the gaps between sends stray from the schedule's: docs/metrics.md)")
	fs.DurationVar(&e.spin, "spin", 0, "open-loop profiles: spend this much before each due time yielding in a loop rather than asleep (1ms meets due times within microseconds instead of up to 1 ms late, at the cost of CPU: about a core at 1,000 req/s and above; a warning on hosts with fewer than 3 cores, 4 with a target on the same host)")
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

// openLoop reports whether profile sends at scheduled times: trace,
// constant, poisson and gamma. Closed loops have no schedule to keep.
func openLoop(profile string) bool {
	switch profile {
	case engine.ProfileTrace, engine.ProfileConstant, engine.ProfilePoisson, engine.ProfileGamma:
		return true
	}
	return false
}

// statsOptions are the metrics options of a benchmark of cfg; rescale > 0
// is the mean rate a trace was rescaled to, perRequest the --slo per
// request (nil: none).
func statsOptions(cfg engine.Config, rescale float64, perRequest *stats.SLO) stats.Options {
	return stats.Options{RequestedRate: requestedRate(cfg, rescale), LagThreshold: cfg.LagThreshold, SLO: perRequest, OpenLoop: openLoop(cfg.Profile)}
}

// Cores --spin wants (runtime.NumCPU): one for the spinning dispatcher,
// one for the goroutines reading responses, one for the rest of the
// process and the host; and one more for a target on the same host, whose
// event loop a spinner otherwise takes turns with. Issue 17 measured the
// cost on 2 cores next to a local server: the server saw its arrivals'
// gaps deviate more with --spin 1ms (median absolute deviation 0.69–1.07
// ms) than without (0.46 ms).
const (
	spinMinCores      = 3
	spinMinCoresLocal = 4
)

// spinWarning is the warning for --spin on a host of cores cores too small
// for it (see spinMinCores); empty when spinning is off, does not apply
// (closed loops) or has the cores it needs.
func spinWarning(cfg engine.Config, cores int) string {
	if cfg.Spin <= 0 || !openLoop(cfg.Profile) {
		return ""
	}
	need, also := spinMinCores, ""
	if loopbackTarget(cfg.Target) {
		need, also = spinMinCoresLocal, " and the target on this host"
	}
	if cores >= need {
		return ""
	}
	return fmt.Sprintf("--spin %v keeps a core busy before every due time, and this host has %d (--spin wants %d: the spinner, the client's readers, the rest%s): "+
		"the arrivals can come out less even, not more; drop --spin, or run the client on a host with cores to spare", cfg.Spin, cores, need, also)
}

// warnSpin prints this host's spinWarning, once per invocation.
func warnSpin(warn *warnings, cfg engine.Config) {
	if msg := spinWarning(cfg, runtime.NumCPU()); msg != "" {
		warn.print(msg)
	}
}

// loopbackTarget reports whether target's host is this host's loopback:
// localhost or a loopback address.
func loopbackTarget(target string) bool {
	u, err := url.Parse(target)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// degradedWarning prints a warning line for a degraded benchmark, naming
// each criterion that fired (stats.Metrics.DegradedBy; results from before
// the criteria were named: the client lag).
func degradedWarning(w io.Writer, b *report.Benchmark) {
	m := &b.Metrics
	if !m.Degraded {
		return
	}
	by := m.DegradedBy
	if len(by) == 0 {
		by = []string{stats.DegradedClientLag}
	}
	var why []string
	arrival := false
	for _, c := range by {
		s := m.ArrivalShape
		switch {
		case c == stats.DegradedClientLag:
			why = append(why, fmt.Sprintf("the client's own send lag p99 is %.1f ms (threshold %.0f ms)", m.ClientLag.P99, m.LagThresholdMs))
		case c == stats.DegradedArrivalKS && s != nil:
			arrival = true
			why = append(why, fmt.Sprintf("the gaps between its sends are not the schedule's: KS distance %.3f against a 1%% critical value of %.3f (degraded above %.3f)",
				s.KSDistance, s.KSCritical1Pct, s.KSCritical1Pct+stats.ArrivalKSMargin))
		case c == stats.DegradedCompressedGaps && s != nil:
			arrival = true
			why = append(why, fmt.Sprintf("%.1f%% of the gaps meant to be %v or more went out under %v (%d of %d; degraded above %.0f%%)",
				100*s.CompressedGapFraction, stats.SpacedGap, stats.CompressedGap, s.CompressedGaps, s.SpacedGaps, 100*stats.MaxCompressedGapFraction))
		}
	}
	hint := ""
	if arrival {
		hint = " (timers batched on a busy host, a stalled dispatcher: --spin on a host with cores to spare, or a lower rate)"
	}
	fmt.Fprintf(w, "warning: %s: degraded: %s; the load generator, not the target, limited or reshaped this benchmark%s\n", b.Name, strings.Join(why, "; "), hint)
}
