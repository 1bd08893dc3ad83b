package proxycli

import (
	"context"
	"net/http"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/control"
	"github.com/reprise-llm/reprise/internal/proxy"
	"github.com/reprise-llm/reprise/internal/redact"
)

// newAdmin builds the --admin-listen server: the probes and /metrics
// (proxy.AdminHandler) with the control API in front of them, gRPC and its
// JSON mapping under /v1/ on the same port (HTTP/1 and cleartext HTTP/2).
// --admin-token guards /metrics and the whole control API; the probes stay
// open. Stop both with stopAdmin.
func newAdmin(o *options, p *proxy.Proxy, w *capture.Writer, hub *control.Hub, origin time.Time) (*http.Server, *control.Server, error) {
	// Without the proxy (a collector only), the collectors' counters and
	// probes stand in for it (extproc.go); with it, their metrics join its.
	var stats control.ProxyStatser = collectorStats{&o.front}
	var handler http.Handler
	if p != nil {
		stats, handler = p, p.AdminHandler(w, o.adminToken, o.front.reg)
	} else {
		handler = o.collectorAdmin(w)
	}
	ctl, err := control.NewServer(stats, w, hub, control.Options{
		Version:        control.BuildVersion(),
		Start:          origin,
		Upstream:       redact.URL(o.proxy.Upstream),
		CaptureContent: o.proxy.Content,
		Token:          o.adminToken,
	})
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{
		Handler:           ctl.Handler(handler),
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         control.Protocols(),
	}
	return srv, ctl, nil
}

// stopAdmin ends the control API's tail streams cleanly (clients see the
// stream end, not a broken connection), then shuts the admin server down,
// within a few seconds in all.
func stopAdmin(admin *http.Server, ctl *control.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ctl.Close(ctx)
	if err := admin.Shutdown(ctx); err != nil {
		_ = admin.Close()
	}
}
