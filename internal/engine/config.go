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
	// Profile is the load model: trace, constant, poisson, synchronous,
	// concurrent or throughput.
	Profile string
	// Rate is requests per second for constant and poisson. It must be 0
	// for trace, which keeps the recorded offsets × TimeScale (rescaling a
	// trace to a target mean rate would need the whole trace up front).
	Rate float64
	// TimeScale multiplies recorded offsets for trace (0.5 = twice as
	// fast). 0 means 1.
	TimeScale float64
	// Concurrency is the number of closed loops for concurrent.
	Concurrency int
	// MaxConcurrency caps requests in flight for open-loop profiles (trace,
	// constant, poisson): a request due while the cap is full waits for a
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
	// Seed seeds the Poisson schedule.
	Seed int64
	// Progress, when set, is called about once a second from its own
	// goroutine while the run lasts.
	Progress func(Progress)
	// OnResult, when set, is called with each request's Result as it ends,
	// from the goroutine that sent it (concurrently; it must be quick).
	OnResult func(Result)
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
	case ProfileConstant, ProfilePoisson:
		if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
			errs = append(errs, fmt.Errorf("--rate %v: must be > 0 for --profile %s", c.Rate, c.Profile))
		}
	case ProfileTrace:
		if c.TimeScale < 0 || math.IsNaN(c.TimeScale) || math.IsInf(c.TimeScale, 0) {
			errs = append(errs, fmt.Errorf("--time-scale %v: must be positive", c.TimeScale))
		}
		if c.Rate != 0 {
			errs = append(errs, errors.New("--rate with --profile trace: rescaling a trace to a mean rate is not supported yet; use --time-scale"))
		}
	case ProfileConcurrent:
		if c.Concurrency < 1 {
			errs = append(errs, fmt.Errorf("--concurrency %d: must be at least 1 for --profile concurrent", c.Concurrency))
		}
	case ProfileSynchronous, ProfileThroughput:
	default:
		errs = append(errs, fmt.Errorf("--profile %q: want trace, constant, poisson, synchronous, concurrent or throughput", c.Profile))
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
	if c.Drain < 0 {
		errs = append(errs, fmt.Errorf("--drain %v: must not be negative", c.Drain))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("--timeout %v: must not be negative", c.Timeout))
	}
	return errors.Join(errs...)
}

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
