// Package filtertest is the test kit of the proxy-wasm capture filter: it
// builds the .wasm module, runs the filter on the SDK's proxytest host
// emulator — natively, or compiled under wazero — drives HTTP exchanges
// through it, and carries the filter's calls to a real collector (an
// internal/ingest handler on 127.0.0.1). Tests and bench/wasmbench use it.
package filtertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/reprise-llm/reprise/filters/wasm/capturefilter"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest"
	"github.com/reprise-llm/reprise/internal/ingest/wire"
)

// Package is the import path of the filter's main package.
const Package = "github.com/reprise-llm/reprise/filters/wasm"

// WazeroEpoch is where the clock of proxytest's wazero host starts: wazero's
// fake wall clock (2022-01-01 UTC), which, like its monotonic clock,
// advances 1 ms per reading. Records of the compiled filter carry such wall
// times, and their timings count clock readings.
var WazeroEpoch = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

// Build compiles the filter into dir/reprise-capture.wasm with the go
// command (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared -trimpath, and the
// build tags given) and returns the module's bytes.
func Build(dir string, tags ...string) ([]byte, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		if root := os.Getenv("GOROOT"); root != "" {
			gobin, err = filepath.Join(root, "bin", "go"), nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("finding the go command: %w", err)
	}
	out := filepath.Join(dir, "reprise-capture.wasm")
	args := []string{"build", "-trimpath", "-buildmode=c-shared", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command(gobin, append(args, Package)...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the wasm filter: %w\n%s", err, msg)
	}
	return os.ReadFile(out)
}

// Runner says how the filter runs.
type Runner string

const (
	Native Runner = "native" // capturefilter.NewVM in this process
	Wasm   Runner = "wasm"   // the compiled module under wazero
)

// VM returns the filter's VM context for r; close it after the host (nil
// closer for Native). module is the compiled filter (Wasm only).
func VM(r Runner, module []byte) (types.VMContext, io.Closer, error) {
	if r == Native {
		return capturefilter.NewVM(), nil, nil
	}
	vm, err := proxytest.NewWasmVMContext(module)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the wasm filter: %w", err)
	}
	return vm, vm, nil
}

// Host is a proxytest host running the filter, whose calls to the collector
// cluster it carries over real HTTP.
type Host struct {
	proxytest.HostEmulator
	// Collector is the base URL the filter's calls go to. "" plays a dead
	// collector: every call gets no answer.
	Collector string
	// Answer hands the collector's answers back to the filter. proxytest's
	// wazero wrapper cannot route an answer into the module (it lacks
	// proxy_on_http_call_response), so a Wasm host only sends.
	Answer bool

	runner Runner
	reset  func()
	closer io.Closer
	client *http.Client
	seen   int // callouts carried so far
	logs   [numLevels][]string
}

// Log levels as the emulator keeps them.
const (
	levelTrace = iota
	levelDebug
	levelInfo
	levelWarn
	levelError
	levelCritical
	numLevels
)

// syncLogs copies the emulator's new log lines. Under wazero the emulator
// keeps each line as a string over the module's memory, which the module
// reuses: read later, a line shows whatever was allocated there since (a
// record's JSON, say). So the lines are copied after every call into the
// filter.
func (h *Host) syncLogs() {
	src := [numLevels][]string{h.HostEmulator.GetTraceLogs(), h.HostEmulator.GetDebugLogs(), h.HostEmulator.GetInfoLogs(),
		h.HostEmulator.GetWarnLogs(), h.HostEmulator.GetErrorLogs(), h.HostEmulator.GetCriticalLogs()}
	for l, lines := range src {
		for _, line := range lines[len(h.logs[l]):] {
			h.logs[l] = append(h.logs[l], strings.Clone(line))
		}
	}
}

// GetTraceLogs and the others return the filter's log lines, copied as
// they were logged (see syncLogs).
func (h *Host) GetTraceLogs() []string    { return h.logs[levelTrace] }
func (h *Host) GetDebugLogs() []string    { return h.logs[levelDebug] }
func (h *Host) GetInfoLogs() []string     { return h.logs[levelInfo] }
func (h *Host) GetWarnLogs() []string     { return h.logs[levelWarn] }
func (h *Host) GetErrorLogs() []string    { return h.logs[levelError] }
func (h *Host) GetCriticalLogs() []string { return h.logs[levelCritical] }

