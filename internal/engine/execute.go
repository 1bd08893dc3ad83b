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
	// due time, whatever held them back: every slot busy (see Waited), a
	// workload row due before one already sent (Result.OrderWait), or the
	// generator itself lagging (a late timer, slow body building, a
	// workload read slower than its arrivals). Each one's lag
	// (Sent − Intended) is in its Result, and latency is also measured from
	// Intended, so the delay is never hidden (coordinated omission).
	// Closed-loop profiles have no schedule to be late for: always 0.
	Late int
	// Waited counts open-loop requests that found MaxConcurrency requests
	// in flight at their due time and waited for a slot (most are also
	// Late; one whose slot freed within LateAfter is not).
	Waited int
	// Dropped counts requests that were due but never sent: open-loop ones
	// because every slot stayed busy (with DropWhenFull, each one that found
	// the cap full; otherwise those still waiting for a slot, or overdue
	// behind one, when scheduling stopped), and session turns still waiting
	// for their previous turn when scheduling stopped.
	Dropped int
	// StopReason says why scheduling stopped: one of the Stop constants.
	StopReason string
	// StoppedAt is the offset at which scheduling stopped (for max_seconds,
	// the limit itself).
	StoppedAt time.Duration
	// InFlightAtStop counts the requests still in flight when scheduling
	// stopped: the drain waited for them, for at most Config.Drain.
	InFlightAtStop int
	// Cancelled counts the requests the drain bound cancelled (their Err is
	// "cancelled: …"); InFlightAtStop − Cancelled finished within it.
	Cancelled int
	// Warmup and Cooldown count the results marked with those phases.
	Warmup, Cooldown int
	// UnresolvedAfter counts the conversation graph edges (a node's After)
	// whose earlier node this run never scheduled before the call: filtered
	// out of the workload, listed after the call, or dealt
	// to another shard (which the Sharder avoids by keeping a conversation
	// whole). Such a call did not wait for that node.
	UnresolvedAfter int
}

// Why scheduling stopped (Run.StopReason).
const (
	StopWorkloadEnd   = "workload_end"   // the workload had no more requests
	StopMaxRequests   = "max_requests"   // Config.MaxRequests were scheduled
	StopMaxSeconds    = "max_seconds"    // Config.MaxSeconds passed
	StopMaxErrors     = "max_errors"     // Config.MaxErrors requests failed
	StopMaxErrorRate  = "max_error_rate" // the error window passed Config.MaxErrorRate
	StopCancelled     = "cancelled"      // the caller's context ended (interrupt)
	StopSaturated     = "saturated"      // the caller's context ended with cause ErrSaturated
	StopWorkloadError = "workload_error" // reading the workload failed
)

// ErrSaturated is the cause a caller gives when it cancels the run's
// context because the target is saturated (the saturation detector in
// enforce mode, with context.WithCancelCause): the run then reports
// StopSaturated instead of StopCancelled.
var ErrSaturated = errors.New("target saturated")

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
	// Behind is how long the open loop's next request, due but waiting for
	// a free slot under MaxConcurrency, has waited (now − its due time); 0
	// when none waits. Requests due after it are not counted: they wait
	// behind it, about Behind × the schedule's rate of them.
	Behind time.Duration
}

// sendFunc sends one request intended for offset intended and reports what
// happened; pre, when not nil, is its body built ahead of time. The HTTP
// client's send is the real one; tests of the dispatcher substitute a
// function that runs under testing/synctest.
type sendFunc func(ctx context.Context, req *workload.Request, pre *prebuilt, intended time.Duration) Result

// buildFunc builds a request's body ahead of its due time.
type buildFunc func(req *workload.Request) *prebuilt

// prebuilt is a request body built before the request was due, so that
// building it (100–600 µs for a 12,000-token synthetic prompt) is not lag.
type prebuilt struct {
	body []byte
	err  error
}

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
	if !c.Origin.IsZero() && c.Origin.Before(origin) {
		origin = c.Origin
	}
	cl, err := newClient(&c, bodies, origin)
	if err != nil {
		return nil, err
	}
	defer cl.hc.CloseIdleConnections()
	return executeWith(ctx, c, src, origin, cl.send, cl.build)
}

