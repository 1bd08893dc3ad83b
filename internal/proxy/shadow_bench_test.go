package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkShadowStalledCandidate measures what a stalled shadow candidate
// costs the primary path: three capturing proxies in front of the same fast
// SSE upstream — no shadow; --shadow to a candidate that accepts
// connections and never answers, at fraction 1.0; --shadow to a dead port
// (connection refused), at fraction 1.0 — are driven in interleaved rounds
// at fixed concurrency, and each one's client-side latency percentiles are
// reported (ms). It prints; it asserts nothing about time.
//
//	go test -run '^$' -bench ShadowStalledCandidate -benchtime 30000x ./internal/proxy/
func BenchmarkShadowStalledCandidate(b *testing.B) {
	const concurrency, round = 8, 500
	backend := httptest.NewServer(sseBackend(16, 0))
	defer backend.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()

	modes := []struct {
		name   string
		shadow string
	}{{"none", ""}, {"stalled", stallingCandidate(b)}, {"dead", dead}}
	type target struct {
		p        *Proxy
		srv      *httptest.Server
		e2e, ttf []time.Duration
	}
	targets := make([]*target, len(modes))
	for i, m := range modes {
		var sc ShadowConfig
		if m.shadow != "" {
			sc = ShadowConfig{URL: m.shadow, Fraction: 1}
		}
		p, err := New(Config{Upstream: backend.URL, Shadow: sc}, &memWriter{full: true}, nil, time.Now(), nil)
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(p)
		defer srv.Close()
		targets[i] = &target{p: p, srv: srv}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * concurrency}}
	defer client.CloseIdleConnections()

	// one sends a request and reads the stream: e2e and time to the first
	// body bytes (the first event), from the client's side.
	one := func(url string) (e2e, first time.Duration, err error) {
		start := time.Now()
		resp, err := client.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(chatBody))
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		buf := make([]byte, 4096)
		n, err := resp.Body.Read(buf)
		first = time.Since(start)
		if n == 0 && err != nil {
			return 0, 0, err
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return 0, 0, err
		}
		return time.Since(start), first, nil
	}

	b.ResetTimer()
	for done := 0; done < b.N; {
		for _, tg := range targets {
			n := min(round, b.N-done)
			var mu sync.Mutex
			var wg sync.WaitGroup
			next := make(chan struct{}, n)
			for range n {
				next <- struct{}{}
			}
			close(next)
			for range concurrency {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range next {
						e2e, first, err := one(tg.srv.URL)
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						tg.e2e, tg.ttf = append(tg.e2e, e2e), append(tg.ttf, first)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
		}
		done += min(round, b.N-done)
	}
	b.StopTimer()

	pct := func(d []time.Duration, q float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[min(int(q*float64(len(s))), len(s)-1)]) / 1e6
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-8s %8s %9s %9s %9s %9s %8s %9s\n", "shadow", "requests", "e2e p50", "e2e p99", "first p50", "first p99", "sent", "skipped")
	for i, tg := range targets {
		st := tg.p.ShadowStats()
		fmt.Fprintf(&table, "%-8s %8d %9.3f %9.3f %9.3f %9.3f %8d %9d\n", modes[i].name, len(tg.e2e),
			pct(tg.e2e, .5), pct(tg.e2e, .99), pct(tg.ttf, .5), pct(tg.ttf, .99), st.Sent, st.SkippedFull)
		b.ReportMetric(pct(tg.e2e, .99), "p99-e2e-ms-"+modes[i].name)
	}
	b.ReportMetric(pct(targets[1].e2e, .99)/pct(targets[0].e2e, .99), "p99-ratio-stalled/none")
	if b.N < 100 {
		return // the benchmark framework's first, one-request run
	}
	b.Logf("latency in ms, concurrency %d, rounds of %d interleaved:\n%s", concurrency, round, table.String())
	for _, tg := range targets {
		tg.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		tg.p.StopShadow(ctx)
		cancel()
	}
}
