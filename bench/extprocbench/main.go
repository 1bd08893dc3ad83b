// Command extprocbench measures the Envoy ext_proc collector against the
// reverse proxy, in one run on loopback, under the same load: -streams
// concurrent streamed chat completions of -events SSE events each.
//
//   - Throughput and CPU: each front end runs in a child process (this
//     program with -serve), fed by this one: the ext_proc server by a
//     stand-in Envoy sending exactly what Envoy sends in observability
//     mode, each event its own body chunk; the proxy by HTTP clients, in
//     front of an SSE upstream here. Records per second (streams / wall
//     time until the last stream ended) and CPU per record (getrusage of
//     the child, less an idle child's start and stop), in interleaved
//     rounds; the median round counts.
//   - Receipt delay: the ext_proc server in this process, so that send and
//     receipt share one monotonic clock: for every event, its receipt time
//     as the record says (arrival + chunks_us) minus the time just before
//     the stand-in Envoy sent it; under the full load, and paced (fewer
//     streams, events -paced-gap apart).
//   - Memory: -mem-streams streams held open through each front end (a
//     child again): its RSS and live heap then, against its idle ones.
//
// Everything shares the machine's cores (on a small machine the load
// generator competes with the server), so read the ratios.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/reprise-llm/reprise/filters/extproc"
	"github.com/reprise-llm/reprise/internal/capture"
)

var (
	streams      = flag.Int("streams", 1000, "concurrent streams in the throughput and delay passes")
	events       = flag.Int("events", 128, "SSE content events per response")
	rounds       = flag.Int("rounds", 3, "throughput rounds, each running both front ends in rotating order")
	conns        = flag.Int("conns", 4, "HTTP/2 connections of the stand-in Envoy (one per Envoy worker thread)")
	pacedStreams = flag.Int("paced-streams", 50, "streams open at a time in the paced delay pass (twice as many run)")
	pacedGap     = flag.Duration("paced-gap", 2*time.Millisecond, "gap between events in the paced delay pass")
	memStreams   = flag.Int("mem-streams", 2000, "streams held open at once in the memory pass")
	cpuProfile   = flag.String("cpuprofile", "", "write a CPU profile of the first throughput round's ext_proc child to this file")

	serveMode = flag.String("serve", "", "child mode: serve this front end (extproc or proxy) and take commands on stdin")
	upstreamF = flag.String("upstream", "", "child mode: the proxy's upstream")
	dirF      = flag.String("dir", "", "child mode: the capture directory")
	profileF  = flag.String("profile", "", "child mode: write a CPU profile of the serving to this file")
)

