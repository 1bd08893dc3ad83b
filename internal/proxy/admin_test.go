package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
)

type fixedStats struct{ st capture.WriterStats }

func (f *fixedStats) Stats() capture.WriterStats { return f.st }

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminProbesAndMetrics(t *testing.T) {
	backend := httptest.NewServer(sseBackend(4, 0))
	defer backend.Close()
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, nil)
	post(t, px.URL, chatBody, nil)
	p.Wait()
	ws := &fixedStats{capture.WriterStats{Healthy: true, Written: 1}}
	admin := httptest.NewServer(p.AdminHandler(ws, "s3cret"))
	defer admin.Close()

	if code, _ := get(t, admin.URL+"/healthz", ""); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := get(t, admin.URL+"/readyz", ""); code != 200 {
		t.Errorf("readyz %d while healthy", code)
	}
	ws.st = capture.WriterStats{Healthy: false, LastError: "no space left on device"}
	if code, body := get(t, admin.URL+"/readyz", ""); code != 200 || !strings.Contains(body, "no space") {
		t.Errorf("readyz %d %q while the writer fails: want 200 naming the failure", code, body)
	}
	p.SetDraining()
	if code, body := get(t, admin.URL+"/readyz", ""); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("readyz %d %q while draining: want 503 draining", code, body)
	}
	if code, _ := get(t, admin.URL+"/healthz", ""); code != 200 {
		t.Errorf("healthz %d while draining: the process is still up", code)
	}
	if code, _ := get(t, admin.URL+"/metrics", ""); code != 401 {
		t.Errorf("metrics without token: %d", code)
	}
	code, body := get(t, admin.URL+"/metrics", "s3cret")
	if code != 200 {
		t.Fatalf("metrics %d", code)
	}
	for _, want := range []string{"reprise_proxy_requests_total 1", "reprise_proxy_records_total 1",
		`reprise_proxy_time_to_first_token_seconds_count{endpoint="chat"} 1`, `reprise_proxy_tokens_total{kind="output"} 4`,
		"reprise_capture_healthy 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
