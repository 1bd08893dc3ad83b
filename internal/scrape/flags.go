package scrape

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/redact"
)

// Modes of --scrape-metrics besides a URL.
const (
	ModeAuto = "auto" // TARGET/metrics, when the target serves Prometheus text
	ModeOff  = "off"
)

// Flags are the --scrape-* flags of the commands that benchmark.
type Flags struct {
	// Metrics is auto (scrape TARGET/metrics when the target serves
	// Prometheus text there; otherwise carry on without a word: most
	// targets other than inference engines answer 404 there, and nobody asked), off, or
	// the URL of the metrics endpoint (asked for explicitly, so scraped
	// whatever happens, a first failure said on the log, every failure
	// counted in the results).
	Metrics string
	// Interval is the time between scrapes.
	Interval time.Duration
	// Series are extra gauges or counters to keep, comma-separated.
	Series string
}

// Register binds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Metrics, "scrape-metrics", ModeAuto, "the target's Prometheus metrics during each benchmark: auto (TARGET/metrics if it serves Prometheus text; silently none otherwise), off, or the endpoint's URL (a warning when it fails)")
	fs.DurationVar(&f.Interval, "scrape-interval", time.Second, "time between metrics scrapes")
	fs.StringVar(&f.Series, "scrape-series", "", "extra gauges or counters to keep, comma-separated (the running/waiting requests, KV-cache usage and prefix-cache counters of vLLM, SGLang, llama.cpp and TGI are always kept)")
}

// Validate reports every problem at once, naming the flags.
func (f *Flags) Validate() error {
	var errs []error
	switch f.Metrics {
	case ModeAuto, ModeOff:
	default:
		if u, err := url.Parse(f.Metrics); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--scrape-metrics %q: want auto, off or an http:// or https:// URL", redact.URL(f.Metrics)))
		}
	}
	if f.Interval <= 0 {
		errs = append(errs, fmt.Errorf("--scrape-interval %v: must be positive", f.Interval))
	}
	for _, s := range f.series() {
		if strings.ContainsAny(s, " \t{}\"") {
			errs = append(errs, fmt.Errorf("--scrape-series %q: want metric names, comma-separated", s))
		}
	}
	return errors.Join(errs...)
}

func (f *Flags) series() []string {
	var out []string
	for _, s := range strings.Split(f.Series, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Begin starts scraping for the benchmark cfg describes — its Target,
// Headers and TLS settings — as the flags say, and returns the running
// scraper; or nil when the flags say off, or in auto mode when a first
// scrape of TARGET/metrics fails (no endpoint, or not Prometheus text),
// silently: the user did not ask for metrics (issue 17: every target
// other than vLLM printed a line about a 404). Only an endpoint given
// explicitly has its problems said on log. Stop the scraper when the run
// ends. Begin never fails the benchmark.
func (f *Flags) Begin(ctx context.Context, cfg *engine.Config, log io.Writer) *Scraper {
	if f.Metrics == ModeOff {
		return nil
	}
	endpoint := f.Metrics
	if f.Metrics == ModeAuto || f.Metrics == "" {
		endpoint = strings.TrimRight(cfg.Target, "/") + "/metrics"
	}
	s, err := New(Config{URL: endpoint, Header: cfg.Headers, Interval: f.Interval, Series: f.series(),
		CACert: cfg.CACert, InsecureSkipVerify: cfg.InsecureSkipVerify})
	if err != nil {
		fmt.Fprintf(log, "not scraping server metrics: %v\n", err)
		return nil
	}
	// A first scrape before the run: the baseline of every counter, and in
	// auto mode the test of whether the target has metrics at all.
	if err := s.Scrape(ctx); err != nil {
		if f.Metrics == ModeAuto || f.Metrics == "" {
			return nil
		}
		fmt.Fprintf(log, "warning: %v; scraping on, failures counted in server_metrics\n", err)
	}
	s.Start(ctx)
	return s
}
