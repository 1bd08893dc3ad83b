package proxycli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/filters/extproc/extproctest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// collectorRun is a Run with --extproc-listen in this process.
type collectorRun struct {
	*program
	extproc, admin, proxyURL, dir string
}

// startCollectorRun runs the program with --extproc-listen on a loopback
// port and the given flags, and waits until it serves.
func startCollectorRun(t *testing.T, args ...string) *collectorRun {
	t.Helper()
	r := &collectorRun{dir: filepath.Join(t.TempDir(), "cap")}
	args = append([]string{"--extproc-listen", "127.0.0.1:0", "--capture-dir", r.dir, "--admin-listen", "127.0.0.1:0"}, args...)
	var m []string
	r.program, m = startProgram(t, regexp.MustCompile(`ext_proc collector listening on (\S+) [\s\S]*admin on (\S+) `), args...)
	r.extproc, r.admin = m[1], m[2]
	if m := regexp.MustCompile(`proxy listening on (http://[^\s,]+),`).FindStringSubmatch(r.stdout.String()); m != nil {
		r.proxyURL = m[1]
	}
	return r
}

// get fetches an admin path.
func (r *collectorRun) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sendStream sends a whole streamed completion as Envoy does and waits
// for the collector to end the stream.
func sendStream(t *testing.T, e *extproctest.Envoy, id string) {
	t.Helper()
	s, err := e.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/completions", Time: time.Now(), Headers: []string{"x-request-id", id}}),
		s.RequestBody([]byte(`{"model":"m","prompt":"hello","stream":true}`), true),
		s.ResponseHeaders(extproctest.Response{Status: 200, Headers: []string{"content-type", "text/event-stream"}}),
		s.ResponseBody([]byte("data: {\"choices\":[{\"text\":\"hi\"}]}\n\n"), false),
		s.ResponseBody([]byte("data: [DONE]\n\n"), true),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
}

