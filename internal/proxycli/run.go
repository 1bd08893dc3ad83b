// Package proxycli is the proxy program: flags, startup, graceful shutdown.
// cmd/proxy only wires signals and calls Run.
package proxycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/control"
	"github.com/reprise-llm/reprise/internal/proxy"
	"github.com/reprise-llm/reprise/internal/redact"
)

const synopsis = "proxy --upstream URL --capture-dir DIR [--listen ADDR] [flags]\n       proxy --extproc-listen ADDR --capture-dir DIR [flags]   (a collector for Envoy; with --upstream too, both)\n       proxy --ingest-listen ADDR --capture-dir DIR [flags]    (a collector for the proxy-wasm filter)"

type options struct {
	listen       string
	captureDir   string
	hashKeyFile  string
	hashBlock    int
	queueSize    int
	segmentBytes int64
	segmentAge   time.Duration
	retainBytes  int64
	drainTimeout time.Duration
	drainDelay   time.Duration
	idleTimeout  time.Duration
	headerWait   time.Duration
	upstreamWait time.Duration
	adminListen  string
	adminToken   string
	h2c          bool
	logLevel     string
	logJSON      bool
	proxy        proxy.Config
	extproc      extprocOptions // extproc.go
	ingest       ingestOptions  // ingest.go
	front        frontEnds      // the front ends other than the proxy (extproc.go)
}

func flags(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to accept client traffic on (use :8080 to accept from other hosts)")
	fs.StringVar(&o.proxy.Upstream, "upstream", "", "base URL of the inference gateway or model server to forward to, without /v1: a client's /v1/... path is appended (required unless --extproc-listen or --ingest-listen is given)")
	fs.StringVar(&o.captureDir, "capture-dir", "", "directory to write the capture into; when it already holds a capture, this run goes to a new run-<start time> subdirectory (required)")
	fs.StringVar(&o.proxy.Content, "capture-content", capture.ContentHashed, "prompt capture: none, hashed (keyed prefix-block hashes) or full (prompt text)")
	fs.StringVar(&o.proxy.SessionHeader, "session-header", "", "request header naming a conversation/user key (stored hashed); default: the body's \"user\" field")
	fs.StringVar(&o.proxy.UpstreamHeader, "upstream-header", "x-gateway-destination-endpoint", "response header naming the endpoint that served the request")
	fs.IntVar(&o.proxy.MaxBody, "max-parse-bytes", 16<<20, "bytes of each body parsed for capture (forwarding is never capped)")
	fs.BoolVar(&o.h2c, "h2c", true, "also accept cleartext HTTP/2 (prior knowledge) from clients on --listen; HTTP/1.1 clients are unaffected")
	fs.StringVar(&o.proxy.TLS.CAFile, "upstream-ca", "", "PEM file of CA certificates trusted for an https:// --upstream, in addition to the system roots")
	fs.StringVar(&o.proxy.TLS.ServerName, "upstream-server-name", "", "name sent as SNI and verified in the https:// --upstream's certificate (default: the URL's host)")
	fs.BoolVar(&o.proxy.TLS.InsecureSkipVerify, "upstream-insecure-skip-verify", false, "do not verify the https:// --upstream's certificate (INSECURE: the hop can be intercepted; logged as a warning)")
	fs.BoolVar(&o.proxy.ReadyRequiresCapture, "readyz-requires-capture", false, "answer /readyz with 503 while the capture cannot be written (default: 200 naming the degraded capture, so a disk problem never takes the proxy out of rotation)")
	fs.BoolVar(&o.proxy.EnsureUsage, "ensure-usage", false, "ask the upstream for usage (stream_options.include_usage) on streamed chat/completions requests that did not, and remove the extra usage event before the client sees it")
	fs.StringVar(&o.proxy.Shadow.URL, "shadow", "", "base URL of a candidate to mirror a sample of requests to (responses are timed and recorded with shadow: true, never sent to clients)")
	fs.Float64Var(&o.proxy.Shadow.Fraction, "shadow-fraction", 1, "fraction of requests mirrored to --shadow, 0..1")
	fs.IntVar(&o.proxy.Shadow.MaxInFlight, "shadow-max-inflight", 64, "concurrent shadow requests at most; beyond it a sampled request is not mirrored (counted)")
	fs.Uint64Var(&o.proxy.Shadow.Seed, "shadow-seed", 1, "seed of the shadow sample (the same seed and request order pick the same requests)")
	fs.DurationVar(&o.proxy.Shadow.Timeout, "shadow-timeout", 2*time.Minute, "bound on one shadow exchange; a slower candidate is recorded as aborted")
	fs.BoolVar(&o.proxy.Shadow.ForwardAuth, "shadow-forward-auth", false, "forward the client's Authorization, Cookie, X-Api-Key, Api-Key and api_key-style query parameters to --shadow (removed by default)")
	fs.Var(&o.proxy.Shadow.Headers, "shadow-header", "\"Name: value\" header set on shadow requests, replacing the client's, e.g. the candidate's Authorization")
	fs.StringVar(&o.hashKeyFile, "hash-key-file", "", "file holding the HMAC key for prefix hashes (default: a fresh random key per capture)")
	fs.IntVar(&o.hashBlock, "hash-block-chars", capture.DefaultBlockChars, "characters per prefix-hash block: a power of two from 16 to 2048 (2048 ≈ Mooncake's 512 tokens, derivable from any smaller one)")
	fs.IntVar(&o.queueSize, "queue-size", 4096, "records buffered for the writer; beyond it records are dropped and counted, never blocking traffic")
	fs.Int64Var(&o.segmentBytes, "segment-bytes", 64<<20, "rotate a segment after this many compressed bytes")
	fs.DurationVar(&o.segmentAge, "segment-age", 10*time.Minute, "rotate a segment after this long")
	fs.Int64Var(&o.retainBytes, "retain-bytes", 0, "delete the oldest segments beyond this total size (0: keep all)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long in-flight requests (streams, WebSockets) may take to finish; then they are cut and recorded aborted")
	fs.DurationVar(&o.drainDelay, "drain-delay", 0, "on SIGTERM, how long to keep accepting after /readyz turns 503 (\"draining\"), so load balancers stop sending first; a second SIGTERM or interrupt ends it at once")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 2*time.Minute, "close a client's keep-alive connection after this long without a request (0: never)")
	fs.DurationVar(&o.headerWait, "read-header-timeout", 30*time.Second, "how long a client may take to send a request's headers (0: no limit)")
	fs.DurationVar(&o.upstreamWait, "upstream-wait", 30*time.Second, "at start, how long to wait for the upstream to accept connections before giving up (0: do not check)")
	fs.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:8091", "address for /healthz, /readyz, /metrics and the control API (gRPC and JSON under /v1/; empty: off); localhost by default")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token required on /metrics and the control API (probes stay open)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log JSON lines instead of console text")
	extprocFlags(fs, &o.extproc)
	ingestFlags(fs, &o.ingest)
	return fs
}

