package proxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/proxy/proxytest"
)

// startProxy serves a Proxy built from cfg on a loopback listener speaking
// HTTP/1.1 and h2c, like the proxy program with its default --h2c.
func startProxy(t *testing.T, cfg Config, out RecordWriter) (*Proxy, *httptest.Server) {
	t.Helper()
	if cfg.UpstreamHeader == "" {
		cfg.UpstreamHeader = "x-gateway-destination-endpoint"
	}
	p, err := New(cfg, out, capture.NewHasher([]byte("test-key"), 64), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.Config.Protocols = ServerProtocols(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return p, srv
}

func onlyRecord(t *testing.T, p *Proxy, out *memWriter) *capture.Record {
	t.Helper()
	p.Wait()
	recs := out.records()
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	return recs[0]
}

func TestH2CClientStreamsSSE(t *testing.T) {
	backend := httptest.NewServer(sseBackend(5, time.Millisecond))
	defer backend.Close()
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: backend.URL}, out)

	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true) // prior knowledge: the preface, no Upgrade
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	_, direct := post(t, backend.URL, chatBody, nil)
	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	via, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("client spoke %s to the proxy, want HTTP/2", resp.Proto)
	}
	if !bytes.Equal(direct, via) {
		t.Fatalf("bytes over h2c differ from direct:\n%q\n%q", via, direct)
	}
	r := onlyRecord(t, p, out)
	if r.Model != "m1" || !r.Stream || r.Status != 200 || r.OutputTokens != 5 || r.PromptTokens != 11 ||
		r.TokensSource != capture.TokensUsage || len(r.ChunksUS) != 5 || r.Aborted || r.Error != "" {
		t.Errorf("record over h2c wrong: %+v", r)
	}
}

func TestH2COffStillServesHTTP1(t *testing.T) {
	backend := httptest.NewServer(sseBackend(1, 0))
	defer backend.Close()
	p, err := New(Config{Upstream: backend.URL}, &memWriter{}, nil, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.Config.Protocols = ServerProtocols(false)
	srv.Start()
	defer srv.Close()
	resp, _ := post(t, srv.URL, chatBody, nil)
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Errorf("HTTP/1.1 with --h2c=false: %d %s", resp.StatusCode, resp.Proto)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: &protos}}
	if resp, err := h2.Get(srv.URL + "/x"); err == nil {
		resp.Body.Close()
		t.Errorf("an h2c client was served (%s) with --h2c=false", resp.Proto)
	}
}

// tlsBackend starts an HTTPS upstream speaking HTTP/2 and HTTP/1.1 and
// writes its certificate to a PEM file.
func tlsBackend(t *testing.T, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pemFile := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(pemFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, pemFile
}

func TestHTTPSUpstreamWithCustomCAOverHTTP2(t *testing.T) {
	var proto string
	var mu sync.Mutex
	backend, caFile := tlsBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proto = r.Proto
		mu.Unlock()
		sseBackend(3, 0)(w, r)
	}))
	out := &memWriter{}
	// The test certificate names "example.com" (and 127.0.0.1): reach the
	// upstream by IP and verify the name given by --upstream-server-name.
	p, px := startProxy(t, Config{Upstream: backend.URL, TLS: UpstreamTLS{CAFile: caFile, ServerName: "example.com"}}, out)
	resp, body := post(t, px.URL, chatBody, nil)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("[DONE]")) {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	mu.Lock()
	if proto != "HTTP/2.0" {
		t.Errorf("upstream saw %q, want HTTP/2.0 over TLS", proto)
	}
	mu.Unlock()
	r := onlyRecord(t, p, out)
	if r.Status != 200 || r.OutputTokens != 3 || r.Model != "m1" || r.Error != "" {
		t.Errorf("record wrong: %+v", r)
	}
}

func TestHTTPSUpstreamWrongCAIs502WithReason(t *testing.T) {
	backend, _ := tlsBackend(t, sseBackend(1, 0))
	// A CA made here, which signed nothing the backend serves.
	wrong := filepath.Join(t.TempDir(), "wrong.pem")
	if err := os.WriteFile(wrong, unrelatedCAPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: backend.URL, TLS: UpstreamTLS{CAFile: wrong}}, out)
	resp, body := post(t, px.URL, chatBody, nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if !strings.Contains(string(body), "certificate") {
		t.Errorf("502 body %q does not name the certificate failure", body)
	}
	r := onlyRecord(t, p, out)
	if r.Status != http.StatusBadGateway || !strings.Contains(r.Error, "certificate") {
		t.Errorf("record: status %d error %q, want 502 naming the certificate", r.Status, r.Error)
	}
	if st := p.Stats(); st.UpstreamErr != 1 {
		t.Errorf("upstream errors %d, want 1", st.UpstreamErr)
	}
}

