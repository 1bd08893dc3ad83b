package proxycli

import (
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/reprise-llm/reprise/filters/extproc"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/control"
	"github.com/reprise-llm/reprise/internal/ingest"
	"github.com/reprise-llm/reprise/internal/proxy"
	"github.com/reprise-llm/reprise/internal/redact"
)

// The program's front ends: the reverse proxy (--upstream), and collectors
// that Envoy feeds, the ext_proc server (--extproc-listen) among them. Any
// of them may run together; they share the capture, its writer and the
// admin listener.

// extprocOptions are the ext_proc collector's flags.
type extprocOptions struct {
	listen      string
	idleTimeout time.Duration
	queueBytes  int64
	bound       string // the address bound, once it is
}

func extprocFlags(fs *flag.FlagSet, o *extprocOptions) {
	fs.StringVar(&o.listen, "extproc-listen", "", "address for Envoy's ext_proc filter in observability mode (gRPC over cleartext HTTP/2), e.g. :9002; not localhost by default because Envoy connects from elsewhere (empty: off). With it, --upstream is optional: without one this is a pure collector")
	fs.DurationVar(&o.idleTimeout, "extproc-idle-timeout", extproc.DefaultIdleTimeout, "end an ext_proc stream that Envoy sent nothing on for this long, recording it as aborted")
	fs.Int64Var(&o.queueBytes, "extproc-queue-bytes", extproc.DefaultQueueBytes, "bytes of ext_proc messages waiting to be parsed, all streams together; beyond it messages are dropped and counted (their records say aborted), never slowing Envoy")
}

// frontEnds is the state the front ends other than the reverse proxy share
// with the admin listener.
type frontEnds struct {
	// reg holds their metrics, served on /metrics next to the proxy's.
	reg      *prometheus.Registry
	extproc  *extproc.Server // nil without --extproc-listen
	ingest   *ingest.Handler // nil without --ingest-listen (ingest.go)
	draining atomic.Bool     // shutdown began: /readyz answers 503
}

// runsProxy reports whether the reverse proxy runs: with --upstream, or
// when no collector would (then --upstream is required, as it always was).
func (o *options) runsProxy() bool {
	return o.proxy.Upstream != "" || !o.runsCollector()
}

// runsCollector reports whether a front end other than the proxy runs.
func (o *options) runsCollector() bool { return o.extproc.listen != "" || o.ingest.listen != "" }

// proxyOnlyFlags configure the reverse proxy alone; without --upstream
// they are refused rather than silently ignored.
var proxyOnlyFlags = []string{"listen", "h2c", "upstream-ca", "upstream-server-name", "upstream-insecure-skip-verify",
	"ensure-usage", "shadow", "shadow-fraction", "shadow-max-inflight", "shadow-seed", "shadow-timeout",
	"shadow-forward-auth", "shadow-header", "upstream-wait", "idle-timeout", "read-header-timeout"}

// validateFrontEnds checks the flags of the front ends that run, every
// problem at once, each named once.
func (o *options) validateFrontEnds(fs *flag.FlagSet) error {
	var errs []error
	if o.runsProxy() {
		errs = append(errs, o.proxy.Validate())
	} else {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for _, name := range proxyOnlyFlags {
			if given[name] {
				errs = append(errs, fmt.Errorf("--%s configures the reverse proxy and needs --upstream", name))
			}
		}
	}
	if o.extproc.listen != "" {
		cfg := o.extprocConfig(nil)
		if o.runsProxy() {
			cfg.Capture = capture.Options{} // checked with the proxy's flags above
		}
		errs = append(errs, cfg.Validate())
	}
	return errors.Join(errs...)
}

// extprocConfig maps the flags onto the ext_proc server's configuration:
// content mode, hash key, parse cap, session and endpoint headers are the
// proxy's, so captures from either front end are alike.
func (o *options) extprocConfig(hasher *capture.Hasher) extproc.Config {
	return extproc.Config{
		Capture:       capture.Options{Content: o.proxy.Content, Hasher: hasher, MaxBody: o.proxy.MaxBody},
		SessionHeader: o.proxy.SessionHeader, UpstreamHeader: o.proxy.UpstreamHeader,
		QueueBytes: o.extproc.queueBytes, IdleTimeout: o.extproc.idleTimeout,
	}
}

// clientListen is --listen when the proxy runs, else "" (not bound).
func (o *options) clientListen() string {
	if o.runsProxy() {
		return o.listen
	}
	return ""
}

// listenExtProc binds --extproc-listen (nil when it is empty).
func (o *options) listenExtProc() (net.Listener, error) {
	if o.extproc.listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", o.extproc.listen)
	if err != nil {
		return nil, fmt.Errorf("listening on --extproc-listen %s: %w", o.extproc.listen, err)
	}
	o.extproc.bound = ln.Addr().String()
	return ln, nil
}

