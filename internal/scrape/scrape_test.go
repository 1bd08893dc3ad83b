package scrape

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
	"github.com/reprise-llm/reprise/internal/synth"
	"github.com/reprise-llm/reprise/internal/workload"
)

func fastFlags(t *testing.T, args ...string) Flags {
	t.Helper()
	var f Flags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse(append([]string{"--scrape-interval", "20ms"}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestScrapesTheSimulatorDuringARun runs a short benchmark against
// `replay sim` with a shared prompt prefix and checks that the server's
// own counters, scraped before and after, match what the simulator did.
func TestScrapesTheSimulatorDuringARun(t *testing.T) {
	url, s := simtest.Start(t, func(c *sim.Config) {
		c.Slots, c.TTFTBase, c.ITLBase, c.ITLPerSeq = 2, 5*time.Millisecond, 2*time.Millisecond, 0
	})

	f := fastFlags(t, "--scrape-series", "vllm:generation_tokens,vllm:request_success_total")
	var log bytes.Buffer
	ctx := context.Background()
	ecfg := engine.Config{Target: url, Profile: engine.ProfileConcurrent, Concurrency: 4, Headers: http.Header{"Authorization": {"Bearer sk-scrape-secret"}}}
	scr := f.Begin(ctx, &ecfg, &log)
	if scr == nil {
		t.Fatalf("auto mode found no metrics on the simulator: %s", log.String())
	}
	src, err := workload.Open("synthetic:prompt_tokens=64,output_tokens=8,samples=24,prefix_tokens=128", workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bodies, err := synth.New(synth.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	run, err := engine.Execute(ctx, ecfg, src, bodies)
	if err != nil {
		t.Fatal(err)
	}
	rep := scr.Stop(run.Start)
	st := s.Stats()

	if rep.Errors != 0 || rep.Scrapes < 2 || len(rep.Series) != rep.Scrapes {
		t.Fatalf("scrapes %d, errors %d (%s)", rep.Scrapes, rep.Errors, rep.FirstError)
	}
	if rep.Series[0].TS > 0 || rep.Series[len(rep.Series)-1].TS < run.Duration.Seconds()-1e-3 {
		t.Errorf("series spans %.3f..%.3f s, want it to cover the run (0..%.3f s)", rep.Series[0].TS, rep.Series[len(rep.Series)-1].TS, run.Duration.Seconds())
	}
	ok := 0
	for i := range run.Results {
		if run.Results[i].OK() {
			ok++
		}
	}
	if c := rep.Counters["vllm:request_success_total"]; c.First != 0 || c.Delta != float64(ok) || ok != 24 {
		t.Errorf("request_success_total = %+v, want an increase of %d (successful requests)", c, ok)
	}
	if c := rep.Counters["vllm:generation_tokens_total"]; c.Delta != float64(st.GenerationTokens) {
		t.Errorf("generation_tokens_total = %+v, want %d", c, st.GenerationTokens)
	}
	want := float64(st.PrefixHitTokens) / float64(st.PrefixQueryTokens)
	if rep.PrefixCacheHitRate == nil || *rep.PrefixCacheHitRate != want || want <= 0 {
		t.Errorf("prefix-cache hit rate %v, want %v (the simulator's Δhits/Δqueries)", rep.PrefixCacheHitRate, want)
	}
	for _, name := range []string{"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"} {
		g, ok := rep.Gauges[name]
		if !ok || g.Samples != rep.Scrapes || g.Max > 4 || g.Min < 0 || g.Mean > g.Max {
			t.Errorf("%s = %+v (present %v)", name, g, ok)
		}
	}
	if g := rep.Gauges["vllm:kv_cache_usage_perc"]; g.Max > 1 {
		t.Errorf("kv cache usage above 1: %+v", g)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("sk-scrape-secret")) || strings.Contains(log.String(), "sk-scrape-secret") {
		t.Error("the bearer token reached the report or the log")
	}
}

// TestAutoModeWithoutMetricsIsOffSilently: a target without Prometheus
// metrics is not scraped, and since nobody asked for metrics, nothing is
// said (issue 17: every target but vLLM printed an info line about a 404).
func TestAutoModeWithoutMetricsIsOffSilently(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"404":  func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
		"html": func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html><body>gateway</body></html>") },
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			var log bytes.Buffer
			f := fastFlags(t)
			if s := f.Begin(context.Background(), &engine.Config{Target: srv.URL}, &log); s != nil {
				t.Fatal("auto mode scraped a target without Prometheus metrics")
			}
			if log.Len() != 0 {
				t.Errorf("log = %q, want nothing", log.String())
			}
			// Asked for explicitly, the same endpoint is scraped and its
			// failure said.
			log.Reset()
			explicit := fastFlags(t, "--scrape-metrics", srv.URL+"/metrics")
			s := explicit.Begin(context.Background(), &engine.Config{Target: srv.URL}, &log)
			if s == nil {
				t.Fatal("an explicit endpoint was not scraped")
			}
			s.Finish(nil)
			if !strings.HasPrefix(log.String(), "warning: ") {
				t.Errorf("explicit endpoint: log = %q, want a warning", log.String())
			}
		})
	}
	var log bytes.Buffer
	f := fastFlags(t, "--scrape-metrics", "off")
	if s := f.Begin(context.Background(), &engine.Config{Target: "http://127.0.0.1:1"}, &log); s != nil || log.Len() != 0 {
		t.Errorf("off: scraper %v, log %q", s, log.String())
	}
}

// TestMalformedExpositionIsCountedNotFatal serves good text, then garbage,
// then good text again: the bad scrapes are counted with a clear error and
// the good ones still summarised.
func TestMalformedExpositionIsCountedNotFatal(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := n.Add(1)
		if k%2 == 0 {
			fmt.Fprint(w, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} lots\n")
			return
		}
		fmt.Fprintf(w, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} %d\n", k)
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL + "/metrics", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var errs []error
	for range 4 {
		errs = append(errs, s.Scrape(ctx))
	}
	rep := s.Stop(time.Now()) // a fifth, good scrape
	if errs[0] != nil || errs[1] == nil || errs[2] != nil || errs[3] == nil {
		t.Fatalf("errors = %v", errs)
	}
	if rep.Scrapes != 3 || rep.Errors != 2 || !strings.Contains(rep.FirstError, "not Prometheus text") || !strings.Contains(rep.FirstError, "line 2") {
		t.Errorf("report: scrapes %d, errors %d, first error %q", rep.Scrapes, rep.Errors, rep.FirstError)
	}
	if g := rep.Gauges["vllm:num_requests_running"]; g.Samples != 3 || g.Max != 5 || g.Mean != 3 {
		t.Errorf("gauge = %+v, want samples 1, 3, 5", g)
	}
}

func TestExplicitURLSendsHeadersAndCountsFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.Host != "gw.example" || r.URL.Path != "/custom/metrics" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "# TYPE my_queue_depth gauge\nmy_queue_depth 7\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 2\n")
	}))
	defer srv.Close()
	var log bytes.Buffer
	f := fastFlags(t, "--scrape-metrics", srv.URL+"/custom/metrics", "--scrape-series", "my_queue_depth")
	s := f.Begin(context.Background(), &engine.Config{Target: "http://ignored:1", Headers: http.Header{"Authorization": {"Bearer tok"}, "Host": {"gw.example"}}}, &log)
	if s == nil {
		t.Fatalf("explicit URL not scraped: %s", log.String())
	}
	rep := s.Stop(time.Now())
	if rep.Errors != 0 || rep.Gauges["my_queue_depth"].Last != 7 || rep.Gauges["vllm:num_requests_waiting"].Last != 2 || log.Len() != 0 {
		t.Errorf("report = %+v, log %q", rep, log.String())
	}

	// An explicit URL that is down: scraped anyway, every failure counted.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	f = fastFlags(t, "--scrape-metrics", down.URL+"/metrics")
	s = f.Begin(context.Background(), &engine.Config{Target: "http://ignored:1"}, &log)
	rep = s.Stop(time.Now())
	if rep.Scrapes != 0 || rep.Errors < 2 || !strings.Contains(rep.FirstError, "scraping "+down.URL) {
		t.Errorf("down: %+v", rep)
	}
	if !strings.HasPrefix(log.String(), "warning: scraping "+down.URL) || strings.Count(log.String(), "\n") != 1 {
		t.Errorf("down: log %q, want one warning", log.String())
	}
}

func TestStatusErrorAndRedactedURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://user:pw-secret@", 1) + "/metrics"
	s, err := New(Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Scrape(context.Background())
	if !errors.Is(err, ErrStatus) || !strings.Contains(err.Error(), "http 503") || strings.Contains(err.Error(), "pw-secret") {
		t.Errorf("err = %v", err)
	}
	if rep := s.Stop(time.Now()); strings.Contains(rep.URL, "pw-secret") {
		t.Errorf("URL in report: %s", rep.URL)
	}
}

func TestFlagsValidate(t *testing.T) {
	f := Flags{Metrics: "ftp://x", Interval: 0, Series: "ok_name,bad name"}
	err := f.Validate()
	for _, want := range []string{"--scrape-metrics", "--scrape-interval", "--scrape-series"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

func TestHTTPSTargetUsesTheBenchmarksTLSSettings(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\n")
	}))
	defer srv.Close()
	var log bytes.Buffer
	f := fastFlags(t)
	if s := f.Begin(context.Background(), &engine.Config{Target: srv.URL}, &log); s != nil {
		t.Fatal("scraped a self-signed target without --insecure-skip-verify")
	}
	// The endpoint given explicitly: scraped anyway, the error said.
	explicit := fastFlags(t, "--scrape-metrics", srv.URL+"/metrics")
	explicit.Begin(context.Background(), &engine.Config{Target: srv.URL}, &log).Finish(nil)
	if !strings.Contains(log.String(), "certificate") {
		t.Errorf("log = %q, want the certificate error", log.String())
	}
	s := f.Begin(context.Background(), &engine.Config{Target: srv.URL, InsecureSkipVerify: true}, &log)
	if s == nil {
		t.Fatalf("not scraped with --insecure-skip-verify: %s", log.String())
	}
	if rep := s.Finish(nil); rep.Errors != 0 || rep.Gauges["vllm:num_requests_running"].Last != 1 {
		t.Errorf("report = %+v", rep)
	}
	var none *Scraper
	if none.Finish(nil) != nil {
		t.Error("a nil scraper reported")
	}
}
