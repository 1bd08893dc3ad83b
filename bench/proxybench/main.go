// Command proxybench measures what the capturing proxy costs, against
// baselines measured in the same run on loopback: the upstream reached
// directly, and a plain httputil.ReverseProxy that captures nothing.
//
// Two passes per path, against a fast SSE upstream (N events, no delay):
//   - closed loop at fixed concurrency: requests per second;
//   - open loop at a fixed rate: time to first content byte (TTFT) p50/p99,
//     measured from the intended send time.
//
// The open-loop pass also runs the capturing proxy shadowing every request
// to a candidate that never answers: the primary's TTFT must not move.
//
// Everything shares the machine's cores, so read the ratios, not the
// absolute numbers.
//
// With -streams N it measures memory instead: the built proxy program's
// peak RSS while N SSE streams are open through it at once (streams.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/proxy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}

var (
	events      = flag.Int("events", 128, "SSE content events per response")
	concurrency = flag.Int("concurrency", 32, "closed-loop clients")
	duration    = flag.Duration("duration", 2*time.Second, "length of each closed-loop pass")
	rounds      = flag.Int("rounds", 5, "closed-loop rounds; each round runs every path once, in rotating order, and the median round counts")
	rate        = flag.Float64("rate", 1000, "open-loop requests per second for the TTFT pass")
	rateFor     = flag.Duration("rate-duration", 5*time.Second, "length of each open-loop pass")
	cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile of one closed-loop pass to this file")
	profilePass = flag.Int("profile-pass", 2, "the pass -cpuprofile covers: 0 direct, 1 plain ReverseProxy, 2 capturing proxy")
)