func TestHTTPSUpstreamInsecureSkipVerify(t *testing.T) {
	backend, _ := tlsBackend(t, sseBackend(2, 0))
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: backend.URL, TLS: UpstreamTLS{InsecureSkipVerify: true}}, out)
	resp, _ := post(t, px.URL, chatBody, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 with verification off", resp.StatusCode)
	}
	if r := onlyRecord(t, p, out); r.OutputTokens != 2 {
		t.Errorf("record: %+v", r)
	}
}

func TestUpstreamTLSValidate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Upstream: "http://h:1", TLS: UpstreamTLS{ServerName: "x"}}, "only to an https://"},
		{Config{Upstream: "https://h:1", TLS: UpstreamTLS{CAFile: filepath.Join(dir, "missing.pem")}}, "--upstream-ca"},
		{Config{Upstream: "https://h:1", TLS: UpstreamTLS{CAFile: notPEM}}, "no PEM certificate"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want it to mention %q", c.cfg.TLS, err, c.want)
		}
	}
	if err := (&Config{Upstream: "https://h:1", TLS: UpstreamTLS{ServerName: "x", InsecureSkipVerify: true}}).Validate(); err != nil {
		t.Errorf("valid https TLS options refused: %v", err)
	}
}

func TestInformationalResponsesReachClient(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.Copy(io.Discard, r.Body) // sends 100 Continue when asked for
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	}))
	defer backend.Close()
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: backend.URL}, out)

	var mu sync.Mutex
	var got []int
	var link string
	continued := false
	trace := &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, code)
			if code == http.StatusEarlyHints {
				link = h.Get("Link")
			}
			return nil
		},
		Got100Continue: func() { mu.Lock(); continued = true; mu.Unlock() },
	}
	// A long ExpectContinueTimeout: the body waits for the proxy's 100.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: time.Minute}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST",
		px.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m1","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Expect", "100-continue")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if !continued {
		t.Error("the client never got 100 Continue")
	}
	hints := false
	for _, c := range got {
		hints = hints || c == http.StatusEarlyHints
	}
	if !hints || link != "</style.css>; rel=preload; as=style" {
		t.Errorf("1xx seen %v, Link %q: want 103 Early Hints with the upstream's Link", got, link)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Link") != "" {
		t.Errorf("final response %d, Link %q", resp.StatusCode, resp.Header.Get("Link"))
	}
	if r := onlyRecord(t, p, out); r.Status != 200 || r.Model != "m1" || r.OutputTokens != 1 {
		t.Errorf("record: %+v", r)
	}
}

func TestTrailersReachClient(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "payload")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc123")
		w.Header().Set(http.TrailerPrefix+"X-Late", "undeclared") // announced after the body
	}))
	defer backend.Close()
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2c=%v", h2), func(t *testing.T) {
			out := &memWriter{}
			p, px := startProxy(t, Config{Upstream: backend.URL}, out)
			tr := &http.Transport{DisableKeepAlives: true}
			if h2 {
				var protos http.Protocols
				protos.SetUnencryptedHTTP2(true)
				tr.Protocols = &protos
			}
			resp, err := (&http.Client{Transport: tr}).Get(px.URL + "/data")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "payload" || resp.Trailer.Get("X-Checksum") != "abc123" || resp.Trailer.Get("X-Late") != "undeclared" {
				t.Errorf("body %q trailers %v", body, resp.Trailer)
			}
			if r := onlyRecord(t, p, out); r.Status != 200 || r.Path != "/data" {
				t.Errorf("record: %+v", r)
			}
		})
	}
}

func TestWebSocketUpgradeThroughProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(proxytest.EchoWebSocket))
	defer backend.Close()
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: backend.URL}, out)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(px.URL, "http")+"/v1/realtime", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("handshake status %d", resp.StatusCode)
	}
	for _, m := range []string{"one", "two"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+m {
			t.Errorf("got %q, want echo of %q", got, m)
		}
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	r := onlyRecord(t, p, out)
	if r.Path != "/v1/realtime" || r.Status != http.StatusSwitchingProtocols || r.Aborted || r.E2ENs <= 0 {
		t.Errorf("record: path %q status %d aborted %v error %q e2e %d", r.Path, r.Status, r.Aborted, r.Error, r.E2ENs)
	}
}

