// Package extproc is the Envoy ext_proc capture front end: a gRPC
// ExternalProcessor that Envoy's ext_proc filter, in observability mode,
// streams every request and response to. It never answers and never slows
// Envoy down; it feeds what it observes to the same capture.Tracker as the
// reverse proxy and hands the records to the same writer, so a capture made
// here is the same format, read by the same replay, under the same privacy
// rules.
//
// Each ext_proc stream has two goroutines. The receive loop takes the time
// right after every Recv, before any parsing, and hands (time, message) to
// the stream's state machine through a bounded queue, in O(1): it never
// waits on parsing or disk, so it never pushes back on Envoy (a processor
// that stops reading slows Envoy's real traffic through the side stream's
// watermark). The state machine runs in the RPC's own goroutine and is the
// only one that touches the capture.Tracker. When the queue is full the
// message is dropped and counted, and the record says so (aborted, error
// "processor overloaded"): never silently wrong.
package extproc

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/reprise-llm/reprise/internal/capture"
)

// RecordWriter receives finished records. Write must never block; it
// returns false when the record could not be queued (counted as dropped).
// *capture.Writer and the proxy's record writers implement it.
type RecordWriter interface {
	Write(r *capture.Record) bool
}

var (
	_ RecordWriter                      = (*capture.Writer)(nil)
	_ extprocv3.ExternalProcessorServer = (*Server)(nil)
	_ prometheus.Collector              = (*Server)(nil)
)

// Defaults of Config's zero values.
const (
	DefaultQueueMessages = 1024
	DefaultQueueBytes    = 64 << 20
	DefaultIdleTimeout   = 10 * time.Minute
	// DefaultUpstreamHeader is the header an InferencePool endpoint picker
	// sets to the endpoint it chose.
	DefaultUpstreamHeader = "x-gateway-destination-endpoint"
	// MaxMessageBytes is the largest ext_proc message the gRPC server
	// built by NewGRPCServer accepts. Envoy's STREAMED body chunks are what
	// it read at once (its buffers are far smaller); a larger message fails
	// its stream, never Envoy's traffic (with failure_mode_allow).
	MaxMessageBytes = 16 << 20
)

// Config configures a Server. Field comments are the documentation of the
// matching flags.
type Config struct {
	// Capture is the content mode, hasher and parse cap, shared with the
	// reverse proxy (--capture-content, --hash-key-file, --max-parse-bytes).
	Capture capture.Options
	// SessionHeader names a request header whose value identifies a
	// conversation or user; stored only as a keyed hash. Empty: the
	// request body's "user" field. Envoy must forward it (forward_rules).
	SessionHeader string
	// UpstreamHeader names the header that identifies the serving endpoint,
	// recorded as "upstream": taken from the response headers, else from
	// the request headers (an InferencePool endpoint picker sets
	// x-gateway-destination-endpoint on the request). Without either, the
	// upstream.address response attribute is used when Envoy sends it.
	UpstreamHeader string
	// QueueMessages bounds the messages waiting for a stream's state
	// machine; beyond it messages are dropped and counted, and the record
	// is marked aborted ("processor overloaded"). Default 1024.
	QueueMessages int
	// QueueBytes bounds, across all streams, the bytes of messages waiting
	// for their state machines (bodies plus 256 bytes per message). Beyond
	// it messages are dropped as above. Default 64 MiB.
	QueueBytes int64
	// IdleTimeout ends a stream Envoy sent nothing on for this long: its
	// record is written as aborted and the stream closed. Envoy closes
	// observability streams itself (deferred_close_timeout), so this only
	// bounds streams that never end. Default 10 minutes.
	IdleTimeout time.Duration
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	switch c.Capture.Content {
	case "", capture.ContentNone, capture.ContentHashed, capture.ContentFull:
	default:
		errs = append(errs, fmt.Errorf("--capture-content %q: want none, hashed or full", c.Capture.Content))
	}
	if c.Capture.MaxBody < 0 {
		errs = append(errs, fmt.Errorf("--max-parse-bytes %d: must not be negative", c.Capture.MaxBody))
	}
	if c.QueueMessages < 0 {
		errs = append(errs, fmt.Errorf("ext_proc queue of %d messages: must not be negative", c.QueueMessages))
	}
	if c.QueueBytes < 0 {
		errs = append(errs, fmt.Errorf("--extproc-queue-bytes %d: must not be negative", c.QueueBytes))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("--extproc-idle-timeout %v: must not be negative", c.IdleTimeout))
	}
	return errors.Join(errs...)
}

// ErrDrainCut ends the records of streams still open when a shutdown's
// drain bound passes (Cut): they are aborted with this error, the text the
// reverse proxy uses.
var ErrDrainCut = errors.New("cut at shutdown drain bound")

// Stats are a Server's counters since it started.
type Stats struct {
	Streams         int64 // ext_proc streams opened
	Open            int64 // streams open now
	Messages        int64 // messages received
	MessagesDropped int64 // messages dropped: a stream's queue or the byte budget was full
	Records         int64 // records handed to the writer
	RecordsDropped  int64 // records the writer refused (queue full, writer closed)
	Aborted         int64 // records of requests that did not end normally
	NoRecord        int64 // streams that ended without request headers: nothing to record
	ProtocolErrors  int64 // messages out of sequence, ignored (by reason: Metrics)
	ParseFailures   int64 // bodies that could not be parsed
	QueuedBytes     int64 // bytes of messages waiting now
}

