package proxy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
)

// breakDir makes a capture directory unusable for new segments. Permission
// bits do not stop root, so as root the directory is replaced by a regular
// file (every create below it then fails with "not a directory", as on a
// volume that went away); otherwise it is made read-only.
func breakDir(t *testing.T, dir string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
		return "read-only directory"
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "directory replaced by a file"
}

// waitStats polls the writer until cond holds. It waits as long as the
// writer needs (the test's own timeout is the bound): no timing assertion.
func waitStats(w *capture.Writer, cond func(capture.WriterStats) bool) capture.WriterStats {
	for {
		if st := w.Stats(); cond(st) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestUnwritableCaptureKeepsTrafficFlowingAndReportsDegraded(t *testing.T) {
	backend := httptest.NewServer(sseBackend(3, 0))
	defer backend.Close()
	dir := filepath.Join(t.TempDir(), "capture")
	w, err := capture.NewWriter(dir, capture.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p, px := startProxy(t, Config{Upstream: backend.URL}, w)
	admin := httptest.NewServer(p.AdminHandler(w, ""))
	defer admin.Close()

	ok := func() {
		t.Helper()
		resp, body := post(t, px.URL, chatBody, nil)
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte("[DONE]")) {
			t.Fatalf("request through the proxy: %d %q", resp.StatusCode, body)
		}
	}
	ok()
	p.Wait()
	waitStats(w, func(s capture.WriterStats) bool { return s.Written == 1 })
	if code, _ := get(t, admin.URL+"/readyz", ""); code != 200 {
		t.Fatalf("readyz %d before the failure", code)
	}
	// Finish the open segment (an unlinked open file would keep accepting
	// writes), so the next record needs a new file in the directory.
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}

	how := breakDir(t, dir)
	const after = 5
	for i := 0; i < after; i++ {
		ok()
	}
	p.Wait()
	st := waitStats(w, func(s capture.WriterStats) bool { return s.Written+s.Lost >= 1+after })
	if st.Lost != after || st.Healthy || st.WriteErrors == 0 {
		t.Errorf("%s: written %d lost %d healthy %v write errors %d; want %d lost, unhealthy", how, st.Written, st.Lost, st.Healthy, st.WriteErrors, after)
	}
	if ps := p.Stats(); ps.Requests != 1+after || ps.UpstreamErr != 0 || ps.Aborted != 0 {
		t.Errorf("proxy stats %+v: traffic was affected", ps)
	}
	code, body := get(t, admin.URL+"/readyz", "")
	if code != http.StatusOK || !strings.Contains(body, "capture degraded") {
		t.Errorf("readyz %d %q, want 200 naming the degraded capture (traffic must stay in rotation)", code, body)
	}
	p.cfg.ReadyRequiresCapture = true // admin above still serves; this handler is called in this goroutine
	rec := httptest.NewRecorder()
	p.AdminHandler(w, "").ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "capture degraded") {
		t.Errorf("readyz with ReadyRequiresCapture %d %q, want 503 capture degraded", rec.Code, rec.Body.String())
	}
	code, body = get(t, admin.URL+"/healthz", "")
	if code != 200 || !strings.Contains(body, "capture degraded") {
		t.Errorf("healthz %d %q, want 200 naming the degraded capture", code, body)
	}
	_, metrics := get(t, admin.URL+"/metrics", "")
	for _, want := range []string{"reprise_capture_records_lost_total 5", "reprise_capture_healthy 0", "reprise_proxy_requests_total 6"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
