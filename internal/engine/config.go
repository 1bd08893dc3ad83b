package engine

import (
	"errors"
	"fmt"
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

// Progress is a snapshot passed to Config.Progress about once a second.
type Progress struct {
	Elapsed                      time.Duration
	Sent, Done, InFlight, Errors int
}

// Config is one benchmark's load. Field comments are the flags' docs.
type Config struct {
	// Target is the base URL of the deployment (paths are the OpenAI ones).
	Target string
	// Model overrides every request's model when non-empty.
	Model string
	// Profile is the load model: trace, constant, poisson, synchronous,
	// concurrent or throughput.
	Profile string
	// Rate is requests per second for constant and poisson.
	Rate float64
	// TimeScale multiplies recorded offsets for trace (0.5 = twice as fast).
	TimeScale float64
	// Concurrency is the number of closed loops for concurrent.
	Concurrency int
	// MaxConcurrency caps requests in flight for open-loop profiles (a
	// request due while the cap is full is sent late and its lag recorded),
	// and is the level throughput keeps. 0 means 1024.
	MaxConcurrency int
	// MaxSeconds stops scheduling after this many seconds (0: none).
	MaxSeconds float64
	// MaxRequests stops scheduling after this many requests (0: none).
	MaxRequests int
	// Drain bounds in-flight work once scheduling has stopped; requests
	// still running then are cancelled and recorded as such. 0 means 30 s.
	Drain time.Duration
	// Timeout bounds each request. 0 means 10 minutes.
	Timeout time.Duration
	// Headers are added to every request (Authorization for gateways).
	// Never logged or written to results.
	Headers http.Header
	// Seed seeds the Poisson schedule.
	Seed int64
	// Progress, when set, is called about once a second.
	Progress func(Progress)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

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
		if c.Rate <= 0 {
			errs = append(errs, fmt.Errorf("--rate must be > 0 for --profile %s", c.Profile))
		}
	case ProfileTrace:
		if c.TimeScale < 0 {
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
	if c.MaxSeconds < 0 || c.MaxRequests < 0 {
		errs = append(errs, errors.New("--max-seconds and --max-requests must not be negative"))
	}
	if c.Drain < 0 || c.Timeout < 0 {
		errs = append(errs, errors.New("--drain and --timeout must not be negative"))
	}
	return errors.Join(errs...)
}
