// Package keepalive tells the keep-alive race apart from every other
// failure of an HTTP request: a server (llama.cpp's, among others) that
// closes an idle kept-alive connection without `Connection: close` as the
// next request goes out on it. Such a request provably never reached the
// server and may be sent again; nothing else may. The replay client
// (internal/engine) and the capturing proxy's upstream transport
// (internal/proxy) share the rule.
//
// How it relates to net/http: the transport itself re-sends a request
// that failed before anything was written (nothingWrittenError) or on a
// connection the read loop saw closed while idle (errServerClosedIdle),
// but only when it is idempotent (GET, or an Idempotency-Key header). A
// POST that met the close after it was written fails with the bare EOF or
// reset (transportReadFromServerError) — the case handled here. The rule
// is narrower than net/http's caution requires for an inference server:
// the connection must have been reused (idle in the pool, or handed
// straight from the request that used it last: a server that closes after
// a stream closes either), no response byte may
// have arrived, the error must be EOF, a reset, a broken pipe or the
// closed connection, and it must come within RaceWindow of the write — a
// close long after it is a server that read the request and failed while
// serving it (a crash, a proxy's idle timeout during a long prefill),
// which must not be sent again.
package keepalive

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// RaceWindow bounds how long after the write a close still counts as the
// race: a server closing an idle connection does so as (or before) the
// request arrives, within a round trip.
const RaceWindow = time.Second

// Attempt is what httptrace tells of one request attempt. Its hooks run on
// the transport's goroutines.
type Attempt struct {
	conns     atomic.Int32 // connections used (more than one: net/http re-sent it itself)
	reused    atomic.Bool
	wrote     atomic.Int64 // when the request was written, UnixNano (0: not yet)
	firstByte atomic.Bool
}

// Trace returns the hooks that fill a.
func (a *Attempt) Trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			a.conns.Add(1)
			// Reused, whether or not it idled: a connection handed
			// straight from a request that just ended (WasIdle false,
			// under load) meets the same close as one from the pool.
			a.reused.Store(info.Reused)
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { a.wrote.Store(time.Now().UnixNano()) },
		GotFirstResponseByte: func() { a.firstByte.Store(true) },
	}
}

// Resent is how many times net/http itself sent the request again (on a
// new connection, nothing having been written).
func (a *Attempt) Resent() int { return max(int(a.conns.Load())-1, 0) }

// NeverReached reports whether err, which ended the attempt, is the
// keep-alive race: a reused connection closed or reset before any
// response byte, within RaceWindow of the write, with the request's own
// context still live.
func (a *Attempt) NeverReached(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || !a.reused.Load() || a.firstByte.Load() {
		return false
	}
	if w := a.wrote.Load(); w != 0 && time.Since(time.Unix(0, w)) > RaceWindow {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		// The transport's read loop saw the server's EOF and closed the
		// connection while the request was still being written: the write
		// fails with net.ErrClosed (net/http reports it as the body's own
		// error, unwrapped).
		errors.Is(err, net.ErrClosed) ||
		// errServerClosedIdle, unexported: the read loop saw the close
		// before the request was registered on the connection.
		strings.Contains(err.Error(), "http: server closed idle connection")
}
