package engine

import (
	"context"
	"errors"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// openLoop sends each request at its due time from the origin whatever the
// target does (trace, constant, poisson, gamma). At most MaxConcurrency
// requests are in flight: a request due while every slot is busy waits for
// one and is sent late, its lag and queue wait recorded, or with
// DropWhenFull is skipped and counted. It returns when ctx (the scheduling
// context) ends, MaxRequests have been scheduled or the workload ends and
// every session turn held back has been sent; the requests it launched may
// still be in flight.
//
// Due times are absolute offsets from the origin, waited for on one reused
// timer, so a late wake-up or a slow send never shifts later requests.
//
// A turn of a session (Request.Session) whose previous turn has not ended
// plus the turn's Delay by its due time is handed to a goroutine of its
// own that waits for both (see chainTurn); other requests go on.
func (d *dispatcher) openLoop(ctx context.Context, src workload.Source) (err error) {
	var req workload.Request // the request in hand; Trace reads its offset
	sched := d.schedule(&req)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer func() {
		// A workload error stops scheduling at once, as a limit does: the
		// turns held back are dropped rather than waited for.
		if err == nil {
			d.waitChains(ctx)
		}
	}()
	for d.cfg.MaxRequests == 0 || d.planned() < d.cfg.MaxRequests {
		if req, err = src.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		req.Delay = d.thinkTime(req.Delay)
		due, ok := sched.Next()
		if !ok {
			return nil
		}
		if d.limit > 0 && due >= d.limit {
			// Nothing more is due before the limit: scheduling ends there,
			// and the drain bound counts from it (the deferred waitChains
			// then waits for the turns still held back).
			<-ctx.Done()
			return nil
		}
		if !d.mine(&req) {
			if ctx.Err() != nil {
				return nil // stopped: no need to read on to this shard's next request
			}
			continue // another shard's: its due time is spent, not waited for
		}
		// Build the body while waiting for its due time, so that building
		// it is not lag. A request already due is built on its own
		// goroutine instead, in parallel, so that a loop behind schedule
		// does not fall further behind building bodies one at a time.
		var pre *prebuilt
		if d.since() < due {
			pre = d.prebuild(&req)
		}
		if !d.waitUntil(ctx, timer, due) {
			return nil // stopped before this request was due
		}
		if ctx.Err() != nil { // stopped while the workload was being read
			d.dropOverdue(src, sched, &req)
			return nil
		}
		// A request due before one already dispatched (a trace whose
		// timestamps go backwards) is reached only now: the wait since its
		// due time is the workload's order, not the generator's lag.
		reached := d.reached
		d.reached = max(d.reached, due)
		var tok *turn
		if prevs := d.waitsFor(&req); req.Session != "" || req.Graph != nil {
			tok = &turn{done: make(chan struct{})}
			d.register(&req, tok)
			if !readyBy(prevs, due, req.Delay) {
				d.scheduled++
				d.wg.Add(1)
				d.chains.Add(1)
				go d.chainTurn(ctx, req, pre, due, reached, prevs, tok)
				continue
			}
		}
		var queued time.Duration
		select {
		case d.slots <- struct{}{}:
		default:
			if d.cfg.DropWhenFull {
				d.scheduled++
				d.dropped.Add(1)
				tok.finish(d.since())
				continue
			}
			t0 := d.since()
			d.blocked.Store(int64(due) + 1) // for Progress.Behind
			select {
			case d.slots <- struct{}{}:
				d.blocked.Store(0)
				d.waited.Add(1)
				queued = queueWait(t0, due, d.since())
				// The rows after this one are read only now: the cap's
				// wait is theirs too, not the generator's lag.
				d.reached += queued
			case <-ctx.Done():
				d.blocked.Store(0)
				tok.finish(d.since())
				d.dropOverdue(src, sched, &req)
				return nil
			}
		}
		d.scheduled++
		d.sent.Add(1)
		d.wg.Add(1)
		go func(req workload.Request, due, queued, order time.Duration) {
			defer d.wg.Done()
			r := d.launch(&req, pre, due, queued, order)
			<-d.slots
			tok.finish(r.End)
		}(req, due, queued, orderWait(reached, due))
		// Let the request's goroutine (next to run on this processor) send
		// before the loop reads and builds the next request.
		runtime.Gosched()
	}
	return nil
}

// queueWait is the time a request spent waiting for a slot: from when it
// started waiting (t0) or, if the wait began before it was due, from its
// due time, to when it got the slot (got). A request the generator itself
// reached late (a late timer, a slow workload read or body build) only
// queued from t0: the time before is client lag, not the cap's doing.
func queueWait(t0, due, got time.Duration) time.Duration {
	return max(got-max(t0, due), 0)
}

// orderWait is the part of a request's lag that the workload's order
// forced: the dispatcher reads requests in order, so one due at due, read
// after a request due at reached (> due), goes out no earlier than reached.
func orderWait(reached, due time.Duration) time.Duration {
	return max(reached-due, 0)
}

// turn is one session turn's completion, which the session's next turn
// waits for. end is written before done is closed.
type turn struct {
	done chan struct{}
	end  time.Duration // when the turn's response ended (or it was dropped)
}

// finish records the turn's end and releases its successor; nil-safe.
func (t *turn) finish(end time.Duration) {
	if t == nil {
		return
	}
	t.end = end
	close(t.done)
}

// readyBy reports whether a successor with think time delay may be sent at
// due: the turn has ended, and ended at least delay before due.
func (t *turn) readyBy(due, delay time.Duration) bool {
	select {
	case <-t.done:
		return t.end+delay <= due
	default:
		return false
	}
}

// readyBy reports whether every turn of prevs is ready by due (none: yes).
func readyBy(prevs []*turn, due, delay time.Duration) bool {
	for _, p := range prevs {
		if !p.readyBy(due, delay) {
			return false
		}
	}
	return true
}

// waitsFor is what req waits for: in a conversation graph (Request.Graph:
// agentic traces), the turns of the nodes it came after — its agent's
// previous call, the parent call that spawned a sub-agent, the sub-agents'
// last calls a parent joins — among those scheduled (a node filtered out
// or dealt to another shard is not waited for, and counted in
// Run.UnresolvedAfter); otherwise its session's previous turn. Called
// once per request, by the scheduling loop (the closed loop under its
// mutex).
func (d *dispatcher) waitsFor(req *workload.Request) []*turn {
	if g := req.Graph; g != nil {
		var out []*turn
		for _, n := range g.After {
			if t := d.nodes[graphKey(g.Conversation, n)]; t != nil {
				out = append(out, t)
			} else {
				d.unresolved++
			}
		}
		return out
	}
	if req.Session != "" {
		if prev := d.sessions[req.Session]; prev != nil {
			return []*turn{prev}
		}
	}
	return nil
}

// register makes tok the turn later requests of req's session, or of its
// graph node, wait for.
func (d *dispatcher) register(req *workload.Request, tok *turn) {
	if req.Session != "" {
		d.sessions[req.Session] = tok
	}
	if g := req.Graph; g != nil && g.Node != "" {
		d.nodes[graphKey(g.Conversation, g.Node)] = tok
	}
}

func graphKey(conversation, node string) string { return conversation + "\x00" + node }

// chainTurn sends an open-loop session turn once the turns it waits for
// (prevs: its session's previous turn, or in a conversation graph every
// node it came after) have ended and the turn's think time has passed
// since the last of them, and not before its own due time; its intended
// send time is the later of the two. reached is the
// latest due time the dispatcher had passed before this turn (see
// orderWait). It holds one count of d.wg and one of d.chains (released
// when it sends, so that the end of the workload waits for held-back
// turns). Scheduling stopping first drops it.
func (d *dispatcher) chainTurn(ctx context.Context, req workload.Request, pre *prebuilt, due, reached time.Duration, prevs []*turn, tok *turn) {
	defer d.wg.Done()
	sent := false
	defer func() {
		if !sent {
			d.chains.Done()
			d.dropped.Add(1)
			tok.finish(d.since())
		}
	}()
	at := due
	for _, prev := range prevs {
		select {
		case <-prev.done:
		case <-ctx.Done():
			return
		}
		at = max(at, prev.end+req.Delay)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	if !d.sleepUntil(ctx, timer, at) || ctx.Err() != nil {
		return
	}
	var queued time.Duration
	select {
	case d.slots <- struct{}{}:
	default:
		t0 := d.since()
		select {
		case d.slots <- struct{}{}:
			d.waited.Add(1)
			queued = queueWait(t0, at, d.since())
		case <-ctx.Done():
			return
		}
	}
	sent = true
	d.sent.Add(1)
	d.chains.Done()
	r := d.launch(&req, pre, at, queued, orderWait(reached, at))
	<-d.slots
	tok.finish(r.End)
}

// waitChains waits until every held-back session turn has been sent or
// dropped, or until ctx ends (they then drop themselves).
func (d *dispatcher) waitChains(ctx context.Context) {
	done := make(chan struct{})
	go func() { d.chains.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// thinkTime is a session turn's recorded think time as replayed: scaled
// by TimeScale like the trace's offsets, so that --time-scale 0.5 halves
// the pauses of a conversation as well as the gaps between arrivals.
func (d *dispatcher) thinkTime(delay time.Duration) time.Duration {
	if d.cfg.TimeScale <= 0 || d.cfg.TimeScale == 1 || delay <= 0 {
		return delay
	}
	f := float64(delay) * d.cfg.TimeScale
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(f)
}

// schedule returns the open-loop profile's schedule. Trace's offsets are
// those of the request in hand, which openLoop reads before calling Next.
func (d *dispatcher) schedule(cur *workload.Request) Schedule {
	switch d.cfg.Profile {
	case ProfileConstant:
		return &Constant{Rate: d.cfg.Rate}
	case ProfilePoisson:
		return NewPoisson(d.cfg.Rate, d.cfg.Seed)
	case ProfileGamma:
		return NewGamma(d.cfg.Rate, d.cfg.Burstiness, d.cfg.Seed)
	}
	return &Trace{Scale: d.cfg.TimeScale, Offsets: func() (time.Duration, bool) { return cur.Offset, true }}
}

// sleepUntil waits on t until offset due; false if ctx ended first.
func (d *dispatcher) sleepUntil(ctx context.Context, t *time.Timer, due time.Duration) bool {
	wait := due - d.since()
	if wait <= 0 {
		return true
	}
	t.Reset(wait)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}

// waitUntil is sleepUntil for the scheduling loop: with Config.Spin, the
// last Spin of the wait is spent yielding the processor in a loop rather
// than asleep. Go's runtime, when idle, waits for timers in epoll with
// millisecond resolution (a wait under 1 ms is rounded up to 1 ms), so a
// sleeping dispatcher wakes up to 1 ms late; spinning trades CPU for a due
// time met within microseconds.
func (d *dispatcher) waitUntil(ctx context.Context, t *time.Timer, due time.Duration) bool {
	spin := d.cfg.Spin
	if spin <= 0 {
		return d.sleepUntil(ctx, t, due)
	}
	if due-d.since() > spin && !d.sleepUntil(ctx, t, due-spin) {
		return false
	}
	for d.since() < due {
		if ctx.Err() != nil {
			return false
		}
		runtime.Gosched()
	}
	return true
}

// dropOverdue counts as dropped the request in hand, which was due but was
// never sent, and every later one whose due time had also passed when
// scheduling stopped: requests the schedule asked for that back-pressure
// (busy slots, or a slow workload) kept back. Reading on is bounded by the
// stop time; a workload error here no longer matters and ends the count.
func (d *dispatcher) dropOverdue(src workload.Source, sched Schedule, req *workload.Request) {
	stop := d.since()
	if d.limit > 0 {
		stop = min(stop, d.limit)
	}
	d.scheduled++
	d.dropped.Add(1)
	for d.cfg.MaxRequests == 0 || d.planned() < d.cfg.MaxRequests {
		r, err := src.Next()
		if err != nil {
			return
		}
		*req = r
		if due, ok := sched.Next(); !ok || due >= stop {
			return
		}
		if d.mine(req) {
			d.scheduled++
			d.dropped.Add(1)
		}
	}
}

// mine deals req, the next request of the global schedule, and reports
// whether it is this shard's (always, unsharded).
func (d *dispatcher) mine(req *workload.Request) bool {
	if d.deal == nil || d.deal.Mine(req) {
		return true
	}
	d.others++
	return false
}

// planned is how many requests of the global plan have been dealt: this
// shard's scheduled ones and the other shards'.
func (d *dispatcher) planned() int { return d.scheduled + d.others }

// closedLoop runs Concurrency loops (1 for synchronous, MaxConcurrency for
// throughput), each sending its next request as soon as its previous one
// ended. Intended equals the moment a loop sends its request: a closed loop
// has no schedule to fall behind. It returns when scheduling stops (ctx,
// MaxRequests, the end of the workload, a workload error, or every loop
// finished); loops still running their last request are bounded by the
// drain.
//
// A session turn is sent no earlier than its previous turn's end plus its
// Delay; a conversation graph's call (Request.Graph) no earlier than the
// end of the last node it came after plus its Delay, as in the open loop,
// so parallel sub-agents go out on whichever loops are free and a join
// waits for every branch. A loop that draws a turn not yet ready does not
// wait for it (that
// would leave a stream idle while other sessions have requests to send):
// it parks the turn and draws the next request. Every loop, before reading
// the workload, first takes a parked turn that has become ready, so a
// parked turn goes out from whichever loop is free first once its previous
// turn has ended plus its think time. At most maxParked turns are parked;
// with that many, or once the workload has ended, a loop with nothing
// ready waits for the first parked turn to become ready. Turns still
// parked when scheduling stops are dropped (a workload that simply ends
// sends them first).
func (d *dispatcher) closedLoop(ctx context.Context, src workload.Source) error {
	c := closedState{changed: make(chan struct{}), halt: make(chan struct{})}
	for range d.cfg.Concurrency {
		d.wg.Go(func() {
			var req workload.Request
			timer := time.NewTimer(time.Hour)
			timer.Stop()
			for {
				tok, ok := d.nextClosed(ctx, src, &c, timer, &req)
				if !ok {
					return
				}
				d.sent.Add(1)
				r := d.launch(&req, nil, d.since(), 0, 0)
				if tok != nil {
					tok.finish(r.End)
					c.mu.Lock()
					c.broadcast() // a parked successor may now be ready
					c.mu.Unlock()
				}
			}
		})
	}
	ended := make(chan struct{})
	go func() { d.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-ctx.Done():
	case <-c.halt: // a workload error: the loops' last requests drain
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	c.broadcast()
	for _, p := range c.parked {
		d.dropped.Add(1)
		p.tok.finish(d.since())
	}
	c.parked = nil
	return c.srcErr
}

// maxParked bounds the session turns the closed loops hold back at once
// (see closedLoop), so that a workload of many sessions whose turns come
// close together does not pile up in memory.
const maxParked = 1024

// closedState is the closed loops' shared state, under mu: the turns
// parked until their previous turn has ended plus their think time, and
// the workload's state. The dispatcher's scheduled count and sessions map
// are also under mu in a closed loop.
type closedState struct {
	mu        sync.Mutex
	parked    []parkedTurn  // in the order they were drawn
	changed   chan struct{} // closed (and replaced) when a parked turn may have become ready
	exhausted bool          // nothing more to read: EOF, MaxRequests or an error
	stopped   bool          // scheduling stopped: loops end, parked turns are dropped
	srcErr    error
	halt      chan struct{} // closed when srcErr is set
}

// parkedTurn is a session turn waiting for prevs (its previous turn, or
// a graph call's earlier nodes) to end, plus req.Delay; tok is its own
// completion.
type parkedTurn struct {
	req   workload.Request
	prevs []*turn
	tok   *turn
}

// readyAt is when a successor with think time delay of prevs may be sent:
// the last one's end plus delay; ok is false while one has not ended.
func readyAt(prevs []*turn, delay time.Duration) (at time.Duration, ok bool) {
	for _, p := range prevs {
		select {
		case <-p.done:
			at = max(at, p.end+delay)
		default:
			return 0, false
		}
	}
	return at, true
}

// broadcast wakes every loop waiting for a parked turn; under c.mu.
func (c *closedState) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// nextClosed hands a closed loop its next request in *req, with the
// request's session turn token (nil outside sessions): a parked turn now
// ready, else the workload's next request that is ready, parking the turns
// that are not. ok is false when the loop should end.
func (d *dispatcher) nextClosed(ctx context.Context, src workload.Source, c *closedState, timer *time.Timer, req *workload.Request) (*turn, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.stopped || ctx.Err() != nil {
			c.stopped = true
			return nil, false
		}
		now := d.since()
		wake := time.Duration(-1) // the earliest a parked turn whose previous one ended becomes ready
		for i, p := range c.parked {
			at, ended := readyAt(p.prevs, p.req.Delay)
			if !ended {
				continue
			}
			if at <= now {
				*req = p.req
				c.parked = slices.Delete(c.parked, i, i+1)
				return p.tok, true
			}
			if wake < 0 || at < wake {
				wake = at
			}
		}
		if !c.exhausted && d.cfg.MaxRequests > 0 && d.scheduled >= d.cfg.MaxRequests {
			c.exhausted = true
		}
		if !c.exhausted && len(c.parked) < maxParked {
			r, err := src.Next()
			if err != nil {
				c.exhausted = true
				if !errors.Is(err, io.EOF) {
					// Scheduling stops: the requests in flight drain, and
					// the run so far is returned with the error.
					c.srcErr = err
					c.stopped = true
					close(c.halt)
					c.broadcast()
				}
				continue
			}
			r.Delay = d.thinkTime(r.Delay)
			d.scheduled++
			var prevs []*turn
			var own *turn
			if r.Session != "" || r.Graph != nil {
				prevs = d.waitsFor(&r)
				own = &turn{done: make(chan struct{})}
				d.register(&r, own)
			}
			if !readyBy(prevs, now, r.Delay) {
				c.parked = append(c.parked, parkedTurn{req: r, prevs: prevs, tok: own})
				continue
			}
			*req = r
			return own, true
		}
		if len(c.parked) == 0 {
			return nil, false // the workload has ended and nothing is held back
		}
		changed := c.changed
		c.mu.Unlock()
		d.awaitChange(ctx, timer, changed, wake)
		c.mu.Lock()
	}
}

// awaitChange waits until changed is closed, the offset wake passes (when
// wake ≥ 0) or ctx ends.
func (d *dispatcher) awaitChange(ctx context.Context, timer *time.Timer, changed <-chan struct{}, wake time.Duration) {
	var tc <-chan time.Time
	if wake >= 0 {
		timer.Reset(max(wake-d.since(), 0))
		tc = timer.C
		defer timer.Stop()
	}
	select {
	case <-changed:
	case <-tc:
	case <-ctx.Done():
	}
}
