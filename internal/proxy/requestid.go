package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/redact"
)

// requestID returns the request id every log line about r carries: the
// client's X-Request-Id when it is 1..128 printable ASCII characters
// without spaces (so a log line cannot be forged or flooded through it),
// else id, the record id the proxy generated. The header is forwarded
// upstream untouched either way; the proxy never adds one.
func requestID(h http.Header, id string) string {
	if v := h.Get("X-Request-Id"); capture.UsableRequestID(v) {
		return v
	}
	return id
}

func requestIDOf(ex *exchange) string {
	if ex == nil {
		return ""
	}
	return ex.reqID
}

// logFinish logs the end of a request: why it was aborted (the client
// went away, shutdown cut it: info; the upstream broke the response: a
// warning), and at debug level one line per request. Never headers, query
// strings or bodies: they may hold credentials.
//
// A client that goes away cancels the request's context, and the upstream
// read then fails with that cancellation: the context, not the read error,
// says whose doing it was (issue 16).
func (p *Proxy) logFinish(ex *exchange, r *http.Request, rec *capture.Record) {
	ctx := r.Context()
	switch {
	case !rec.Aborted:
	case errors.Is(context.Cause(ctx), ErrDrainCut):
		p.log.Info("response cut at shutdown drain bound", zap.String("request_id", ex.reqID), zap.String("path", r.URL.Path),
			zap.Int("status", rec.Status))
	case ctx.Err() != nil:
		p.log.Info("client went away before the response ended", zap.String("request_id", ex.reqID), zap.String("path", r.URL.Path),
			zap.Int("status", rec.Status), errField(context.Cause(ctx)))
	case ex.respErr != nil:
		p.log.Warn("upstream response broke off", zap.String("request_id", ex.reqID), zap.String("path", r.URL.Path),
			zap.Int("status", rec.Status), errField(ex.respErr))
	}
	if ce := p.log.Check(zap.DebugLevel, "request"); ce != nil {
		ce.Write(zap.String("request_id", ex.reqID), zap.String("id", rec.ID), zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Int("status", rec.Status), zap.Duration("e2e", time.Duration(rec.E2ENs)),
			zap.Bool("aborted", rec.Aborted), zap.String("error", rec.Error))
	}
}

// errField logs err scrubbed of credentials and bounded (redact.Text):
// transport and decoding errors may quote what a server sent.
func errField(err error) zap.Field {
	if err == nil {
		return zap.Skip()
	}
	return zap.String("error", redact.Text(err.Error()))
}
