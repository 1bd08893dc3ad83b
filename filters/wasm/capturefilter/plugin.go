// Package capturefilter is the proxy-wasm capture filter: an Envoy HTTP
// filter that times each request and response chunk inside the proxy, feeds
// them to the capture core (capture.Tracker, the same state machine as the
// reverse proxy's), and ships the finished records in batches to the
// collector's ingest listener (internal/ingest) with proxy_http_call on a
// tick. It never alters, delays or fails traffic: every callback answers
// Continue, and a slow, dead or full collector costs dropped, counted
// records.
//
// filters/wasm builds it into bin/reprise-capture.wasm with standard Go
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared); tests run it natively under
// the SDK's proxytest host and compiled under wazero (filters/wasm/filtertest).
package capturefilter

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest/wire"
)

// SharedKeyName is the Envoy shared-data key under which a VM that fetched
// the collector's hash key (wire.Key JSON) leaves it for the other workers'
// VMs of the same vm_id, so that one Envoy process fetches it about once.
const SharedKeyName = "reprise.capture.hash_key"

// Bounds that are not configuration.
const (
	maxInflight   = 2        // batches in flight per VM; more wait for the next tick
	maxBatchBytes = 4 << 20  // bytes of one batch (a larger record goes alone)
	maxQueueBytes = 16 << 20 // bytes queued per VM
	maxResultSize = 1 << 20  // bytes of a collector answer read
	logName       = "reprise capture: "
)

// tickHook runs first on every tick. Builds with the reprise_benchstats
// tag set it (benchstats.go) to log the Go heap counters, which is how
// bench/wasmbench reads the allocations of the compiled module.
var tickHook func()

// BenchStatsPrefix starts the line the tick logs in a reprise_benchstats
// build: the VM's cumulative heap allocations (count, bytes).
const BenchStatsPrefix = "reprise benchstats: "

// VM is the filter's VM context. Envoy runs one Wasm VM per worker thread,
// so everything below is per worker and single-threaded.
type VM struct {
	types.DefaultVMContext
	// Now is the clock (WASI's in Envoy); nil means time.Now.
	Now func() time.Time
	// Rand draws the sampling numbers in [0, 1); nil means math/rand/v2.
	Rand func() float64
}

var _ types.VMContext = (*VM)(nil)

// NewVM returns the filter's VM context with the real clock.
func NewVM() *VM { return &VM{} }

// NewPluginContext implements types.VMContext.
func (v *VM) NewPluginContext(uint32) types.PluginContext {
	p := &plugin{now: v.Now, rnd: v.Rand}
	if p.now == nil {
		p.now = time.Now
	}
	if p.rnd == nil {
		p.rnd = mrand.Float64
	}
	return p
}

// plugin is one plugin instance (one pluginConfig) in one VM.
type plugin struct {
	types.DefaultPluginContext
	now func() time.Time
	rnd func() float64

	cfg       Config
	active    bool // a collector is configured: capture
	authority string
	origin    time.Time
	m         metrics
	idBase    string
	seq       uint64

	// opts is what new Trackers get; it is replaced, never modified, when
	// the hash key arrives or is dropped, so a Tracker keeps the Options
	// (and keyID) it started with.
	opts    *capture.Options
	keyID   string // opts.Hasher's key id; "" without a key
	keyBusy bool   // a key request is in flight
	keyNote string // the last key problem logged ("" once the key arrived)

	q         queue
	inflight  int  // batches sent and not answered
	down      bool // the latest batch failed
	downDrops int  // records dropped since the collector went down
	full      bool // the queue refused a record; logged once until it drains
	batch     []byte
	gzBuf     bytes.Buffer
	gz        *gzip.Writer
	rejectLog time.Time // when rejected lines were last logged
}

var _ types.PluginContext = (*plugin)(nil)

