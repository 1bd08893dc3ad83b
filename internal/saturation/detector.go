package saturation

import (
	"fmt"
	"sync"
	"time"
)

// Signals, as named in Report.Signal and Report.Fired.
const (
	SignalGuideLLM      = "guidellm"       // concurrency and TTFT slopes (GuideLLM's test)
	SignalBacklogGrowth = "backlog_growth" // requests in flight keep rising over the benchmark
	SignalRateDeficit   = "rate_deficit"   // completions fall behind the offered rate
)

// Detector watches one benchmark. Feed it concurrency samples (Started),
// first tokens (FirstToken) and progress samples (Sample) as they happen,
// with offsets from the benchmark's origin; each call reports whether the
// benchmark should stop now (a signal has fired in enforce mode). It is safe
// for concurrent use. Make a new one per benchmark.
type Detector struct {
	mu  sync.Mutex
	cfg Config

	offered float64 // req/s the schedule offers; 0: use the send rate

	now                      float64 // seconds, latest offset seen
	conc, ttft               slope
	started, finished        []point // the windows, oldest first
	startedEver, finishedEve int
	violations               int
	isOver                   bool // GuideLLM's instantaneous verdict at the last check

	samples     []sample
	last        backlogView
	growthSince float64 // offset since which backlog growth held at every check; -1: not holding

	fired []Firing
}

type point struct{ x, y float64 }

type sample struct {
	t          float64
	sent, done int
}

// Firing is one signal's first firing.
type Firing struct {
	Signal string  `json:"signal"`
	AtS    float64 `json:"at_s"` // seconds since the benchmark origin
}

// New returns a detector for one benchmark.
func New(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("saturation detector: %w", err)
	}
	d := &Detector{cfg: cfg, growthSince: -1}
	d.conc = slope{threshold: cfg.MOEThreshold, confidence: cfg.Confidence, eps: 1e-12}
	d.ttft = d.conc
	return d, nil
}

// SetOfferedRate tells the rate signal what the schedule offers (req/s) in
// an open loop; without it the signal compares completions with sends,
// which a concurrency cap throttles.
func (d *Detector) SetOfferedRate(rate float64) {
	d.mu.Lock()
	d.offered = rate
	d.mu.Unlock()
}

// Started records the number of requests in flight at offset at
// (GuideLLM records one point per request start; Reprise's engine reports
// in flight once a second, which is also the most points per second
// GuideLLM's slope test counts).
func (d *Detector) Started(at time.Duration, inFlight int) bool {
	return d.startedFloat(at, float64(inFlight))
}

func (d *Detector) startedFloat(at time.Duration, inFlight float64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	x := d.advance(at)
	d.started = append(d.started, point{x, inFlight})
	d.startedEver++
	d.conc.add(x, inFlight)
	return d.check()
}

// FirstToken records a request's time to first token, observed at offset at.
func (d *Detector) FirstToken(at, ttft time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	x := d.advance(at)
	y := ttft.Seconds()
	d.finished = append(d.finished, point{x, y})
	d.finishedEve++
	if y > d.cfg.MinimumTTFT {
		d.violations++
	}
	d.ttft.add(x, y)
	return d.check()
}

// Sample records the requests sent and finished so far at offset at, for
// the backlog signal; it also records sent − done as a concurrency point.
func (d *Detector) Sample(at time.Duration, sent, done int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	x := d.advance(at)
	d.samples = append(d.samples, sample{x, sent, done})
	d.started = append(d.started, point{x, float64(sent - done)})
	d.startedEver++
	d.conc.add(x, float64(sent-done))
	return d.check()
}

// Check re-evaluates at offset at without new data.
func (d *Detector) Check(at time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.advance(at)
	return d.check()
}

func (d *Detector) advance(at time.Duration) float64 {
	d.now = max(d.now, at.Seconds())
	return at.Seconds()
}

// check prunes the windows, runs both signals, latches firings and
// reports whether to stop.
func (d *Detector) check() bool {
	d.prune()
	d.isOver = d.guideLLM()
	if d.isOver {
		d.fire(SignalGuideLLM)
	}
	if d.cfg.Backlog {
		growth, deficit := d.backlog()
		if growth {
			d.fire(SignalBacklogGrowth)
		}
		if deficit {
			d.fire(SignalRateDeficit)
		}
	}
	return d.cfg.Mode == Enforce && len(d.fired) > 0
}

func (d *Detector) fire(signal string) {
	for _, f := range d.fired {
		if f.Signal == signal {
			return
		}
	}
	d.fired = append(d.fired, Firing{Signal: signal, AtS: d.now})
}

// prune applies GuideLLM's two window bounds to both windows: at most
// MaximumWindowRatio of every point ever added, none older than
// MaxWindowSeconds.
func (d *Detector) prune() {
	for len(d.finished) > 0 && (len(d.finished) > int(float64(d.finishedEve)*d.cfg.MaximumWindowRatio) ||
		d.now-d.finished[0].x > d.cfg.MaxWindowSeconds) {
		p := d.finished[0]
		d.finished = d.finished[1:]
		if p.y > d.cfg.MinimumTTFT {
			d.violations--
		}
		d.ttft.remove(p.x, p.y)
	}
	for len(d.started) > 0 && (len(d.started) > int(float64(d.startedEver)*d.cfg.MaximumWindowRatio) ||
		d.now-d.started[0].x > d.cfg.MaxWindowSeconds) {
		p := d.started[0]
		d.started = d.started[1:]
		d.conc.remove(p.x, p.y)
	}
}

// guideLLM is GuideLLM's alert rule. Both slopes use an effective sample
// size capped at the seconds elapsed. Nothing fires before MinSeconds (nor,
// as in GuideLLM, before MinimumTTFT seconds), nor unless at least half the
// TTFTs in the window exceed MinimumTTFT, nor with fewer than
// MinimumWindowSize concurrency points. With too few TTFT points the
// concurrency slope decides alone; otherwise both must be positive.
func (d *Detector) guideLLM() bool {
	concN := min(d.now, float64(d.conc.n))
	ttftN := min(d.now, float64(d.ttft.n))
	if d.now < d.cfg.MinSeconds || d.ttft.n > 2*d.violations || d.now < d.cfg.MinimumTTFT ||
		concN < float64(d.cfg.MinimumWindowSize) {
		return false
	}
	up := d.conc.positive(concN)
	if ttftN < float64(d.cfg.MinimumWindowSize) {
		return up
	}
	return d.ttft.positive(ttftN) && up
}