// hashingBackend answers with the length and SHA-256 of the request body
// it received, and the Content-Encoding and Transfer-Encoding it saw.
func hashingBackend() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"n":%d,"sha":%q,"te":%q,"ce":%q,"usage":{"prompt_tokens":7,"completion_tokens":2}}`,
			n, hex.EncodeToString(h.Sum(nil)), strings.Join(r.TransferEncoding, ","), r.Header.Get("Content-Encoding"))
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestChunkedUploadOfUnknownLength(t *testing.T) {
	backend := httptest.NewServer(hashingBackend())
	defer backend.Close()
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: backend.URL}, out)
	body := []byte(`{"model":"m1","messages":[{"role":"user","content":"` + strings.Repeat("chunked ", 1000) + `"}]}`)
	pr, pw := io.Pipe()
	go func() {
		for b := body; len(b) > 0; {
			n := min(len(b), 333)
			_, _ = pw.Write(b[:n])
			b = b[n:]
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", pr) // no length: chunked
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`"n":%d,"sha":%q,"te":"chunked"`, len(body), sha(body))
	if !strings.Contains(string(got), want) {
		t.Errorf("upstream saw %s, want %s", got, want)
	}
	r := onlyRecord(t, p, out)
	if r.Model != "m1" || r.NMessages != 1 || r.BodyTruncated || r.PromptTokens != 7 {
		t.Errorf("record: %+v", r)
	}
}

func TestHugeBodyForwardedIntactParsingCapped(t *testing.T) {
	backend := httptest.NewServer(hashingBackend())
	defer backend.Close()
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: backend.URL, MaxBody: 1 << 20}, out)
	// 64 MiB: 64 times the parse cap; the prefix still names the model.
	head := []byte(`{"model":"m-big","max_tokens":9,"messages":[{"role":"user","content":"`)
	tail := []byte(`"}]}`)
	body := make([]byte, 64<<20)
	copy(body, head)
	for i := len(head); i < len(body)-len(tail); i++ {
		body[i] = 'a' + byte(i%26)
	}
	copy(body[len(body)-len(tail):], tail)
	resp, err := testClient.Post(px.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`"n":%d,"sha":%q`, len(body), sha(body)); !strings.Contains(string(got), want) {
		t.Errorf("upstream saw %s, want %s", got, want)
	}
	r := onlyRecord(t, p, out)
	if !r.BodyTruncated || r.Model != "m-big" || r.MaxTokens != 9 || r.Status != 200 || r.Aborted {
		t.Errorf("record: truncated %v model %q max_tokens %d status %d aborted %v", r.BodyTruncated, r.Model, r.MaxTokens, r.Status, r.Aborted)
	}
}

func TestNonOpenAIPathsRecordedAsPathStatusLatency(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		// Looks like a chat body; must not be parsed on a non-OpenAI path.
		fmt.Fprint(w, `{"model":"x","usage":{"prompt_tokens":5,"completion_tokens":5}}`)
	}))
	defer backend.Close()
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: backend.URL, Content: capture.ContentFull}, out)
	req, _ := http.NewRequest("PUT", px.URL+"/internal/admin?x=1", strings.NewReader(`{"model":"secret-model","messages":[{"role":"user","content":"hi"}]}`))
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	r := onlyRecord(t, p, out)
	if r.Method != "PUT" || r.Path != "/internal/admin" || r.Status != http.StatusTeapot || r.E2ENs <= 0 || r.TTFBNs <= 0 {
		t.Errorf("path/status/latency: %+v", r)
	}
	if r.Model != "" || r.Prompt != "" || len(r.Messages) != 0 || r.PromptTokens != 0 || r.OutputTokens != 0 || r.TokensSource != "" || len(r.HashIDs) != 0 {
		t.Errorf("a non-OpenAI path was parsed: %+v", r)
	}
}

// unrelatedCAPEM makes a fresh self-signed CA certificate (its key is
// thrown away).
func unrelatedCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unrelated test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestHTTPSUpstreamServerNameMismatchIs502(t *testing.T) {
	backend, caFile := tlsBackend(t, sseBackend(1, 0))
	out := &memWriter{}
	// The right CA, but a name the certificate does not carry.
	p, px := startProxy(t, Config{Upstream: backend.URL, TLS: UpstreamTLS{CAFile: caFile, ServerName: "wrong.example"}}, out)
	resp, body := post(t, px.URL, chatBody, nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "wrong.example") {
		t.Errorf("status %d body %q, want 502 naming the unverified name", resp.StatusCode, body)
	}
	if r := onlyRecord(t, p, out); !strings.Contains(r.Error, "wrong.example") {
		t.Errorf("record error %q", r.Error)
	}
}