// Tick runs the filter's tick.
func (h *Host) Tick() {
	h.HostEmulator.Tick()
	h.syncLogs()
}

// Options configure NewHost.
type Options struct {
	// Key, when set, is a wire.Key JSON left in the host's shared data
	// before the plugin starts, as another worker's VM would have left it:
	// the way a Wasm host gets a hash key.
	Key []byte
	// Collector and Answer: see Host.
	Collector string
	Answer    bool
}

// NewHost starts vm on a host emulator with pluginConfig. The emulator is a
// process-wide singleton: Close the host before starting another.
func NewHost(r Runner, vm types.VMContext, closer io.Closer, pluginConfig []byte, o Options) (*Host, error) {
	emu, reset := proxytest.NewHostEmulator(proxytest.NewEmulatorOption().WithVMContext(vm).
		WithPluginConfiguration(pluginConfig))
	h := &Host{HostEmulator: emu, Collector: o.Collector, Answer: o.Answer && r == Native, runner: r,
		reset: reset, closer: closer, client: &http.Client{Timeout: 10 * time.Second}}
	if len(o.Key) > 0 {
		// The native SDK's host calls reach the emulator: this is what a
		// worker's VM does after fetching the key.
		if err := proxywasm.SetSharedData(capturefilter.SharedKeyName, o.Key, 0); err != nil {
			h.Close()
			return nil, fmt.Errorf("planting the hash key: %w", err)
		}
	}
	if h.StartVM() != types.OnVMStartStatusOK {
		h.Close()
		return nil, errors.New("the filter's VM did not start")
	}
	h.syncLogs()
	if h.StartPlugin() != types.OnPluginStartStatusOK {
		h.Close()
		return nil, errors.New("the filter's plugin did not start")
	}
	h.syncLogs()
	return h, nil
}

// Close releases the emulator and the wazero runtime.
func (h *Host) Close() {
	if h.closer != nil {
		_ = h.closer.Close()
		h.closer = nil
	}
	if h.reset != nil {
		h.reset()
		h.reset = nil
	}
}

// Exchange is one HTTP stream as the filter sees it.
type Exchange struct {
	Method, Path string
	Headers      [][2]string // more request headers
	Body         [][]byte    // request body chunks; none: the headers end the request
	Status       int         // response status; 0: the stream ends before a response
	RespHeaders  [][2]string // more response headers
	Chunks       [][]byte    // response body chunks
	// Abort ends the stream without marking the response's end (a client
	// that went away, a broken upstream).
	Abort bool
}

// Do drives ex through the filter's callbacks and ends the stream. It
// fails when a callback answers anything but Continue: the filter must
// never hold or alter traffic.
func (h *Host) Do(ex Exchange) error {
	id := h.InitializeHttpContext()
	var errs []error
	check := func(what string, a types.Action) {
		h.syncLogs()
		if a != types.ActionContinue {
			errs = append(errs, fmt.Errorf("%s %s: %s answered %v, want Continue", ex.Method, ex.Path, what, a))
		}
	}
	hdrs := append([][2]string{{":method", ex.Method}, {":path", ex.Path}}, ex.Headers...)
	if n := size(ex.Body); n > 0 {
		hdrs = append(hdrs, [2]string{"content-length", strconv.Itoa(n)})
	}
	check("request headers", h.CallOnRequestHeaders(id, hdrs, len(ex.Body) == 0))
	for i, c := range ex.Body {
		check("request body", h.CallOnRequestBody(id, c, i == len(ex.Body)-1))
	}
	if ex.Status > 0 {
		rh := append([][2]string{{":status", strconv.Itoa(ex.Status)}}, ex.RespHeaders...)
		check("response headers", h.CallOnResponseHeaders(id, rh, len(ex.Chunks) == 0 && !ex.Abort))
		for i, c := range ex.Chunks {
			check("response body", h.CallOnResponseBody(id, c, i == len(ex.Chunks)-1 && !ex.Abort))
		}
	}
	h.CompleteHttpContext(id)
	h.syncLogs()
	return errors.Join(errs...)
}

