package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/redact"
)

// msgOverhead is what a queued message is counted as beyond its body, in
// bytes: the decoded message, its headers, the queue slot.
const msgOverhead = 256

// errStreamEnded is the error of a record whose stream ended before the
// response did: the client went away (Envoy closes the side stream
// deferred_close_timeout after the request ends), the upstream reset, or
// Envoy gave the stream up.
var errStreamEnded = errors.New("ext_proc stream ended before the response did")

// errNoResponseHeaders is the error of a record whose response ended
// without its headers having arrived.
var errNoResponseHeaders = errors.New("the response ended without response headers")

// item is one message as received: the time right after its Recv, and
// what it is counted as in the queue budget.
type item struct {
	at   time.Time
	m    *extprocv3.ProcessingRequest
	size int64
}

// stream is one ext_proc stream: a receive loop (receive, push) and a
// state machine (run) that feeds the capture.Tracker.
type stream struct {
	s *Server

	// Shared by the receive loop and the state machine, guarded by mu.
	mu         sync.Mutex
	pending    []item
	finished   bool      // the state machine is done: the receive loop discards
	closed     bool      // the receive loop ended
	closeErr   error     // what its Recv returned
	respEnd    time.Time // the response's last message arrived, queued or dropped
	dropped    int       // messages dropped before the response ended
	reqDropped int       // of which request body chunks
	notObs     bool      // a message without observability_mode arrived

	wake   chan struct{} // capacity 1: the receive loop has news
	lastNs atomic.Int64  // receipt of the latest message, ns since the server's origin

	// State machine only.
	spare       []item
	snap        snapshot
	tr          *capture.Tracker
	id          string
	path        string
	endpoint    openai.Endpoint
	wall        time.Time // request.time, when Envoy sent it
	upstreamReq string    // the upstream header as the request carried it
	reqEncoded  bool
	respEncoded bool
	body        *[]byte // request body so far, up to MaxBody (pooled)
	bodyOver    bool    // the request body passed MaxBody
	reqDone     bool    // the request ended and its body was parsed
	parsedWhole bool    // a whole request body was parsed
	respStarted bool
	done        bool // the record was written, or there is none
}

// snapshot is what the state machine copies of the shared state with
// each batch of messages.
type snapshot struct {
	closed     bool
	closeErr   error
	respEnd    time.Time
	dropped    int
	reqDropped int
	notObs     bool
}

func newStream(s *Server) *stream {
	st := &stream{s: s, wake: make(chan struct{}, 1)}
	st.lastNs.Store(int64(time.Since(s.origin)))
	return st
}

// receive is the receive loop: it stamps every message right after Recv
// and hands it on in O(1) time, never waiting for the state machine.
func (st *stream) receive(ps extprocv3.ExternalProcessor_ProcessServer) {
	defer st.s.wg.Done()
	for {
		m, err := ps.Recv()
		now := time.Now()
		if err != nil {
			st.mu.Lock()
			st.closed, st.closeErr = true, err
			st.mu.Unlock()
			st.signal()
			return
		}
		st.s.messages.Add(1)
		st.lastNs.Store(int64(now.Sub(st.s.origin)))
		st.push(now, m)
	}
}

// push queues m, or drops and counts it when the stream's queue or the
// byte budget is full. What it learns of the response's end it keeps even
// when the message itself is dropped.
func (st *stream) push(now time.Time, m *extprocv3.ProcessingRequest) {
	size, end, reqBody := int64(msgOverhead), false, false
	switch r := m.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestBody:
		size += int64(len(r.RequestBody.GetBody()))
		reqBody = true
	case *extprocv3.ProcessingRequest_ResponseBody:
		size += int64(len(r.ResponseBody.GetBody()))
		end = r.ResponseBody.GetEndOfStream()
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		end = r.ResponseHeaders.GetEndOfStream()
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		end = true
	}
	st.mu.Lock()
	switch {
	case st.finished || st.closed:
		st.mu.Unlock()
		return
	case !m.GetObservabilityMode():
		st.notObs = true
		st.mu.Unlock()
		st.signal()
		return
	case !st.respEnd.IsZero():
		st.mu.Unlock()
		st.s.protocolError(errAfterResponseEnd, "")
		return
	}
	if end {
		st.respEnd = now
	}
	if len(st.pending) >= st.s.cfg.QueueMessages || !st.s.reserve(size) {
		st.dropped++
		if reqBody {
			st.reqDropped++
		}
		st.mu.Unlock()
		st.s.msgDropped.Add(1)
		if end {
			st.signal()
		}
		return
	}
	st.pending = append(st.pending, item{at: now, m: m, size: size})
	st.mu.Unlock()
	st.signal()
}