// OnPluginStart implements types.PluginContext. It never fails the plugin:
// a bad configuration is logged and traffic passes uncaptured or with
// defaults.
func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	defer p.guard("plugin start", nil)
	p.m = defineMetrics()
	data, _ := proxywasm.GetPluginConfiguration() // none: ParseConfig reports it
	cfg, err := ParseConfig(data)
	if err != nil {
		proxywasm.LogError(logName + "plugin configuration: " + oneLine(err.Error()))
	}
	p.cfg = cfg
	p.active = cfg.CollectorCluster != ""
	if !p.active {
		proxywasm.LogError(logName + "no collector_cluster: capturing nothing, traffic passes")
		return types.OnPluginStartStatusOK
	}
	p.authority = cfg.CollectorAuthority
	if p.authority == "" {
		p.authority = cfg.CollectorCluster
	}
	p.origin = p.now()
	p.opts = &capture.Options{Content: cfg.Content, MaxBody: cfg.MaxParseBytes, Chains: true}
	var b [6]byte
	_, _ = rand.Read(b[:])
	p.idBase = hex.EncodeToString(b[:])
	p.q = newQueue(cfg.MaxQueue, maxQueueBytes)
	p.adoptSharedKey()
	if err := proxywasm.SetTickPeriodMilliSeconds(uint32(cfg.FlushMS)); err != nil {
		proxywasm.LogError(logName + "setting the tick: " + err.Error() + ": records will not be sent")
	}
	proxywasm.LogInfof(logName+"started: collector %s, content %s, sample %g, flush every %d ms",
		cfg.CollectorCluster, cfg.Content, cfg.Sample, cfg.FlushMS)
	return types.OnPluginStartStatusOK
}

// OnTick implements types.PluginContext: fetch the hash key while there is
// none, then send what is queued.
func (p *plugin) OnTick() {
	defer p.guard("tick", nil)
	if tickHook != nil {
		tickHook()
	}
	if !p.active {
		return
	}
	if p.keyID == "" && !p.keyBusy && !p.adoptSharedKey() {
		p.fetchKey()
	}
	p.flush()
}

// OnPluginDone implements types.PluginContext: a last, best-effort send.
func (p *plugin) OnPluginDone() bool {
	defer p.guard("plugin done", nil)
	if p.active {
		p.flush()
	}
	return true
}

// NewHttpContext implements types.PluginContext. After a panic the
// stream passes uncaptured.
func (p *plugin) NewHttpContext(uint32) (ctx types.HttpContext) {
	ctx = passThrough
	defer p.guard("new stream", nil)
	p.m.requests.Increment(1)
	if !p.active {
		return passThrough
	}
	if s := p.cfg.Sample; s < 1 && !(p.rnd() < s) {
		p.m.unsampled.Increment(1)
		return passThrough
	}
	return &httpCtx{p: p, opts: p.opts, keyID: p.keyID}
}

// passThrough is the context of requests not captured. The SDK needs a
// context for every stream (nil makes it trap on the next callback).
var passThrough = &types.DefaultHttpContext{}

func (p *plugin) nextID() string {
	p.seq++
	return p.idBase + "-" + strconv.FormatUint(p.seq, 10)
}

// guard ends a callback that panicked: it logs and counts, and marks the
// request (dead, if any) as no longer captured. A panic must not reach the
// host: a trapped VM fails or bypasses every later request.
func (p *plugin) guard(where string, dead *bool) {
	if v := recover(); v != nil {
		if dead != nil {
			*dead = true
		}
		proxywasm.LogErrorf(logName+"recovered panic in %s: %v", where, v)
		func() {
			defer func() { _ = recover() }() // metrics may not be defined yet
			p.m.panics.Increment(1)
		}()
	}
}

// enqueue encodes a finished record as a batch line and queues it.
func (p *plugin) enqueue(rec *capture.Record, chain []uint64, keyID string) {
	ln := wire.Line{Record: rec, HashChain: wire.Chains(chain)}
	if len(ln.HashChain) > 0 || rec.Session != "" {
		ln.KeyID = keyID
	}
	b, err := json.Marshal(ln)
	if err != nil {
		proxywasm.LogErrorf(logName+"encoding record %s: %v", rec.ID, err)
		p.m.droppedQueueFull.Increment(1)
		return
	}
	b = append(b, '\n')
	if !p.q.push(b) {
		p.m.droppedQueueFull.Increment(1)
		if !p.full {
			p.full = true
			proxywasm.LogWarnf(logName+"queue full (%d records): records are dropped and counted (%s) until the collector catches up; traffic is not affected",
				p.q.len(), MetricDroppedQueueFull)
		}
		return
	}
	p.m.queued.Increment(1)
	p.m.queueLength.Add(1)
}