// captureSeries are the reprise_capture_* series names in a /metrics body.
func captureSeries(body string) []string {
	var names []string
	for _, line := range strings.Split(body, "\n") {
		if name, _, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, "reprise_capture_") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// A pure collector: `proxy --extproc-listen ADDR --capture-dir DIR`, no
// --upstream and no client listener. It records what Envoy streams, serves
// /readyz, /metrics (its own series and the capture writer's, named as the
// proxy names them) and the control API; on SIGTERM it cuts a stream still
// open at --drain-timeout, records it aborted, and loses no completed
// record.
func TestCollectorWithoutUpstream(t *testing.T) {
	r := startCollectorRun(t, "--drain-timeout", "200ms")
	if strings.Contains(r.stdout.String(), "proxy listening") || r.proxyURL != "" {
		t.Errorf("a client listener was started without --upstream:\n%s", r.stdout.String())
	}
	e, err := extproctest.Dial(r.extproc)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	sendStream(t, e, "complete")
	open, err := e.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := open.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/completions", Headers: []string{"x-request-id", "open"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var metrics string
	for !strings.Contains(metrics, "reprise_extproc_streams_open 1") {
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the open stream:\n%s", metrics)
		}
		_, metrics = r.get(t, "/metrics")
	}
	for _, want := range []string{"reprise_extproc_records_total 1", "reprise_extproc_streams_total 2", "reprise_capture_healthy 1",
		"reprise_capture_prefix_ids_forgotten_total 0", "reprise_capture_prefix_ids_exhausted_total 0",
		`reprise_extproc_protocol_errors_total{reason="after_response_end"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	if code, body := r.get(t, "/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz %d %q", code, body)
	}
	code, body := r.get(t, "/v1/stats")
	var stats map[string]any
	if err := json.Unmarshal([]byte(body), &stats); code != 200 || err != nil || stats["recorded"] != "1" || stats["in_flight"] != "1" {
		t.Errorf("/v1/stats %d %s (%v)", code, body, err)
	}

	r.stop()
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, r.stderr.String())
	}
	if err := open.Wait(); err != nil {
		t.Errorf("the cut stream ended with %v, want status OK", err)
	}
	rd, err := capture.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if src := rd.Manifest().Source; src != "ext_proc listen="+r.extproc {
		t.Errorf("manifest source %q", src)
	}
	rd.Close()
	recs := map[string]*capture.Record{}
	for _, rec := range capturetest.Read(t, r.dir) {
		recs[rec.ID] = rec
	}
	if c := recs["complete"]; c == nil || c.Aborted || c.Source != capture.SourceExtProc || c.Model != "m" || len(c.ChunksUS) != 1 {
		t.Errorf("complete: %+v", c)
	}
	if o := recs["open"]; o == nil || !o.Aborted || o.Error != "cut at shutdown drain bound" {
		t.Errorf("open: %+v", o)
	}
	if len(recs) != 2 {
		t.Errorf("%d records", len(recs))
	}
	if !strings.Contains(r.stderr.String(), "cutting open ext_proc streams") {
		t.Errorf("no log line about the cut:\n%s", r.stderr.String())
	}
}

// The proxy and the collector together write one capture: the proxy's
// record without a source, the ext_proc one with source ext_proc; /metrics
// has both front ends' series, and the capture writer's under the same
// names as a collector alone gives them.
func TestProxyAndCollectorTogether(t *testing.T) {
	up := drainUpstream(t)
	r := startCollectorRun(t, "--upstream", up.URL, "--listen", "127.0.0.1:0", "--upstream-wait", "0")
	if r.proxyURL == "" {
		t.Fatalf("no proxy listener:\n%s", r.stdout.String())
	}
	resp, err := http.Post(r.proxyURL+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	e, err := extproctest.Dial(r.extproc)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	sendStream(t, e, "via-envoy")
	_, metrics := r.get(t, "/metrics")
	for _, want := range []string{"reprise_proxy_requests_total 1", "reprise_extproc_records_total 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	alone := startCollectorRun(t)
	_, aloneMetrics := alone.get(t, "/metrics")
	if got, want := captureSeries(aloneMetrics), captureSeries(metrics); !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("capture series: collector alone %v, with the proxy %v", got, want)
	}
	alone.stop()
	if err := alone.wait(t); err != nil {
		t.Fatal(err)
	}

	r.stop()
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, r.stderr.String())
	}
	recs := capturetest.Read(t, r.dir)
	sources := map[string]string{}
	for _, rec := range recs {
		sources[rec.Path+" "+rec.ID] = rec.Source
	}
	if len(recs) != 2 || sources["/v1/completions via-envoy"] != capture.SourceExtProc {
		t.Errorf("records %v", sources)
	}
	m, err := os.ReadFile(filepath.Join(r.dir, capture.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m), "proxy upstream="+up.URL+", ext_proc listen="+r.extproc) {
		t.Errorf("manifest:\n%s", m)
	}
}

// --upstream is required unless --extproc-listen is given; without it the
// proxy's own flags are refused, not ignored; the collector's flags are
// checked, every problem at once.
func TestFrontEndFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	checkRefused(t, dir, []usageCase{
		{[]string{"--capture-dir", dir}, []string{"--upstream is required"}},
		{[]string{"--capture-dir", dir, "--extproc-listen", "127.0.0.1:0", "--shadow", "http://c", "--listen", ":8080"},
			[]string{"--shadow configures the reverse proxy and needs --upstream", "--listen configures the reverse proxy"}},
		{[]string{"--capture-dir", dir, "--extproc-listen", "127.0.0.1:0", "--extproc-idle-timeout", "-1s", "--capture-content", "all"},
			[]string{"--extproc-idle-timeout -1s: must not be negative", `--capture-content "all"`}},
		{[]string{"--capture-dir", dir, "--extproc-listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--capture-content", "all"},
			[]string{`--capture-content "all"`}},
	})
}
