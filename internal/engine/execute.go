// Package engine is Reprise's load generator: schedules (when each request
// is due), a dispatcher (who sends it, under which bounds) and a streaming
// client (what the target did, timed from one monotonic origin).
//
// A run has two deadlines (as k6's executors do): the scheduling context
// stops taking requests from the workload (MaxSeconds, MaxRequests, the
// caller's context, the end of the workload), and the drain bound then
// limits how long requests already in flight may take before they are
// cancelled and recorded as such. A sweep is several Execute calls with
// different Configs.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// Run is one benchmark's raw observations.
type Run struct {
	// Config is the configuration as run, defaults filled in. Headers is
	// removed: it may hold credentials.
	Config Config
	// Start is the wall-clock time of the run's origin; every offset in
	// Results counts from it.
	Start time.Time
	// Duration is the time from the origin to the end of the last request.
	Duration time.Duration
	// Results holds one Result per request sent, ordered by Index.
	Results []Result
	// Scheduled counts the requests whose due time came before scheduling
	// stopped: len(Results) + Dropped.
	Scheduled int
	// Late counts open-loop requests sent more than LateAfter after their
	// due time, whatever held them back: every slot busy (see Waited), or
	// the generator itself lagging (a late timer, slow body building, a
	// workload read slower than its arrivals). Each one's lag
	// (Sent − Intended) is in its Result, and latency is also measured from
	// Intended, so the delay is never hidden (coordinated omission).
	// Closed-loop profiles have no schedule to be late for: always 0.
	Late int
	// Waited counts open-loop requests that found MaxConcurrency requests
	// in flight at their due time and waited for a slot (most are also
	// Late; one whose slot freed within LateAfter is not).
	Waited int
	// Dropped counts open-loop requests that were due but never sent
	// because every slot stayed busy: with DropWhenFull, each one that found
	// the cap full; otherwise those still waiting for a slot (or overdue
	// behind one) when scheduling stopped.
	Dropped int
}

// LateAfter is the lag (Sent − Intended) beyond which an open-loop request
// counts in Run.Late: below it, the lag is timer and scheduler noise.
const LateAfter = time.Millisecond

// Progress is a snapshot passed to Config.Progress about once a second.
type Progress struct {
	Elapsed  time.Duration // since the origin
	Sent     int           // requests handed to the client
	Done     int           // requests finished, failed ones included
	InFlight int           // Sent − Done
	Errors   int           // finished requests that failed
}

// sendFunc sends one request intended for offset intended and reports what
// happened. The HTTP client's send is the real one; tests of the dispatcher
// substitute a function that runs under testing/synctest.
type sendFunc func(ctx context.Context, req *workload.Request, intended time.Duration) Result

// Execute runs cfg's load of src against cfg.Target. It returns an error
// for an invalid configuration (before sending anything) or for a workload
// that fails mid-run (with the run so far, drained); failures of the target
// are in the Results, never an error.
func Execute(ctx context.Context, cfg Config, src workload.Source, bodies BodyBuilder) (*Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil || bodies == nil {
		return nil, errors.New("engine: a workload source and a body builder are required")
	}
	c := cfg.withDefaults()
	origin := c.Now()
	cl := newClient(&c, bodies, origin)
	defer cl.hc.CloseIdleConnections()
	return execute(ctx, c, src, origin, cl.send)
}

// dispatcher holds one run's shared state. The scheduling loops own
// scheduled, waited and dropped; the counters read by Progress are atomic.
type dispatcher struct {
	cfg    Config
	origin time.Time
	send   sendFunc
	limit  time.Duration // MaxSeconds as a duration; 0 for none

	mu      sync.Mutex
	results []Result

	// flight is the context of in-flight requests: it outlives the
	// scheduling context and is cancelled, with cause errDrained, when the
	// drain bound passes.
	flight       context.Context
	cancelFlight context.CancelCauseFunc
	wg           sync.WaitGroup // one per in-flight request or closed loop

	scheduled, waited, dropped int

	sent, done, errs atomic.Int64
}

func execute(ctx context.Context, cfg Config, src workload.Source, origin time.Time, send sendFunc) (*Run, error) {
	d := &dispatcher{cfg: cfg, origin: origin, send: send, limit: cfg.limit()}
	d.flight, d.cancelFlight = context.WithCancelCause(context.WithoutCancel(ctx))
	defer d.cancelFlight(nil)

	sched, stopSched := ctx, context.CancelFunc(func() {})
	if d.limit > 0 {
		sched, stopSched = context.WithDeadline(ctx, origin.Add(d.limit))
	}
	stopProgress := d.progress()
	var srcErr error
	if cfg.closedLoop() {
		srcErr = d.closedLoop(sched, src)
	} else {
		srcErr = d.openLoop(sched, src)
	}
	stopSched()
	d.drain()
	stopProgress()

	cfg.Headers = nil
	run := &Run{Config: cfg, Start: origin, Results: d.results, Scheduled: d.scheduled, Waited: d.waited, Dropped: d.dropped}
	slices.SortFunc(run.Results, func(a, b Result) int { return cmp.Compare(a.Index, b.Index) })
	open := !cfg.closedLoop()
	for i := range run.Results {
		r := &run.Results[i]
		run.Duration = max(run.Duration, r.End)
		if open && r.Sent-r.Intended > LateAfter {
			run.Late++
		}
	}
	if srcErr != nil {
		return run, fmt.Errorf("reading the workload: %w", srcErr)
	}
	return run, nil
}

func (d *dispatcher) since() time.Duration { return d.cfg.Now().Sub(d.origin) }

// launch sends one request on the calling goroutine and records its result.
func (d *dispatcher) launch(req *workload.Request, intended time.Duration) {
	d.sent.Add(1)
	r := d.send(d.flight, req, intended)
	d.mu.Lock()
	d.results = append(d.results, r)
	d.mu.Unlock()
	if d.cfg.OnResult != nil {
		d.cfg.OnResult(r)
	}
	if !r.OK() {
		d.errs.Add(1)
	}
	d.done.Add(1)
}

// drain waits for in-flight requests at most cfg.Drain, then cancels the
// rest (they record errDrained) and waits for them to return.
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

// progress calls cfg.Progress every second until stop is called.
func (d *dispatcher) progress() (stop func()) {
	if d.cfg.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				done := int(d.done.Load()) // before sent, so that InFlight ≥ 0
				sent := int(d.sent.Load())
				d.cfg.Progress(Progress{Elapsed: d.since(), Sent: sent, Done: done, InFlight: sent - done, Errors: int(d.errs.Load())})
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}
