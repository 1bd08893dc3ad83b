//go:build reprise_benchstats

package capturefilter

import (
	rtmetrics "runtime/metrics"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
)

// The tick logs the VM's cumulative heap allocations. runtime/metrics,
// not runtime.ReadMemStats: stopping the world traps in a WASI reactor's
// exported call.
func init() {
	samples := []rtmetrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}, {Name: "/memory/classes/total:bytes"}}
	tickHook = func() {
		rtmetrics.Read(samples)
		proxywasm.LogInfof(BenchStatsPrefix+"mallocs=%d total_alloc=%d heap_sys=%d",
			samples[0].Value.Uint64(), samples[1].Value.Uint64(), samples[2].Value.Uint64())
	}
}