// Run runs the proxy until ctx is cancelled (SIGTERM), then stops accepting,
// lets in-flight requests finish within --drain-timeout, and writes every
// completed record before returning.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flags(&o)
	if err := cli.ParseLookup(fs, args, os.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cli.PrintUsage(stdout, fs, synopsis)
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return cli.UsageError("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if err := o.validateFrontEnds(fs); err != nil {
		errs = append(errs, err)
	}
	if err := o.validateIngest(); err != nil {
		errs = append(errs, err)
	}
	if o.captureDir == "" {
		errs = append(errs, errors.New("--capture-dir is required"))
	}
	if o.queueSize <= 0 {
		errs = append(errs, fmt.Errorf("--queue-size %d: must be positive", o.queueSize))
	}
	if err := capture.CheckBlockChars(o.hashBlock); err != nil {
		errs = append(errs, fmt.Errorf("--hash-block-chars: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return cli.AsUsage(err)
	}
	log, err := cli.Logger(stderr, o.logLevel, o.logJSON)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	// The proxy forwards a client's /v1/chat/completions to the base URL's
	// path + /v1/chat/completions: behind a base ending in /v1 that is a
	// 404. It is a warning, not a refusal: clients that call
	// /chat/completions without /v1 are served right by such a base, and
	// the proxy never changes a path. The proxy also logs the first
	// request that really gets a doubled /v1/v1/.
	for _, base := range []struct{ flag, url string }{{"--upstream", o.proxy.Upstream}, {"--shadow", o.proxy.Shadow.URL}} {
		if base.url != "" {
			if err := cli.CheckBaseURL(base.flag, "", base.url); err != nil {
				log.Warn(err.Error() + " (unless your clients call paths without /v1)")
			}
		}
	}

	var key []byte
	if o.hashKeyFile != "" {
		if key, err = os.ReadFile(o.hashKeyFile); err != nil {
			return fmt.Errorf("reading --hash-key-file: %w", err)
		}
	}
	key = o.ingest.hashKey(key) // the ingest listener serves it to the wasm filters
	// Bind every listener before anything is written: a second proxy
	// started on a live capture directory, whose port is taken, must fail
	// without leaving an empty run-* directory there (issue 16).
	// The upstream wait comes first: a port bound while the proxy waits
	// would accept connections (health checks pass, clients hang) that
	// nothing serves yet.
	if o.upstreamWait > 0 && o.runsProxy() {
		if err := waitForUpstream(ctx, o.proxy.Upstream, o.upstreamWait, upstreamProgressEvery, log); err != nil {
			return err
		}
	}
	ln, aln, err := listen(o.clientListen(), o.adminListen)
	if err != nil {
		return err
	}
	xln, err := o.listenExtProc()
	var iln net.Listener
	if err == nil {
		iln, err = o.ingest.listenIngest()
	}
	closeListeners := func() {
		for _, l := range []net.Listener{ln, aln, xln, iln} {
			if l != nil {
				_ = l.Close()
			}
		}
	}
	if err != nil {
		closeListeners()
		return err
	}
	block := o.hashBlock
	hasher := capture.NewHasher(key, block)
	origin := time.Now()
	if o.proxy.Content == "" {
		o.proxy.Content = capture.ContentHashed
	}
	// The proxy first (its TLS setup can fail), the capture writer last:
	// the proxy writes to it through sink, set before serving starts.
	hub := control.NewHub(0) // finished records for the control API's tail streams
	sink := &captureSink{}
	var p *proxy.Proxy // nil: a collector only (no --upstream)
	if o.runsProxy() {
		if p, err = proxy.New(o.proxy, hub.Tee(sink), hasher, origin, log); err != nil {
			closeListeners()
			return err
		}
	}
	o.front.reg = prometheus.NewRegistry()
	o.front.reg.MustRegister(proxy.HasherCollector{H: hasher})
	x, err := o.newExtProc(hub.Tee(sink), hasher, origin, log)
	if err != nil {
		closeListeners()
		return err
	}
	ing, err := o.newIngest(hub.Tee(sink), hasher, key, origin, log)
	if err != nil {
		closeListeners()
		return err
	}
	w, err := capture.NewWriter(o.captureDir, capture.WriterOptions{
		Manifest: capture.Manifest{
			Format: capture.FormatName, Version: capture.FormatVersion, Start: origin,
			Source: o.manifestSource(), Block: block, KeyID: hasher.KeyID(),
			Content: o.proxy.Content,
		},
		QueueSize:    o.queueSize,
		SegmentBytes: o.segmentBytes,
		SegmentAge:   o.segmentAge,
		RetainBytes:  o.retainBytes,
		// The directory actually written: a run-* subdirectory when
		// --capture-dir already held a capture (a restart).
		OnReady: func(dir string) { log.Info("capture directory ready", zap.String("capture_dir", dir)) },
	})
	if err != nil {
		closeListeners()
		return fmt.Errorf("opening capture: %w", err)
	}
	if ws := w.Stats(); !ws.Healthy {
		// Traffic must flow even when capture cannot: serve, count the
		// records lost, and let the writer retry every second.
		log.Error("capture directory unusable: serving traffic WITHOUT capture (records are counted as lost); retrying every second",
			zap.String("capture_dir", o.captureDir), zap.String("error", ws.LastError))
	}
	sink.w = w
	// Requests' contexts derive from base: cancelling it at the end of the
	// drain ends what Shutdown cannot close, hijacked connections
	// (WebSocket tunnels) whose handlers run until the context ends.
	base, cutInFlight := context.WithCancelCause(context.Background())
	defer cutInFlight(nil)
	serveErr := make(chan error, 4)
	var srv *http.Server
	if p != nil {
		srv = &http.Server{Handler: p, ReadHeaderTimeout: o.headerWait, IdleTimeout: o.idleTimeout,
			ErrorLog: zap.NewStdLog(log.Named("http")), Protocols: proxy.ServerProtocols(o.h2c),
			BaseContext: func(net.Listener) context.Context { return base }}
		fmt.Fprintf(stdout, "proxy listening on http://%s, forwarding to %s, capturing to %s\n", ln.Addr(), redact.URL(o.proxy.Upstream), w.Dir())
		log.Info("proxy started", zap.String("listen", ln.Addr().String()), zap.String("upstream", redact.URL(o.proxy.Upstream)),
			zap.String("capture_dir", w.Dir()), zap.String("capture_content", o.proxy.Content))
		if o.proxy.Shadow.URL != "" {
			log.Info("shadow testing", zap.String("candidate", redact.URL(o.proxy.Shadow.URL)), zap.Float64("fraction", o.proxy.Shadow.Fraction),
				zap.Int("max_inflight", o.proxy.Shadow.MaxInFlight))
		}
		go func() { serveErr <- srv.Serve(ln) }()
	}
	var xgs *grpc.Server
	if x != nil {
		xgs = serveExtProc(x, xln, serveErr, stdout, w.Dir(), log)
	}
	var isrv *http.Server
	if ing != nil {
		isrv = serveIngest(ing, iln, serveErr, stdout, w.Dir(), log)
	}
	var admin *http.Server
	var ctl *control.Server
	if aln != nil {
		if admin, ctl, err = newAdmin(&o, p, w, hub, origin); err != nil {
			closeListeners()
			if srv != nil {
				_ = srv.Close()
			}
			if xgs != nil {
				xgs.Stop()
			}
			if isrv != nil {
				_ = isrv.Close()
			}
			_ = w.Close()
			return err
		}
		go func() { _ = admin.Serve(aln) }()
		fmt.Fprintf(stdout, "admin on %s (/healthz, /readyz, /metrics, control API: gRPC and /v1/)\n", aln.Addr())
	}
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("serving: %w", err)
	}

	// Out of rotation first (/readyz 503), then stop accepting; let
	// in-flight streams finish within the bound; then cut the rest (their
	// records say aborted) and wait for every handler to hand over its
	// record before the writer drains.
	var again chan os.Signal // a second SIGTERM/interrupt ends --drain-delay
	if o.drainDelay > 0 && runErr == nil {
		again = make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	}
	o.front.draining.Store(true)
	inFlight := int64(0)
	if p != nil {
		p.SetDraining()
		inFlight = p.Stats().InFlight
	}
	if x != nil {
		inFlight += x.Stats().Open
	}
	log.Info("draining", zap.Int64("in_flight", inFlight), zap.Duration("drain_timeout", o.drainTimeout))
	if again != nil {
		waitDrainDelay(o.drainDelay, again, log) // still serving: the endpoint is being removed
		signal.Stop(again)
	}
	// The front ends drain together, within the same bound.
	var drained sync.WaitGroup
	if x != nil {
		drained.Go(func() { drainExtProc(xgs, x, o.drainTimeout, log) })
	}
	if isrv != nil {
		drained.Go(func() { drainIngest(isrv, o.drainTimeout, log) })
	}
	if p != nil {
		drain(srv, p, o.drainTimeout, func() { cutInFlight(proxy.ErrDrainCut) }, log)
	}
	drained.Wait()
	if admin != nil {
		stopAdmin(admin, ctl) // tail streams end cleanly
	}
	if p != nil {
		shadowCtx, cancelShadow := context.WithTimeout(context.Background(), min(o.drainTimeout, 5*time.Second))
		p.StopShadow(shadowCtx) // running shadows finish or are recorded aborted
		cancelShadow()
	}
	closeErr := w.Close()
	ws := w.Stats()
	if p != nil {
		st := p.Stats()
		log.Info("proxy stopped", zap.Int64("requests", st.Requests), zap.Int64("recorded", st.Recorded),
			zap.Int64("dropped", st.Dropped), zap.Uint64("lost_to_write_errors", ws.Lost), zap.Int64("aborted", st.Aborted), zap.Uint64("written", ws.Written))
	}
	if x != nil {
		xs := x.Stats()
		log.Info("ext_proc collector stopped", zap.Int64("streams", xs.Streams), zap.Int64("recorded", xs.Records),
			zap.Int64("dropped", xs.RecordsDropped), zap.Int64("messages_dropped", xs.MessagesDropped), zap.Int64("aborted", xs.Aborted),
			zap.Uint64("lost_to_write_errors", ws.Lost), zap.Uint64("written", ws.Written))
	}
	if ing != nil {
		is := ing.Stats()
		log.Info("ingest listener stopped", zap.Int64("batches", is.Batches), zap.Int64("received", is.Received),
			zap.Int64("written", is.Written), zap.Int64("rejected", is.Rejected), zap.Int64("dropped", is.Dropped),
			zap.Int64("stripped", is.Stripped), zap.Uint64("lost_to_write_errors", ws.Lost))
	}
	if closeErr != nil {
		return errors.Join(runErr, fmt.Errorf("closing capture: %w", closeErr))
	}
	return runErr
}

// waitDrainDelay waits out --drain-delay, or less when a second signal
// arrives on again: the operator wants the proxy gone now.
func waitDrainDelay(delay time.Duration, again <-chan os.Signal, log *zap.Logger) {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case sig := <-again:
		log.Warn("second signal during --drain-delay: draining now", zap.String("signal", sig.String()),
			zap.Duration("drain_delay", delay))
	}
}