// flush sends queued records in batches, at most maxInflight at a time.
func (p *plugin) flush() {
	for p.q.len() > 0 && p.inflight < maxInflight {
		var n int
		p.batch, n = p.q.take(p.batch[:0], p.cfg.MaxBatch, maxBatchBytes)
		p.m.queueLength.Add(-int64(n))
		if p.full && p.q.len() < p.cfg.MaxQueue/2 {
			p.full = false
			proxywasm.LogInfo(logName + "queue drained below half: records are queued again")
		}
		body := p.batch
		headers := [][2]string{{":method", "POST"}, {":path", wire.RecordsPath}, {":authority", p.authority},
			{"content-type", wire.ContentType}}
		if p.cfg.Gzip {
			body = p.compress(body)
			headers = append(headers, [2]string{"content-encoding", "gzip"})
		}
		// The host copies the body before DispatchHttpCall returns, so
		// p.batch is reused for the next batch.
		_, err := proxywasm.DispatchHttpCall(p.cfg.CollectorCluster, headers, body, nil, uint32(p.cfg.TimeoutMS),
			func(numHeaders, bodySize, _ int) { p.onBatchResponse(n, numHeaders, bodySize) })
		if err != nil {
			p.batchFailed(n, "dispatch: "+err.Error())
			return
		}
		p.inflight++
	}
	if cap(p.batch) > maxBatchBytes {
		p.batch = nil // one huge record passed: do not keep its buffer
	}
}

func (p *plugin) compress(body []byte) []byte {
	p.gzBuf.Reset()
	if p.gz == nil {
		p.gz, _ = gzip.NewWriterLevel(&p.gzBuf, gzip.BestSpeed)
	} else {
		p.gz.Reset(&p.gzBuf)
	}
	_, _ = p.gz.Write(body)
	_ = p.gz.Close()
	return p.gzBuf.Bytes()
}

// onBatchResponse accounts for a batch of n records from the collector's
// answer. No headers means the host got no answer: unreachable, reset or
// timed out.
func (p *plugin) onBatchResponse(n, numHeaders, bodySize int) {
	defer p.guard("batch response", nil)
	p.inflight--
	if numHeaders == 0 {
		p.batchFailed(n, "no answer (unreachable or timed out)")
		return
	}
	status := responseStatus()
	var res wire.Result
	if bodySize <= 0 || bodySize > maxResultSize || !readJSON(bodySize, &res) {
		p.batchFailed(n, "status "+status+" without an ingest result: is collector_cluster the collector's ingest port?")
		return
	}
	p.m.sent.Increment(uint64(res.Written))
	p.m.rejected.Increment(uint64(res.Rejected))
	p.m.collectorFull.Increment(uint64(res.Dropped))
	if lost := n - res.Received; lost > 0 {
		// The collector stopped reading the batch (too large, a broken
		// body): the rest never reached it.
		p.m.droppedCollector.Increment(uint64(lost))
	}
	if res.Rejected > 0 {
		if now := p.now(); p.rejectLog.IsZero() || now.Sub(p.rejectLog) >= time.Minute {
			p.rejectLog = now
			first := ""
			if len(res.Errors) > 0 {
				first = fmt.Sprintf(" (line %d: %s)", res.Errors[0].Line, res.Errors[0].Error)
			}
			proxywasm.LogWarnf(logName+"collector refused %d of %d records%s; counted in %s, logged at most once a minute",
				res.Rejected, n, first, MetricRejected)
		}
	}
	if status != "200" {
		p.batchFailed(0, "status "+status)
		return
	}
	if p.keyID != "" && res.KeyID != "" && res.KeyID != p.keyID {
		proxywasm.LogWarnf(logName+"the collector's hash key changed (key id %s, ours %s; a restart without --hash-key-file?): fetching it again",
			res.KeyID, p.keyID)
		p.dropKey()
	}
	if p.down {
		p.down = false
		proxywasm.LogInfof(logName+"collector takes batches again; %d records were dropped while it did not", p.downDrops)
		p.downDrops = 0
	}
}

// batchFailed counts n records the collector did not take and logs the
// first failure of a run of them.
func (p *plugin) batchFailed(n int, why string) {
	p.m.batchesFailed.Increment(1)
	p.m.droppedCollector.Increment(uint64(n))
	p.downDrops += n
	if !p.down {
		p.down = true
		proxywasm.LogWarnf(logName+"collector %s did not take a batch of %d records (%s): records are dropped and counted (%s) until it does; traffic is not affected",
			p.cfg.CollectorCluster, n, why, MetricDroppedCollector)
	}
}

