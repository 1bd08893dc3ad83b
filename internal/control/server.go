// Package control is the proxy's control API (api/reprise/control/v1): a
// gRPC service and its grpc-gateway JSON mapping, served together with the
// probes and /metrics on the admin listener. It reads the proxy's and the
// capture writer's counters, rotates the capture segment, and streams
// finished records to tail clients through a Hub that never blocks the
// proxy.
package control

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlv1 "github.com/reprise-llm/reprise/api/reprise/control/v1"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/proxy"
)

// ProxyStatser reads the proxy's counters; *proxy.Proxy implements it.
type ProxyStatser interface {
	Stats() proxy.Stats
}

// CaptureWriter is what the control API does with the capture writer;
// *capture.Writer implements it.
type CaptureWriter interface {
	Stats() capture.WriterStats
	Rotate() error
	// Dir is the directory being written: a run-* subdirectory when the
	// capture directory held an earlier capture, known once it is made.
	Dir() string
}

var (
	_ ProxyStatser            = (*proxy.Proxy)(nil)
	_ CaptureWriter           = (*capture.Writer)(nil)
	_ controlv1.ControlServer = (*Server)(nil)
)

// Options describe the running proxy for Status, and secure the API.
type Options struct {
	// Version is the proxy's build version (BuildVersion()).
	Version string
	// Start is when the proxy started: the capture's time origin.
	Start time.Time
	// Upstream is the base URL requests are forwarded to.
	Upstream string
	// CaptureContent is the prompt capture mode (none, hashed, full).
	CaptureContent string
	// Token, when not empty, is required as "authorization: Bearer TOKEN"
	// (gRPC metadata or HTTP header) on every call.
	Token string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Server implements controlv1.ControlServer and serves it as gRPC and as
// JSON over HTTP (see Handler).
type Server struct {
	controlv1.UnimplementedControlServer

	p    ProxyStatser
	w    CaptureWriter
	hub  *Hub
	opts Options
	grpc *grpc.Server
	rest http.Handler

	mu     sync.Mutex    // guards active and idle
	active int           // gRPC requests being served
	idle   chan struct{} // closed when active drops to 0 (set by Close)
}

// NewServer returns the control API over p, w and hub. w may be nil (no
// capture: Rotate fails with FailedPrecondition), and so may hub (TailRecords
// is Unavailable).
func NewServer(p ProxyStatser, w CaptureWriter, hub *Hub, opts Options) (*Server, error) {
	if p == nil {
		return nil, errors.New("control: nil proxy")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{p: p, w: w, hub: hub, opts: opts}
	s.grpc = grpc.NewServer(grpc.ChainUnaryInterceptor(s.unaryAuth), grpc.ChainStreamInterceptor(s.streamAuth))
	controlv1.RegisterControlServer(s.grpc, s)
	// Server reflection, so grpcurl needs no .proto (behind the token too).
	reflection.Register(s.grpc)

	// protojson with the proto field names: the JSON reads like the
	// capture's (ttft_ns, not ttftNs), and zero counters are shown.
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}), runtime.WithRoutingErrorHandler(routingError))
	// In process: the gateway calls s's methods directly, no loopback dial.
	if err := controlv1.RegisterControlHandlerServer(context.Background(), mux, s); err != nil {
		return nil, fmt.Errorf("control: registering the HTTP mapping: %w", err)
	}
	// TailRecords as newline-delimited JSON: the gateway's in-process
	// handlers cannot stream, so this route is served here directly.
	if err := mux.HandlePath(http.MethodGet, "/v1/records:tail", s.tailHTTP); err != nil {
		return nil, fmt.Errorf("control: registering the tail route: %w", err)
	}
	s.rest = s.restAuth(mux)
	return s, nil
}