func size(chunks [][]byte) int {
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	return n
}

// Flush runs one tick of the filter and carries the calls it made.
func (h *Host) Flush() error {
	h.Tick()
	return h.Carry()
}

// Carry sends the filter's new calls to the collector and, with Answer,
// hands each answer (or its absence) back to the filter, in call order.
func (h *Host) Carry() error {
	calls := h.GetCalloutAttributesFromContext(proxytest.PluginContextID)
	for ; h.seen < len(calls); h.seen++ {
		c := calls[h.seen]
		status, hdrs, body, err := h.send(c)
		if err != nil {
			return err
		}
		if !h.Answer {
			continue
		}
		if status == 0 {
			h.CallOnHttpCallResponse(c.CalloutID, nil, nil, nil) // no answer: unreachable or timed out
		} else {
			h.CallOnHttpCallResponse(c.CalloutID, append([][2]string{{":status", strconv.Itoa(status)}}, hdrs...), nil, body)
		}
		h.syncLogs()
	}
	return nil
}

// send performs one call; status 0 when the collector did not answer.
func (h *Host) send(c proxytest.HttpCalloutAttribute) (int, [][2]string, []byte, error) {
	if h.Collector == "" {
		return 0, nil, nil, nil
	}
	get := func(name string) string {
		for _, kv := range c.Headers {
			if kv[0] == name {
				return kv[1]
			}
		}
		return ""
	}
	req, err := http.NewRequestWithContext(context.Background(), get(":method"), h.Collector+get(":path"), bytes.NewReader(c.Body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("filter call %d: %w", c.CalloutID, err)
	}
	for _, kv := range c.Headers {
		if kv[0] != "" && kv[0][0] != ':' {
			req.Header.Add(kv[0], kv[1])
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, nil, nil // refused, reset: Envoy answers the filter with no headers
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, nil
	}
	return resp.StatusCode, [][2]string{{"content-type", resp.Header.Get("Content-Type")}}, body, nil
}

// TestKey is the collectors' hash key in tests: 32 fixed bytes.
var TestKey = []byte("reprise-filtertest-key-32-bytes!")

// Collector is a real ingest endpoint on 127.0.0.1 writing to a Sink.
type Collector struct {
	*httptest.Server
	Handler *ingest.Handler
	Sink    *Sink
	Hasher  *capture.Hasher
}

// NewCollector serves an ingest.Handler with cfg, filling in a Hasher over
// TestKey (and the Key served), Origin now and Content hashed when unset.
func NewCollector(cfg ingest.Config) (*Collector, error) {
	if cfg.Hasher == nil {
		cfg.Hasher = capture.NewHasher(TestKey, 0)
		if cfg.Key == nil {
			cfg.Key = TestKey
		}
	}
	if cfg.Origin.IsZero() {
		cfg.Origin = time.Now()
	}
	if cfg.Content == "" {
		cfg.Content = capture.ContentHashed
	}
	sink := &Sink{}
	h, err := ingest.New(cfg, sink, nil)
	if err != nil {
		return nil, err
	}
	return &Collector{Server: httptest.NewServer(h), Handler: h, Sink: sink, Hasher: cfg.Hasher}, nil
}

// KeyJSON is the collector's wire.Key, as its key endpoint serves it.
func (c *Collector) KeyJSON() []byte {
	resp, err := http.Get(c.URL + wire.KeyPath)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// Sink is an ingest.RecordWriter that keeps what it is given.
type Sink struct {
	mu   sync.Mutex
	recs []*capture.Record
	full bool
}

// SetFull makes the sink refuse every record (true), as a capture writer
// with a full queue does, or take them again.
func (s *Sink) SetFull(full bool) {
	s.mu.Lock()
	s.full = full
	s.mu.Unlock()
}

var _ ingest.RecordWriter = (*Sink)(nil)

// Write implements ingest.RecordWriter.
func (s *Sink) Write(r *capture.Record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return false
	}
	s.recs = append(s.recs, r)
	return true
}

// Records returns what was written so far.
func (s *Sink) Records() []*capture.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*capture.Record(nil), s.recs...)
}
