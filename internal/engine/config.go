package engine

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// BodyBuilder turns a workload request into the JSON body to send.
// internal/synth implements it.
type BodyBuilder interface {
	Body(req *workload.Request, model string) ([]byte, error)
}

// Profiles.
const (
	ProfileTrace       = "trace"       // recorded offsets × TimeScale
	ProfileConstant    = "constant"    // request i at i/Rate
	ProfilePoisson     = "poisson"     // exponential gaps of mean 1/Rate, seeded
	ProfileGamma       = "gamma"       // gamma gaps of mean 1/Rate and shape Burstiness, seeded
	ProfileSynchronous = "synchronous" // one at a time, back to back
	ProfileConcurrent  = "concurrent"  // Concurrency closed loops
	ProfileThroughput  = "throughput"  // MaxConcurrency closed loops: as fast as the cap allows
)

// Config is one benchmark's load. Field comments are the flags' docs.
type Config struct {
	// Target is the base URL of the deployment, http:// or https://, with
	// any path prefix a gateway needs; the OpenAI paths (/v1/chat/completions,
	// /v1/completions) are appended.
	Target string
	// Model overrides every request's model when non-empty.
	Model string
	// Profile is the load model: trace, constant, poisson, gamma,
	// synchronous, concurrent or throughput.
	Profile string
	// Rate is requests per second for constant, poisson and gamma. It must be 0
	// for trace, which keeps the recorded offsets × TimeScale (rescaling a
	// trace to a target mean rate would need the whole trace up front).
	Rate float64
	// Burstiness is the shape of gamma's gap distribution: 1 is Poisson,
	// below 1 burstier, above 1 more even (the gaps' coefficient of
	// variation is 1/√Burstiness). 0 means 1.
	Burstiness float64
	// TimeScale multiplies recorded times (0.5 = twice as fast): the
	// offsets of trace, and for every profile the think time (Delay) of
	// session turns. 0 means 1.
	TimeScale float64
	// Concurrency is the number of closed loops for concurrent.
	Concurrency int
	// MaxConcurrency caps requests in flight for open-loop profiles (trace,
	// constant, poisson, gamma): a request due while the cap is full waits for a
	// free slot, is sent late and its lag recorded (Run.Waited and Run.Late count them),
	// or with DropWhenFull is not sent at all (Run.Dropped). It is also the
	// level throughput keeps. 0 means 1024.
	MaxConcurrency int
	// DropWhenFull makes open-loop profiles skip, and count in Run.Dropped,
	// a request that finds MaxConcurrency requests in flight at its due
	// time, instead of sending it late (k6's dropped_iterations). Dropping
	// keeps the schedule's timing at the cost of its count.
	DropWhenFull bool
	// MaxSeconds stops scheduling this many seconds after the origin
	// (0: none); requests in flight then have Drain to finish.
	MaxSeconds float64
	// MaxRequests stops scheduling after this many requests (0: none).
	MaxRequests int
	// MaxErrors stops scheduling once this many requests have failed (0:
	// none). Requests cancelled by the drain bound do not count.
	MaxErrors int
	// MaxErrorRate stops scheduling once at least ErrorWindow requests have
	// finished and, of the last ErrorWindow of them, this fraction or more
	// failed (GuideLLM's --max-error-rate: a sliding window of 30 that must
	// fill first). 0 means none; it must be below 1.
	MaxErrorRate float64
	// ErrorWindow is MaxErrorRate's window and minimum sample. 0 means 30.
	ErrorWindow int
	// Warmup and Cooldown mark the first and last requests of the run as
	// excluded from metrics (Result.Phase): they are sent, recorded and
	// counted, but stats.Summarize skips them. See Portion.
	Warmup, Cooldown Portion
	// Drain bounds in-flight work once scheduling has stopped; requests
	// still running then are cancelled and recorded with Err "cancelled: …".
	// 0 means 30 s.
	Drain time.Duration
	// Timeout bounds each request, from send to the end of its body; a
	// request that exceeds it is recorded with Err "timeout: …". 0 means
	// 10 minutes.
	Timeout time.Duration
	// Headers are added to every request (Authorization for gateways; a
	// Host entry sets the Host header). Never logged, and removed from
	// Run.Config.
	Headers http.Header
	// HTTP2 sends every request over HTTP/2: negotiated by ALPN over TLS
	// (https://), with prior knowledge (h2c) for http:// targets. A target
	// that does not speak it fails every request. False: HTTP/1.1.
	HTTP2 bool
	// CACert is a PEM file of certificate authorities trusted for an
	// https:// target, in addition to the system's.
	CACert string
	// InsecureSkipVerify accepts any certificate the target presents.
	InsecureSkipVerify bool
	// Spin makes open-loop scheduling spend the last Spin before each due
	// time yielding in a loop instead of asleep: Go's runtime, when idle,
	// wakes timers with millisecond resolution, so sleeping alone sends up
	// to 1 ms late. 1 ms meets due times within microseconds, at the cost
	// of CPU (a core at rates near 1,000 req/s and above). 0: no spinning.
	Spin time.Duration
	// LagThreshold is the client-lag p99 (send lag less queue wait and
	// order wait, see Result) beyond which the benchmark is reported
	// degraded: the client, not the server, limited the load. The
	// dispatcher does not read it; stats.Options does. 0 means
	// stats.DefaultLagThreshold (10 ms).
	LagThreshold time.Duration
	// Seed seeds the Poisson and gamma schedules.
	Seed int64
	// Progress, when set, is called about once a second from its own
	// goroutine while the run lasts.
	Progress func(Progress)
	// OnResult, when set, is called with each request's Result as it ends,
	// from the goroutine that sent it (concurrently; it must be quick).
	OnResult func(Result)
	// DiscardChunks keeps each request's Chunks and ChunkTokens only until
	// OnResult has seen them: Run.Results then holds their count
	// (Result.ChunkCount) but not the offsets, so the run's memory follows
	// the requests in flight rather than the workload's length. Set it when
	// OnResult records every result as it ends (stats.Online).
	DiscardChunks bool
	// OnFirstToken, when set, is called once per request as its first
	// output arrives (see FirstToken), before the request ends, from the
	// goroutine reading it (concurrently; it must be quick). A
	// non-streamed response calls it when its body has been read and
	// parsed without error.
	OnFirstToken func(FirstToken)
	// Now is the clock every offset is read from (nil: time.Now). It must
	// carry a monotonic reading, as time.Now's does; timers still use the
	// runtime's clock, which testing/synctest fakes together with time.Now.
	Now func() time.Time
}

