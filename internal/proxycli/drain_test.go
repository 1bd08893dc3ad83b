package proxycli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/proxy"
	"github.com/reprise-llm/reprise/internal/proxy/proxytest"
)

// drainUpstream answers /v1/completions with a small JSON completion and
// echoes WebSocket messages on /v1/realtime until the connection ends.
func drainUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/realtime" {
			proxytest.EchoWebSocket(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"text":"hi","finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// running is the proxy program (a reverse proxy with its admin listener)
// run in this process.
type running struct {
	*program
	proxyURL, adminAddr, dir string
}

// startRun runs the proxy in front of upstream with the given extra flags,
// capturing to a new directory, and waits until it serves.
func startRun(t *testing.T, upstream string, extra ...string) *running {
	t.Helper()
	r := &running{dir: filepath.Join(t.TempDir(), "cap")}
	args := append([]string{"--upstream", upstream, "--capture-dir", r.dir, "--listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--upstream-wait", "0"}, extra...)
	var m []string
	r.program, m = startProgram(t, regexp.MustCompile(`proxy listening on (http://[^\s,]+),[\s\S]*admin on (\S+) `), args...)
	r.proxyURL, r.adminAddr = m[1], m[2]
	return r
}

func dialWS(t *testing.T, ctx context.Context, proxyURL string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(proxyURL, "http")+"/v1/realtime", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != "echo: one" {
		t.Fatalf("through the tunnel: %q %v", got, err)
	}
	return c
}

// SIGTERM with a WebSocket open: Shutdown does not track hijacked
// connections, so without cutting them at the drain bound Run would wait
// forever. Run returns, the client's tunnel is closed, and every record
// (the finished request and the tunnel) is on disk.
func TestDrainCutsOpenWebSocketAtTheBound(t *testing.T) {
	up := drainUpstream(t)
	r := startRun(t, up.URL, "--drain-timeout", "200ms")
	resp, err := http.Post(r.proxyURL+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := dialWS(t, ctx, r.proxyURL)
	defer c.CloseNow()

	start := time.Now()
	r.stop() // SIGTERM
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, r.stderr.String())
	}
	t.Logf("Run returned %v after SIGTERM (--drain-timeout 200ms)", time.Since(start))
	if _, _, err := c.Read(ctx); err == nil {
		t.Error("the client's WebSocket is still open after Run returned")
	}
	if !strings.Contains(r.stderr.String(), "drain timeout passed") {
		t.Errorf("no log line about cutting the remaining requests:\n%s", r.stderr.String())
	}
	recs := capturetest.Read(t, r.dir)
	byPath := map[string]*capture.Record{}
	for _, rec := range recs {
		byPath[rec.Path] = rec
	}
	if len(recs) != 2 || byPath["/v1/completions"] == nil || byPath["/v1/completions"].Status != 200 ||
		byPath["/v1/realtime"] == nil || byPath["/v1/realtime"].Status != http.StatusSwitchingProtocols {
		t.Fatalf("records: %+v", recs)
	}
	// The tunnel did not finish: the drain cut it, and its record says so.
	if ws := byPath["/v1/realtime"]; !ws.Aborted || ws.Error != proxy.ErrDrainCut.Error() {
		t.Errorf("tunnel cut at the drain bound recorded aborted=%v error=%q, want aborted with %q",
			ws.Aborted, ws.Error, proxy.ErrDrainCut)
	}
	if c := byPath["/v1/completions"]; c.Aborted || c.Error != "" {
		t.Errorf("request finished before SIGTERM recorded aborted=%v error=%q", c.Aborted, c.Error)
	}
}

// On SIGTERM /readyz turns 503 "draining" first, then the listener stops
// accepting; a tunnel that ends by itself within the bound ends the drain
// early, and its record is written.
func TestDrainTurnsReadyzDrainingThenStopsAccepting(t *testing.T) {
	up := drainUpstream(t)
	r := startRun(t, up.URL, "--drain-timeout", "2m")
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + r.adminAddr + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != 200 {
		t.Fatalf("/readyz before SIGTERM: %d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := dialWS(t, ctx, r.proxyURL) // keeps the drain going until closed
	defer c.CloseNow()

	r.stop() // SIGTERM
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := readyz()
		if code == http.StatusServiceUnavailable && strings.Contains(body, "draining") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during the drain: %d %q, want 503 draining", code, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	host := strings.TrimPrefix(r.proxyURL, "http://")
	for {
		conn, err := net.DialTimeout("tcp", host, time.Second)
		if err != nil {
			break // no longer accepting
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts during the drain")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The open tunnel still works during the drain.
	if err := c.Write(ctx, websocket.MessageText, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != "echo: two" {
		t.Fatalf("tunnel during the drain: %q %v", got, err)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, r.stderr.String())
	}
	recs := capturetest.Read(t, r.dir)
	if len(recs) != 1 || recs[0].Path != "/v1/realtime" || recs[0].Aborted {
		t.Fatalf("records: %+v", recs)
	}
	if strings.Contains(r.stderr.String(), "drain timeout passed") {
		t.Errorf("the drain was cut although the tunnel ended within the bound:\n%s", r.stderr.String())
	}
}

// A stream still running at the drain bound is cut: its record says
// aborted with the drain's reason and keeps the output seen so far.
func TestDrainCutsOpenStreamAtTheBound(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"first \"}}]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a stream that never ends by itself
	}))
	t.Cleanup(up.Close)
	r := startRun(t, up.URL, "--drain-timeout", "200ms")
	resp, err := http.Post(r.proxyURL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "first") {
		t.Fatalf("first event through the proxy: %q %v", line, err)
	}
	r.stop() // SIGTERM
	if err := r.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, r.stderr.String())
	}
	recs := capturetest.Read(t, r.dir)
	if len(recs) != 1 {
		t.Fatalf("records: %+v", recs)
	}
	if rec := recs[0]; !rec.Aborted || rec.Error != proxy.ErrDrainCut.Error() || rec.Status != 200 || len(rec.ChunkTokens) != 1 {
		t.Errorf("stream cut at the drain bound: aborted=%v error=%q status %d chunks %v",
			rec.Aborted, rec.Error, rec.Status, rec.ChunkTokens)
	}
}