// manifestSource says in the manifest which front ends wrote the capture
// (records of the ones other than the proxy also say so themselves).
func (o *options) manifestSource() string {
	var parts []string
	if o.runsProxy() {
		parts = append(parts, "proxy upstream="+redact.URL(o.proxy.Upstream))
	}
	if o.extproc.listen != "" {
		parts = append(parts, capture.SourceExtProc+" listen="+o.extproc.bound)
	}
	if o.ingest.listen != "" {
		parts = append(parts, capture.SourceWasm+" ingest listen="+o.ingest.bound)
	}
	return strings.Join(parts, ", ")
}

// newExtProc builds the ext_proc server (before the capture writer, like
// the proxy: out is set before serving starts); nil without
// --extproc-listen.
func (o *options) newExtProc(out extproc.RecordWriter, hasher *capture.Hasher, origin time.Time, log *zap.Logger) (*extproc.Server, error) {
	if o.extproc.listen == "" {
		return nil, nil
	}
	x, err := extproc.New(o.extprocConfig(hasher), out, origin, log.Named("extproc"), o.front.reg)
	if err != nil {
		return nil, err
	}
	o.front.extproc = x
	return x, nil
}

// serveExtProc serves x on ln (cleartext HTTP/2, as Envoy's gRPC client
// speaks to a cluster without TLS); Serve's error goes to serveErr.
func serveExtProc(x *extproc.Server, ln net.Listener, serveErr chan<- error, stdout io.Writer, dir string, log *zap.Logger) *grpc.Server {
	gs := extproc.NewGRPCServer(x)
	go func() {
		if err := gs.Serve(ln); err != nil {
			serveErr <- fmt.Errorf("ext_proc: %w", err)
		}
	}()
	fmt.Fprintf(stdout, "ext_proc collector listening on %s (gRPC, cleartext HTTP/2), capturing to %s\n", ln.Addr(), dir)
	log.Info("ext_proc collector started", zap.String("extproc_listen", ln.Addr().String()), zap.String("capture_dir", dir))
	return gs
}

// drainExtProc stops accepting ext_proc streams and lets the open ones
// finish within bound: each ends when its response does (the collector
// closes it then, without waiting for Envoy's deferred close). When the
// bound passes it cuts the rest, whose records say aborted, "cut at
// shutdown drain bound"; then it waits until every record is handed over.
func drainExtProc(gs *grpc.Server, x *extproc.Server, bound time.Duration, log *zap.Logger) {
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		log.Warn("drain timeout passed; cutting open ext_proc streams", zap.Duration("drain_timeout", bound),
			zap.Int64("open_streams", x.Stats().Open))
		x.Cut(extproc.ErrDrainCut)
		<-stopped
	}
	x.Wait()
}

// collectorStats are the control API's request counters without the
// proxy: the collectors' streams and records.
type collectorStats struct{ f *frontEnds }

var _ control.ProxyStatser = collectorStats{}

func (c collectorStats) Stats() proxy.Stats {
	var st proxy.Stats
	if x := c.f.extproc; x != nil {
		xs := x.Stats()
		st.Requests, st.InFlight, st.Recorded, st.Dropped, st.Aborted = xs.Streams, xs.Open, xs.Records, xs.RecordsDropped, xs.Aborted
	}
	if h := c.f.ingest; h != nil {
		is := h.Stats()
		st.Requests += is.Received
		st.Recorded += is.Written
		st.Dropped += is.Dropped
	}
	return st
}

// collectorAdmin is the admin handler when the proxy does not run: the
// probes as the proxy serves them (proxy.AdminHandler: /healthz always 200,
// naming a degraded capture; /readyz 503 while draining, or while the
// capture is degraded with --readyz-requires-capture) and /metrics with the
// capture writer's series and the front ends' (behind --admin-token).
func (o *options) collectorAdmin(w *capture.Writer) http.Handler {
	o.front.reg.MustRegister(proxy.WriterCollector{W: w})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		if ws := w.Stats(); !ws.Healthy {
			fmt.Fprintf(rw, "ok (capture degraded: %s)\n", ws.LastError)
			return
		}
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if o.front.draining.Load() {
			rw.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(rw, "draining")
			return
		}
		if ws := w.Stats(); !ws.Healthy {
			if o.proxy.ReadyRequiresCapture {
				rw.WriteHeader(http.StatusServiceUnavailable)
			}
			fmt.Fprintf(rw, "ready (capture degraded: %s)\n", ws.LastError)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	metricsH := promhttp.HandlerFor(o.front.reg, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, r *http.Request) {
		if o.adminToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+o.adminToken)) != 1 {
			http.Error(rw, "unauthorized", http.StatusUnauthorized)
			return
		}
		metricsH.ServeHTTP(rw, r)
	})
	return mux
}