// fetchKey asks the collector for its hash key.
func (p *plugin) fetchKey() {
	headers := [][2]string{{":method", "GET"}, {":path", wire.KeyPath}, {":authority", p.authority}}
	if _, err := proxywasm.DispatchHttpCall(p.cfg.CollectorCluster, headers, nil, nil, uint32(p.cfg.TimeoutMS), p.onKeyResponse); err != nil {
		p.keyProblem("dispatch: " + err.Error())
		return
	}
	p.keyBusy = true
}

func (p *plugin) onKeyResponse(numHeaders, bodySize, _ int) {
	defer p.guard("key response", nil)
	p.keyBusy = false
	if numHeaders == 0 {
		p.keyProblem("no answer (unreachable or timed out)")
		return
	}
	status := responseStatus()
	if status != "200" || bodySize <= 0 || bodySize > maxResultSize {
		p.keyProblem("status " + status)
		return
	}
	body, err := proxywasm.GetHttpCallResponseBody(0, bodySize)
	if err != nil {
		p.keyProblem("reading the answer: " + err.Error())
		return
	}
	if err := p.installKey(body); err != nil {
		p.keyProblem(err.Error())
		return
	}
	if err := proxywasm.SetSharedData(SharedKeyName, body, 0); err != nil {
		proxywasm.LogDebugf(logName+"sharing the hash key with the other workers: %v", err)
	}
}

// keyProblem logs why there is no hash key yet, once per distinct reason.
func (p *plugin) keyProblem(why string) {
	if why == p.keyNote {
		return
	}
	p.keyNote = why
	proxywasm.LogWarnf(logName+"no hash key from the collector yet (%s): records carry no hash ids or session until it arrives (counted in %s); retrying every tick",
		why, MetricUnhashed)
}

// adoptSharedKey takes the key another worker's VM fetched, if any.
func (p *plugin) adoptSharedKey() bool {
	v, _, err := proxywasm.GetSharedData(SharedKeyName)
	if err != nil || len(v) == 0 {
		return false
	}
	return p.installKey(v) == nil
}

// installKey checks and adopts a wire.Key.
func (p *plugin) installKey(data []byte) error {
	var k wire.Key
	if err := json.Unmarshal(data, &k); err != nil {
		return fmt.Errorf("the key answer is not JSON: %w", err)
	}
	if len(k.Key) < 16 || k.Block <= 0 {
		return fmt.Errorf("the key answer holds a %d-byte key and block %d", len(k.Key), k.Block)
	}
	h := capture.NewHasher(k.Key, k.Block)
	if h.KeyID() != k.KeyID {
		return fmt.Errorf("the key answer's key id %q does not match its key", k.KeyID)
	}
	o := *p.opts
	o.Hasher = h
	p.opts, p.keyID, p.keyNote = &o, h.KeyID(), ""
	proxywasm.LogInfof(logName+"hash key %s received: hashing prompts and sessions", h.KeyID())
	return nil
}

// dropKey forgets the hash key (the collector has another), and the shared
// copy when it is still the old one, so the next tick fetches the new.
func (p *plugin) dropKey() {
	old := p.keyID
	o := *p.opts
	o.Hasher = nil
	p.opts, p.keyID = &o, ""
	if v, cas, err := proxywasm.GetSharedData(SharedKeyName); err == nil {
		var k wire.Key
		if json.Unmarshal(v, &k) == nil && k.KeyID == old {
			_ = proxywasm.SetSharedData(SharedKeyName, nil, cas)
		}
	}
}

// responseStatus is the :status of the http call being answered.
func responseStatus() string {
	hs, err := proxywasm.GetHttpCallResponseHeaders()
	if err != nil {
		return "unknown"
	}
	for _, h := range hs {
		if h[0] == ":status" {
			return h[1]
		}
	}
	return "unknown"
}

// readJSON decodes the http call's answer body into v.
func readJSON(size int, v any) bool {
	body, err := proxywasm.GetHttpCallResponseBody(0, size)
	return err == nil && json.Unmarshal(body, v) == nil
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
