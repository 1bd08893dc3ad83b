// Package scrape samples a target's Prometheus /metrics while a benchmark
// runs — the running and waiting requests, KV-cache usage and prefix-cache
// counters of vLLM, SGLang, llama.cpp or TGI (Engines), plus any series the
// user names — and summarises
// them for the results: a time series, the mean and maximum of each gauge,
// each counter's increase and rate, and the prefix-cache hit rate over the
// run. Scraping never fails a benchmark: a failed or malformed scrape is
// counted and its first error kept.
package scrape

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/redact"
)

// Config is one scraper's settings.
type Config struct {
	// URL is the metrics endpoint, http:// or https://.
	URL string
	// Header is sent with every scrape: the benchmark's own headers, so a
	// gateway that wants a bearer token gets it. A Host entry sets the
	// Host header. Never logged or reported.
	Header http.Header
	// Interval is the time between scrapes. 0 means 1 s.
	Interval time.Duration
	// Timeout bounds one scrape. 0 means 5 s.
	Timeout time.Duration
	// Series are kept in addition to EngineSeries (gauges, counters or
	// untyped; a counter may be named with or without _total).
	Series []string
	// CACert is a PEM file of certificate authorities trusted for an
	// https:// endpoint besides the system's, and InsecureSkipVerify
	// accepts any certificate: the benchmark's --ca-cert and
	// --insecure-skip-verify. Both apply only when Client is nil.
	CACert             string
	InsecureSkipVerify bool
	// Client sends the scrapes; nil means a client of its own, apart from
	// the benchmark's connection pool.
	Client *http.Client
	// Now is the clock samples are stamped with (nil: time.Now); it must
	// carry a monotonic reading, as the run origin passed to Stop does.
	Now func() time.Time
}

// ErrStatus is wrapped by a scrape answered with a status other than 200.
var ErrStatus = errors.New("unexpected status")

// sample is one successful scrape.
type sample struct {
	at     time.Time
	values map[string]Value
}

// Scraper scrapes one endpoint: Scrape once, or Start a loop and Stop it.
// Scrape is safe for concurrent use; call Start and Stop (or Finish) once
// each, from one goroutine.
type Scraper struct {
	cfg  Config
	keep func(string) bool

	mu       sync.Mutex
	samples  []sample
	errs     int
	firstErr string

	stop context.CancelFunc
	done chan struct{}
}

// New returns a scraper for cfg.
func New(cfg Config) (*Scraper, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("metrics URL %q: want an http:// or https:// URL", redact.URL(cfg.URL))
	}
	if cfg.Interval < 0 || cfg.Timeout < 0 {
		return nil, errors.New("scrape interval and timeout must not be negative")
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Client == nil {
		tr := &http.Transport{
			Proxy:             nil, // like the load: straight to the target
			DialContext:       (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			IdleConnTimeout:   90 * time.Second,
			ForceAttemptHTTP2: true,
		}
		tc, err := engine.TLSConfig(cfg.CACert, cfg.InsecureSkipVerify) // the load's trust
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
		cfg.Client = &http.Client{Transport: tr}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scraper{cfg: cfg, keep: Matcher(append(EngineSeries(), cfg.Series...))}, nil
}

// Scrape fetches and parses the endpoint once. A success is recorded as a
// sample; a failure is counted (its first error kept for the report) and
// returned, unless ctx ended.
func (s *Scraper) Scrape(ctx context.Context) error {
	began := s.cfg.Now()
	values, err := s.fetch(ctx)
	// The server read its values somewhere between request and response;
	// the midpoint errs by at most half the scrape's duration.
	at := began.Add(s.cfg.Now().Sub(began) / 2)
	if err != nil && ctx.Err() != nil {
		return err // stopped mid-scrape: not the target's failure
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs++
		if s.firstErr == "" {
			s.firstErr = err.Error()
		}
		return err
	}
	s.samples = append(s.samples, sample{at: at, values: values})
	return nil
}

func (s *Scraper) fetch(ctx context.Context) (map[string]Value, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", redact.URL(s.cfg.URL), err)
	}
	for k, vs := range s.cfg.Header {
		if http.CanonicalHeaderKey(k) == "Host" {
			if len(vs) > 0 {
				req.Host = vs[0]
			}
			continue
		}
		req.Header[k] = vs
	}
	// Ask for the classic text format: the parser does not read OpenMetrics.
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		// url.Error repeats the URL, userinfo included; report the cause alone.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("scraping %s: %w", redact.URL(s.cfg.URL), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %w: http %d", redact.URL(s.cfg.URL), ErrStatus, resp.StatusCode)
	}
	values, err := Parse(resp.Body, s.keep)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: not Prometheus text: %w", redact.URL(s.cfg.URL), err)
	}
	return values, nil
}

// Start scrapes every Interval until Stop or ctx's end, in a goroutine of
// its own, beginning at once unless a Scrape came before. Call it at most
// once.
func (s *Scraper) Start(ctx context.Context) {
	ctx, s.stop = context.WithCancel(ctx)
	s.done = make(chan struct{})
	s.mu.Lock()
	scraped := len(s.samples)+s.errs > 0
	s.mu.Unlock()
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.cfg.Interval) // a ticker keeps absolute due times, dropping ticks missed by a slow scrape
		defer t.Stop()
		if !scraped {
			_ = s.Scrape(ctx) // counted in the report
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = s.Scrape(ctx)
			}
		}
	}()
}

// Stop ends the loop Start began (if any), scrapes a last time so that
// counter increases cover the whole run, and summarises every sample with
// times as offsets from origin (the run's origin; samples taken before it
// have negative offsets).
func (s *Scraper) Stop(origin time.Time) *Report {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	_ = s.Scrape(context.Background()) // bounded by Timeout; counted in the report
	s.cfg.Client.CloseIdleConnections()
	s.mu.Lock()
	defer s.mu.Unlock()
	return summarize(s.samples, origin, s.cfg.Interval, redact.URL(s.cfg.URL), s.errs, s.firstErr)
}

// Finish is Stop for a benchmark's run: times are offsets from run's
// origin (or from now when the run failed before starting). It returns nil
// for a nil scraper, so that callers need not check whether scraping is on.
func (s *Scraper) Finish(run *engine.Run) *Report {
	if s == nil {
		return nil
	}
	origin := s.cfg.Now()
	if run != nil {
		origin = run.Start
	}
	return s.Stop(origin)
}