func main() {
	flag.Parse()
	var err error
	if *serveMode != "" {
		err = serveChild(*serveMode, *upstreamF, *dirF, *profileF)
	} else {
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "extprocbench:", err)
		os.Exit(1)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "extprocbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	up, err := startUpstream(*events)
	if err != nil {
		return err
	}
	fmt.Printf("extprocbench: %d concurrent streams x %d SSE events, ext_proc (stand-in Envoy, %d HTTP/2 connections, observability mode) vs the reverse proxy (HTTP clients, SSE upstream), loopback\n\n",
		*streams, *events, *conns)

	start := time.Now()
	if err := throughput(tmp, up); err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	if err := delays(tmp); err != nil {
		return fmt.Errorf("receipt delay: %w", err)
	}
	if err := memory(tmp, up); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	fmt.Printf("\nwall %v\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// pass is one front end's run under the throughput load.
type pass struct {
	rps        float64       // records per second
	cpuPerRec  time.Duration // child CPU per record, idle start/stop removed
	wall       time.Duration
	childCPU   time.Duration
	recordsOut int
}

func throughput(tmp string, up *upstream) error {
	idle := map[string]time.Duration{}
	for _, mode := range []string{"extproc", "proxy"} {
		c, err := startChild(mode, up.url, filepath.Join(tmp, "idle-"+mode), "")
		if err != nil {
			return err
		}
		if idle[mode], err = c.stop(); err != nil {
			return err
		}
	}
	results := map[string][]pass{}
	modes := []string{"extproc", "proxy"}
	for r := 0; r < *rounds; r++ {
		for k := range modes {
			mode := modes[(k+r)%len(modes)]
			profile := ""
			if r == 0 && mode == "extproc" {
				profile = *cpuProfile
			}
			p, err := throughputPass(mode, filepath.Join(tmp, fmt.Sprintf("tput-%s-%d", mode, r)), up, idle[mode], profile)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", mode, r, err)
			}
			results[mode] = append(results[mode], p)
		}
	}
	fmt.Printf("throughput and CPU (%d rounds, median; child CPU less an idle child's %v / %v):\n", *rounds, idle["extproc"].Round(time.Millisecond), idle["proxy"].Round(time.Millisecond))
	med := map[string]pass{}
	for _, mode := range modes {
		ps := results[mode]
		rps := medianOf(ps, func(p pass) float64 { return p.rps })
		cpu := medianOf(ps, func(p pass) float64 { return float64(p.cpuPerRec) })
		med[mode] = pass{rps: rps, cpuPerRec: time.Duration(cpu)}
		fmt.Printf("  %-8s %8.0f records/s   CPU %6.1f µs/record   (rounds:", mode, rps, cpu/1e3)
		for _, p := range ps {
			fmt.Printf(" %.0f/s %.0fµs", p.rps, float64(p.cpuPerRec)/1e3)
		}
		fmt.Println(")")
	}
	var rpsRatios, cpuRatios []float64
	for r := range *rounds {
		rpsRatios = append(rpsRatios, results["extproc"][r].rps/results["proxy"][r].rps)
		cpuRatios = append(cpuRatios, float64(results["extproc"][r].cpuPerRec)/float64(results["proxy"][r].cpuPerRec))
	}
	slices.Sort(rpsRatios)
	slices.Sort(cpuRatios)
	fmt.Printf("  ratio ext_proc/proxy: records/s %.2fx (rounds %.2f..%.2f), CPU per record %.2fx (rounds %.2f..%.2f)\n\n",
		med["extproc"].rps/med["proxy"].rps, rpsRatios[0], rpsRatios[len(rpsRatios)-1],
		float64(med["extproc"].cpuPerRec)/float64(med["proxy"].cpuPerRec), cpuRatios[0], cpuRatios[len(cpuRatios)-1])
	return nil
}

func throughputPass(mode, dir string, up *upstream, idleCPU time.Duration, profile string) (pass, error) {
	c, err := startChild(mode, up.url, dir, profile)
	if err != nil {
		return pass{}, err
	}
	n := *streams
	var loadErr error
	var wall time.Duration
	switch mode {
	case "extproc":
		es, err := dialEnvoys(c.addr, *conns)
		if err != nil {
			return pass{}, err
		}
		t0 := time.Now()
		loadErr = extprocLoad(es, n, *events, 0, 0, nil)
		wall = time.Since(t0)
		es.close()
	case "proxy":
		t0 := time.Now()
		loadErr = proxyLoad("http://"+c.addr, n)
		wall = time.Since(t0)
	}
	if loadErr == nil {
		loadErr = c.waitRecords(int64(n))
	}
	cpu, err := c.stop()
	if err := errors.Join(loadErr, err); err != nil {
		return pass{}, err
	}
	recs, err := countRecords(dir, *events)
	if err != nil {
		return pass{}, err
	}
	if recs != n {
		return pass{}, fmt.Errorf("%d complete records of %d streams", recs, n)
	}
	return pass{rps: float64(n) / wall.Seconds(), cpuPerRec: (cpu - idleCPU) / time.Duration(n), wall: wall, childCPU: cpu, recordsOut: recs}, nil
}

// countRecords reads a capture back and counts the complete records with
// every event.
func countRecords(dir string, events int) (int, error) {
	r, err := capture.Open(dir)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	n := 0
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if !rec.Aborted && len(rec.ChunksUS) == events && rec.Status == 200 {
			n++
		}
	}
}

// delays measures the ext_proc receipt delay in this process.
func delays(tmp string) error {
	fmt.Printf("ext_proc receipt delay (receipt time in the record - time just before the send; server in this process):\n")
	// The paced streams arrive at a steady rate, about -paced-streams of
	// them open at a time once the first has ended.
	stagger := time.Duration(*events) * *pacedGap / time.Duration(*pacedStreams)
	for _, p := range []struct {
		name         string
		streams      int
		gap, stagger time.Duration
	}{
		{fmt.Sprintf("under load, %d streams started together, %d events each back to back", *streams, *events), *streams, 0, 0},
		{fmt.Sprintf("paced, %d streams started %v apart, %d events each %v apart", *pacedStreams*2, stagger.Round(time.Microsecond), *events, *pacedGap),
			*pacedStreams * 2, *pacedGap, stagger},
	} {
		hdr, ev, err := delayPass(filepath.Join(tmp, "delay-"+strconv.Itoa(p.streams)), p.streams, p.gap, p.stagger)
		if err != nil {
			return err
		}
		fmt.Printf("  %s:\n    events  p50 %7.1f µs  p99 %8.1f µs  max %8.1f µs  (%d events)\n    headers p50 %7.1f µs  p99 %8.1f µs\n",
			p.name, us(pct(ev, 50)), us(pct(ev, 99)), us(pct(ev, 100)), len(ev), us(pct(hdr, 50)), us(pct(hdr, 99)))
	}
	fmt.Println()
	return nil
}

