package progress

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
	"github.com/reprise-llm/reprise/internal/synth"
	"github.com/reprise-llm/reprise/internal/workload"
)

// syncBuffer is a bytes.Buffer safe for the engine's progress goroutine
// and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPlainLinesDuringASimulatorRun runs a benchmark of about two
// seconds against `replay sim` with a plain display attached, and checks the
// periodic lines and the final one.
func TestPlainLinesDuringASimulatorRun(t *testing.T) {
	url, _ := simtest.Start(t, func(c *sim.Config) {
		c.Slots, c.TTFTBase, c.ITLBase, c.ITLPerSeq = 4, 10*time.Millisecond, 5*time.Millisecond, 0
	})
	src, err := workload.Open("synthetic:prompt_tokens=20,output_tokens=4,samples=100000", workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bodies, err := synth.New(synth.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	d := NewPlain(&out, "candidate")
	ecfg := engine.Config{Target: url, Profile: engine.ProfileConcurrent, Concurrency: 4, MaxSeconds: 2.2}
	d.Attach(&ecfg)
	run, err := engine.Execute(context.Background(), ecfg, src, bodies)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()

	t.Logf("output:\n%s", out.String())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("want at least one progress line and the final one, got:\n%s", out.String())
	}
	tick := regexp.MustCompile(`^candidate: +[0-9.]+s  done \d+  sent \d+  [0-9.]+ req/s  in flight \d+  errors \d+  TTFT (p50 - p99 -|p50 [0-9.]+m?s p99 [0-9.]+m?s)$`)
	for _, l := range lines[:len(lines)-1] {
		if !tick.MatchString(l) {
			t.Errorf("progress line %q does not match %s", l, tick)
		}
	}
	final := lines[len(lines)-1]
	ok := 0
	for i := range run.Results {
		if run.Results[i].OK() {
			ok++
		}
	}
	want := "candidate: finished  "
	if !strings.HasPrefix(final, want) || !strings.Contains(final, "done "+strconv.Itoa(len(run.Results))+"  ") ||
		!strings.Contains(final, "in flight 0  errors "+strconv.Itoa(len(run.Results)-ok)+"  ") || !strings.Contains(final, "TTFT p50 ") || strings.Contains(final, "p50 -") {
		t.Errorf("final line %q: want %d done, %d errors and TTFT percentiles", final, len(run.Results), len(run.Results)-ok)
	}
}

// TestTerminalRendererShowsTheFields drives the mpb renderer into a buffer
// as if it were a terminal.
func TestTerminalRendererShowsTheFields(t *testing.T) {
	for _, total := range []int{0, 10} {
		var out syncBuffer
		d := NewTerminal(&out, "rate@8", total, 160)
		for i := 1; i <= 3; i++ {
			d.Record(engine.Result{Sent: 0, FirstToken: time.Duration(i) * 10 * time.Millisecond, End: time.Duration(i) * 20 * time.Millisecond, Status: 200})
			d.Update(engine.Progress{Elapsed: time.Duration(i) * time.Second, Sent: i + 2, Done: i, InFlight: 2})
		}
		d.Record(engine.Result{Status: 500, End: 3 * time.Second})
		d.Close()
		got := out.String()
		t.Logf("total %d: %q", total, got)
		for _, want := range []string{"rate@8", "done 4", "sent 5", "in flight 0", "errors 1", "TTFT p50 20.0ms p99 30.0ms", "req/s"} {
			if !strings.Contains(got, want) {
				t.Errorf("total %d: rendering lacks %q:\n%q", total, want, got)
			}
		}
		if total > 0 && !strings.Contains(got, "done 4/10") {
			t.Errorf("total %d: no done/total in %q", total, got)
		}
	}
}

func TestTerminalLineFitsANarrowTerminal(t *testing.T) {
	var out syncBuffer
	d := NewTerminal(&out, "candidate", 100, 60)
	d.Record(engine.Result{Status: 200, FirstToken: 12 * time.Millisecond, End: time.Second})
	d.Update(engine.Progress{Elapsed: time.Second, Sent: 3, Done: 1, InFlight: 2})
	d.Close()
	got := out.String()
	t.Logf("%q", got)
	if !strings.Contains(got, "candidate") || !strings.Contains(got, "done 1/100") {
		t.Fatalf("rendering %q", got)
	}
	ansi := regexp.MustCompile("\x1b\\[[0-9]*[A-Za-z]")
	for _, l := range strings.Split(ansi.ReplaceAllString(got, ""), "\n") {
		if n := len([]rune(l)); n > 60 {
			t.Errorf("line of %d columns on a 60-column terminal: %q", n, l)
		}
	}
}

func TestAttachChainsExistingHooks(t *testing.T) {
	var progressCalls, resultCalls int
	cfg := engine.Config{Progress: func(engine.Progress) { progressCalls++ }, OnResult: func(engine.Result) { resultCalls++ }}
	var out bytes.Buffer
	d := NewPlain(&out, "b")
	d.Attach(&cfg)
	cfg.OnResult(engine.Result{Status: 200, FirstToken: 5 * time.Millisecond, End: time.Second})
	cfg.Progress(engine.Progress{Elapsed: time.Second, Sent: 1, Done: 1})
	if progressCalls != 1 || resultCalls != 1 || !strings.Contains(out.String(), "TTFT p50 5.0ms p99 5.0ms") {
		t.Errorf("hooks %d/%d, output %q", progressCalls, resultCalls, out.String())
	}
}

func TestNotATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) || IsTerminal(&bytes.Buffer{}) {
		t.Error("a file or a buffer taken for a terminal")
	}
	if d := New(f, "x", 0); d.plain == nil {
		t.Error("New chose the live display for a file")
	}
}