// drain stops srv accepting and waits up to bound for every request to
// finish, hijacked ones (WebSockets) included, which Shutdown does not
// track. When the bound passes it closes the remaining connections and
// cancels every request's context (cut), then waits for the handlers to
// record: a cancelled request ends promptly, so this wait is short.
func drain(srv *http.Server, p *proxy.Proxy, bound time.Duration, cut func(), log *zap.Logger) {
	deadline := time.Now().Add(bound)
	shutCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	shutErr := srv.Shutdown(shutCtx) // returns when tracked connections are idle
	handlers := make(chan struct{})
	go func() {
		p.Wait()
		close(handlers)
	}()
	if shutErr == nil {
		select {
		case <-handlers: // everything finished within the bound
			return
		case <-shutCtx.Done():
		}
	}
	log.Warn("drain timeout passed; cutting remaining requests", zap.Duration("drain_timeout", bound),
		zap.Int64("in_flight", p.Stats().InFlight))
	cut()
	_ = srv.Close()
	<-handlers
}

// captureSink passes the proxy's records to the capture writer w, which is
// set after the proxy is built and before it serves.
type captureSink struct{ w *capture.Writer }

func (s *captureSink) Write(r *capture.Record) bool { return s.w.Write(r) }

var _ proxy.RecordWriter = (*captureSink)(nil)

