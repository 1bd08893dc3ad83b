package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// Run is one benchmark's raw observations.
type Run struct {
	Config    Config
	Start     time.Time     // wall time of the origin
	Duration  time.Duration // origin → last request end
	Results   []Result      // ordered by Index
	Scheduled int           // requests taken from the workload
	// Late counts open-loop requests that found every slot of
	// MaxConcurrency busy at their due time and were sent late; their lag
	// is in their Result.
	Late int
}

// sendFunc sends one request. The HTTP client is the real one; tests of the
// dispatcher substitute a function under testing/synctest.
type sendFunc func(ctx context.Context, req *workload.Request, intended time.Duration) Result

// Execute runs cfg's load of src against cfg.Target. It returns an error for
// an invalid configuration or a workload that fails mid-run (after draining
// what was sent); failures of the target are in the Results.
func Execute(ctx context.Context, cfg Config, src workload.Source, bodies BodyBuilder) (*Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	origin := c.Now()
	cl := newClient(&c, bodies, origin)
	defer cl.hc.CloseIdleConnections()
	return execute(ctx, c, src, origin, cl.send)
}

type dispatcher struct {
	cfg    Config
	origin time.Time
	send   sendFunc

	mu      sync.Mutex
	results []Result

	flight       context.Context // in-flight requests; cancelled when the drain bound passes
	cancelFlight context.CancelCauseFunc
	wg           sync.WaitGroup

	sent, done, errs, inFlight atomic.Int64
}

func (d *dispatcher) since() time.Duration { return d.cfg.Now().Sub(d.origin) }

func (d *dispatcher) record(r Result) {
	d.mu.Lock()
	d.results = append(d.results, r)
	d.mu.Unlock()
	d.inFlight.Add(-1)
	d.done.Add(1)
	if !r.OK() {
		d.errs.Add(1)
	}
}

func (d *dispatcher) launch(req workload.Request, intended time.Duration) {
	d.sent.Add(1)
	d.inFlight.Add(1)
	r := d.send(d.flight, &req, intended)
	d.record(r)
}

func execute(ctx context.Context, cfg Config, src workload.Source, origin time.Time, send sendFunc) (*Run, error) {
	d := &dispatcher{cfg: cfg, origin: origin, send: send}
	d.flight, d.cancelFlight = context.WithCancelCause(context.Background())
	defer d.cancelFlight(nil)

	stopProgress := d.progress()
	var scheduled, late int
	var srcErr error
	switch cfg.Profile {
	case ProfileSynchronous, ProfileConcurrent, ProfileThroughput:
		scheduled, srcErr = d.closedLoop(ctx, src)
	default:
		scheduled, late, srcErr = d.openLoop(ctx, src)
	}
	d.drain()
	stopProgress()

	run := &Run{Config: cfg, Start: origin, Results: d.results, Scheduled: scheduled, Late: late}
	sort.Slice(run.Results, func(i, j int) bool { return run.Results[i].Index < run.Results[j].Index })
	for i := range run.Results {
		run.Duration = max(run.Duration, run.Results[i].End)
	}
	if srcErr != nil {
		return run, fmt.Errorf("reading the workload: %w", srcErr)
	}
	return run, nil
}

// drain waits for in-flight requests, at most cfg.Drain, then cancels the rest.
func (d *dispatcher) drain() {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	t := time.NewTimer(d.cfg.Drain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.cancelFlight(errDrained)
		<-done
	}
}

func (d *dispatcher) progress() (stop func()) {
	if d.cfg.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				d.cfg.Progress(Progress{Elapsed: d.since(), Sent: int(d.sent.Load()), Done: int(d.done.Load()),
					InFlight: int(d.inFlight.Load()), Errors: int(d.errs.Load())})
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// openLoop sends each request at its due time from the origin, whatever
// the server does; when MaxConcurrency requests are in flight the next one
// waits for a slot and is sent late, with its lag recorded.
func (d *dispatcher) openLoop(ctx context.Context, src workload.Source) (n, late int, err error) {
	cfg := d.cfg
	var sched Schedule
	switch cfg.Profile {
	case ProfileConstant:
		sched = &Constant{Rate: cfg.Rate}
	case ProfilePoisson:
		sched = NewPoisson(cfg.Rate, cfg.Seed)
	}
	scale := Scaled{Scale: cfg.TimeScale}
	limit := time.Duration(cfg.MaxSeconds * float64(time.Second))
	slots := make(chan struct{}, cfg.MaxConcurrency)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for cfg.MaxRequests == 0 || n < cfg.MaxRequests {
		req, rerr := src.Next()
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return n, late, rerr
		}
		due := scale.At(req.Offset)
		if sched != nil {
			due, _ = sched.Next()
		}
		if limit > 0 && due >= limit {
			break
		}
		if wait := d.origin.Add(due).Sub(d.cfg.Now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return n, late, nil
			}
		}
		select {
		case slots <- struct{}{}:
		default:
			late++
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return n, late, nil
			}
		}
		if ctx.Err() != nil {
			<-slots
			return n, late, nil
		}
		d.wg.Add(1)
		go func(req workload.Request, due time.Duration) {
			defer d.wg.Done()
			defer func() { <-slots }()
			d.launch(req, due)
		}(req, due)
		n++
	}
	return n, late, nil
}

// closedLoop runs Concurrency loops, each sending its next request as soon
// as its previous one ended. Intended = actual send: a closed loop has no
// schedule to fall behind.
func (d *dispatcher) closedLoop(ctx context.Context, src workload.Source) (int, error) {
	cfg := d.cfg
	limit := time.Duration(cfg.MaxSeconds * float64(time.Second))
	var mu sync.Mutex
	n := 0
	var srcErr error
	stopped := false
	next := func() (workload.Request, bool) {
		mu.Lock()
		defer mu.Unlock()
		if stopped || ctx.Err() != nil || (cfg.MaxRequests > 0 && n >= cfg.MaxRequests) || (limit > 0 && d.since() >= limit) {
			stopped = true
			return workload.Request{}, false
		}
		req, err := src.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				srcErr = err
			}
			stopped = true
			return workload.Request{}, false
		}
		n++
		return req, true
	}
	// Scheduling stops at the time limit or on ctx; from then on in-flight
	// requests have cfg.Drain to finish (drain() bounds it).
	for i := 0; i < cfg.Concurrency; i++ {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for {
				req, ok := next()
				if !ok {
					return
				}
				d.launch(req, d.since())
			}
		}()
	}
	// Wait until scheduling has stopped (every loop idle or limit reached),
	// so that drain() starts its bound then, not at the start of the run.
	var deadline <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		deadline = t.C
	}
	allDone := make(chan struct{})
	go func() { d.wg.Wait(); close(allDone) }()
	select {
	case <-allDone:
	case <-deadline:
	case <-ctx.Done():
	}
	mu.Lock()
	stopped = true
	err := srcErr
	count := n
	mu.Unlock()
	return count, err
}
