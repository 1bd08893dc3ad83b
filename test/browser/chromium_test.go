// Package browser checks report.html in a real browser: headless Chromium
// from Debian's packages (`make test` installs it), driven over the
// DevTools protocol.
package browser

import (
	"context"
	"fmt"
	"github.com/reprise-llm/reprise/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Chromium: $REPRISE_CHROMIUM, else chromium on PATH.
// Without it the test fails under CI (make test installs it) and is
// skipped elsewhere.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("REPRISE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium not found", "`make browser` installs Debian's chromium package")
	return ""
}

// browser is one headless Chromium for a test.
type browser struct {
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", exe, err)
	}
	return &browser{ctx: ctx}
}

// pageResult is what loading a report showed.
type pageResult struct {
	Load       time.Duration // Navigate until the load event, measured here
	Rendered   float64       // ms from navigation start to the first frame after load (the page's clock)
	Charts     int           // <svg class="chart"> elements
	Lines      int           // polylines with points
	Dots, Bars int
	Marks      int      // SLO and saturation reference lines
	Empty      int      // charts that say "no data"
	Figures    int      // <figure> elements
	Captions   []string // figure captions, in order
	Errors     []string // console errors and uncaught exceptions
	Requests   []string // every URL the page asked for
	Screenshot string   // path of the full-page PNG
	Layout     struct {
		Width, Height float64 // of the rendered document, CSS pixels
		ChartWidth    float64 // width of the first chart as laid out
	}
	// CompareRows and CompareWorse are the rows of the comparison tables,
	// and those whose verdict is "worse"; ServerRows the rows of the
	// server-metrics summary.
	CompareRows, CompareWorse, ServerRows int
}

// load opens path in a new tab, waits for the load event and a frame after
// it, counts what was drawn and saves a full-page screenshot named shot.
func (b *browser) load(t *testing.T, path, shot string) *pageResult {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	res := &pageResult{}
	var mu sync.Mutex
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				res.Errors = append(res.Errors, fmt.Sprintf("console.%s (%d arguments)", e.Type, len(e.Args)))
			}
		case *runtime.EventExceptionThrown:
			res.Errors = append(res.Errors, "exception: "+e.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			if e.Entry != nil && e.Entry.Level == cdplog.EntryLevelError {
				res.Errors = append(res.Errors, "log: "+e.Entry.Text+" "+e.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			if e.Request != nil {
				res.Requests = append(res.Requests, e.Request.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("listening to the page: %v", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	url := "file://" + abs
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enabling the network domain: %v", err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enabling the log domain: %v", err)
	}
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
	res.Load = time.Since(start)
	type probeResult struct {
		Charts, Lines, Dots, Bars, Marks, Empty, Figures int
		CompareRows, CompareWorse, ServerRows            int
		Captions                                         []string
		Rendered, Width, Height, ChartWidth              float64
	}
	// A frame after load: style, layout and paint of everything are done.
	const probe = `new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(() => {
		const q = s => document.querySelectorAll(s);
		const chart = document.querySelector('svg.chart');
		resolve({
			Rendered: performance.now(),
			Charts: q('svg.chart').length,
			Lines: [...q('svg.chart polyline')].filter(p => p.getAttribute('points').trim().split(' ').length > 1).length,
			Dots: q('svg.chart circle').length,
			Bars: [...q('svg.chart rect.bar')].filter(r => r.getBBox().width > 0).length,
			Marks: q('svg.chart line.mark').length,
			Empty: q('figure p.empty').length,
			Figures: q('figure').length,
			CompareRows: q('table.comparison tbody tr').length,
			CompareWorse: q('table.comparison td.fail').length,
			ServerRows: q('#server-metrics-summary tbody tr').length,
			Captions: [...q('figcaption')].map(c => c.textContent),
			Width: document.documentElement.scrollWidth,
			Height: document.documentElement.scrollHeight,
			ChartWidth: chart ? chart.getBoundingClientRect().width : 0,
		});
	})))`
	counts, err := chromedp.Run(ctx, chromedp.Evaluate[probeResult](probe, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("inspecting %s: %v", url, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot of %s: %v", url, err)
	}
	res.Rendered, res.Charts, res.Lines, res.Dots, res.Bars = counts.Rendered, counts.Charts, counts.Lines, counts.Dots, counts.Bars
	res.Marks, res.Empty, res.Figures, res.Captions = counts.Marks, counts.Empty, counts.Figures, counts.Captions
	res.CompareRows, res.CompareWorse, res.ServerRows = counts.CompareRows, counts.CompareWorse, counts.ServerRows
	res.Layout.Width, res.Layout.Height, res.Layout.ChartWidth = counts.Width, counts.Height, counts.ChartWidth
	dir := os.Getenv("REPRISE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	res.Screenshot = filepath.Join(dir, shot)
	if err := os.WriteFile(res.Screenshot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	res.Errors = append([]string(nil), res.Errors...)
	res.Requests = append([]string(nil), res.Requests...)
	return res
}

// checkOffline fails when the page asked for anything but itself (a CDN
// script, a font, an image): the report must work with no network.
func checkOffline(t *testing.T, res *pageResult, path string) {
	t.Helper()
	abs, _ := filepath.Abs(path)
	for _, u := range res.Requests {
		if u != "file://"+abs && !strings.HasPrefix(u, "data:") {
			t.Errorf("the report fetched %s", u)
		}
	}
	for _, e := range res.Errors {
		t.Errorf("browser: %s", e)
	}
}

func (r *pageResult) String() string {
	return fmt.Sprintf("%d charts (%d lines, %d points, %d bars, %d marks, %d empty), load %v, first frame after load at %.0f ms, page %.0f×%.0f px, screenshot %s",
		r.Charts, r.Lines, r.Dots, r.Bars, r.Marks, r.Empty, r.Load.Round(time.Millisecond), r.Rendered, r.Layout.Width, r.Layout.Height, r.Screenshot)
}