// listen binds --listen and --admin-listen, each unless it is empty (a
// collector without the proxy binds no --listen; ln or aln is then nil).
func listen(addr, adminAddr string) (ln, aln net.Listener, err error) {
	if addr != "" {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, nil, fmt.Errorf("listening on --listen %s: %w", addr, err)
		}
	}
	if adminAddr != "" {
		if aln, err = net.Listen("tcp", adminAddr); err != nil {
			if ln != nil {
				_ = ln.Close()
			}
			return nil, nil, fmt.Errorf("listening on --admin-listen %s: %w", adminAddr, err)
		}
	}
	return ln, aln, nil
}

// upstreamProgressEvery is how often waitForUpstream logs that it is still
// waiting.
const upstreamProgressEvery = 5 * time.Second

// waitForUpstream dials the upstream until it accepts a TCP connection or
// the wait passes, so a mistyped --upstream fails at start with one clear
// line instead of as a 502 on every request. When the first dial fails it
// logs at once that it waits and for how long, then every `every` that it
// still does, so a start that seems stuck says why.
func waitForUpstream(ctx context.Context, upstream string, wait, every time.Duration, log *zap.Logger) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return fmt.Errorf("--upstream %s: not a URL", redact.URL(upstream))
	}
	host, shown := cli.DialAddress(u), redact.URL(upstream)
	start := time.Now()
	deadline, noted := start.Add(wait), time.Time{}
	for {
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", host)
		if err == nil {
			conn.Close()
			if !noted.IsZero() {
				log.Info("upstream accepts connections", zap.String("upstream", shown), zap.Duration("waited", time.Since(start).Round(time.Millisecond)))
			}
			return nil
		}
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("waiting for upstream %s: %w", shown, context.Cause(ctx))
		case now.After(deadline):
			return fmt.Errorf("upstream %s unreachable after %v (--upstream-wait): %w", shown, wait, err)
		case noted.IsZero():
			log.Info(fmt.Sprintf("waiting up to %v for upstream %s to accept connections (--upstream-wait)", wait, shown),
				zap.String("upstream", shown), zap.Duration("upstream_wait", wait), zap.String("error", err.Error()))
			noted = now
		case now.Sub(noted) >= every:
			log.Info("still waiting for upstream to accept connections", zap.String("upstream", shown),
				zap.Duration("waited", now.Sub(start).Round(time.Second)), zap.Duration("upstream_wait", wait), zap.String("error", err.Error()))
			noted = now
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
