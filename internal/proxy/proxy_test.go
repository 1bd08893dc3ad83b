package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/reprise-llm/reprise/internal/capture"
)

// memWriter collects records in memory: the proxy's only non-HTTP seam.
type memWriter struct {
	mu   sync.Mutex
	recs []*capture.Record
	full bool // refuse every record, like a full queue
}

var _ RecordWriter = (*memWriter)(nil)

func (m *memWriter) Write(r *capture.Record) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.full {
		return false
	}
	m.recs = append(m.recs, r)
	return true
}

func (m *memWriter) records() []*capture.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*capture.Record(nil), m.recs...)
}

// sseBackend streams n chat chunks with gap between them, then a usage chunk
// and [DONE], flushing each event.
func sseBackend(n int, gap time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Backend", "yes")
		w.Header().Set("x-gateway-destination-endpoint", "10.0.0.7:8000")
		fl := w.(http.Flusher)
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n")
		fl.Flush()
		for i := 0; i < n; i++ {
			time.Sleep(gap)
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"}}]}\n\n", i)
			fl.Flush()
		}
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n")
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":%d}}\n\n", n)
		fmt.Fprintf(w, "data: [DONE]\n\n")
	}
}

func newTestProxy(t *testing.T, upstream string, out RecordWriter, log *zap.Logger) (*Proxy, *httptest.Server) {
	t.Helper()
	p, err := New(Config{Upstream: upstream, UpstreamHeader: "x-gateway-destination-endpoint"}, out,
		capture.NewHasher([]byte("test-key"), 64), time.Now(), log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

const chatBody = `{"model":"m1","stream":true,"max_tokens":5,"messages":[{"role":"system","content":"you are terse"},{"role":"user","content":"hello"}]}`

// testClient never reuses connections: httptest servers of earlier tests
// may have had the same port, and a stale keep-alive connection to a closed
// server would fail a POST (which the transport does not retry).
var testClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func post(t *testing.T, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestForwardsBytesUnchangedAndRecordsOnce(t *testing.T) {
	backend := httptest.NewServer(sseBackend(5, time.Millisecond))
	defer backend.Close()
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, nil)

	_, direct := post(t, backend.URL, chatBody, nil)
	resp, via := post(t, px.URL, chatBody, nil)
	p.Wait() // the record is written as the handler returns
	if !bytes.Equal(direct, via) {
		t.Fatalf("bytes through the proxy differ from direct:\n%q\n%q", via, direct)
	}
	if resp.Header.Get("X-Backend") != "yes" || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("response headers not forwarded: %v", resp.Header)
	}
	recs := out.records()
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	r := recs[0]
	if r.Path != "/v1/chat/completions" || r.Model != "m1" || !r.Stream || r.MaxTokens != 5 || r.NMessages != 2 {
		t.Errorf("request fields wrong: %+v", r)
	}
	if r.Status != 200 || r.OutputTokens != 5 || r.PromptTokens != 11 || r.TokensSource != capture.TokensUsage {
		t.Errorf("response fields wrong: status=%d out=%d prompt=%d src=%s", r.Status, r.OutputTokens, r.PromptTokens, r.TokensSource)
	}
	if r.FinishReason != "length" || r.Upstream != "10.0.0.7:8000" || r.Aborted || r.Error != "" {
		t.Errorf("finish=%q upstream=%q aborted=%v err=%q", r.FinishReason, r.Upstream, r.Aborted, r.Error)
	}
	if len(r.ChunksUS) != 5 || r.TTFTNs <= 0 || r.TTFTNs < r.TTFBNs || r.E2ENs < r.TTFTNs {
		t.Errorf("timings: chunks=%d ttfb=%d ttft=%d e2e=%d", len(r.ChunksUS), r.TTFBNs, r.TTFTNs, r.E2ENs)
	}
	if len(r.HashIDs) == 0 || r.Prompt != "" {
		t.Errorf("hashed mode: hash_ids=%v prompt=%q", r.HashIDs, r.Prompt)
	}
}

func TestRequestReachesUpstreamUnchanged(t *testing.T) {
	type seen struct {
		method, uri, host, body string
		hdr                     http.Header
	}
	got := make(chan seen, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, string(b), r.Header.Clone()}
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("short and stout"))
	}))
	defer backend.Close()
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, nil)

	req, _ := http.NewRequest("PUT", px.URL+"/some/other/path?x=1&y=2", strings.NewReader("not json at all"))
	req.Host = "gateway.example"
	req.Header.Set("X-Custom", "v1")
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := <-got
	p.Wait()
	if s.method != "PUT" || s.uri != "/some/other/path?x=1&y=2" || s.host != "gateway.example" || s.body != "not json at all" {
		t.Errorf("upstream saw %+v", s)
	}
	if s.hdr.Get("X-Custom") != "v1" || s.hdr.Get("X-Forwarded-For") != "192.0.2.1" {
		t.Errorf("headers changed: %v", s.hdr)
	}
	if resp.StatusCode != http.StatusTeapot || string(b) != "short and stout" {
		t.Errorf("client got %d %q", resp.StatusCode, b)
	}
	recs := out.records()
	if len(recs) != 1 || recs[0].Status != http.StatusTeapot || recs[0].Path != "/some/other/path" || recs[0].Method != "PUT" {
		t.Fatalf("records: %+v", recs)
	}
}

