package sim

import (
	"net"
	"net/http"
	"time"
)

// keepAliveClose ends a complete streamed HTTP/1.1 response the way
// llama-server sometimes does (Config.KeepAliveCloseRate, issue 18): the
// response ends normally and nothing says Connection: close, so the client
// keeps the connection for its next request; the server then closes it at
// the worst moment, as that request arrives, and the client, having
// reused the connection, reads EOF (or a reset, when more of its request
// was still unread) before any response byte.
//
// The handler takes the connection over (Hijack) once the stream's last
// event is flushed, ends the chunked body itself with the last-chunk that
// net/http would have written ("0\r\n\r\n", RFC 9112 §7.1), and a
// goroutine waits for the next request's first byte, then closes. Closing
// at once instead would let the client see the close while the connection
// is idle and dial another: the benign half of the race. The caller
// checked that the response is chunked: an HTTP/1.1 request that did not
// ask to close, whose response the handler flushed without a length.
func (s *Server) keepAliveClose(w http.ResponseWriter) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return // not hijackable (a test recorder): the connection stays as it is
	}
	if _, err := brw.WriteString("0\r\n\r\n"); err != nil || brw.Flush() != nil {
		_ = c.Close()
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	s.held.Add(1)
	s.idle[c] = struct{}{}
	s.mu.Unlock()
	go func() {
		defer s.held.Done()
		// A byte is the next request; an error is the client closing the
		// connection first, Close closing it, or two minutes idle (a taken
		// over connection is outside http.Server's idle handling).
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		if _, err := brw.ReadByte(); err == nil {
			s.keepAliveCloses.Add(1)
		}
		_ = c.Close()
		s.mu.Lock()
		delete(s.idle, c)
		s.mu.Unlock()
	}()
}

// closeIdle closes the connections kept by keepAliveClose; called by
// Close with s.closed set.
func (s *Server) closeIdle() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.idle))
	for c := range s.idle {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}
