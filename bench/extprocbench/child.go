package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reprise-llm/reprise/filters/extproc"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/proxy"
)

// The server under test runs in a child process (this program, -serve), so
// that its CPU (getrusage of the child) and memory (/proc/PID/status) are
// its own, not the load generator's. It prints "listening ADDR", answers
// "stats" lines on stdin with one line of counters, and on EOF shuts down
// as the proxy program does (stop accepting, let streams finish, close
// the capture) and exits.

// serveChild is the child's main: mode "extproc" or "proxy" (forwarding
// to upstream), capturing into dir.
func serveChild(mode, upstream, dir, profile string) error {
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	origin := time.Now()
	hasher := capture.NewHasher(nil, capture.DefaultBlockChars)
	w, err := capture.NewWriter(dir, capture.WriterOptions{QueueSize: 1 << 16, Manifest: capture.Manifest{
		Start: origin, Source: "extprocbench " + mode, Block: hasher.BlockChars(), KeyID: hasher.KeyID(), Content: capture.ContentHashed,
	}})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var stats func() (records, open int64)
	var stop func()
	switch mode {
	case "extproc":
		x, err := extproc.New(extproc.Config{Capture: capture.Options{Hasher: hasher}, UpstreamHeader: extproc.DefaultUpstreamHeader}, w, origin, nil, nil)
		if err != nil {
			return err
		}
		gs := extproc.NewGRPCServer(x)
		go func() { _ = gs.Serve(ln) }()
		stats = func() (int64, int64) { s := x.Stats(); return s.Records, s.Open }
		stop = func() { gs.GracefulStop(); x.Wait() }
	case "proxy":
		p, err := proxy.New(proxy.Config{Upstream: upstream, UpstreamHeader: extproc.DefaultUpstreamHeader}, w, hasher, origin, nil)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: p, Protocols: proxy.ServerProtocols(true)}
		go func() { _ = srv.Serve(ln) }()
		stats = func() (int64, int64) { s := p.Stats(); return s.Recorded, s.InFlight }
		stop = func() { _ = srv.Shutdown(context.Background()); p.Wait() }
	default:
		return fmt.Errorf("-serve %q: want extproc or proxy", mode)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "stats" {
			records, open := stats()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("records=%d open=%d heap_inuse=%d goroutines=%d\n", records, open, ms.HeapInuse, runtime.NumGoroutine())
		}
	}
	stop()
	return w.Close()
}

// child is a running server process.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	addr  string
	start time.Time
}

// childStats is one answer to "stats".
type childStats struct {
	records, open, heapInuse, goroutines int64
}

var statsLine = regexp.MustCompile(`^records=(\d+) open=(\d+) heap_inuse=(\d+) goroutines=(\d+)$`)

// startChild starts this program as a server in mode.
func startChild(mode, upstream, dir, profile string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", mode, "-upstream", upstream, "-dir", dir, "-profile", profile)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(outPipe), start: time.Now()}
	if !c.out.Scan() || !strings.HasPrefix(c.out.Text(), "listening ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s child did not start", mode)
	}
	c.addr = strings.TrimPrefix(c.out.Text(), "listening ")
	return c, nil
}

// stats asks the child for its counters.
func (c *child) stats() (childStats, error) {
	if _, err := io.WriteString(c.in, "stats\n"); err != nil {
		return childStats{}, err
	}
	if !c.out.Scan() {
		return childStats{}, fmt.Errorf("child exited: %v", c.out.Err())
	}
	m := statsLine.FindStringSubmatch(c.out.Text())
	if m == nil {
		return childStats{}, fmt.Errorf("child said %q", c.out.Text())
	}
	var v [4]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	return childStats{records: v[0], open: v[1], heapInuse: v[2], goroutines: v[3]}, nil
}

// waitRecords polls until the child has handed n records to its writer.
func (c *child) waitRecords(n int64) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.stats()
		if err != nil {
			return err
		}
		if st.records >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d records after 30s", st.records, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rssKB is the child's resident set size now, in kB.
func (c *child) rssKB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// stop shuts the child down and returns the CPU time it used in all
// (user + system, from getrusage of the child).
func (c *child) stop() (time.Duration, error) {
	_ = c.in.Close()
	for c.out.Scan() {
	}
	if err := c.cmd.Wait(); err != nil {
		return 0, err
	}
	ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, fmt.Errorf("no rusage on this platform")
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