func (st *stream) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// take swaps the queue for an empty one and copies the shared state.
func (st *stream) take() []item {
	st.mu.Lock()
	batch := st.pending
	st.pending, st.spare = st.spare[:0], nil
	st.snap = snapshot{closed: st.closed, closeErr: st.closeErr, respEnd: st.respEnd, dropped: st.dropped,
		reqDropped: st.reqDropped, notObs: st.notObs}
	st.mu.Unlock()
	return batch
}

// run is the state machine: it handles queued messages in order until the
// record is written (the response ended), the stream closes, idles past
// the bound, or is cut.
func (st *stream) run() {
	idle := time.NewTimer(st.s.cfg.IdleTimeout)
	defer idle.Stop()
	cut := st.s.cut // closed by Cut; set once in New
	for !st.done {
		var cause error
		var at time.Time
		select {
		case <-st.wake:
		case <-idle.C:
			last := time.Duration(st.lastNs.Load())
			if wait := st.s.cfg.IdleTimeout - (time.Since(st.s.origin) - last); wait > 0 {
				idle.Reset(wait)
				continue
			}
			cause, at = fmt.Errorf("no ext_proc message for %v (--extproc-idle-timeout)", st.s.cfg.IdleTimeout), st.s.origin.Add(last)
		case <-cut:
			cause, at = st.s.cutErr(), time.Now()
			cut = nil
		}
		batch := st.take()
		for i := range batch {
			if !st.done {
				st.handle(batch[i].at, batch[i].m)
			}
			st.s.release(batch[i].size)
		}
		clear(batch)
		st.spare = batch[:0]
		if st.done {
			break
		}
		snap := &st.snap
		switch {
		case !snap.respEnd.IsZero():
			// The response's last message was dropped (finish marks the
			// record overloaded), or came without response headers.
			var err error
			if !st.respStarted {
				err = errNoResponseHeaders
			}
			st.finish(snap.respEnd, err, err != nil)
		case snap.notObs:
			st.s.notObservability()
			st.finish(time.Now(), errors.New("Envoy is not in observability mode"), true)
		case cause != nil:
			st.finish(at, cause, true)
		case snap.closed:
			err := errStreamEnded
			if e := snap.closeErr; !errors.Is(e, io.EOF) && status.Code(e) != codes.Canceled && !errors.Is(e, context.Canceled) {
				err = fmt.Errorf("%w: %v", errStreamEnded, e)
			}
			st.finish(st.s.origin.Add(time.Duration(st.lastNs.Load())), err, true)
		}
	}
	st.mu.Lock()
	st.finished = true
	for i := range st.pending {
		st.s.release(st.pending[i].size)
	}
	st.pending = nil
	st.mu.Unlock()
}

// handle dispatches one message to the state machine.
func (st *stream) handle(at time.Time, m *extprocv3.ProcessingRequest) {
	if st.s.hookHandle != nil {
		st.s.hookHandle(m)
	}
	switch r := m.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		st.requestHeaders(at, r.RequestHeaders, m.GetAttributes())
	case *extprocv3.ProcessingRequest_RequestBody:
		st.requestBody(r.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		switch {
		case st.tr == nil:
			st.protocolError(errRequestBeforeHeaders)
		case st.reqDone:
			st.protocolError(errRequestAfterEnd)
		default:
			st.endRequest()
		}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		st.responseHeaders(at, r.ResponseHeaders, m.GetAttributes())
	case *extprocv3.ProcessingRequest_ResponseBody:
		if st.responsePart() {
			if !st.respEncoded {
				st.tr.ResponseData(at, r.ResponseBody.GetBody())
			}
			if r.ResponseBody.GetEndOfStream() {
				st.finish(at, nil, false)
			}
		}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		if st.responsePart() {
			st.finish(at, nil, false)
		}
	default:
		st.protocolError(errEmptyMessage)
	}
}

