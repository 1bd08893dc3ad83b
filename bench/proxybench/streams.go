package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The -streams mode measures the memory of the built proxy program holding
// many open SSE streams: a slow upstream in this process trickles events,
// N clients stream through the proxy (a child process) at once, and the
// proxy's peak RSS is read from the kernel (/proc/PID/status VmHWM).

var (
	streams     = flag.Int("streams", 0, "memory mode: hold this many concurrent SSE streams open through -proxy-bin and report its peak RSS (0: the throughput/TTFT benchmark)")
	proxyBin    = flag.String("proxy-bin", "bin/proxy", "memory mode: the proxy program to run")
	streamGap   = flag.Duration("stream-gap", 250*time.Millisecond, "memory mode: delay between the upstream's events")
	streamEvts  = flag.Int("stream-events", 40, "memory mode: content events per stream (a stream stays open events × gap)")
	ceilingMB   = flag.Float64("rss-ceiling-mb", 256, "memory mode: the RSS ceiling to compare with")
	listenRegex = regexp.MustCompile(`listening on (http://[0-9.:\[\]]+)`)
)

func runStreams() error {
	n := *streams
	var open atomic.Int64 // streams whose upstream handler is running
	chunk := []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok\"}}]}\n\n")
	upstream, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		open.Add(1)
		defer open.Add(-1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		t := time.NewTicker(*streamGap)
		defer t.Stop()
		for i := 0; i < *streamEvts; i++ {
			_, _ = w.Write(chunk)
			fl.Flush()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":64,\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n", *streamEvts)
	}))
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "proxybench-rss")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, *proxyBin, "--upstream", upstream, "--listen", "127.0.0.1:0", "--admin-listen=",
		"--capture-dir", dir+"/capture", "--log-level", "warn")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", *proxyBin, err)
	}
	pid := cmd.Process.Pid
	proxyURL, err := waitListening(stdout)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	idle, _ := procStatus(pid, "VmRSS")

	body := `{"model":"m","stream":true,"max_tokens":128,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},{"role":"user","content":"Summarise the plot of a long novel in one paragraph, please, with names."}]}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 30 * time.Second}).DialContext}}
	fmt.Printf("proxy-rss: %d concurrent SSE streams through %s (pid %d), %d events %v apart each (~%v open)\n",
		n, *proxyBin, pid, *streamEvts, *streamGap, time.Duration(*streamEvts)**streamGap)
	var wg sync.WaitGroup
	var okN, failN atomic.Int64
	var firstErr atomic.Pointer[string]
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := streamOnce(client, proxyURL, body); err != nil {
				failN.Add(1)
				msg := err.Error()
				firstErr.CompareAndSwap(nil, &msg)
				return
			}
			okN.Add(1)
		}()
	}
	// Sample while the streams are open: the peak concurrency reached and
	// the RSS at that moment (VmHWM keeps the peak regardless).
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var maxOpen int64
	var rssAtMax int64
	tick := time.NewTicker(100 * time.Millisecond)
sample:
	for {
		select {
		case <-done:
			break sample
		case <-tick.C:
			if o := open.Load(); o >= maxOpen {
				maxOpen = o
				rssAtMax, _ = procStatus(pid, "VmRSS")
			}
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	hwm, err := procStatus(pid, "VmHWM")
	if err != nil {
		return err
	}
	cancel() // SIGINT: the proxy drains and closes its capture
	_ = cmd.Wait()

	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	fmt.Printf("  streams completed %d, failed %d, peak concurrently open at the upstream %d, wall %v\n",
		okN.Load(), failN.Load(), maxOpen, elapsed.Round(time.Millisecond))
	if p := firstErr.Load(); p != nil {
		fmt.Printf("  first failure: %s\n", *p)
	}
	fmt.Printf("  proxy RSS idle %.1f MB, at peak concurrency %.1f MB, peak (VmHWM) %.1f MB   (ceiling %.0f MB: %s)\n",
		mb(idle), mb(rssAtMax), mb(hwm), *ceilingMB, verdict(mb(hwm) <= *ceilingMB))
	if maxOpen > 0 {
		fmt.Printf("  ≈ %.1f KB per open stream above idle\n", float64(hwm-idle)/float64(maxOpen))
	}
	if failN.Load() > 0 || maxOpen < int64(n) {
		return fmt.Errorf("only %d of %d streams were open at once (%d failed)", maxOpen, n, failN.Load())
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "within"
	}
	return "OVER"
}

func streamOnce(client *http.Client, url, body string) error {
	resp, err := client.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), "[DONE]") {
		return errors.New("stream ended without [DONE]")
	}
	return nil
}

// waitListening reads the proxy's stdout until it prints its address.
func waitListening(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := listenRegex.FindStringSubmatch(sc.Text()); m != nil {
			return m[1], nil
		}
	}
	return "", errors.New("the proxy exited before printing its address")
}

// procStatus returns a "Vm…: N kB" field of /proc/PID/status, in kB.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading proxy memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
