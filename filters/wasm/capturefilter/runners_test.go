package capturefilter_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/reprise-llm/reprise/filters/wasm/capturefilter"
	"github.com/reprise-llm/reprise/filters/wasm/filtertest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest"
)

// TestModuleABI checks that the compiled module exports what Envoy calls
// (the proxy-wasm ABI 0.2.0 entry points and the WASI reactor's
// _initialize) and imports nothing beyond the proxy-wasm host functions and
// WASI preview 1. The tetratelabs SDK built with standard Go fails the
// first half: it exports no proxy_on_* function.
func TestModuleABI(t *testing.T) {
	mod := wasmModule(t)
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, mod)
	if err != nil {
		t.Fatal(err)
	}
	exports := cm.ExportedFunctions()
	for _, name := range []string{
		"_initialize", "proxy_abi_version_0_2_0", "proxy_on_memory_allocate", "proxy_on_vm_start", "proxy_on_configure",
		"proxy_on_context_create", "proxy_on_tick", "proxy_on_done", "proxy_on_delete", "proxy_on_log",
		"proxy_on_request_headers", "proxy_on_request_body", "proxy_on_request_trailers",
		"proxy_on_response_headers", "proxy_on_response_body", "proxy_on_response_trailers", "proxy_on_http_call_response",
	} {
		if _, ok := exports[name]; !ok {
			t.Errorf("module does not export %s", name)
		}
	}
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch {
		case mod == "env" && strings.HasPrefix(name, "proxy_"):
		case mod == "wasi_snapshot_preview1":
		default:
			t.Errorf("module imports %s.%s, which Envoy does not provide", mod, name)
		}
	}
}

// capture runs the script through the filter on r against its own
// collector (hash key planted, as another worker would leave it) and
// returns the records the collector wrote and the filter's counters.
func captureScript(t *testing.T, r filtertest.Runner) ([]*capture.Record, map[string]uint64) {
	t.Helper()
	col := startCollector(t, r, ingest.Config{})
	h := startHost(t, r, pluginConfig(`"session_header": "x-session"`),
		filtertest.Options{Collector: col.URL, Answer: true, Key: col.KeyJSON()})
	defer h.Close() // the emulator is a singleton: the next run needs it
	ex := script()
	doAll(t, h, ex)
	flush(t, h) // one batch: both runners send it; only native gets the answer
	recs := col.Sink.Records()
	if len(recs) != len(ex) {
		t.Fatalf("%s: collector wrote %d records, want %d", r, len(recs), len(ex))
	}
	counts := map[string]uint64{}
	for _, m := range []string{capturefilter.MetricRequests, capturefilter.MetricQueued, capturefilter.MetricNotParsed,
		capturefilter.MetricUnhashed, capturefilter.MetricPanics, capturefilter.MetricDroppedQueueFull} {
		counts[m] = counter(t, h, m)
	}
	return recs, counts
}

// TestRunnersAgree: the compiled module under wazero and the native filter
// capture the same records. Everything but timings must be equal; wazero's
// clock is fake (+1 ms per reading), so timings are compared by presence,
// order and count of chunks.
func TestRunnersAgree(t *testing.T) {
	native, nc := captureScript(t, filtertest.Native)
	wasm, wc := captureScript(t, filtertest.Wasm)
	if !reflect.DeepEqual(nc, wc) {
		t.Errorf("counters differ:\nnative %v\nwasm   %v", nc, wc)
	}
	nb, wb := byID(native), byID(wasm)
	for seq, n := range nb {
		w := wb[seq]
		if w == nil {
			t.Errorf("record %s: missing from the wasm run", seq)
			continue
		}
		checkTimings(t, "native", n)
		checkTimings(t, "wasm", w)
		if a, b := untimed(n), untimed(w); !reflect.DeepEqual(a, b) {
			t.Errorf("record %s differs beyond timings:\nnative %+v\nwasm   %+v", seq, a, b)
		}
	}
	if w := wasm[0].Wall; w.Before(filtertest.WazeroEpoch) || w.After(filtertest.WazeroEpoch.AddDate(0, 0, 1)) {
		t.Errorf("wasm wall time %v: not wazero's clock, is the module reading the WASI clock?", w)
	}
}

// untimed is r without its id's per-VM prefix and timings; chunk gaps are
// kept as a count.
func untimed(r *capture.Record) capture.Record {
	c := *r
	_, c.ID, _ = strings.Cut(c.ID, "-")
	c.T, c.TTFBNs, c.TTFTNs, c.E2ENs = 0, 0, 0, 0
	c.Wall = time.Time{} // each runner's clock: checked in checkTimings and below
	c.ChunksUS = make([]int64, len(r.ChunksUS))
	return c
}

// checkTimings checks what holds under any clock: a response has a first
// byte time, the first token comes after it, the end after both.
func checkTimings(t *testing.T, runner string, r *capture.Record) {
	t.Helper()
	if r.Wall.IsZero() {
		t.Errorf("%s record %s: no wall time", runner, r.ID)
	}
	if r.Status > 0 && r.TTFBNs <= 0 {
		t.Errorf("%s record %s: status %d without ttfb", runner, r.ID, r.Status)
	}
	if r.TTFTNs > 0 && r.TTFTNs < r.TTFBNs {
		t.Errorf("%s record %s: ttft %d before ttfb %d", runner, r.ID, r.TTFTNs, r.TTFBNs)
	}
	if r.E2ENs < max(r.TTFBNs, r.TTFTNs) {
		t.Errorf("%s record %s: e2e %d before ttfb %d / ttft %d", runner, r.ID, r.E2ENs, r.TTFBNs, r.TTFTNs)
	}
	if len(r.ChunksUS) > 0 && r.TTFTNs == 0 {
		t.Errorf("%s record %s: chunks without ttft", runner, r.ID)
	}
}
