// Package progress shows a benchmark's progress while it runs: on a
// terminal, a live line per benchmark drawn with mpb; elsewhere — a pipe, a
// file, CI — one plain log line per engine progress tick (about once a
// second) and a final one. Both show the time since the run origin,
// requests done (of --max-requests when set) and sent, the completion rate
// (requests finished per second since the previous tick; over the whole run
// in the final line), requests in flight, failed requests, and the p50 and
// p99 of the TTFT of the successful requests so far (an HDR histogram fed
// by the engine's OnResult hook).
//
// mpb (github.com/vbauerster/mpb/v8) rather than progressbar: mpb keeps
// several bars in one container and leaves each finished bar on screen, so
// the benchmarks of a sweep stack up; its decorators take any function, so
// the line carries our own fields rather than a byte counter's; and it
// renders to any io.Writer, which is how the terminal renderer is tested.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/stats"
)

// Display is one benchmark's progress display. Update and Record may be
// called concurrently; Close once, after the run.
type Display struct {
	name  string
	total int // requests expected, 0 when unknown

	mu       sync.Mutex
	last     engine.Progress
	prevDone int
	prevAt   time.Duration
	rate     float64 // requests completed per second over the last interval
	ttft     *stats.Histogram
	done     int           // counted by Record, exact at Close
	errs     int           // failed requests counted by Record
	end      time.Duration // latest request end seen by Record
	line     string        // the fields, as last rendered

	plain io.Writer // plain mode: where lines go

	p   *mpb.Progress // terminal mode
	bar *mpb.Bar
}

// IsTerminal reports whether w is a terminal that can redraw a line: an
// *os.File on a terminal that reports its size, with TERM not "dumb". (A
// pseudo-terminal created without a size reports 0 rows, and mpb draws
// nothing on one.)
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || os.Getenv("TERM") == "dumb" {
		return false
	}
	cols, rows, err := term.GetSize(int(f.Fd()))
	return err == nil && cols > 0 && rows > 0
}

// New returns the display for w: live on a terminal, plain lines
// otherwise. total is the number of requests expected (--max-requests),
// 0 when unknown.
func New(w io.Writer, name string, total int) *Display {
	if IsTerminal(w) {
		return NewTerminal(w, name, total, 0)
	}
	return NewPlain(w, name)
}

// NewPlain returns a display that writes one line per Update to w, and a
// final line at Close.
func NewPlain(w io.Writer, name string) *Display {
	return &Display{name: name, plain: w, ttft: stats.NewLatencyHistogram()}
}

// NewTerminal returns a live display drawn on w as on a terminal, whatever
// w is: of w's own width when it is one, else of width columns (0: 100).
func NewTerminal(w io.Writer, name string, total, width int) *Display {
	if width <= 0 {
		width = 100
	}
	d := &Display{name: name, total: total, ttft: stats.NewLatencyHistogram()}
	d.line = d.fields(engine.Progress{}, 0, stats.Distribution{})
	// ForceTTY alone does not refresh a writer that is not a terminal
	// (mpb v8.16); WithAutoRefresh does. On a terminal mpb reads the width
	// itself and width is ignored.
	d.p = mpb.New(mpb.WithOutput(w), mpb.ForceTTY(), mpb.WithAutoRefresh(), mpb.WithWidth(width), mpb.WithRefreshRate(250*time.Millisecond))
	var style mpb.BarFillerBuilder = mpb.BarStyle()
	if total <= 0 {
		style = mpb.SpinnerStyle()
	}
	d.bar = d.p.New(int64(max(total, 0)), style, mpb.BarWidth(12),
		mpb.PrependDecorators(decor.Name(name+" ")),
		// mpb cuts a line wider than the terminal (with "…"), so that it
		// never wraps and breaks the redraw.
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			d.mu.Lock()
			defer d.mu.Unlock()
			return " " + d.line
		})))
	return d
}

// Attach makes the display follow cfg's run, chaining any Progress and
// OnResult hooks already set.
func (d *Display) Attach(cfg *engine.Config) {
	progress, onResult := cfg.Progress, cfg.OnResult
	cfg.Progress = func(p engine.Progress) {
		if progress != nil {
			progress(p)
		}
		d.Update(p)
	}
	cfg.OnResult = func(r engine.Result) {
		if onResult != nil {
			onResult(r)
		}
		d.Record(r)
	}
}

// Record adds one finished request: its TTFT (when it succeeded with a
// first token) and the counts of the final line. It is quick, for the
// engine's OnResult.
func (d *Display) Record(r engine.Result) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done++
	if !r.OK() {
		d.errs++
	} else if r.FirstToken > 0 {
		d.ttft.RecordDuration(r.FirstToken - r.Sent)
	}
	d.end = max(d.end, r.End)
}

// Update shows an engine progress snapshot: a plain line, or the live
// line's new fields.
func (d *Display) Update(p engine.Progress) {
	d.mu.Lock()
	if dt := p.Elapsed - d.prevAt; dt > 0 {
		d.rate = float64(p.Done-d.prevDone) / dt.Seconds()
	}
	d.prevDone, d.prevAt, d.last = p.Done, p.Elapsed, p
	d.line = d.fields(p, d.rate, d.ttft.Distribution())
	line := d.line
	d.mu.Unlock()
	if d.plain != nil {
		fmt.Fprintf(d.plain, "%s: %s\n", d.name, line)
		return
	}
	d.bar.SetCurrent(int64(p.Done))
}

// Close ends the display with the run's final figures: the live line is
// completed and left on screen; in plain mode a last line says the
// benchmark finished. Closing a nil display does nothing.
func (d *Display) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	p := d.last
	p.Done, p.Errors, p.InFlight = d.done, d.errs, 0
	p.Sent = max(p.Sent, d.done)
	p.Elapsed = max(p.Elapsed, d.end)
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Done) / p.Elapsed.Seconds() // the whole run's
	}
	d.line = d.fields(p, rate, d.ttft.Distribution())
	line := d.line
	d.mu.Unlock()
	if d.plain != nil {
		fmt.Fprintf(d.plain, "%s: finished  %s\n", d.name, line)
		return
	}
	d.bar.SetTotal(int64(p.Done), true)
	d.p.Wait()
}

// fields renders the figures every display shows.
func (d *Display) fields(p engine.Progress, rate float64, ttft stats.Distribution) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.1fs  done %d", p.Elapsed.Seconds(), p.Done)
	if d.total > 0 {
		fmt.Fprintf(&b, "/%d", d.total)
	}
	fmt.Fprintf(&b, "  sent %d  %.1f req/s  in flight %d  errors %d  TTFT ", p.Sent, rate, p.InFlight, p.Errors)
	if ttft.Count == 0 {
		b.WriteString("p50 - p99 -")
	} else {
		fmt.Fprintf(&b, "p50 %s p99 %s", ms(ttft.P50), ms(ttft.P99))
	}
	return b.String()
}

// ms formats milliseconds with a precision that suits their size.
func ms(v float64) string {
	switch {
	case v >= 10_000:
		return fmt.Sprintf("%.1fs", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	default:
		return fmt.Sprintf("%.1fms", v)
	}
}
