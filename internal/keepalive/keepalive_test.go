package keepalive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptrace"
	"syscall"
	"testing"
	"time"
)

// The rule, with the trace hooks driven as net/http drives them: a
// reused connection — idle in the pool or handed straight from the request
// that used it last (WasIdle false, as under load) — closed before any
// response byte, within the race window of the write, was never reached;
// a fresh connection, a response byte, a cancelled request, a late close
// or another error was.
func TestNeverReached(t *testing.T) {
	closedIdle := errors.New(`Post "http://127.0.0.1:1/v1/chat/completions": http: server closed idle connection`)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name         string
		reused, idle bool
		wroteAgo     time.Duration // -1: not written
		firstByte    bool
		ctx          context.Context
		err          error
		want         bool
	}{
		{"idle conn, EOF", true, true, time.Millisecond, false, nil, io.EOF, true},
		{"handed over, EOF", true, false, time.Millisecond, false, nil, io.EOF, true},
		{"handed over, closed idle before the write", true, false, -1, false, nil, closedIdle, true},
		{"reset, wrapped", true, true, 0, false, nil, fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"fresh connection", false, false, time.Millisecond, false, nil, io.EOF, false},
		{"after a response byte", true, true, time.Millisecond, true, nil, io.EOF, false},
		{"cancelled", true, true, time.Millisecond, false, cancelled, io.EOF, false},
		{"long after the write", true, true, 2 * RaceWindow, false, nil, io.EOF, false},
		{"a timeout", true, true, time.Millisecond, false, nil, context.DeadlineExceeded, false},
		{"no error", true, true, time.Millisecond, false, nil, nil, false},
	} {
		var a Attempt
		tr := a.Trace()
		tr.GotConn(httptrace.GotConnInfo{Reused: tc.reused, WasIdle: tc.idle})
		if tc.wroteAgo >= 0 {
			tr.WroteRequest(httptrace.WroteRequestInfo{})
			a.wrote.Add(-int64(tc.wroteAgo)) // written that long ago
		}
		if tc.firstByte {
			tr.GotFirstResponseByte()
		}
		ctx := tc.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		if got := a.NeverReached(ctx, tc.err); got != tc.want {
			t.Errorf("%s: NeverReached = %v, want %v", tc.name, got, tc.want)
		}
	}
}