func run() error {
	flag.Parse()
	if *streams > 0 {
		return runStreams()
	}
	chunk := []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok\"}}]}\n\n")
	usage := []byte("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":64,\"completion_tokens\":" + fmt.Sprint(*events) + "}}\n\ndata: [DONE]\n\n")
	upstream, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := 0; i < *events; i++ {
			_, _ = w.Write(chunk)
			fl.Flush()
		}
		_, _ = w.Write(usage)
	}))
	if err != nil {
		return err
	}
	target, _ := url.Parse(upstream)
	// The baseline gets the same connection pool as the capturing proxy, so
	// the ratio measures capture, not pool sizing.
	plain := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = pr.In.Host }, FlushInterval: -1,
		Transport: &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}}
	plainURL, err := serve(plain)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "proxybench-capture")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	origin := time.Now()
	hasher := capture.NewHasher(nil, capture.DefaultBlockChars)
	w, err := capture.NewWriter(dir, capture.WriterOptions{Manifest: capture.Manifest{Format: capture.FormatName, Version: capture.FormatVersion, Start: origin, Block: hasher.BlockChars(), KeyID: hasher.KeyID(), Content: capture.ContentHashed}})
	if err != nil {
		return err
	}
	px, err := proxy.New(proxy.Config{Upstream: upstream}, w, hasher, origin, nil)
	if err != nil {
		return err
	}
	capURL, err := serve(px)
	if err != nil {
		return err
	}
	// The same capturing proxy shadowing every request to a candidate that
	// never answers: the primary path must not notice (open-loop pass only).
	stalled, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	if err != nil {
		return err
	}
	pxShadow, err := proxy.New(proxy.Config{Upstream: upstream, Shadow: proxy.ShadowConfig{URL: stalled, Fraction: 1, Timeout: 2 * time.Second}}, w, hasher, origin, nil)
	if err != nil {
		return err
	}
	shadowURL, err := serve(pxShadow)
	if err != nil {
		return err
	}

	body := []byte(`{"model":"m","stream":true,"max_tokens":128,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},{"role":"user","content":"Summarise the plot of a long novel in one paragraph, please, with names."}]}`)
	paths := []struct{ name, url string }{{"direct", upstream}, {"httputil.ReverseProxy", plainURL}, {"reprise proxy (capturing)", capURL}}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 0, DisableCompression: true}}

	fmt.Printf("proxybench: %d SSE events per response, %d closed-loop clients, %d rounds of %v per path, open loop at %.0f req/s for %v\n\n",
		*events, *concurrency, *rounds, *duration, *rate, *rateFor)
	tput := map[string]float64{}
	ttft := map[string][2]time.Duration{}
	for _, p := range paths { // warm up connections
		closedLoop(client, p.url, body, *concurrency, 500*time.Millisecond)
	}
	// Rounds interleave the paths so that drift in the machine's load hits
	// them alike; each path's figure is its median round, and the ratio's
	// spread across rounds is printed so noise is visible.
	perRound := make(map[string][]float64)
	for r := 0; r < *rounds; r++ {
		for k := range paths {
			i := (k + r) % len(paths)
			p := paths[i]
			profiling := r == 0 && i == *profilePass && *cpuProfile != ""
			if profiling {
				f, err := os.Create(*cpuProfile)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer f.Close()
			}
			perRound[p.name] = append(perRound[p.name], closedLoop(client, p.url, body, *concurrency, *duration))
			if profiling {
				pprof.StopCPUProfile()
			}
		}
	}
	for _, p := range paths {
		tput[p.name] = median(perRound[p.name])
	}
	var ratios []float64
	for r := 0; r < *rounds; r++ {
		ratios = append(ratios, perRound[paths[2].name][r]/perRound[paths[1].name][r])
	}
	sort.Float64s(ratios)
	shadowPath := struct{ name, url string }{"capturing + shadow (stalled)", shadowURL}
	for _, p := range append(paths, shadowPath) {
		p50, p99, missed := openLoop(client, p.url, body, *rate, *rateFor)
		ttft[p.name] = [2]time.Duration{p50, p99}
		if missed > 0 {
			fmt.Printf("  note: %s: %d requests failed in the open-loop pass\n", p.name, missed)
		}
	}
	pxShadow.Wait() // shadow exchanges end within their 2 s timeout
	if err := w.Close(); err != nil {
		return err
	}
	st := w.Stats()
	fmt.Printf("%-28s %12s %10s %10s %10s\n", "path", "req/s", "ttft p50", "ttft p99", "")
	for _, p := range paths {
		fmt.Printf("%-28s %12.0f %10s %10s\n", p.name, tput[p.name], ttft[p.name][0].Round(time.Microsecond), ttft[p.name][1].Round(time.Microsecond))
	}
	fmt.Printf("%-28s %12s %10s %10s\n", shadowPath.name, "-", ttft[shadowPath.name][0].Round(time.Microsecond), ttft[shadowPath.name][1].Round(time.Microsecond))
	c, pl, d := paths[2].name, paths[1].name, paths[0].name
	fmt.Println()
	fmt.Printf("throughput  capturing / plain ReverseProxy = %.3f   (floor 0.95; per-round ratios %.3f … %.3f over %d rounds)\n", tput[c]/tput[pl], ratios[0], ratios[len(ratios)-1], len(ratios))
	fmt.Printf("throughput  capturing / direct               = %.3f\n", tput[c]/tput[d])
	fmt.Printf("added TTFT vs direct at %.0f req/s: p50 %+.3f ms (ceiling 0.2), p99 %+.3f ms (ceiling 1)\n", *rate,
		ms(ttft[c][0]-ttft[d][0]), ms(ttft[c][1]-ttft[d][1]))
	fmt.Printf("added TTFT vs plain ReverseProxy:   p50 %+.3f ms, p99 %+.3f ms\n", ms(ttft[c][0]-ttft[pl][0]), ms(ttft[c][1]-ttft[pl][1]))
	fmt.Printf("shadow at fraction 1.0 to a stalled candidate: primary TTFT p99 %.3f ms vs %.3f ms without shadow (%+.3f ms; should be within noise)\n",
		ms(ttft[shadowPath.name][1]), ms(ttft[c][1]), ms(ttft[shadowPath.name][1]-ttft[c][1]))
	if st.Written > 0 {
		fmt.Printf("capture: %d records, %d dropped, %d bytes on disk = %.0f bytes/record (hashed mode, %d-event stream)\n",
			st.Written, st.Dropped, st.Bytes, float64(st.Bytes)/float64(st.Written), *events)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() { _ = (&http.Server{Handler: h}).Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// do sends one request and returns the time to its first body byte.
func do(client *http.Client, url string, body []byte) (time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", bytesReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var buf [4096]byte
	var first time.Duration
	for {
		n, err := resp.Body.Read(buf[:])
		if n > 0 && first == 0 {
			first = time.Since(start)
		}
		if err == io.EOF {
			return first, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

func closedLoop(client *http.Client, url string, body []byte, conc int, d time.Duration) float64 {
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := do(client, url, body); err == nil {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// openLoop sends at a fixed rate against absolute due times and measures
// TTFT from each request's intended send time.
func openLoop(client *http.Client, url string, body []byte, rate float64, d time.Duration) (p50, p99 time.Duration, failed int) {
	total := int(rate * d.Seconds())
	lat := make([]time.Duration, total)
	errs := make([]bool, total)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			late := time.Since(due)
			t, err := do(client, url, body)
			if err != nil {
				errs[i] = true
				return
			}
			lat[i] = t + late
		}(i, due)
	}
	wg.Wait()
	var ok []time.Duration
	for i, l := range lat {
		if errs[i] {
			failed++
			continue
		}
		ok = append(ok, l)
	}
	if len(ok) == 0 {
		return 0, 0, failed
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i] < ok[j] })
	return ok[len(ok)/2], ok[len(ok)*99/100], failed
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