// withDefaults returns a copy of c with zero fields set to the defaults
// their comments document.
func (c *Config) withDefaults() Config {
	out := *c
	if out.MaxConcurrency == 0 {
		out.MaxConcurrency = 1024
	}
	if out.Drain == 0 {
		out.Drain = 30 * time.Second
	}
	if out.Timeout == 0 {
		out.Timeout = 10 * time.Minute
	}
	if out.TimeScale == 0 {
		out.TimeScale = 1
	}
	if out.Burstiness == 0 {
		out.Burstiness = 1
	}
	if out.ErrorWindow == 0 {
		out.ErrorWindow = 30
	}
	if out.Profile == ProfileSynchronous {
		out.Concurrency = 1
	}
	if out.Profile == ProfileThroughput {
		out.Concurrency = out.MaxConcurrency
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return out
}

// Validate reports every problem at once, naming the flags.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--target %q: want an http:// or https:// URL", c.Target))
	}
	switch c.Profile {
	case ProfileConstant, ProfilePoisson, ProfileGamma:
		if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
			errs = append(errs, fmt.Errorf("--rate %v: must be > 0 for --profile %s", c.Rate, c.Profile))
		}
	case ProfileTrace:
		if c.Rate != 0 {
			errs = append(errs, errors.New("Rate with --profile trace: the trace's own offsets set the rate; rescale the workload to a mean rate first (replay's --rate does) or use --time-scale"))
		}
	case ProfileConcurrent:
		if c.Concurrency < 1 {
			errs = append(errs, fmt.Errorf("--concurrency %d: must be at least 1 for --profile concurrent", c.Concurrency))
		}
	case ProfileSynchronous, ProfileThroughput:
	default:
		errs = append(errs, fmt.Errorf("--profile %q: want trace, constant, poisson, gamma, synchronous, concurrent or throughput", c.Profile))
	}
	if c.TimeScale < 0 || math.IsNaN(c.TimeScale) || math.IsInf(c.TimeScale, 0) {
		errs = append(errs, fmt.Errorf("--time-scale %v: must be positive", c.TimeScale))
	}
	if c.Burstiness < 0 || math.IsNaN(c.Burstiness) || math.IsInf(c.Burstiness, 0) || (c.Burstiness > 0 && c.Burstiness < minBurstiness) {
		errs = append(errs, fmt.Errorf("--burstiness %v: must be a positive number, at least %v", c.Burstiness, minBurstiness))
	}
	if c.Burstiness != 0 && c.Burstiness != 1 && c.Profile != ProfileGamma {
		errs = append(errs, fmt.Errorf("--burstiness %v: only --profile gamma uses it", c.Burstiness))
	}
	if c.MaxErrors < 0 {
		errs = append(errs, fmt.Errorf("--max-errors %d: must not be negative", c.MaxErrors))
	}
	if c.MaxErrorRate < 0 || !(c.MaxErrorRate < 1) {
		errs = append(errs, fmt.Errorf("--max-error-rate %v: must be in [0, 1)", c.MaxErrorRate))
	}
	if c.ErrorWindow < 0 {
		errs = append(errs, fmt.Errorf("error window %d: must not be negative", c.ErrorWindow))
	}
	for _, p := range []struct {
		flag string
		p    Portion
	}{{"--warmup", c.Warmup}, {"--cooldown", c.Cooldown}} {
		if err := p.p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.flag, err))
		}
	}
	if c.Warmup.Fraction+c.Cooldown.Fraction >= 1 {
		errs = append(errs, fmt.Errorf("--warmup and --cooldown fractions add up to %v: nothing would be measured", c.Warmup.Fraction+c.Cooldown.Fraction))
	}
	if c.CACert != "" && c.InsecureSkipVerify {
		errs = append(errs, errors.New("--ca-cert with --insecure-skip-verify: choose one"))
	}
	if c.MaxConcurrency < 0 {
		errs = append(errs, fmt.Errorf("--max-concurrency %d: must not be negative", c.MaxConcurrency))
	}
	if c.MaxSeconds < 0 || math.IsNaN(c.MaxSeconds) || math.IsInf(c.MaxSeconds, 0) {
		errs = append(errs, fmt.Errorf("--max-seconds %v: must be a non-negative number", c.MaxSeconds))
	}
	if c.MaxRequests < 0 {
		errs = append(errs, fmt.Errorf("--max-requests %d: must not be negative", c.MaxRequests))
	}
	if c.Spin < 0 || c.Spin > time.Second {
		errs = append(errs, fmt.Errorf("--spin %v: want 0 to 1s", c.Spin))
	}
	if c.LagThreshold < 0 {
		errs = append(errs, fmt.Errorf("--lag-threshold %v: must not be negative", c.LagThreshold))
	}
	if c.Drain < 0 {
		errs = append(errs, fmt.Errorf("--drain %v: must not be negative", c.Drain))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("--timeout %v: must not be negative", c.Timeout))
	}
	return errors.Join(errs...)
}

// minBurstiness bounds --burstiness from below: gamma variates of smaller
// shapes underflow to 0 (u^(1/k)), collapsing bursts into one instant.
const minBurstiness = 0.01

// closedLoop reports whether the profile sends each request when a loop's
// previous one ends, rather than at scheduled times.
func (c *Config) closedLoop() bool {
	switch c.Profile {
	case ProfileSynchronous, ProfileConcurrent, ProfileThroughput:
		return true
	}
	return false
}

// limit is MaxSeconds as a duration; 0 for none, including limits beyond
// time.Duration's 292 years.
func (c *Config) limit() time.Duration {
	if c.MaxSeconds <= 0 || c.MaxSeconds >= math.MaxInt64/float64(time.Second) {
		return 0
	}
	return time.Duration(c.MaxSeconds * float64(time.Second))
}
