package engine

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// openLoop sends each request at its due time from the origin whatever the
// target does (trace, constant, poisson). At most MaxConcurrency requests
// are in flight: a request due while every slot is busy waits for one and
// is sent late, its lag recorded, or with DropWhenFull is skipped and
// counted. It returns when ctx (the scheduling context) ends, MaxRequests
// have been scheduled or the workload ends; the requests it launched may
// still be in flight.
//
// Due times are absolute offsets from the origin, waited for on one reused
// timer, so a late wake-up or a slow send never shifts later requests.
func (d *dispatcher) openLoop(ctx context.Context, src workload.Source) error {
	var req workload.Request // the request in hand; Trace reads its offset
	sched := d.schedule(&req)
	slots := make(chan struct{}, d.cfg.MaxConcurrency)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for d.cfg.MaxRequests == 0 || d.scheduled < d.cfg.MaxRequests {
		var err error
		if req, err = src.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		due, ok := sched.Next()
		if !ok {
			return nil
		}
		if d.limit > 0 && due >= d.limit {
			// Nothing more is due before the limit: scheduling ends there,
			// and the drain bound counts from it.
			<-ctx.Done()
			return nil
		}
		if !d.sleepUntil(ctx, timer, due) {
			return nil // stopped before this request was due
		}
		if ctx.Err() != nil { // stopped while the workload was being read
			d.dropOverdue(src, sched, &req)
			return nil
		}
		select {
		case slots <- struct{}{}:
		default:
			if d.cfg.DropWhenFull {
				d.scheduled++
				d.dropped++
				continue
			}
			select {
			case slots <- struct{}{}:
				d.waited++
			case <-ctx.Done():
				d.dropOverdue(src, sched, &req)
				return nil
			}
		}
		d.scheduled++
		d.wg.Add(1)
		go func(req workload.Request, due time.Duration) {
			defer d.wg.Done()
			defer func() { <-slots }()
			d.launch(&req, due)
		}(req, due)
	}
	return nil
}

// schedule returns the open-loop profile's schedule. Trace's offsets are
// those of the request in hand, which openLoop reads before calling Next.
func (d *dispatcher) schedule(cur *workload.Request) Schedule {
	switch d.cfg.Profile {
	case ProfileConstant:
		return &Constant{Rate: d.cfg.Rate}
	case ProfilePoisson:
		return NewPoisson(d.cfg.Rate, d.cfg.Seed)
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
	d.dropped++
	for d.cfg.MaxRequests == 0 || d.scheduled < d.cfg.MaxRequests {
		r, err := src.Next()
		if err != nil {
			return
		}
		*req = r
		if due, ok := sched.Next(); !ok || due >= stop {
			return
		}
		d.scheduled++
		d.dropped++
	}
}

// closedLoop runs Concurrency loops (1 for synchronous, MaxConcurrency for
// throughput), each sending its next request as soon as its previous one
// ended. Intended equals the moment a loop takes its request: a closed loop
// has no schedule to fall behind. It returns when scheduling stops (ctx,
// MaxRequests, the end of the workload, or every loop finished); loops
// still running their last request are bounded by the drain.
func (d *dispatcher) closedLoop(ctx context.Context, src workload.Source) error {
	var mu sync.Mutex
	var srcErr error
	stopped := false
	next := func(req *workload.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if stopped || ctx.Err() != nil || (d.cfg.MaxRequests > 0 && d.scheduled >= d.cfg.MaxRequests) {
			stopped = true
			return false
		}
		r, err := src.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				srcErr = err
			}
			stopped = true
			return false
		}
		*req = r
		d.scheduled++
		return true
	}
	for range d.cfg.Concurrency {
		d.wg.Go(func() {
			var req workload.Request
			for next(&req) {
				d.launch(&req, d.since())
			}
		})
	}
	ended := make(chan struct{})
	go func() { d.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	stopped = true
	return srcErr
}
