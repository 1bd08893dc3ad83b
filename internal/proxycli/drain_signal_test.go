//go:build unix

package proxycli

import (
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// A second SIGTERM during --drain-delay ends the delay at once: with a
// one-hour delay Run returns only because of it (r.wait fails the test
// after 60s otherwise), and it still drains and writes every record.
func TestSecondSignalEndsDrainDelay(t *testing.T) {
	// While this channel is registered, a SIGTERM to the test process is
	// delivered to channels instead of killing it, even if it arrives
	// after Run stopped listening for it.
	guard := make(chan os.Signal, 4)
	signal.Notify(guard, syscall.SIGTERM)
	defer signal.Stop(guard)

	up := drainUpstream(t)
	r := startRun(t, up.URL, "--drain-delay", "1h", "--drain-timeout", "30s")
	resp, err := http.Post(r.proxyURL+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	r.stop() // the first SIGTERM
	// /readyz answers draining once Run listens for the second signal.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.adminAddr + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "draining") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after SIGTERM: %d %q, want 503 draining", resp.StatusCode, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// During the delay the proxy still serves.
	resp, err = http.Post(r.proxyURL+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"y"}`))
	if err != nil {
		t.Fatalf("request during --drain-delay: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("request during --drain-delay: status %d", resp.StatusCode)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil { // the second
		t.Fatal(err)
	}
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "second signal during --drain-delay") {
		t.Errorf("no log line about the second signal:\n%s", r.stderr.String())
	}
	recs := capturetest.Read(t, r.dir)
	if len(recs) != 2 {
		t.Fatalf("records: %+v", recs)
	}
	for _, rec := range recs {
		if rec.Status != 200 || rec.Aborted {
			t.Errorf("record %s: status %d aborted %v", rec.ID, rec.Status, rec.Aborted)
		}
	}
}
