package control

import (
	"sync"
	"sync/atomic"

	controlv1 "github.com/reprise-llm/reprise/api/reprise/control/v1"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/proxy"
)

// DefaultTailBuffer is how many records a tail subscriber may fall behind
// before it starts missing records.
const DefaultTailBuffer = 256

// Hub fans finished records out to tail subscribers. Publish is called on
// the proxy's request path, so it never blocks: each subscriber has a
// bounded queue, and a record that does not fit is dropped for that
// subscriber and counted (the subscriber learns how many it missed with its
// next record). With no subscriber, Publish is one atomic load.
type Hub struct {
	buffer int

	mu     sync.RWMutex // guards subs and closed; Publish holds it for reading
	subs   map[*Subscription]struct{}
	closed bool
	nsubs  atomic.Int64 // len(subs), read without the lock

	published, dropped atomic.Uint64
}

// NewHub returns a Hub whose subscribers each buffer up to buffer records
// (DefaultTailBuffer when buffer <= 0).
func NewHub(buffer int) *Hub {
	if buffer <= 0 {
		buffer = DefaultTailBuffer
	}
	return &Hub{buffer: buffer, subs: make(map[*Subscription]struct{})}
}

// tailRecord is the copy of a capture.Record a subscriber receives: only the
// fields the control API shows (never prompt text, hashes or session keys),
// and a plain value, so no goroutine shares the proxy's record.
type tailRecord struct {
	id, path, model, requestID string
	t, ttftNs, e2eNs           int64
	promptTokens, outputTokens int64
	status                     int32
	aborted, shadow            bool
	missed                     uint64 // records dropped for this subscriber just before this one
}

func newTailRecord(r *capture.Record) tailRecord {
	return tailRecord{
		id: r.ID, path: r.Path, model: r.Model, requestID: r.RequestID,
		t: r.T, ttftNs: r.TTFTNs, e2eNs: r.E2ENs,
		promptTokens: int64(r.PromptTokens), outputTokens: int64(r.OutputTokens),
		status: int32(r.Status), aborted: r.Aborted, shadow: r.Shadow,
	}
}

func (r *tailRecord) proto() *controlv1.TailRecordsResponse {
	return &controlv1.TailRecordsResponse{
		Record: &controlv1.Record{
			Id: r.id, T: r.t, Path: r.path, Model: r.model, Status: r.status,
			PromptTokens: r.promptTokens, OutputTokens: r.outputTokens,
			TtftNs: r.ttftNs, E2ENs: r.e2eNs, Aborted: r.aborted, Shadow: r.shadow,
			RequestId: r.requestID,
		},
		Missed: r.missed,
	}
}

// Subscription is one tail client's queue.
type Subscription struct {
	hub           *Hub
	ch            chan tailRecord
	done          chan struct{} // closed by Close or Hub.Close
	once          sync.Once
	excludeShadow bool
	pending       atomic.Uint64 // dropped since the last queued record
}

// Subscribe adds a subscriber that receives every record published from now
// on (without shadow records when excludeShadow). On a closed Hub the
// subscription is already done.
func (h *Hub) Subscribe(excludeShadow bool) *Subscription {
	s := &Subscription{hub: h, ch: make(chan tailRecord, h.buffer), done: make(chan struct{}), excludeShadow: excludeShadow}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(s.done)
		return s
	}
	h.subs[s] = struct{}{}
	h.nsubs.Store(int64(len(h.subs)))
	return s
}

// Close removes the subscription; it is idempotent.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	delete(s.hub.subs, s)
	s.hub.nsubs.Store(int64(len(s.hub.subs)))
	s.hub.mu.Unlock()
	s.once.Do(func() { close(s.done) })
}

// Done is closed when the subscription ends (Close, or the Hub closed).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Publish hands r to every subscriber without blocking. It copies what it
// needs before returning, so the caller may pass r on (to the capture
// writer, which then owns it).
func (h *Hub) Publish(r *capture.Record) {
	if r == nil || h.nsubs.Load() == 0 {
		return
	}
	tr := newTailRecord(r)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		if s.excludeShadow && tr.shadow {
			continue
		}
		rec := tr
		rec.missed = s.pending.Swap(0)
		select {
		case s.ch <- rec:
			h.published.Add(1)
		default:
			s.pending.Add(rec.missed + 1)
			h.dropped.Add(1)
		}
	}
}

// Close ends every subscription; later Publish calls do nothing and later
// subscriptions are done at once. It is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.subs {
		s.once.Do(func() { close(s.done) })
		delete(h.subs, s)
	}
	h.nsubs.Store(0)
}

// HubStats are a Hub's counters.
type HubStats struct {
	Subscribers int64  // subscriptions open now
	Published   uint64 // records queued to subscribers, one per record per subscriber
	Dropped     uint64 // records subscribers missed, one per record per subscriber
}

// Stats returns the counters.
func (h *Hub) Stats() HubStats {
	return HubStats{Subscribers: h.nsubs.Load(), Published: h.published.Load(), Dropped: h.dropped.Load()}
}

// Tee returns a proxy.RecordWriter that publishes every record to h and
// then hands it to next, returning next's answer: give it to proxy.New in
// place of the capture writer to tail what the proxy records (its shadow
// records too). next must not be nil.
func (h *Hub) Tee(next proxy.RecordWriter) proxy.RecordWriter {
	return tee{hub: h, next: next}
}

type tee struct {
	hub  *Hub
	next proxy.RecordWriter
}

func (t tee) Write(r *capture.Record) bool {
	t.hub.Publish(r)
	return t.next.Write(r)
}

var _ proxy.RecordWriter = tee{}
