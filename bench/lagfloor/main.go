// Command lagfloor is the least a Go open-loop load generator can do: sleep
// until each Poisson due time, start a goroutine, POST, drain the response.
// No SSE parsing, no per-event timing, no recording. Its send lag (actual
// start − due time) on a machine is that machine's floor for the lag of
// any generator written in Go, and make bench-replay prints replay's lag
// against it, measured on the same server in the same run.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("target", "", "base URL of an OpenAI-compatible server")
	rate := flag.Float64("rate", 2000, "requests per second (Poisson)")
	secs := flag.Float64("seconds", 6, "length of the run")
	tokens := flag.Int("output-tokens", 16, "max_tokens of each streamed request")
	flag.Parse()
	if *target == "" || *rate <= 0 || *secs <= 0 {
		fmt.Fprintln(os.Stderr, "lagfloor: -target is required; -rate and -seconds must be positive")
		os.Exit(2)
	}
	body := []byte(fmt.Sprintf(`{"model":"m","stream":true,"max_tokens":%d,"ignore_eos":true,"messages":[{"role":"user","content":"hello there"}]}`, *tokens))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096}}
	n := int(*rate * *secs)
	lags := make([]time.Duration, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	var off float64
	for i := range n {
		off += rng.ExpFloat64() / *rate
		due := start.Add(time.Duration(off * 1e9))
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			lags[i] = time.Since(due)
			resp, err := client.Post(*target+"/v1/chat/completions", "application/json", bytes.NewReader(body))
			if err != nil {
				failed.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	q := func(p float64) float64 { return float64(lags[max(int(math.Ceil(p*float64(n)))-1, 0)]) / 1e6 }
	// One machine-readable line: p50 p90 p99 max (ms), failed requests.
	fmt.Printf("%.3f %.3f %.3f %.3f %d\n", q(0.5), q(0.9), q(0.99), q(1), failed.Load())
}
