package workload

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// SessionTiming shortens a long recording without losing its bursts: it
// cuts the long waits inside sessions, then the idle gaps between them,
// both measured in the recording's own time, before any time scale. An
// 8-hour trace with a night of idle and users who leave a conversation
// open over lunch becomes a test of minutes that still holds every burst
// as it was. In Transforms' order it comes after the sample and before
// the time scale:
//
//	... 3. sample  4. clamp session waits (MaxWait)  5. pack idle gaps (MaxIdle)  6. time-scale ...
//
// GuideLLM 0.8.1's trace options do the same in the same order (max_wait,
// then max_session_wait, then time_scale).
//
// The zero value changes nothing.
type SessionTiming struct {
	// MaxWait cuts every wait inside a session that is longer than this to
	// this (0: no cut): the gap between the starts of a session's
	// consecutive turns, and a turn's think time (Delay). The session's
	// later turns move earlier by what was cut, so the session keeps its
	// rhythm but never idles longer than MaxWait; other sessions do not
	// move. Requests come out re-sorted by their new offsets.
	MaxWait time.Duration
	// MaxIdle cuts every idle gap longer than this before a request that
	// starts a session (or has none) to this (0: no cut): the time since
	// the latest request before it, after MaxWait's cuts. Everything after
	// the gap moves earlier by what was cut, so no burst changes shape. A
	// session waiting across a cut gap keeps its Delay: the engine still
	// sends its next turn no sooner than its previous turn's end plus the
	// think time.
	MaxIdle time.Duration
	// Horizon bounds the memory MaxWait needs (0: an hour, or 4 × MaxWait
	// when longer). Moving a session's turn earlier means holding back the
	// requests of other sessions until it is read; a session idle longer
	// than Horizon is no longer waited for, and a turn that comes back
	// after that is sent as early as what was already sent allows (counted
	// in a warning). The transform holds the requests of about one
	// Horizon.
	Horizon time.Duration
}

// Validate reports every problem at once, naming the fields
// (SessionTiming.MaxWait, ...: FieldErrors, which a command line maps to
// its flags).
func (st *SessionTiming) Validate() error {
	var errs []error
	if st.MaxWait < 0 {
		errs = append(errs, fieldErr("SessionTiming.MaxWait", st.MaxWait.String(), "must not be negative"))
	}
	if st.MaxIdle < 0 {
		errs = append(errs, fieldErr("SessionTiming.MaxIdle", st.MaxIdle.String(), "must not be negative"))
	}
	if st.Horizon < 0 || (st.Horizon > 0 && st.Horizon <= st.MaxWait) {
		errs = append(errs, fieldErr("SessionTiming.Horizon", st.Horizon.String(), fmt.Sprintf("must be longer than MaxWait %v", st.MaxWait)))
	}
	return errors.Join(errs...)
}

// Active reports whether st changes anything.
func (st *SessionTiming) Active() bool { return st.MaxWait > 0 || st.MaxIdle > 0 }

// Apply returns src with the cuts applied (src itself when st changes
// nothing). Call Validate first.
func (st SessionTiming) Apply(src Source) Source {
	if !st.Active() {
		return src
	}
	h := st.Horizon
	if h == 0 {
		h = max(time.Hour, 4*st.MaxWait)
	}
	return &sessionTimed{
		wrapper: wrapper{src}, maxWait: int64(st.MaxWait), maxIdle: int64(st.MaxIdle), horizon: int64(h),
		sessions: map[string]*timedSession{},
	}
}

