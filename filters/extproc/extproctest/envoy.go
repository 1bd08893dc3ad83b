// Package extproctest stands in for Envoy in tests and benchmarks of the
// ext_proc collector: a gRPC client that opens ext_proc streams and sends,
// one call per message, exactly what Envoy's ext_proc filter sends in
// observability mode (envoy source/extensions/filters/http/ext_proc/ext_proc.cc:
// sendHeadersInObservabilityMode, sendDataInObservabilityMode, sendTrailers),
// so that a test chooses the gaps between messages.
//
// What Envoy sends, and this kit copies:
//   - every message has observability_mode true and a metadata_context
//     (empty unless metadata namespaces are forwarded);
//   - no protocol_config (Envoy encodes it only outside observability mode);
//   - the request_attributes (request.time among them) ride on the request
//     headers message only, the response_attributes on the response headers
//     message only, under the key "envoy.filters.http.ext_proc", each value
//     a string unless it is a bool or a number (a timestamp is printed as
//     RFC 3339 with nanoseconds);
//   - header names are lower case, values in raw_value;
//   - a body message per chunk Envoy received (STREAMED), the last one with
//     end_of_stream; headers with end_of_stream when there is no body;
//   - at the end, after deferred_close_timeout, a half-close then a reset.
package extproctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// FilterName is the key Envoy files its attributes under in
// ProcessingRequest.attributes.
const FilterName = "envoy.filters.http.ext_proc"

// Envoy is one HTTP/2 connection to an ext_proc server, as Envoy's gRPC
// client keeps: every stream is multiplexed on it.
type Envoy struct {
	conn   *grpc.ClientConn
	client extprocv3.ExternalProcessorClient
}

// Dial connects to an ext_proc server at addr (host:port) over cleartext
// HTTP/2, as Envoy does to a cluster without TLS.
func Dial(addr string) (*Envoy, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dialing ext_proc server %s: %w", addr, err)
	}
	return &Envoy{conn: conn, client: extprocv3.NewExternalProcessorClient(conn)}, nil
}

// Close closes the connection, resetting every stream still open.
func (e *Envoy) Close() error { return e.conn.Close() }

// Stream is one HTTP request's ext_proc stream. Its methods send one
// message each and must be called from one goroutine.
type Stream struct {
	pc     extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
	// Observability is the observability_mode flag of every message; Open
	// sets it, as the collector requires. Clear it to play an Envoy
	// configured without observability mode.
	Observability bool
}

// Open starts a stream, as Envoy does when a request's headers reach the
// filter. Cancelling ctx resets it.
func (e *Envoy) Open(ctx context.Context) (*Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	pc, err := e.client.Process(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("opening ext_proc stream: %w", err)
	}
	return &Stream{pc: pc, cancel: cancel, Observability: true}, nil
}

// Request is what Envoy sends of a downstream request's headers.
type Request struct {
	Method, Path string
	// Headers are further name, value pairs, names lower case.
	Headers []string
	// Time is the request.time attribute (request_attributes:
	// ["request.time"]); zero sends no attributes.
	Time time.Time
	// Attributes are further request_attributes, by name.
	Attributes map[string]string
	// EndOfStream says the request has no body.
	EndOfStream bool
}

// Response is what Envoy sends of the response's headers.
type Response struct {
	Status int
	// Headers are further name, value pairs, names lower case.
	Headers []string
	// Attributes are response_attributes by name (upstream.address).
	Attributes map[string]string
	// EndOfStream says the response has no body.
	EndOfStream bool
}

// RequestHeaders sends the request headers message.
func (s *Stream) RequestHeaders(r Request) error {
	kv := append([]string{":method", r.Method, ":path", r.Path, ":scheme", "http", ":authority", "gateway"}, r.Headers...)
	attrs := map[string]string{}
	for k, v := range r.Attributes {
		attrs[k] = v
	}
	if !r.Time.IsZero() {
		attrs["request.time"] = FormatTime(r.Time)
	}
	m := s.message(attributes(attrs))
	m.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: Headers(kv...), EndOfStream: r.EndOfStream}}
	return s.Send(m)
}

