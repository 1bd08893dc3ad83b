package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

func contextWith(ctx context.Context, ex *exchange) context.Context {
	return context.WithValue(ctx, ctxKey{}, ex)
}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(ctxKey{}).(*exchange)
	return ex
}

// teeBody passes the client's request body to the upstream unchanged while
// keeping a copy of its first MaxBody bytes for parsing. The transport reads
// it on its own goroutine, hence the mutexes.
//
// Once it has returned EOF it answers every later Read with EOF itself,
// without asking the server's body: after copying Content-Length bytes the
// transport reads once more to check the body is not longer, and by then
// the server may have closed that body because the response headers went
// out (the upstream answered fast). The server's "invalid Read on closed
// Body" would make the transport drop the upstream connection and cut a
// response that is streaming fine (golang/go#40747).
//
// Close does not close the client's body: a transport that failed before
// reading it (an upstream that refused the connection) closes it at once,
// and the server's body would then discard what the client sent, leaving
// the record without its request (issue 16). readRest reads that rest for
// the record. The server closes the client's body when the handler returns,
// as it always does; after release the tee answers reads without it.
type teeBody struct {
	rc     io.ReadCloser
	ended  atomic.Bool // returned io.EOF once
	closed atomic.Bool // the transport closed it
	// rmu is held across each read of rc, so that the transport's reads
	// and readRest's take turns and the copy keeps the body's order.
	rmu      sync.Mutex
	mu       sync.Mutex
	buf      *bytes.Buffer
	max      int
	overflow bool
	// onEnd, when set, is called once when the body reaches EOF, with a
	// copy of it and whether that copy is all of it (the shadow's body).
	onEnd func(body []byte, complete bool)
}

func (p *Proxy) newTee(rc io.ReadCloser) *teeBody {
	buf, _ := p.bufPool.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	return &teeBody{rc: rc, buf: buf, max: p.cfg.MaxBody}
}

func (t *teeBody) Read(b []byte) (int, error) {
	if t.ended.Load() {
		return 0, io.EOF
	}
	if t.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	return t.read(b)
}

// read reads the client's body into b and keeps a copy.
func (t *teeBody) read(b []byte) (int, error) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	if t.ended.Load() { // reached while waiting for rmu
		return 0, io.EOF
	}
	n, err := t.rc.Read(b)
	t.mu.Lock()
	if t.buf != nil && n > 0 {
		if room := t.max - t.buf.Len(); room > 0 {
			t.buf.Write(b[:min(n, room)])
			if n > room {
				t.overflow = true
			}
		} else {
			t.overflow = true
		}
	}
	var end func([]byte, bool)
	var body []byte
	complete := false
	if err == io.EOF {
		t.ended.Store(true)
		if end, t.onEnd = t.onEnd, nil; end != nil && t.buf != nil && !t.overflow {
			body, complete = bytes.Clone(t.buf.Bytes()), true
		}
	}
	t.mu.Unlock()
	if end != nil {
		end(body, complete)
	}
	return n, err
}

// whole returns a copy of the body when the proxy holds all of it: read to
// its end and within the capture cap (raceRetry sends it again).
func (t *teeBody) whole() ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ended.Load() || t.overflow || t.buf == nil {
		return nil, false
	}
	return bytes.Clone(t.buf.Bytes()), true
}

// Close ends the transport's use of the body; the client's body stays open
// for readRest.
func (t *teeBody) Close() error {
	t.closed.Store(true)
	return nil
}

// partial reports whether the body is unfinished: neither at its end nor
// past the parse cap.
func (t *teeBody) partial() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf != nil && !t.ended.Load() && !t.overflow
}

// started reports whether anything of the body has been read.
func (t *teeBody) started() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf != nil && (t.buf.Len() > 0 || t.overflow || t.ended.Load())
}

// readRest reads what the upstream did not of the client's body into the
// copy, so that the record of a request whose upstream failed still has the
// request the client sent. It stops at the body's end, past the parse cap,
// at a read error (the client went away) or once it has read limit bytes
// (then up to a copy buffer more), and blocks as long as the client takes to
// send that much. The body it completes is not mirrored: onEnd is dropped.
func (t *teeBody) readRest(limit int) {
	t.mu.Lock()
	t.onEnd = nil
	t.mu.Unlock()
	bp := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(bp)
	for read := 0; read < limit && t.partial(); {
		n, err := t.read(*bp)
		if err != nil {
			return
		}
		read += n
	}
}

// snapshot returns the bytes kept so far and whether they are the whole body.
func (t *teeBody) snapshot() ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf == nil {
		return nil, false
	}
	return t.buf.Bytes(), t.ended.Load() && !t.overflow
}

// release returns the buffer to the pool once the tracker has parsed it. A
// transport goroutine may still be reading the body; it then stops copying,
// and its later reads fail without touching the client's body, which must
// not be read once the handler has returned (what ReverseProxy's own Close
// of the body guards against, golang/go#46866).
func (t *teeBody) release(p *Proxy) {
	t.closed.Store(true)
	t.mu.Lock()
	buf := t.buf
	t.buf = nil
	t.mu.Unlock()
	if buf != nil && buf.Cap() <= 1<<20 {
		p.bufPool.Put(buf)
	}
}

// observedBody feeds every upstream response byte to the tracker as it is
// read by the ReverseProxy's copy loop (on the handler goroutine), so the
// timing is the moment each byte arrived from upstream.
type observedBody struct {
	rc   io.ReadCloser
	ex   *exchange
	want int64 // Content-Length, or -1
	got  int64
}

func (o *observedBody) Read(b []byte) (int, error) {
	n, err := o.rc.Read(b)
	if n > 0 {
		if enc := o.ex.resp; enc != nil { // an encoded body, parsed at the end
			enc.write(time.Now(), b[:n])
		} else {
			o.ex.tr.ResponseData(time.Now(), b[:n])
		}
		o.got += int64(n)
	}
	if err == io.EOF || (o.want >= 0 && o.got == o.want) {
		o.ex.upstreamEOF = true
	}
	if err != nil && err != io.EOF && !o.ex.upstreamEOF && !o.ex.tr.StreamDone() {
		o.ex.respErr = err
	}
	return n, err
}

func (o *observedBody) Close() error { return o.rc.Close() }
