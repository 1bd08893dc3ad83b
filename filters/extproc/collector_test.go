package extproc

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"

	"github.com/reprise-llm/reprise/filters/extproc/extproctest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// collector is a Server behind a real gRPC server on a loopback port,
// writing a real capture into a test directory.
type collector struct {
	t      *testing.T
	srv    *Server
	gs     *grpc.Server
	w      *capture.Writer
	addr   string
	origin time.Time
	reg    *prometheus.Registry
	logs   *observer.ObservedLogs
	served chan struct{}
}

// startCollector starts one; cfg's zero fields take test defaults (a
// hashing key, the upstream header). hook, when not nil, is the state
// machine's hookHandle.
func startCollector(t *testing.T, cfg Config, hook func(*extprocv3.ProcessingRequest)) *collector {
	t.Helper()
	if cfg.Capture.Hasher == nil {
		cfg.Capture.Hasher = capture.NewHasher([]byte("test-key"), 64)
	}
	if cfg.UpstreamHeader == "" {
		cfg.UpstreamHeader = DefaultUpstreamHeader
	}
	origin := time.Now()
	// A writer queue for every record of the largest test: here the
	// collector must lose none (the writer's own drops are its tests').
	w, err := capture.NewWriter(filepath.Join(t.TempDir(), "cap"), capture.WriterOptions{QueueSize: 16 << 10, Manifest: capture.Manifest{
		Start: origin, Source: "ext_proc", Block: cfg.Capture.Hasher.BlockChars(), KeyID: cfg.Capture.Hasher.KeyID(), Content: capture.ContentHashed,
	}})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	reg := prometheus.NewRegistry()
	srv, err := New(cfg, w, origin, zap.New(core), reg)
	if err != nil {
		t.Fatal(err)
	}
	srv.hookHandle = hook
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t, srv: srv, gs: NewGRPCServer(srv), w: w, addr: ln.Addr().String(), origin: origin, reg: reg, logs: logs,
		served: make(chan struct{})}
	go func() {
		defer close(c.served)
		_ = c.gs.Serve(ln)
	}()
	t.Cleanup(func() {
		c.gs.Stop()
		<-c.served
		_ = w.Close()
	})
	return c
}

// envoy connects a stand-in Envoy to the collector.
func (c *collector) envoy() *extproctest.Envoy {
	c.t.Helper()
	e, err := extproctest.Dial(c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = e.Close() })
	return e
}

// open opens a stream on e, failing the test on error.
func (c *collector) open(e *extproctest.Envoy) *extproctest.Stream {
	c.t.Helper()
	s, err := e.Open(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// stop stops the gRPC server gracefully (cutting what is still open when
// cut is set), waits for every record, closes the capture and reads it
// back with capture.Open.
func (c *collector) stop(cut bool) []*capture.Record {
	c.t.Helper()
	stopped := make(chan struct{})
	go func() {
		c.gs.GracefulStop()
		close(stopped)
	}()
	if cut {
		c.srv.Cut(ErrDrainCut)
	}
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("streams still open after 30s: %+v", c.srv.Stats())
	}
	c.srv.Wait()
	if err := c.w.Close(); err != nil {
		c.t.Fatal(err)
	}
	return capturetest.Read(c.t, c.w.Dir())
}

// byID indexes records by id, failing on a duplicate.
func byID(t *testing.T, recs []*capture.Record) map[string]*capture.Record {
	t.Helper()
	m := make(map[string]*capture.Record, len(recs))
	for _, r := range recs {
		if m[r.ID] != nil {
			t.Fatalf("two records with id %q", r.ID)
		}
		m[r.ID] = r
	}
	return m
}

// metric returns the value of a series from the collector's registry (the
// /metrics a scrape sees); labels are name, value pairs.
func (c *collector) metric(name string, labels ...string) float64 {
	c.t.Helper()
	mfs, err := c.reg.Gather()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	c.t.Fatalf("no series %s%v", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// waitUntil polls cond until it holds; a bounded wait for the server to
// catch up with what the client sent, never a timing assertion.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// mustSend fails the test when a send fails.
func mustSend(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// captureBytes is everything the capture holds as text: the manifest and
// every record, for searching for what must never be stored.
func captureBytes(t *testing.T, dir string, recs []*capture.Record) string {
	t.Helper()
	var sb strings.Builder
	m, err := os.ReadFile(filepath.Join(dir, capture.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	sb.Write(m)
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(b)
	}
	return sb.String()
}

// logText is every logged line, message and fields, as text.
func (c *collector) logText() string {
	var sb strings.Builder
	for _, e := range c.logs.All() {
		sb.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			sb.WriteString(" " + k + "=")
			b, _ := json.Marshal(v)
			sb.Write(b)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}
