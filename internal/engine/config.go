package engine

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
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
	// In a sharded run it counts the requests of the whole plan, every
	// shard's.
	MaxRequests int
	// Origin, when set and not in the future, is the run's origin instead
	// of the moment Execute starts: the instant several processes agreed
	// to start at (the shards of a split run), so that their offsets count
	// from one origin. Requests due before Execute started are sent late,
	// and their lag says so.
	Origin time.Time
	// ShardIndex and ShardCount make an open-loop run one shard of ShardCount
	// (0 or 1: not sharded): every shard walks the same global schedule
	// (the same workload, profile, rate and seed give the same due times)
	// and sends only the requests workload.Sharder deals it, so the union
	// of the shards' intended send times is the unsharded run's. A
	// shard's MaxRequests and MaxSeconds bound the global plan. Closed-loop
	// profiles have no schedule to share: their streams are split by the
	// caller (bench).
	ShardIndex, ShardCount int
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

// Validate reports every problem at once, each a *ConfigError naming the
// field (a command line maps fields to its flags).
func (c *Config) Validate() error {
	var errs []error
	bad := func(field string, value any, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Value: fmt.Sprint(value), Msg: fmt.Sprintf(format, args...)})
	}
	if u, err := url.Parse(c.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("Target", fmt.Sprintf("%q", c.Target), "want an http:// or https:// URL")
	}
	switch c.Profile {
	case ProfileConstant, ProfilePoisson, ProfileGamma:
		if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
			bad("Rate", c.Rate, "must be > 0 for profile %s", c.Profile)
		}
	case ProfileTrace:
		if c.Rate != 0 {
			bad("Rate", c.Rate, "with profile trace: the trace's own offsets set the rate; rescale the workload to a mean rate first or set a time scale")
		}
	case ProfileConcurrent:
		if c.Concurrency < 1 {
			bad("Concurrency", c.Concurrency, "must be at least 1 for profile concurrent")
		}
	case ProfileSynchronous, ProfileThroughput:
	default:
		bad("Profile", fmt.Sprintf("%q", c.Profile), "want %s", strings.Join(Profiles, ", "))
	}
	if c.TimeScale < 0 || math.IsNaN(c.TimeScale) || math.IsInf(c.TimeScale, 0) {
		bad("TimeScale", c.TimeScale, "must be positive")
	}
	if c.Burstiness < 0 || math.IsNaN(c.Burstiness) || math.IsInf(c.Burstiness, 0) || (c.Burstiness > 0 && c.Burstiness < minBurstiness) {
		bad("Burstiness", c.Burstiness, "must be a positive number, at least %v", minBurstiness)
	}
	if c.Burstiness != 0 && c.Burstiness != 1 && c.Profile != ProfileGamma {
		bad("Burstiness", c.Burstiness, "only profile gamma uses it")
	}
	if c.MaxErrors < 0 {
		bad("MaxErrors", c.MaxErrors, "must not be negative")
	}
	if c.MaxErrorRate < 0 || !(c.MaxErrorRate < 1) {
		bad("MaxErrorRate", c.MaxErrorRate, "must be in [0, 1)")
	}
	if c.ErrorWindow < 0 {
		bad("ErrorWindow", c.ErrorWindow, "must not be negative")
	}
	for _, p := range []struct {
		field string
		p     Portion
	}{{"Warmup", c.Warmup}, {"Cooldown", c.Cooldown}} {
		if err := p.p.validate(); err != nil {
			errs = append(errs, &ConfigError{Field: p.field, Msg: err.Error()})
		}
	}
	if c.Warmup.Fraction+c.Cooldown.Fraction >= 1 {
		bad("Warmup", c.Warmup.String(), "with cooldown %s: the fractions add up to %v: nothing would be measured", c.Cooldown.String(), c.Warmup.Fraction+c.Cooldown.Fraction)
	}
	if c.CACert != "" && c.InsecureSkipVerify {
		bad("CACert", c.CACert, "with certificate verification off: choose one")
	}
	if c.MaxConcurrency < 0 {
		bad("MaxConcurrency", c.MaxConcurrency, "must not be negative")
	}
	if c.MaxSeconds < 0 || math.IsNaN(c.MaxSeconds) || math.IsInf(c.MaxSeconds, 0) {
		bad("MaxSeconds", c.MaxSeconds, "must be a non-negative number")
	}
	if c.MaxRequests < 0 {
		bad("MaxRequests", c.MaxRequests, "must not be negative")
	}
	if c.Spin < 0 || c.Spin > time.Second {
		bad("Spin", c.Spin, "want 0 to 1s")
	}
	if c.LagThreshold < 0 {
		bad("LagThreshold", c.LagThreshold, "must not be negative")
	}
	if c.Drain < 0 {
		bad("Drain", c.Drain, "must not be negative")
	}
	if c.Timeout < 0 {
		bad("Timeout", c.Timeout, "must not be negative")
	}
	if c.ShardCount < 0 || (c.ShardCount > 0 && (c.ShardIndex < 0 || c.ShardIndex >= c.ShardCount)) || (c.ShardCount == 0 && c.ShardIndex != 0) {
		bad("Shard", fmt.Sprintf("%d/%d", c.ShardIndex, c.ShardCount), "want i/N with 0 <= i < N")
	} else if c.ShardCount > 1 && c.closedLoop() {
		bad("Shard", fmt.Sprintf("%d/%d", c.ShardIndex, c.ShardCount), "profile %s is a closed loop, with no schedule to share: split its streams and its workload instead", c.Profile)
	}
	return errors.Join(errs...)
}

// Profiles are the engine's load profiles, in the order messages list them.
var Profiles = []string{ProfileTrace, ProfileConstant, ProfilePoisson, ProfileGamma, ProfileSynchronous, ProfileConcurrent, ProfileThroughput}

// ConfigError is one problem with a Config, naming its field (Go's name:
// "Rate", "MaxSeconds"); a command line maps the field to its flag.
type ConfigError struct {
	Field string
	Value string // the value refused, formatted; "" when not one value
	Msg   string
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Msg
	}
	return e.Field + " " + e.Value + ": " + e.Msg
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

// FieldParts names the field, the value and the problem, for a command
// line to put its flag in the field's place.
func (e *ConfigError) FieldParts() (field, value, msg string) { return e.Field, e.Value, e.Msg }
