// Command proxybench measures what the capturing proxy costs, against
// baselines measured in the same run on loopback: the upstream reached
// directly, and a plain httputil.ReverseProxy that captures nothing.
//
// Two passes per path, against a fast SSE upstream (N events, no delay):
//   - closed loop at fixed concurrency: requests per second;
//   - open loop at a fixed rate: time to first content byte (TTFT) p50/p99,
//     measured from the intended send time, once per response length in
//     -ttft-events. Long responses at 1,000 req/s saturate a small machine
//     (the upstream and the load generator share its cores with the proxy,
//     which in production they do not), and TTFT then measures CPU queueing
//     as much as the proxy; short ones leave the cores idle enough to see
//     the hop itself. Both are printed.
//
// Both passes interleave the paths in rounds (rotating order) so that drift
// in the machine's load hits them alike; throughput is each path's median
// round, TTFT percentiles are over every round's requests pooled.
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
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
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
	rounds      = flag.Int("rounds", 5, "rounds; each runs every path once, in rotating order (closed loop: the median round counts; open loop: requests pooled)")
	rate        = flag.Float64("rate", 1000, "open-loop requests per second for the TTFT pass")
	rateFor     = flag.Duration("rate-duration", 5*time.Second, "open-loop time per path and response length, split across -rounds")
	ttftEvents  = flag.String("ttft-events", "16,128", "SSE content events per response in the open-loop TTFT passes, comma-separated")
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
	var lengths []int
	for _, f := range strings.Split(*ttftEvents, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-ttft-events %q: %q is not a positive count", *ttftEvents, f)
		}
		lengths = append(lengths, n)
	}
	upstream, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := *events
		if v, err := strconv.Atoi(r.Header.Get(eventsHeader)); err == nil && v > 0 {
			n = v // the open-loop passes' response length
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := 0; i < n; i++ {
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

	fmt.Printf("proxybench: closed loop: %d SSE events per response, %d clients, %d rounds of %v per path; open loop: %.0f req/s, %v per path and response length (%s events), in %d rounds\n\n",
		*events, *concurrency, *rounds, *duration, *rate, *rateFor, *ttftEvents, *rounds)
	tput := map[string]float64{}
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
	open := append(paths, shadowPath)
	type ttftResult struct{ p50, p99 [4]time.Duration }
	results := make([]ttftResult, len(lengths))
	// p50 differences (capturing - direct) per round, to show the noise.
	roundDiffs := make([][]float64, len(lengths))
	slice := *rateFor / time.Duration(*rounds)
	for li, n := range lengths {
		pooled := make([][]time.Duration, len(open))
		for r := 0; r < *rounds; r++ {
			var p50 [4]time.Duration
			for k := range open {
				i := (k + r) % len(open)
				lat, failed := openLoop(client, open[i].url, body, n, *rate, slice)
				if failed > 0 {
					fmt.Printf("  note: %s: %d requests failed in the open-loop pass\n", open[i].name, failed)
				}
				pooled[i] = append(pooled[i], lat...)
				p50[i] = quantile(lat, 0.50)
			}
			roundDiffs[li] = append(roundDiffs[li], ms(p50[2]-p50[0]))
		}
		for i := range open {
			results[li].p50[i], results[li].p99[i] = quantile(pooled[i], 0.50), quantile(pooled[i], 0.99)
		}
		sort.Float64s(roundDiffs[li])
	}
	// Shadow exchanges end within their 2 s timeout; their records must
	// reach the writer before it closes.
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 5*time.Second)
	pxShadow.StopShadow(stopCtx)
	cancelStop()
	pxShadow.Wait()
	px.Wait()
	if err := w.Close(); err != nil {
		return err
	}
	st := w.Stats()
	fmt.Printf("%-30s %10s", "path", "req/s")
	for _, n := range lengths {
		fmt.Printf("  %14s %9s", fmt.Sprintf("ttft p50 (%d ev)", n), "p99")
	}
	fmt.Println()
	for i, p := range open {
		if i < len(paths) {
			fmt.Printf("%-30s %10.0f", p.name, tput[p.name])
		} else {
			fmt.Printf("%-30s %10s", p.name, "-")
		}
		for li := range lengths {
			fmt.Printf("  %14s %9s", results[li].p50[i].Round(time.Microsecond), results[li].p99[i].Round(time.Microsecond))
		}
		fmt.Println()
	}
	c, pl, d := paths[2].name, paths[1].name, paths[0].name
	fmt.Println()
	fmt.Printf("throughput  capturing / plain ReverseProxy = %.3f   (floor 0.95; per-round ratios %.3f … %.3f over %d rounds)\n", tput[c]/tput[pl], ratios[0], ratios[len(ratios)-1], len(ratios))
	fmt.Printf("throughput  capturing / direct               = %.3f\n", tput[c]/tput[d])
	for li, n := range lengths {
		res := results[li]
		fmt.Printf("added TTFT vs direct at %.0f req/s, %d-event responses: p50 %+.3f ms (ceiling 0.2), p99 %+.3f ms (ceiling 1); per-round p50 %+.3f … %+.3f ms\n",
			*rate, n, ms(res.p50[2]-res.p50[0]), ms(res.p99[2]-res.p99[0]), roundDiffs[li][0], roundDiffs[li][len(roundDiffs[li])-1])
		fmt.Printf("added TTFT vs plain ReverseProxy, %d-event responses: p50 %+.3f ms, p99 %+.3f ms (the plain proxy alone adds p50 %+.3f ms)\n",
			n, ms(res.p50[2]-res.p50[1]), ms(res.p99[2]-res.p99[1]), ms(res.p50[1]-res.p50[0]))
		fmt.Printf("shadow at fraction 1.0 to a stalled candidate, %d-event responses: primary TTFT p99 %.3f ms vs %.3f ms without shadow (%+.3f ms; should be within noise)\n",
			n, ms(res.p99[3]), ms(res.p99[2]), ms(res.p99[3]-res.p99[2]))
	}
	if st.Written > 0 {
		fmt.Printf("capture: %d records, %d dropped, %d bytes on disk = %.0f bytes/record (hashed mode)\n",
			st.Written, st.Dropped, st.Bytes, float64(st.Bytes)/float64(st.Written))
	}
	return nil
}

// eventsHeader tells the bench upstream how many events to send; the
// proxies forward it untouched.
const eventsHeader = "X-Bench-Events"

// quantile is the nearest-rank q-quantile of v (sorted in place).
func quantile(v []time.Duration, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	k := int(math.Ceil(q*float64(len(v)))) - 1
	return v[max(k, 0)]
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
// events > 0 asks the bench upstream for that many events.
func do(client *http.Client, url string, body []byte, events int) (time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", bytesReader(body))
	req.Header.Set("Content-Type", "application/json")
	if events > 0 {
		req.Header.Set(eventsHeader, strconv.Itoa(events))
	}
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
				if _, err := do(client, url, body, 0); err == nil {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// openLoop sends at a fixed rate against absolute due times and returns
// each successful request's TTFT from its intended send time.
func openLoop(client *http.Client, url string, body []byte, events int, rate float64, d time.Duration) (lat []time.Duration, failed int) {
	total := int(rate * d.Seconds())
	all := make([]time.Duration, total)
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
			t, err := do(client, url, body, events)
			if err != nil {
				errs[i] = true
				return
			}
			all[i] = t + late
		}(i, due)
	}
	wg.Wait()
	for i, l := range all {
		if errs[i] {
			failed++
			continue
		}
		lat = append(lat, l)
	}
	return lat, failed
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
