package engine

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// BenchmarkDispatchPoisson2000 runs the open-loop dispatcher alone, in real
// time, at 2,000 req/s Poisson for 1 s, and reports the send lag
// percentiles (sent − intended). Each request's body takes buildCPU of CPU
// to build (a few-thousand-token synthetic prompt); the send only takes its
// timestamp and holds its slot 1 ms. "inline" builds the body on the
// request's goroutine, after its due time, as the client did before bodies
// were built ahead; "prebuilt" builds it while the dispatcher waits for the
// due time; "+spin" sets Config.Spin to 1 ms. Run with -benchtime=1x; the numbers depend on the machine's load.
func BenchmarkDispatchPoisson2000(b *testing.B) {
	const buildCPU = 100 * time.Microsecond
	spinBuild := func(*workload.Request) *prebuilt {
		for t := time.Now(); time.Since(t) < buildCPU; {
		}
		return &prebuilt{}
	}
	for _, mode := range []string{"inline", "prebuilt", "inline+spin", "prebuilt+spin", "inline", "prebuilt", "inline+spin", "prebuilt+spin"} {
		b.Run(mode, func(b *testing.B) {
			var build buildFunc
			if strings.HasPrefix(mode, "prebuilt") {
				build = spinBuild
			}
			spin := time.Duration(0)
			if strings.HasSuffix(mode, "+spin") {
				spin = time.Millisecond
			}
			benchDispatch(b, build, spinBuild, spin)
		})
	}
}

func benchDispatch(b *testing.B, build, inline buildFunc, spin time.Duration) {
	const rate, n = 2000, 2000
	var lags []time.Duration
	for range b.N {
		cfg := (&Config{Target: "http://x", Profile: ProfilePoisson, Rate: rate, Seed: 1, MaxRequests: n, Spin: spin}).withDefaults()
		origin := time.Now()
		send := func(_ context.Context, req *workload.Request, pre *prebuilt, intended time.Duration) Result {
			if pre == nil {
				inline(req)
			}
			sent := time.Since(origin)
			time.Sleep(time.Millisecond)
			return Result{Index: req.Index, Intended: intended, Sent: sent, End: time.Since(origin), Status: 200}
		}
		run, err := executeWith(context.Background(), cfg, evenly(n, 0), origin, send, build)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range run.Results {
			lags = append(lags, r.Sent-r.Intended)
		}
	}
	slices.Sort(lags)
	q := func(p float64) float64 { return float64(lags[int(p*float64(len(lags)-1))]) / float64(time.Microsecond) }
	b.ReportMetric(q(0.5), "p50-lag-µs")
	b.ReportMetric(q(0.9), "p90-lag-µs")
	b.ReportMetric(q(0.99), "p99-lag-µs")
	b.ReportMetric(q(1), "max-lag-µs")
}

// BenchmarkDispatchOverhead is the dispatcher's own cost per request: every
// request due at once, a send that returns at once.
func BenchmarkDispatchOverhead(b *testing.B) {
	cfg := (&Config{Target: "http://x", Profile: ProfileConstant, Rate: 1e12, MaxRequests: b.N}).withDefaults()
	origin := time.Now()
	send := func(_ context.Context, req *workload.Request, _ *prebuilt, intended time.Duration) Result {
		return Result{Index: req.Index, Intended: intended, Status: 200}
	}
	src := evenly(b.N, 0)
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := execute(context.Background(), cfg, src, origin, send); err != nil {
		b.Fatal(err)
	}
}