// A backend that flushes headers and one event, then blocks, proves the
// proxy streams rather than buffers.
func TestStreamsBeforeUpstreamFinishes(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	defer backend.Close()
	defer close(release)
	_, px := newTestProxy(t, backend.URL, &memWriter{}, nil)
	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", strings.NewReader(chatBody))
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "first") {
		t.Fatalf("first event not streamed: %q %v", line, err)
	}
}

// An upstream that echoes a credential back in its error (a JSON error
// body, an in-stream error event, a broken stream's error) does not get it
// into the record or the logs: the error text is scrubbed and bounded.
func TestUpstreamErrorTextScrubbed(t *testing.T) {
	const secret = "sk-PLANTEDerror9f8e7d"
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/v1/chat/completions":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: {\"error\":{\"message\":\"revoked: Authorization: Bearer %s\"}}\n\ndata: [DONE]\n\n", secret)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s. api_key=%s %s","type":"auth"}}`,
				secret, secret, strings.Repeat("long ", 1000))
		}
	}))
	defer backend.Close()
	var logs syncBuf
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zap.DebugLevel))
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, log)
	post(t, px.URL, chatBody, nil)
	postPath(t, px.URL, "/v1/completions", `{"model":"m","prompt":"x"}`)
	p.Wait()
	recs := out.records()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	for _, r := range recs {
		if r.Error == "" || strings.Contains(r.Error, "PLANTED") || len(r.Error) > 1100 {
			t.Errorf("record %s error %d bytes: %.200q", r.Path, len(r.Error), r.Error)
		}
	}
	if strings.Contains(logs.String(), "PLANTED") || !strings.Contains(logs.String(), "xxxxx") {
		t.Errorf("logs:\n%.2000s", logs.String())
	}
}

// syncBuf is a bytes.Buffer safe for a logger and a test at once.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSecretsNeverRecordedOrLogged(t *testing.T) {
	const secret = "sk-PLANTED-SECRET-4242"
	backend := httptest.NewServer(sseBackend(2, 0))
	defer backend.Close()
	var logs bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zap.DebugLevel))
	out := &memWriter{}
	p1, px := newTestProxy(t, backend.URL, out, log)
	post(t, px.URL, chatBody, map[string]string{
		"Authorization": "Bearer " + secret, "Cookie": "session=" + secret,
		"X-Api-Key": secret, "Api-Key": secret,
	})
	// and an upstream failure, which is logged
	p2, px2 := newTestProxy(t, "http://127.0.0.1:1", out, log)
	post(t, px2.URL, chatBody, map[string]string{"Authorization": "Bearer " + secret})
	p1.Wait()
	p2.Wait()
	all, _ := json.Marshal(out.records())
	if bytes.Contains(all, []byte(secret)) || bytes.Contains(all, []byte("PLANTED")) {
		t.Fatalf("secret in records: %s", all)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("secret in logs: %s", logs.String())
	}
	if len(out.records()) != 2 {
		t.Fatalf("want 2 records, got %d", len(out.records()))
	}
}

func TestUnreachableUpstreamIs502AndRecorded(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	out := &memWriter{}
	p, px := newTestProxy(t, "http://"+addr, out, nil)
	resp, _ := post(t, px.URL, chatBody, nil)
	p.Wait()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	recs := out.records()
	if len(recs) != 1 || recs[0].Status != http.StatusBadGateway || recs[0].Error == "" {
		t.Fatalf("record: %+v", recs)
	}
	if p.Stats().UpstreamErr != 1 {
		t.Errorf("upstream errors counted %d", p.Stats().UpstreamErr)
	}
}

func TestFullWriterNeverBreaksTraffic(t *testing.T) {
	backend := httptest.NewServer(sseBackend(3, 0))
	defer backend.Close()
	out := &memWriter{full: true}
	p, px := newTestProxy(t, backend.URL, out, nil)
	_, direct := post(t, backend.URL, chatBody, nil)
	for i := 0; i < 5; i++ {
		if _, via := post(t, px.URL, chatBody, nil); !bytes.Equal(via, direct) {
			t.Fatal("traffic altered while capture fails")
		}
	}
	p.Wait()
	if st := p.Stats(); st.Dropped != 5 || st.Recorded != 0 || st.Requests != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClientDisconnectMidStreamAborts(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	upstreamGone := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}]}\n\n", i); err != nil {
				break
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(upstreamGone)
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}))
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, nil)
	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", strings.NewReader(chatBody))
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 6; i++ { // three events
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close() // client goes away
	select {
	case <-upstreamGone:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream request not cancelled after client disconnect")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(out.records()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.Wait()
	recs := out.records()
	if len(recs) != 1 || !recs[0].Aborted || recs[0].OutputTokens < 3 {
		t.Fatalf("record: %+v", recs)
	}
	px.Close()
	backend.Close()
}

func TestUpstreamResetMidStreamReachesClient(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"partial\"}}]}\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(5 * time.Millisecond)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // reset mid-stream
		}
	}))
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, nil)
	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", strings.NewReader(chatBody))
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("client read the whole body without error; the upstream reset must reach it as an abort")
	}
	p.Wait()
	recs := out.records()
	if len(recs) != 1 || !recs[0].Aborted || recs[0].Error == "" || recs[0].OutputTokens < 1 {
		t.Fatalf("record: %+v", recs)
	}
	px.Close()
	backend.Close()
}

func TestConfigValidateNamesEveryProblem(t *testing.T) {
	err := (&Config{Upstream: "ftp:/x", Content: "everything", MaxBody: -1}).Validate()
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"--upstream", "--capture-content", "--max-parse-bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