func (st *stream) requestHeaders(at time.Time, h *extprocv3.HttpHeaders, attrs map[string]*structpb.Struct) {
	if st.tr != nil {
		st.protocolError(errSecondRequestHeaders)
		return
	}
	var method, path, reqID, session, enc string
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch k := hv.GetKey(); k {
		case ":method":
			method = headerValue(hv)
		case ":path":
			path = stripQuery(headerValue(hv))
		case "x-request-id":
			reqID = headerValue(hv)
		case "content-encoding":
			enc = headerValue(hv)
		default:
			if k == st.s.sessionHeader {
				session = headerValue(hv)
			}
			if k == st.s.upstreamHeader {
				st.upstreamReq = headerValue(hv)
			}
		}
	}
	st.id = reqID
	if !capture.UsableRequestID(reqID) {
		st.id = st.s.newID()
	}
	st.path, st.endpoint = path, openai.EndpointForPath(path)
	st.tr = capture.NewTracker(st.s.origin, at, st.id, method, path, &st.s.cfg.Capture)
	if session != "" && st.s.sessionHeader != "" {
		st.tr.SetSession(session)
	}
	st.wall = requestTime(attrs)
	st.reqEncoded = encoded(enc)
	if h.GetEndOfStream() {
		st.reqDone = true // no body
	}
}

func (st *stream) requestBody(b *extprocv3.HttpBody) {
	switch {
	case st.tr == nil:
		st.protocolError(errRequestBeforeHeaders)
		return
	case st.reqDone:
		st.protocolError(errRequestAfterEnd)
		return
	}
	if chunk := b.GetBody(); len(chunk) > 0 && !st.bodyOver {
		if st.body == nil {
			st.body = bodyPool.Get().(*[]byte)
		}
		if room := st.s.cfg.Capture.MaxBody - len(*st.body); len(chunk) > room {
			chunk, st.bodyOver = chunk[:room], true
		}
		*st.body = append(*st.body, chunk...)
	}
	if b.GetEndOfStream() {
		st.endRequest()
	}
}

// endRequest parses the request body at the request's end: whole unless
// it passed MaxBody or chunks of it were dropped.
func (st *stream) endRequest() {
	st.parseBody(!st.bodyOver && st.snap.reqDropped == 0)
	st.reqDone = true
}

// parseBody hands the request body kept so far to the Tracker and
// returns its buffer to the pool.
func (st *stream) parseBody(complete bool) {
	if st.body == nil {
		return
	}
	switch {
	case len(*st.body) == 0:
	case st.reqEncoded:
		st.parseFailed(failEncoded)
	default:
		st.tr.RequestBody(*st.body, complete)
		st.parsedWhole = complete
	}
	if cap(*st.body) <= 1<<20 {
		*st.body = (*st.body)[:0]
		bodyPool.Put(st.body)
	}
	st.body = nil
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (st *stream) responseHeaders(at time.Time, h *extprocv3.HttpHeaders, attrs map[string]*structpb.Struct) {
	switch {
	case st.tr == nil:
		st.protocolError(errResponseBeforeRequest)
		return
	case st.respStarted:
		st.protocolError(errSecondResponseHeaders)
		return
	}
	st.respStarted = true
	var code, ctype, enc, upstream string
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch k := hv.GetKey(); k {
		case ":status":
			code = headerValue(hv)
		case "content-type":
			ctype = headerValue(hv)
		case "content-encoding":
			enc = headerValue(hv)
		default:
			if k == st.s.upstreamHeader {
				upstream = headerValue(hv)
			}
		}
	}
	if upstream == "" {
		upstream = st.upstreamReq
	}
	if upstream == "" {
		upstream = attribute(attrs, attrUpstreamAddress)
	}
	if encoded(enc) {
		// Not decoded here: timings and status only (the proxy decodes a
		// copy; see docs/envoy-istio.md).
		st.respEncoded, ctype = true, ""
		if st.endpoint != openai.Other {
			st.parseFailed(failEncoded)
		}
	}
	status, _ := strconv.Atoi(code)
	st.tr.ResponseStart(at, status, ctype, upstream)
	if h.GetEndOfStream() {
		st.finish(at, nil, false)
	}
}