// ParseSessionWait parses a session timing flag's value: a Go duration
// ("5m", "90s") or plain seconds ("300"), greater than 0. flag names the
// flag in errors.
func ParseSessionWait(flag, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if !(f > 0 && f < math.MaxInt64/float64(time.Second)) {
			return 0, fmt.Errorf("%s %q: want a duration > 0 like 5m, 90s or 300 (seconds)", flag, s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %q: want a duration > 0 like 5m, 90s or 300 (seconds)", flag, s)
	}
	return d, nil
}

// sessionTimed applies SessionTiming. MaxWait moves a session's later
// turns earlier, so it keeps a heap of the requests read but not yet
// safe to send: a request may go out once no turn still to be read can
// land before it. A session last seen at input offset lastIn, moved by
// trim, whose next turn comes at input offset t >= now lands at
// t - trim' >= lastOut + min(t - lastIn, MaxWait) >= min(now - trim,
// lastOut + MaxWait); a new session lands at its own offset >= now. The
// minimum of those over the sessions seen within Horizon is the mark
// below which requests go out.
type sessionTimed struct {
	wrapper
	maxWait, maxIdle, horizon int64
	sessions                  map[string]*timedSession
	pending                   otelHeap
	trims                     sessionHeap // max trim first
	reach                     sessionHeap // min lastOut + maxWait first
	seq                       int64
	now                       int64 // the latest input offset read
	started                   bool
	eof                       bool
	released                  int64 // the latest offset sent (before packing)
	// packing
	shift, lastPre int64
	packedAny      bool
	// counts for warnings
	late   int
	lateBy time.Duration
}

type timedSession struct {
	lastIn, lastOut int64
	ver             int
	packed          bool // a request of it has gone through packing
}

func (s *timedSession) trim() int64 { return s.lastIn - s.lastOut }

// sessionHeap orders sessions for the mark, with lazy deletion: an entry
// whose ver no longer matches its session's is stale.
type sessionHeap struct {
	e   []sessionEntry
	max bool
}

type sessionEntry struct {
	key string
	v   int64
	ver int
}

func (h *sessionHeap) Len() int { return len(h.e) }
func (h *sessionHeap) Less(i, j int) bool {
	if h.max {
		return h.e[i].v > h.e[j].v
	}
	return h.e[i].v < h.e[j].v
}
func (h *sessionHeap) Swap(i, j int) { h.e[i], h.e[j] = h.e[j], h.e[i] }
func (h *sessionHeap) Push(x any)    { h.e = append(h.e, x.(sessionEntry)) }
func (h *sessionHeap) Pop() any {
	x := h.e[len(h.e)-1]
	h.e = h.e[:len(h.e)-1]
	return x
}

// top returns the best live entry's value, dropping stale and expired
// entries; ok is false when there is none.
func (t *sessionTimed) top(h *sessionHeap) (int64, bool) {
	for h.Len() > 0 {
		e := h.e[0]
		s := t.sessions[e.key]
		if s != nil && s.ver == e.ver && s.lastIn >= t.now-t.horizon {
			return e.v, true
		}
		heap.Pop(h)
	}
	return 0, false
}

// mark is the offset at or below which pending requests can go out.
func (t *sessionTimed) mark() int64 {
	m := t.now
	if v, ok := t.top(&t.trims); ok {
		m = min(m, t.now-v)
	}
	if v, ok := t.top(&t.reach); ok {
		m = min(m, v)
	}
	return m
}

func (t *sessionTimed) Next() (Request, error) {
	for {
		if t.pending.Len() > 0 && (t.eof || t.maxWait == 0 || t.pending[0].start <= t.mark()) {
			return t.pack(heap.Pop(&t.pending).(*otelPending)), nil
		}
		if t.eof {
			return Request{}, io.EOF
		}
		r, err := t.inner.Next()
		if errors.Is(err, io.EOF) {
			t.eof = true
			continue
		}
		if err != nil {
			return Request{}, err
		}
		t.read(&r)
	}
}

// read applies MaxWait to r and queues it.
func (t *sessionTimed) read(r *Request) {
	in := int64(r.Offset)
	backwards := t.started && in < t.now
	t.now, t.started = max(t.now, in), true
	out := in
	key := timingKey(r)
	if t.maxWait > 0 && key != "" {
		s := t.sessions[key]
		if s == nil {
			s = &timedSession{lastIn: in, lastOut: in}
			t.sessions[key] = s
		} else {
			expired := s.lastIn < t.now-t.horizon
			gap := in - s.lastIn
			trim := s.trim()
			if gap > t.maxWait {
				trim += gap - t.maxWait
			}
			out = in - trim
			if r.Delay > time.Duration(t.maxWait) {
				r.Delay = time.Duration(t.maxWait)
			}
			if expired && !backwards && out < t.released {
				// Back after Horizon: requests later than where it belongs
				// have gone out already.
				t.late++
				t.lateBy = max(t.lateBy, time.Duration(t.released-out))
				out = t.released
			}
			s.lastIn, s.lastOut = max(s.lastIn, in), out
		}
		s.ver++
		if tr := s.trim(); tr > 0 {
			heap.Push(&t.trims, sessionEntry{key, tr, s.ver})
		}
		heap.Push(&t.reach, sessionEntry{key, s.lastOut + t.maxWait, s.ver})
		if t.trims.Len()+t.reach.Len() > 4*len(t.sessions)+1024 {
			t.compact()
		}
	}
	t.seq++
	r.Offset = time.Duration(out)
	heap.Push(&t.pending, &otelPending{start: out, seq: t.seq, req: *r})
}

// compact rebuilds the mark heaps from the live sessions, dropping stale
// entries and forgetting sessions past the horizon.
func (t *sessionTimed) compact() {
	t.trims.e, t.reach.e = t.trims.e[:0], t.reach.e[:0]
	for k, s := range t.sessions {
		if s.lastIn < t.now-t.horizon {
			continue // kept in the map: a late return still needs its trim
		}
		if tr := s.trim(); tr > 0 {
			t.trims.e = append(t.trims.e, sessionEntry{k, tr, s.ver})
		}
		t.reach.e = append(t.reach.e, sessionEntry{k, s.lastOut + t.maxWait, s.ver})
	}
	heap.Init(&t.trims)
	heap.Init(&t.reach)
}

// pack applies MaxIdle to a request on its way out.
func (t *sessionTimed) pack(p *otelPending) Request {
	r := p.req
	pre := p.start
	if pre > t.released {
		t.released = pre
	}
	if t.maxIdle > 0 {
		key := timingKey(&r)
		first := key == ""
		if !first {
			s := t.sessions[key]
			if s == nil {
				s = &timedSession{}
				t.sessions[key] = s
			}
			first, s.packed = !s.packed, true
		}
		if first && t.packedAny && pre-t.lastPre > t.maxIdle {
			t.shift += pre - t.lastPre - t.maxIdle
		}
		t.lastPre, t.packedAny = max(t.lastPre, pre), true
		r.Offset = time.Duration(max(pre-t.shift, 0))
	}
	return r
}

// Warnings adds the turns sent later than the clamp asked.
func (t *sessionTimed) Warnings() []string {
	w := t.wrapper.Warnings()
	if t.late > 0 {
		w = append(w, fmt.Sprintf("--clamp-wait: %d session turns came back after more than %v idle, when requests meant to follow them had gone out: sent up to %v later than the clamp asked",
			t.late, time.Duration(t.horizon), t.lateBy))
	}
	return w
}

// timingKey is the timeline a request's waits are measured on: its
// conversation graph's when it has one — a sub-agent is a session of its
// own, but its calls and its parent's are one conversation, and cutting
// them apart would send a join before the calls it waits for — else its
// session's ("" for none).
func timingKey(r *Request) string {
	if g := r.Graph; g != nil && g.Conversation != "" {
		return "g\x00" + g.Conversation
	}
	return r.Session
}