// Server is the ext_proc capture server. Register it on a grpc.Server
// (NewGRPCServer does), or call Process directly.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	cfg            Config
	out            RecordWriter
	log            *zap.Logger
	origin         time.Time // monotonic origin of record offsets (Manifest.Start)
	idBase         string
	seq            atomic.Uint64
	sessionHeader  string // lower case
	upstreamHeader string // lower case

	queued atomic.Int64 // bytes of messages waiting, all streams

	mu       sync.Mutex
	cut      chan struct{} // closed by Cut
	cutCause error
	wg       sync.WaitGroup // Process calls and their receive loops

	streams, open, messages, msgDropped, records, recDropped, aborted, noRecord atomic.Int64
	protoErrs                                                                   [numProtoErrors]atomic.Int64
	parseFails                                                                  [numParseFailures]atomic.Int64

	logLimit [numLogKinds]limiter

	// hookHandle, when set (tests), runs before the state machine handles
	// each message: a test holds the state machine to fill a queue.
	hookHandle func(*extprocv3.ProcessingRequest)
}

// New returns a Server that hands records to out (nil: records are built
// and counted, not stored). origin is the capture's time origin (the
// manifest's start), from time.Now. When reg is not nil the Server
// registers its metrics there (Metrics).
func New(cfg Config, out RecordWriter, origin time.Time, log *zap.Logger, reg prometheus.Registerer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Capture.Content == "" {
		cfg.Capture.Content = capture.ContentHashed
	}
	if cfg.Capture.MaxBody == 0 {
		cfg.Capture.MaxBody = capture.DefaultMaxBody
	}
	if cfg.QueueMessages == 0 {
		cfg.QueueMessages = DefaultQueueMessages
	}
	if cfg.QueueBytes == 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if log == nil {
		log = zap.NewNop()
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &Server{
		cfg: cfg, out: out, log: log, origin: origin, idBase: hex.EncodeToString(b[:]),
		sessionHeader: strings.ToLower(cfg.SessionHeader), upstreamHeader: strings.ToLower(cfg.UpstreamHeader),
		cut: make(chan struct{}),
	}
	if reg != nil {
		if err := reg.Register(s); err != nil {
			return nil, fmt.Errorf("registering ext_proc metrics: %w", err)
		}
	}
	return s, nil
}

// NewGRPCServer returns a gRPC server (cleartext HTTP/2, as Envoy's gRPC
// client speaks to a cluster without TLS) serving s: messages up to
// MaxMessageBytes, and keepalive pings from Envoy accepted however often
// its cluster sends them, with or without streams.
func NewGRPCServer(s *Server, opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	}, opts...)
	gs := grpc.NewServer(opts...)
	extprocv3.RegisterExternalProcessorServer(gs, s)
	return gs
}

// Process implements extprocv3.ExternalProcessorServer: one HTTP request's
// stream. It returns (status OK) as soon as the response has ended and its
// record is written, rather than waiting for Envoy's deferred close; or
// when Envoy closes the stream, when it idles past IdleTimeout, or at Cut.
// It never returns an error status: with failure_mode_allow false, Envoy
// answers a request whose side stream failed with a 500.
func (s *Server) Process(ps extprocv3.ExternalProcessor_ProcessServer) error {
	s.streams.Add(1)
	s.open.Add(1)
	s.wg.Add(2) // this call and its receive loop
	defer s.wg.Done()
	defer s.open.Add(-1)
	st := newStream(s)
	go st.receive(ps)
	st.run()
	return nil
}

// Cut ends every open stream now: a record not finished yet is written as
// aborted with cause (ErrDrainCut at a shutdown's drain bound) and its
// stream closed with status OK. Streams opened later end at once. Call
// Wait afterwards for the records to be handed over.
func (s *Server) Cut(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cutCause != nil {
		return
	}
	s.cutCause = cause
	close(s.cut)
}

func (s *Server) cutErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cutCause
}

// Wait blocks until every stream's Process and receive loop have returned,
// and so every record has been handed to the writer. Stop the gRPC server
// first (GracefulStop, then Cut at the drain bound), so no stream starts.
func (s *Server) Wait() { s.wg.Wait() }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Streams: s.streams.Load(), Open: s.open.Load(), Messages: s.messages.Load(), MessagesDropped: s.msgDropped.Load(),
		Records: s.records.Load(), RecordsDropped: s.recDropped.Load(), Aborted: s.aborted.Load(), NoRecord: s.noRecord.Load(),
		QueuedBytes: s.queued.Load(),
	}
	for i := range s.protoErrs {
		st.ProtocolErrors += s.protoErrs[i].Load()
	}
	for i := range s.parseFails {
		st.ParseFailures += s.parseFails[i].Load()
	}
	return st
}

// newID returns a record id for a request without a usable x-request-id.
func (s *Server) newID() string {
	return s.idBase + "-" + strconv.FormatUint(s.seq.Add(1), 10)
}

// reserve takes n bytes of the queue budget; false when it is spent.
func (s *Server) reserve(n int64) bool {
	if s.queued.Add(n) > s.cfg.QueueBytes {
		s.queued.Add(-n)
		return false
	}
	return true
}

func (s *Server) release(n int64) { s.queued.Add(-n) }

// write hands a finished record to the writer and counts it.
func (s *Server) write(rec *capture.Record) {
	if rec.Aborted {
		s.aborted.Add(1)
	}
	if s.out == nil {
		return
	}
	if s.out.Write(rec) {
		s.records.Add(1)
	} else {
		s.recDropped.Add(1)
	}
}