// responsePart reports whether a response body or trailers message may be
// handled: the response headers came first.
func (st *stream) responsePart() bool {
	switch {
	case st.tr == nil:
		st.protocolError(errResponseBeforeRequest)
		return false
	case !st.respStarted:
		st.protocolError(errResponseBodyBeforeHeaders)
		return false
	}
	return true
}

// finish writes the record, ended at at. A stream that lost messages is
// aborted with the count, never recorded as if complete.
func (st *stream) finish(at time.Time, err error, aborted bool) {
	st.done = true
	if st.tr == nil {
		st.s.noRecord.Add(1)
		return
	}
	if !st.reqDone {
		st.parseBody(false) // the request never ended: what arrived of it
	}
	if n := st.snap.dropped; n > 0 {
		aborted = true
		overload := fmt.Errorf("processor overloaded: %d ext_proc messages dropped", n)
		if err != nil {
			overload = fmt.Errorf("%v; %w", err, overload)
		}
		err = overload
		st.s.logLimited(logOverloaded, "ext_proc messages dropped: processor overloaded (record marked aborted)",
			zap.String("request_id", st.id), zap.Int("dropped", n))
	}
	rec := st.tr.Finish(at, err, aborted)
	rec.Source = capture.SourceExtProc
	if !st.wall.IsZero() {
		rec.Wall = st.wall
	}
	if st.parsedWhole && st.endpoint != openai.Other && rec.Model == "" {
		st.parseFailed(failRequest)
	}
	st.s.logRecord(rec, st.path)
	st.s.write(rec)
}

func (st *stream) protocolError(e protoErr) { st.s.protocolError(e, st.id) }

func (st *stream) parseFailed(f parseFailure) {
	st.s.parseFails[f].Add(1)
	st.s.logLimited(logParse, "body not parsed", zap.String("request_id", st.id), zap.String("path", st.path),
		zap.String("reason", parseFailureNames[f]))
}

// protocolError counts a message out of sequence and logs it, bounded.
func (s *Server) protocolError(e protoErr, requestID string) {
	s.protoErrs[e].Add(1)
	s.logLimited(logProtocol, "ext_proc message out of sequence, ignored", zap.String("reason", protoErrNames[e]),
		zap.String("request_id", requestID))
}

// notObservability counts and logs a stream Envoy sent without
// observability_mode: Envoy then waits for an answer to every message, so
// the collector closes the stream (status OK) at once, and Envoy carries
// on without it.
func (s *Server) notObservability() {
	s.protoErrs[errNotObservability].Add(1)
	s.logLimited(logNotObservability, "Envoy sent a message without observability_mode: closing the stream unrecorded so Envoy does not wait on the collector; set observability_mode: true in the ext_proc filter")
}

// logLimited logs at warn level, at most once per logEvery per kind.
func (s *Server) logLimited(kind logKind, msg string, fields ...zap.Field) {
	if ok, suppressed := s.logLimit[kind].allow(int64(time.Since(s.origin))); ok {
		if suppressed > 0 {
			fields = append(fields, zap.Int64("suppressed_since_last", suppressed))
		}
		s.log.Warn(msg, fields...)
	}
}

// logRecord logs an aborted record (bounded) and, at debug level, every
// record. Never header values, query strings or bodies.
func (s *Server) logRecord(rec *capture.Record, path string) {
	if rec.Aborted && !errors.Is(s.cutErr(), ErrDrainCut) {
		if ok, suppressed := s.logLimit[logAborted].allow(int64(time.Since(s.origin))); ok {
			s.log.Info("ext_proc request did not end normally (recorded aborted)", zap.String("request_id", rec.ID),
				zap.String("path", path), zap.Int("status", rec.Status), zap.String("error", redact.Text(rec.Error)),
				zap.Int64("suppressed_since_last", suppressed))
		}
	}
	if ce := s.log.Check(zap.DebugLevel, "record"); ce != nil {
		ce.Write(zap.String("request_id", rec.ID), zap.String("path", path), zap.Int("status", rec.Status),
			zap.Duration("e2e", time.Duration(rec.E2ENs)), zap.Bool("aborted", rec.Aborted), zap.String("error", rec.Error))
	}
}