// dispatcher holds one run's shared state. The scheduling loop owns
// scheduled and sessions (the closed loop under its mutex); the counters
// that other goroutines touch are atomic.
type dispatcher struct {
	cfg    Config
	origin time.Time
	send   sendFunc
	build  buildFunc     // nil: send builds each body itself
	limit  time.Duration // MaxSeconds as a duration; 0 for none

	slots    chan struct{}    // open loop: one token per request in flight
	sessions map[string]*turn // the latest turn of each session
	nodes    map[string]*turn // each conversation graph node's turn (graphKey), for the nodes after it

	mu      sync.Mutex
	results []Result
	errs    errorCount // under mu

	// stopSched ends the scheduling context early (max errors);
	// stopReason, under mu, is the first reason given.
	stopSched  context.CancelCauseFunc
	stopReason string

	// flight is the context of in-flight requests: it outlives the
	// scheduling context and is cancelled, with cause errDrained, when the
	// drain bound passes.
	flight       context.Context
	cancelFlight context.CancelCauseFunc
	wg           sync.WaitGroup // one per in-flight request, held-back turn or closed loop
	chains       sync.WaitGroup // one per held-back session turn not yet sent

	scheduled int
	// deal picks this shard's requests (nil: not sharded); others counts
	// the requests dealt to other shards (planned).
	deal   *workload.Sharder
	others int
	// reached is the latest due time the open loop has dispatched (waited
	// for); owned by the scheduling loop (see orderWait).
	reached         time.Duration
	waited, dropped atomic.Int64
	unresolved      int // graph edges to nodes not scheduled (Run.UnresolvedAfter); the scheduling loop's

	sent, done, failed atomic.Int64
	// blocked is 1 + the due offset of the open-loop request waiting for a
	// slot under MaxConcurrency, 0 when none waits (Progress.Behind).
	blocked atomic.Int64
}

// errorCount tracks failures for MaxErrors and MaxErrorRate.
type errorCount struct {
	total    int    // failed requests
	finished int    // requests finished (drain cancellations excluded)
	window   []bool // failure of the last len(window) finished, a ring
	inWindow int    // failures in window
}

// errMaxSeconds is the scheduling context's cause when MaxSeconds passes;
// errStopped when a limit on errors stops it.
var (
	errMaxSeconds = errors.New("max seconds reached")
	errStopped    = errors.New("scheduling stopped")
)

func execute(ctx context.Context, cfg Config, src workload.Source, origin time.Time, send sendFunc) (*Run, error) {
	return executeWith(ctx, cfg, src, origin, send, nil)
}

// executeWith runs the load; open-loop requests have their bodies built by
// build (when not nil) before their due time.
func executeWith(ctx context.Context, cfg Config, src workload.Source, origin time.Time, send sendFunc, build buildFunc) (*Run, error) {
	d := &dispatcher{cfg: cfg, origin: origin, send: send, build: build, limit: cfg.limit(),
		slots: make(chan struct{}, cfg.MaxConcurrency), sessions: map[string]*turn{}, nodes: map[string]*turn{}}
	if cfg.MaxErrorRate > 0 {
		d.errs.window = make([]bool, cfg.ErrorWindow)
	}
	if cfg.ShardCount > 1 {
		d.deal = workload.NewSharder(cfg.ShardIndex, cfg.ShardCount)
	}
	d.flight, d.cancelFlight = context.WithCancelCause(context.WithoutCancel(ctx))
	defer d.cancelFlight(nil)

	sched, stopSched := context.WithCancelCause(ctx)
	d.stopSched = stopSched
	if d.limit > 0 {
		var stopDeadline context.CancelFunc
		sched, stopDeadline = context.WithDeadlineCause(sched, origin.Add(d.limit), errMaxSeconds)
		defer stopDeadline()
	}
	stopProgress := d.progress()
	var srcErr error
	if cfg.closedLoop() {
		srcErr = d.closedLoop(sched, src)
	} else {
		srcErr = d.openLoop(sched, src)
	}
	stoppedAt := d.since()
	reason := d.reason(ctx, sched, srcErr)
	if reason == StopMaxSeconds {
		stoppedAt = d.limit
	}
	inFlight := int(d.sent.Load() - d.done.Load())
	stopSched(nil)
	d.drain()
	stopProgress()

	cfg.Headers = nil
	run := &Run{Config: cfg, Start: origin, Results: d.results, Scheduled: d.scheduled,
		Waited: int(d.waited.Load()), Dropped: int(d.dropped.Load()),
		StopReason: reason, StoppedAt: stoppedAt, InFlightAtStop: max(inFlight, 0), UnresolvedAfter: d.unresolved}
	slices.SortFunc(run.Results, func(a, b Result) int { return cmp.Compare(a.Index, b.Index) })
	markPhases(run.Results, &cfg, stoppedAt)
	open := !cfg.closedLoop()
	for i := range run.Results {
		r := &run.Results[i]
		run.Duration = max(run.Duration, r.End)
		if open && r.Sent-r.Intended > LateAfter {
			run.Late++
		}
		if r.Err == errDrained.Error() {
			run.Cancelled++
		}
		switch r.Phase {
		case PhaseWarmup:
			run.Warmup++
		case PhaseCooldown:
			run.Cooldown++
		}
	}
	if srcErr != nil {
		return run, fmt.Errorf("reading the workload: %w", srcErr)
	}
	return run, nil
}

