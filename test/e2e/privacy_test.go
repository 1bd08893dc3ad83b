package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// A secret planted in every place clients put credentials (Authorization,
// x-api-key, api-key, Cookie, an api_key query parameter) must appear in no
// capture file (decompressed) and no log line, at debug level, with full
// content capture, --ensure-usage and a shadow candidate; the candidate
// must not receive it either. Every debug line about a request carries the
// request id, the client's X-Request-Id when it sent one.
func TestPrivacyPlantedSecretNeverRecordedOrLogged(t *testing.T) {
	const secret = "sk-PLANTED-e2e-7f3a9c"
	sim := start(t, bin("replay"), "sim", "--listen", "127.0.0.1:0", "--ttft-base", "1ms", "--itl-base", "1ms", "--jitter", "0")

	var candMu sync.Mutex
	var candSaw strings.Builder
	cand := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		candMu.Lock()
		fmt.Fprintf(&candSaw, "%s %s %v %s\n", r.Method, r.RequestURI, r.Header, b)
		candMu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	defer cand.Close()

	dir := filepath.Join(t.TempDir(), "cap")
	px := start(t, bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", sim.addr, "--capture-dir", dir,
		"--log-level", "debug", "--capture-content", "full", "--ensure-usage",
		"--shadow", cand.URL, "--shadow-fraction", "1", "--session-header", "x-session")

	requests := []struct{ method, path, body, reqID string }{
		{"POST", "/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hello"}]}`, "privacy-req-1"},
		{"POST", "/v1/chat/completions", `{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"hello"}]}`, ""},
		{"POST", "/v1/completions", `{"model":"m","stream":true,"max_tokens":3,"prompt":"once"}`, ""},
		{"POST", "/v1/embeddings", `{"model":"e","input":"x"}`, ""},
		{"POST", "/v1/chat/completions", `{"model":`, "privacy-bad-body"},
		{"GET", "/v1/models", "", ""},
	}
	for _, rq := range requests {
		req, _ := http.NewRequest(rq.method, px.addr+rq.path+"?api_key="+secret+"&x=1", strings.NewReader(rq.body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("x-api-key", secret)
		req.Header.Set("api-key", secret)
		req.Header.Set("Cookie", "session="+secret)
		req.Header.Set("x-session", "user-42")
		if rq.reqID != "" {
			req.Header.Set("X-Request-Id", rq.reqID)
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", rq.method, rq.path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err := px.stop(t); err != nil {
		t.Fatalf("proxy exit: %v\n%s", err, px.stderr.String())
	}
	logs := px.stderr.String()

	all := captureText(t, dir)
	for _, where := range []struct {
		name, text string
	}{{"capture files", all.String()}, {"logs", logs}, {"shadow candidate's requests", candSaw.String()}} {
		if strings.Contains(where.text, secret) || strings.Contains(where.text, "PLANTED") {
			t.Errorf("planted secret found in %s:\n%.3000s", where.name, where.text)
		}
	}

	recs := capturetest.Read(t, dir)
	primary, shadow := 0, 0
	for _, r := range recs {
		if r.Shadow {
			shadow++
		} else {
			primary++
		}
	}
	if primary != len(requests) || shadow == 0 {
		t.Errorf("%d primary and %d shadow records for %d requests", primary, shadow, len(requests))
	}
	if !bytes.Contains(all.Bytes(), []byte(`"request_id":"privacy-req-1"`)) {
		t.Errorf("the client's X-Request-Id is not in the capture")
	}
	// Debug lines about requests carry request_id: the client's, or the
	// generated record id.
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "\trequest\t") && !strings.Contains(line, "shadow done") {
			continue
		}
		n++
		if !strings.Contains(line, `"request_id"`) {
			t.Errorf("log line without request_id: %s", line)
		}
	}
	if n < len(requests) || !strings.Contains(logs, `"request_id": "privacy-req-1"`) || !strings.Contains(logs, `"request_id": "privacy-bad-body"`) {
		t.Errorf("%d request log lines; the client's request ids missing?\n%s", n, logs)
	}
}

// captureText is every file of a capture (the manifest included), raw and
// decompressed, for grepping.
func captureText(t *testing.T, dir string) *bytes.Buffer {
	t.Helper()
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	var all bytes.Buffer
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatalf("no capture files in %s", dir)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(raw)
		if strings.HasSuffix(f, ".zst") {
			plain, err := dec.DecodeAll(raw, nil)
			if err != nil {
				t.Fatalf("decompressing %s: %v", f, err)
			}
			all.Write(plain)
		}
	}
	return &all
}

// A key in --upstream's userinfo or query (api_key=, key=, token=) appears
// in no capture file (the manifest's source included), not on stdout and
// not in the logs, nor in the error of an unreachable upstream; a key an
// upstream echoes back in an error (a JSON error body, an in-stream error
// event) is scrubbed from records and logs.
func TestPrivacyUpstreamURLAndErrorSecretsNeverShown(t *testing.T) {
	const secret = "sk-PLANTEDupstream4242"
	var upstreamSaw lockedBuffer
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(&upstreamSaw, "%s %s\n", r.Method, r.URL.RequestURI())
		if r.URL.Path == "/v1/chat/completions" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n")
			fmt.Fprintf(w, "data: {\"error\":{\"message\":\"token revoked: Bearer %s (key=%s)\"}}\n\ndata: [DONE]\n\n", secret, secret)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s","type":"invalid_request_error"}}`, secret)
	}))
	defer upstream.Close()
	up, _ := url.Parse(upstream.URL)
	withSecrets := "http://admin:" + secret + "@" + up.Host + "/?api_key=" + secret + "&token=" + secret + "&api-key=" + secret

	dir := filepath.Join(t.TempDir(), "cap")
	var stdout, stderr lockedBuffer
	cmd := exec.Command(bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", withSecrets, "--capture-dir", dir,
		"--log-level", "debug", "--admin-listen", "")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	re := regexp.MustCompile(`proxy listening on (http://[^\s,]+)`)
	var addr string
	for deadline := time.Now().Add(60 * time.Second); addr == ""; {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("proxy exited: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not start\n%s", stderr.String())
		}
	}
	for _, rq := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`},
		{"/v1/completions", `{"model":"m","prompt":"x"}`},
	} {
		resp, err := testClient.Post(addr+rq.path, "application/json", strings.NewReader(rq.body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("proxy exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("proxy did not exit after SIGTERM")
	}
	if !strings.Contains(upstreamSaw.String(), "api_key="+secret) {
		t.Errorf("the upstream's own query no longer reaches it: %s", upstreamSaw.String())
	}

	// The unreachable-upstream error names the upstream without its keys.
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := "http://u:" + secret + "@" + closed.Listener.Addr().String() + "/?key=" + secret
	closed.Close()
	var unreachOut, unreachErr lockedBuffer
	cmd2 := exec.Command(bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", closedURL, "--upstream-wait", "300ms",
		"--capture-dir", filepath.Join(t.TempDir(), "cap2"), "--admin-listen", "")
	cmd2.Stdout, cmd2.Stderr = &unreachOut, &unreachErr
	if err := cmd2.Run(); err == nil || !strings.Contains(unreachErr.String(), "unreachable") {
		t.Errorf("unreachable upstream: exit %v, stderr %q", err, unreachErr.String())
	}

	all := captureText(t, dir)
	for _, where := range []struct{ name, text string }{
		{"capture files", all.String()}, {"stdout", stdout.String()}, {"logs", stderr.String()},
		{"unreachable upstream's output", unreachOut.String() + unreachErr.String()},
	} {
		if strings.Contains(where.text, secret) || strings.Contains(where.text, "PLANTED") {
			t.Errorf("planted secret found in %s:\n%.3000s", where.name, where.text)
		}
	}
	recs := capturetest.Read(t, dir)
	errs := 0
	for _, r := range recs {
		if strings.Contains(r.Error, "xxxxx") {
			errs++
		}
	}
	if len(recs) != 2 || errs != 2 {
		t.Errorf("want 2 records with the upstream's error scrubbed, got %d (%d scrubbed): %+v", len(recs), errs, recs)
	}
	if !strings.Contains(stdout.String(), "forwarding to http://xxxxx@"+up.Host) {
		t.Errorf("stdout does not name the upstream (redacted): %s", stdout.String())
	}
}
