package capturefilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/reprise-llm/reprise/internal/capture"
)

// Config is the filter's plugin configuration: the JSON object of the
// WasmPlugin's pluginConfig (Envoy: the plugin's configuration value).
// Field comments are the user documentation. ParseConfig never fails the
// plugin: an unknown key or a bad value is reported, and that value falls
// back to its default (content to none); traffic always flows.
type Config struct {
	// CollectorCluster is the Envoy cluster that reaches the collector's
	// ingest listener (proxy --ingest-listen), e.g. in Istio
	// "outbound|9092||reprise-collector.reprise.svc.cluster.local".
	// Required: without it the filter passes traffic and captures nothing.
	CollectorCluster string `json:"collector_cluster"`
	// CollectorAuthority is the :authority of calls to the collector
	// (default: the cluster name), e.g. "reprise-collector.reprise:9092".
	CollectorAuthority string `json:"collector_authority"`
	// Sample is the fraction of requests captured, 0..1 (default 1).
	Sample float64 `json:"sample"`
	// Content is what of the prompt leaves the gateway: "none" (no hash
	// ids), "hashed" (keyed prefix-block chain values, the default) or
	// "full" (prompt text and messages). The collector removes whatever
	// its own --capture-content does not allow. An invalid value means
	// "none".
	Content string `json:"content"`
	// FlushMS is the tick, in milliseconds, on which queued records are
	// sent (10..60000, default 1000).
	FlushMS int `json:"flush_ms"`
	// MaxBatch bounds the records of one batch (1..8192, default 256).
	MaxBatch int `json:"max_batch"`
	// MaxQueue bounds the records waiting to be sent, per Envoy worker
	// (1..65536, default 4096). A record finished when the queue is full
	// is dropped and counted: traffic never waits for the collector.
	MaxQueue int `json:"max_queue"`
	// SessionHeader names a request header whose value identifies a
	// conversation or user; only its keyed hash leaves the gateway.
	// Empty: the body's "user" field.
	SessionHeader string `json:"session_header"`
	// UpstreamHeader names the header that identifies the serving endpoint:
	// a response header, else the request header an endpoint picker set
	// (default x-gateway-destination-endpoint). Recorded as "upstream".
	UpstreamHeader string `json:"upstream_header"`
	// TimeoutMS bounds one call to the collector, in milliseconds
	// (100..60000, default 5000); a batch that times out is dropped and
	// counted.
	TimeoutMS int `json:"timeout_ms"`
	// MaxParseBytes caps, in bytes, how much of a request body is kept for
	// parsing and how much of a non-streamed response is buffered
	// (4 KiB..64 MiB, default 4 MiB). Forwarding is never capped.
	MaxParseBytes int `json:"max_parse_bytes"`
	// Gzip compresses batches (Content-Encoding: gzip): less traffic to
	// the collector for a little CPU on each tick. Default false.
	Gzip bool `json:"gzip"`
}

// Defaults of Config.
const (
	DefaultFlushMS        = 1000
	DefaultMaxBatch       = 256
	DefaultMaxQueue       = 4096
	DefaultTimeoutMS      = 5000
	DefaultMaxParseBytes  = 4 << 20
	DefaultUpstreamHeader = "x-gateway-destination-endpoint"
)

// DefaultConfig returns the defaults; CollectorCluster is empty.
func DefaultConfig() Config {
	return Config{
		Sample: 1, Content: capture.ContentHashed, FlushMS: DefaultFlushMS, MaxBatch: DefaultMaxBatch,
		MaxQueue: DefaultMaxQueue, UpstreamHeader: DefaultUpstreamHeader, TimeoutMS: DefaultTimeoutMS,
		MaxParseBytes: DefaultMaxParseBytes,
	}
}

// ParseConfig decodes a pluginConfig strictly: every unknown key and bad
// value is reported at once (errors.Join), and the returned Config holds
// the defaults in their place, content "none" for a bad content. The
// Config is always usable; without CollectorCluster it captures nothing.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	var errs []error
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return c, errors.New("no plugin configuration: collector_cluster is required")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		c.Content = capture.ContentNone
		return c, fmt.Errorf("plugin configuration is not a JSON object: %w", err)
	}
	fields := map[string]func(json.RawMessage) error{
		"collector_cluster":   str(&c.CollectorCluster, nonEmpty),
		"collector_authority": str(&c.CollectorAuthority, nil),
		"session_header":      str(&c.SessionHeader, headerName),
		"upstream_header":     str(&c.UpstreamHeader, headerName),
		"content": func(raw json.RawMessage) error {
			err := str(&c.Content, oneOf(capture.ContentNone, capture.ContentHashed, capture.ContentFull))(raw)
			if err != nil {
				c.Content = capture.ContentNone // unknown intent: ship the least
			}
			return err
		},
		"sample":          float(&c.Sample, 0, 1),
		"flush_ms":        integer(&c.FlushMS, 10, 60000),
		"max_batch":       integer(&c.MaxBatch, 1, 8192),
		"max_queue":       integer(&c.MaxQueue, 1, 65536),
		"timeout_ms":      integer(&c.TimeoutMS, 100, 60000),
		"max_parse_bytes": integer(&c.MaxParseBytes, 4<<10, 64<<20),
		"gzip": func(raw json.RawMessage) error {
			return json.Unmarshal(raw, &c.Gzip)
		},
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // problems in a stable order
	for _, k := range keys {
		set, ok := fields[k]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown key %q", k))
			continue
		}
		if err := set(m[k]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
	}
	if c.CollectorCluster == "" {
		errs = append(errs, errors.New("collector_cluster is required"))
	}
	c.SessionHeader = strings.ToLower(c.SessionHeader)
	c.UpstreamHeader = strings.ToLower(c.UpstreamHeader)
	return c, errors.Join(errs...)
}

// str decodes a string into *dst when check (if any) accepts it; on error
// *dst keeps its default.
func str(dst *string, check func(string) error) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return errors.New("want a string")
		}
		if check != nil {
			if err := check(s); err != nil {
				return err
			}
		}
		*dst = s
		return nil
	}
}

func integer(dst *int, lo, hi int) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		var v int
		if err := json.Unmarshal(raw, &v); err != nil || v < lo || v > hi {
			return fmt.Errorf("want an integer from %d to %d (default %d kept)", lo, hi, *dst)
		}
		*dst = v
		return nil
	}
}

func float(dst *float64, lo, hi float64) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil || !(v >= lo && v <= hi) {
			return fmt.Errorf("want a number from %g to %g (default %g kept)", lo, hi, *dst)
		}
		*dst = v
		return nil
	}
}

func nonEmpty(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func oneOf(vals ...string) func(string) error {
	return func(s string) error {
		if !slices.Contains(vals, s) {
			return fmt.Errorf("%q: want one of %s (falls back to none)", s, strings.Join(vals, ", "))
		}
		return nil
	}
}

// headerName accepts "" or an HTTP header name (RFC 9110 token characters).
func headerName(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return fmt.Errorf("%q is not a header name", s)
		}
	}
	return nil
}