// tailHTTP streams finished records to an HTTP client as they are
// published, one JSON object per line (the TailRecordsResponse of the gRPC
// stream, proto field names), flushed per record; ?exclude_shadow=true
// leaves shadow records out. It ends when the client goes or the server
// closes.
func (s *Server) tailHTTP(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	if s.hub == nil {
		http.Error(w, "tail: record publishing is not enabled", http.StatusServiceUnavailable)
		return
	}
	sub := s.hub.Subscribe(r.URL.Query().Get("exclude_shadow") == "true")
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // the client knows it is subscribed before the first record
	enc := protojson.MarshalOptions{UseProtoNames: true}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.Done():
			return
		case rec := <-sub.ch:
			b, err := enc.Marshal(rec.proto())
			if err != nil {
				return
			}
			if _, err := w.Write(append(b, '\n')); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// routingError answers a known path with the wrong method 405, not the
// gateway's default 501.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		err := status.Errorf(codes.Unimplemented, "%s %s: method not allowed", r.Method, r.URL.Path)
		runtime.HTTPError(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: err})
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}

// BuildVersion is the main module's version from the build info, "(devel)"
// for a source build.
func BuildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// Handler serves the control API in front of admin (the probes and
// /metrics): gRPC requests (Content-Type application/grpc, which need
// HTTP/2: serve with Protocols()) go to the gRPC server, /v1/... to the JSON
// mapping, everything else to admin.
func (s *Server) Handler(admin http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case isGRPC(r):
			s.serveGRPC(w, r)
		case strings.HasPrefix(r.URL.Path, "/v1/"):
			s.rest.ServeHTTP(w, r)
		default:
			admin.ServeHTTP(w, r)
		}
	})
}

func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;")
}

// Protocols are what the admin http.Server must accept: HTTP/1 for probes,
// /metrics and the JSON mapping, and HTTP/2 without TLS (prior knowledge,
// as gRPC clients dial "insecure") for gRPC.
func Protocols() *http.Protocols { return proxy.ServerProtocols(true) }

// serveGRPC serves one gRPC request, counted so Close can wait for it.
// grpc.Server.ServeHTTP returns once the call's status (trailers) is written.
func (s *Server) serveGRPC(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		if s.active == 0 && s.idle != nil {
			close(s.idle)
			s.idle = nil
		}
		s.mu.Unlock()
	}()
	s.grpc.ServeHTTP(w, r)
}

// Close ends every tail stream, waits until the gRPC calls being served
// have written their status or ctx is done, then stops the gRPC server
// (cutting what is left). Call it before shutting the admin http.Server
// down (Shutdown, which flushes what the calls wrote): tail clients then see
// their stream end normally rather than a broken connection.
func (s *Server) Close(ctx context.Context) {
	if s.hub != nil {
		s.hub.Close()
	}
	s.mu.Lock()
	var idle chan struct{}
	if s.active > 0 {
		if s.idle == nil {
			s.idle = make(chan struct{})
		}
		idle = s.idle
	}
	s.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
		}
	}
	s.grpc.Stop()
}

// Status implements controlv1.ControlServer.
func (s *Server) Status(context.Context, *controlv1.StatusRequest) (*controlv1.StatusResponse, error) {
	resp := &controlv1.StatusResponse{
		Version:        s.opts.Version,
		Upstream:       s.opts.Upstream,
		CaptureDir:     s.w.Dir(),
		CaptureContent: s.opts.CaptureContent,
		CaptureState:   controlv1.CaptureState_CAPTURE_STATE_UNSPECIFIED,
		InFlight:       s.p.Stats().InFlight,
	}
	if !s.opts.Start.IsZero() {
		resp.StartTime = timestamppb.New(s.opts.Start)
		resp.UptimeNs = int64(s.opts.Now().Sub(s.opts.Start))
	}
	if s.w != nil {
		ws := s.w.Stats()
		resp.CaptureState = controlv1.CaptureState_CAPTURE_STATE_DEGRADED
		if ws.Healthy {
			resp.CaptureState = controlv1.CaptureState_CAPTURE_STATE_HEALTHY
		}
		resp.LastError = ws.LastError
	}
	if s.hub != nil {
		resp.TailSubscribers = s.hub.Stats().Subscribers
	}
	return resp, nil
}