// reason names why scheduling stopped, once the scheduling loop returned.
func (d *dispatcher) reason(ctx, sched context.Context, srcErr error) string {
	d.mu.Lock()
	stopped := d.stopReason
	d.mu.Unlock()
	switch {
	case stopped != "":
		return stopped
	case srcErr != nil:
		return StopWorkloadError
	case ctx.Err() != nil:
		if errors.Is(context.Cause(ctx), ErrSaturated) {
			return StopSaturated
		}
		return StopCancelled
	case errors.Is(context.Cause(sched), errMaxSeconds):
		return StopMaxSeconds
	case d.cfg.MaxRequests > 0 && d.planned() >= d.cfg.MaxRequests:
		return StopMaxRequests
	}
	return StopWorkloadEnd
}

// stop ends scheduling for reason; the first reason given is kept.
func (d *dispatcher) stop(reason string) {
	d.mu.Lock()
	if d.stopReason == "" {
		d.stopReason = reason
	}
	d.mu.Unlock()
	d.stopSched(errStopped)
}

// count adds a finished request to the error limits and returns the
// reason to stop scheduling, if one was reached. It runs under d.mu.
func (d *dispatcher) count(r *Result) string {
	if r.Err == errDrained.Error() {
		return "" // the client ended it, after scheduling had stopped
	}
	failed := !r.OK()
	e := &d.errs
	if failed {
		e.total++
	}
	if w := len(e.window); w > 0 {
		slot := &e.window[e.finished%w]
		if e.finished >= w && *slot {
			e.inWindow--
		}
		*slot = failed
		if failed {
			e.inWindow++
		}
	}
	e.finished++
	switch {
	case d.cfg.MaxErrors > 0 && e.total >= d.cfg.MaxErrors:
		return StopMaxErrors
	case len(e.window) > 0 && e.finished >= len(e.window) && float64(e.inWindow) >= d.cfg.MaxErrorRate*float64(len(e.window)):
		return StopMaxErrorRate
	}
	return ""
}

func (d *dispatcher) since() time.Duration { return d.cfg.Now().Sub(d.origin) }

// prebuild builds req's body ahead of time when the run can; nil if not.
func (d *dispatcher) prebuild(req *workload.Request) *prebuilt {
	if d.build == nil {
		return nil
	}
	return d.build(req)
}

// launch sends one request on the calling goroutine, records its result
// (with queued, its wait for a slot, and order, the wait its place in the
// workload forced: see orderWait) and returns it. The caller has counted
// it in d.sent, before starting the goroutine, so that the count of requests
// in flight when scheduling stops includes those not yet running.
func (d *dispatcher) launch(req *workload.Request, pre *prebuilt, intended, queued, order time.Duration) Result {
	r := d.send(d.flight, req, pre, intended)
	r.QueueWait, r.OrderWait = queued, order
	r.ChunkCount = len(r.Chunks)
	kept := r
	if d.cfg.DiscardChunks {
		kept.Chunks, kept.ChunkTokens = nil, nil
	}
	d.mu.Lock()
	stop := d.count(&r)
	d.results = append(d.results, kept) // read only after the drain
	d.mu.Unlock()
	if stop != "" {
		d.stop(stop)
	}
	if d.cfg.OnResult != nil {
		d.cfg.OnResult(r)
	}
	if !r.OK() {
		d.failed.Add(1)
	}
	d.done.Add(1)
	return r
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
				now := d.since()
				var behind time.Duration
				if b := d.blocked.Load(); b > 0 {
					behind = max(now-time.Duration(b-1), 0)
				}
				d.cfg.Progress(Progress{Elapsed: now, Sent: sent, Done: done, InFlight: sent - done, Errors: int(d.failed.Load()), Behind: behind})
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}