func delayPass(dir string, n int, gap, stagger time.Duration) (hdr, ev []time.Duration, err error) {
	origin := time.Now()
	hasher := capture.NewHasher(nil, capture.DefaultBlockChars)
	w, err := capture.NewWriter(dir, capture.WriterOptions{QueueSize: 1 << 16, Manifest: capture.Manifest{Start: origin, Source: "extprocbench delay",
		Block: hasher.BlockChars(), KeyID: hasher.KeyID(), Content: capture.ContentHashed}})
	if err != nil {
		return nil, nil, err
	}
	x, err := extproc.New(extproc.Config{Capture: capture.Options{Hasher: hasher}}, w, origin, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	gs := extproc.NewGRPCServer(x)
	go func() { _ = gs.Serve(ln) }()
	es, err := dialEnvoys(ln.Addr().String(), *conns)
	if err != nil {
		return nil, nil, err
	}
	times := make([]sendTimes, n)
	loadErr := extprocLoad(es, n, *events, gap, stagger, times)
	es.close()
	gs.GracefulStop()
	x.Wait()
	if err := errors.Join(loadErr, w.Close()); err != nil {
		return nil, nil, err
	}
	r, err := capture.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		i, err := strconv.Atoi(rec.ID[1:])
		if err != nil || i >= n || len(rec.ChunksUS) != len(times[i].events) {
			return nil, nil, fmt.Errorf("record %s: %d events", rec.ID, len(rec.ChunksUS))
		}
		arrival := origin.Add(time.Duration(rec.T))
		hdr = append(hdr, arrival.Sub(times[i].headers))
		var off int64
		for k, d := range rec.ChunksUS {
			off += d
			ev = append(ev, arrival.Add(time.Duration(off)*time.Microsecond).Sub(times[i].events[k]))
		}
	}
	if len(hdr) != n {
		return nil, nil, fmt.Errorf("%d records of %d streams", len(hdr), n)
	}
	slices.Sort(hdr)
	slices.Sort(ev)
	return hdr, ev, nil
}

// memory holds -mem-streams streams open through each front end.
func memory(tmp string, up *upstream) error {
	n := *memStreams
	fmt.Printf("memory with %d streams open at once (each past its response headers and %d events):\n", n, heldEvents)
	type mem struct{ idleRSS, rss, idleHeap, heap, goroutines int64 }
	res := map[string]mem{}
	for _, mode := range []string{"extproc", "proxy"} {
		c, err := startChild(mode, up.url, filepath.Join(tmp, "mem-"+mode), "")
		if err != nil {
			return err
		}
		idle, err := c.stats()
		if err != nil {
			return err
		}
		m := mem{idleRSS: c.rssKB(), idleHeap: idle.heapInuse}
		done := make(chan error, 1)
		var es envoys
		release := make(chan struct{})
		switch mode {
		case "extproc":
			if es, err = dialEnvoys(c.addr, *conns); err != nil {
				return err
			}
			go func() {
				done <- fanOut(n, func(i int) error {
					return extprocStream(es[i%len(es)], "m"+strconv.Itoa(i), *events, 0, heldEvents, release, nil)
				})
			}()
		case "proxy":
			up.hold.Store(true)
			go func() { done <- proxyLoad("http://"+c.addr, n) }()
		}
		// All open: the server says so (and, for the proxy, the upstream
		// holds every stream); then the events in flight settle.
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := c.stats()
			if err != nil {
				return err
			}
			if st.open >= int64(n) && (mode != "proxy" || up.open.Load() >= int64(n)) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d of %d streams open after 30s", mode, st.open, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		m.rss = c.rssKB()
		st, err := c.stats()
		if err != nil {
			return err
		}
		m.heap, m.goroutines = st.heapInuse, st.goroutines
		if mode == "proxy" {
			up.hold.Store(false)
			close(up.release)
		} else {
			close(release)
		}
		if err := <-done; err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		es.close()
		if err := c.waitRecords(int64(n)); err != nil {
			return err
		}
		if _, err := c.stop(); err != nil {
			return err
		}
		res[mode] = m
		fmt.Printf("  %-8s RSS %6.1f MB (idle %5.1f MB, +%5.1f KB/stream)   heap in use %6.1f MB (idle %4.1f MB, +%5.1f KB/stream)   goroutines %d\n",
			mode, mb(m.rss*1024), mb(m.idleRSS*1024), float64(m.rss-m.idleRSS)/float64(n), mb(m.heap), mb(m.idleHeap),
			float64(m.heap-m.idleHeap)/1024/float64(n), m.goroutines)
	}
	x, p := res["extproc"], res["proxy"]
	fmt.Printf("  ratio ext_proc/proxy: RSS %.2fx, RSS above idle %.2fx, heap in use %.2fx\n",
		float64(x.rss)/float64(p.rss), float64(x.rss-x.idleRSS)/float64(p.rss-p.idleRSS), float64(x.heap)/float64(p.heap))
	return nil
}

func medianOf(ps []pass, f func(pass) float64) float64 {
	v := make([]float64, len(ps))
	for i, p := range ps {
		v[i] = f(p)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// pct is the p-th percentile of sorted d (nearest rank).
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d))*p/100+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }
func mb(b int64) float64         { return float64(b) / (1 << 20) }