// RequestBody sends one request body chunk.
func (s *Stream) RequestBody(chunk []byte, eos bool) error {
	m := s.message(nil)
	m.Request = &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: chunk, EndOfStream: eos}}
	return s.Send(m)
}

// RequestTrailers sends the request trailers (request_trailer_mode SEND).
func (s *Stream) RequestTrailers(kv ...string) error {
	m := s.message(nil)
	m.Request = &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{Trailers: Headers(kv...)}}
	return s.Send(m)
}

// ResponseHeaders sends the response headers message.
func (s *Stream) ResponseHeaders(r Response) error {
	kv := append([]string{":status", strconv.Itoa(r.Status)}, r.Headers...)
	m := s.message(attributes(r.Attributes))
	m.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: Headers(kv...), EndOfStream: r.EndOfStream}}
	return s.Send(m)
}

// ResponseBody sends one response body chunk.
func (s *Stream) ResponseBody(chunk []byte, eos bool) error {
	m := s.message(nil)
	m.Request = &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: chunk, EndOfStream: eos}}
	return s.Send(m)
}

// ResponseTrailers sends the response trailers (response_trailer_mode SEND).
func (s *Stream) ResponseTrailers(kv ...string) error {
	m := s.message(nil)
	m.Request = &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{Trailers: Headers(kv...)}}
	return s.Send(m)
}

// Send sends m as it is: for sequences Envoy never sends.
func (s *Stream) Send(m *extprocv3.ProcessingRequest) error {
	if err := s.pc.Send(m); err != nil {
		return fmt.Errorf("sending ext_proc message: %w", err)
	}
	return nil
}

// CloseSend half-closes the stream, as Envoy's deferred close does first.
func (s *Stream) CloseSend() error { return s.pc.CloseSend() }

// Reset resets the stream (RST_STREAM), as Envoy's close does after the
// half-close, or at once when it gives a stream up.
func (s *Stream) Reset() { s.cancel() }

// Wait blocks until the server ends the stream and returns nil when it
// ended it with status OK. A collector in observability mode sends no
// messages, so one that arrives is an error.
func (s *Stream) Wait() error {
	defer s.cancel()
	m, err := s.pc.Recv()
	switch {
	case err == nil:
		return fmt.Errorf("the server sent a message in observability mode: %v", m)
	case errors.Is(err, io.EOF):
		return nil
	}
	return err
}

// Recv receives the server's next message (outside observability mode).
func (s *Stream) Recv() (*extprocv3.ProcessingResponse, error) { return s.pc.Recv() }

func (s *Stream) message(attrs map[string]*structpb.Struct) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{ObservabilityMode: s.Observability, MetadataContext: &corev3.Metadata{}, Attributes: attrs}
}

// Headers builds a header map from name, value pairs, values in raw_value
// as Envoy sends them. An odd trailing name gets an empty value.
func Headers(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, (len(kv)+1)/2)}
	for i := 0; i < len(kv); i += 2 {
		v := ""
		if i+1 < len(kv) {
			v = kv[i+1]
		}
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(v)})
	}
	return hm
}

// FormatTime prints t as Envoy prints a timestamp attribute (absl's RFC
// 3339 with nanoseconds, UTC, offset +00:00).
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999999-07:00")
}

// attributes files string attributes under FilterName, as Envoy does; nil
// when there are none (the attributes map is then absent).
func attributes(kv map[string]string) map[string]*structpb.Struct {
	if len(kv) == 0 {
		return nil
	}
	st := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(kv))}
	for k, v := range kv {
		st.Fields[k] = structpb.NewStringValue(v)
	}
	return map[string]*structpb.Struct{FilterName: st}
}