// Stats implements controlv1.ControlServer.
func (s *Server) Stats(context.Context, *controlv1.StatsRequest) (*controlv1.StatsResponse, error) {
	st := s.p.Stats()
	resp := &controlv1.StatsResponse{
		Requests: st.Requests, InFlight: st.InFlight, Recorded: st.Recorded, Dropped: st.Dropped,
		Aborted: st.Aborted, UpstreamErrors: st.UpstreamErr,
	}
	if s.w != nil {
		ws := s.w.Stats()
		resp.WriterWritten, resp.WriterLost, resp.WriterErrors = ws.Written, ws.Lost, ws.WriteErrors
		resp.WriterQueueDepth, resp.Bytes = int64(ws.QueueDepth), ws.Bytes
		resp.Segments, resp.SegmentsRemoved = int64(ws.Segments), int64(ws.Removed)
	}
	if s.hub != nil {
		hs := s.hub.Stats()
		resp.TailPublished, resp.TailDropped = hs.Published, hs.Dropped
	}
	return resp, nil
}

// Rotate implements controlv1.ControlServer.
func (s *Server) Rotate(context.Context, *controlv1.RotateRequest) (*controlv1.RotateResponse, error) {
	if s.w == nil {
		return nil, status.Error(codes.FailedPrecondition, "rotate: the proxy has no capture writer")
	}
	if err := s.w.Rotate(); err != nil {
		if errors.Is(err, capture.ErrClosed) {
			return nil, status.Error(codes.Unavailable, "rotate: the capture writer is closed (proxy stopping)")
		}
		return nil, status.Errorf(codes.Internal, "rotate: finishing the capture segment: %v", err)
	}
	ws := s.w.Stats()
	return &controlv1.RotateResponse{Segments: int64(ws.Segments), Bytes: ws.Bytes}, nil
}

// TailRecords implements controlv1.ControlServer: it sends every record
// finished after the call started until the client cancels or the Hub
// closes (then the stream ends with OK).
func (s *Server) TailRecords(req *controlv1.TailRecordsRequest, stream grpc.ServerStreamingServer[controlv1.TailRecordsResponse]) error {
	if s.hub == nil {
		return status.Error(codes.Unavailable, "tail: record publishing is not enabled")
	}
	sub := s.hub.Subscribe(req.GetExcludeShadow())
	defer sub.Close()
	// Headers now, so a client knows it is subscribed before the first record.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-sub.Done():
			return nil
		case rec := <-sub.ch:
			if err := stream.Send(rec.proto()); err != nil {
				return err
			}
		}
	}
}

// authorized reports whether value (an Authorization header or metadata
// value) carries the token; always true without a token.
func (s *Server) authorized(value string) bool {
	if s.opts.Token == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(value), []byte("Bearer "+s.opts.Token)) == 1
}

var errUnauthenticated = status.Error(codes.Unauthenticated, "missing or wrong bearer token (authorization: Bearer TOKEN, see --admin-token)")

func (s *Server) authorizedContext(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	return s.authorized(strings.Join(vals, ","))
}

func (s *Server) unaryAuth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !s.authorizedContext(ctx) {
		return nil, errUnauthenticated
	}
	return handler(ctx, req)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !s.authorizedContext(ss.Context()) {
		return errUnauthenticated
	}
	return handler(srv, ss)
}

// restAuth checks the token on the JSON mapping (which calls s's methods
// directly, not through the interceptors) and answers 401 with the body the
// gateway gives any error ({"code":16,"message":...}). It does not use
// runtime.HTTPError, which would put the message in WWW-Authenticate
// instead of a challenge (RFC 6750 section 3).
func (s *Server) restAuth(mux *runtime.ServeMux) http.Handler {
	body := status.Convert(errUnauthenticated).Proto()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(strings.Join(r.Header.Values("Authorization"), ",")) {
			_, out := runtime.MarshalerForRequest(mux, r)
			b, err := out.Marshal(body)
			if err != nil {
				b = []byte(`{"code":16,"message":"unauthenticated"}`)
			}
			w.Header().Set("Content-Type", out.ContentType(body))
			w.Header().Set("WWW-Authenticate", `Bearer realm="reprise admin"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write(b)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
