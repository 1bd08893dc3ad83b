package proxy

import (
	"bytes"
	"context"
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

	"github.com/reprise-llm/reprise/internal/capture"
)

// candidate is a shadow target that records what it received and answers
// like sseBackend.
type candidate struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct {
	method, uri string
	header      http.Header
	body        []byte
}

func newCandidate(t *testing.T, tokens int) *candidate {
	t.Helper()
	c := &candidate{}
	backend := sseBackend(tokens, 0)
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.seen = append(c.seen, seenRequest{r.Method, r.RequestURI, r.Header.Clone(), b})
		c.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		backend(w, r)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *candidate) requests() []seenRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]seenRequest(nil), c.seen...)
}

func newShadowProxy(t *testing.T, upstream string, sc ShadowConfig, out RecordWriter) (*Proxy, *httptest.Server) {
	t.Helper()
	p, err := New(Config{Upstream: upstream, UpstreamHeader: "x-gateway-destination-endpoint", Shadow: sc}, out,
		capture.NewHasher([]byte("test-key"), 64), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func stopShadow(p *Proxy, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	p.Wait()
	p.StopShadow(ctx)
}

// splitRecords returns the primary and shadow records.
func splitRecords(recs []*capture.Record) (primary, shadow []*capture.Record) {
	for _, r := range recs {
		if r.Shadow {
			shadow = append(shadow, r)
		} else {
			primary = append(primary, r)
		}
	}
	return primary, shadow
}

func TestShadowMirrorsRequestAndRecordsCandidate(t *testing.T) {
	backend := httptest.NewServer(sseBackend(5, 0))
	defer backend.Close()
	cand := newCandidate(t, 3)
	out := &memWriter{}
	p, px := newShadowProxy(t, backend.URL, ShadowConfig{
		URL: cand.URL + "/base", Fraction: 1, Headers: HeaderList{"Authorization: Bearer candidate-token"},
	}, out)

	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions?api_key=sk-client&trace=1", strings.NewReader(chatBody))
	for k, v := range map[string]string{
		"Authorization": "Bearer sk-client", "X-Api-Key": "sk-client", "Api-Key": "sk-client", "Cookie": "s=sk-client",
		"X-Request-Id": "req-abc-1", "X-Custom": "kept", "Connection": "X-Hop", "X-Hop": "dropped",
	} {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, direct := post(t, backend.URL, chatBody, nil)
	if !bytes.Equal(got, direct) {
		t.Fatalf("client bytes changed by shadowing:\n%q\n%q", got, direct)
	}
	stopShadow(p, 5*time.Second)

	seen := cand.requests()
	if len(seen) != 1 {
		t.Fatalf("candidate saw %d requests, want 1", len(seen))
	}
	s := seen[0]
	if s.method != "POST" || s.uri != "/base/v1/chat/completions?trace=1" || string(s.body) != chatBody {
		t.Errorf("candidate got %s %s %q", s.method, s.uri, s.body)
	}
	if s.header.Get("Authorization") != "Bearer candidate-token" {
		t.Errorf("Authorization on the candidate: %q, want the --shadow-header one", s.header.Get("Authorization"))
	}
	for _, h := range []string{"X-Api-Key", "Api-Key", "Cookie", "X-Hop"} {
		if v := s.header.Get(h); v != "" {
			t.Errorf("%s forwarded to the candidate: %q", h, v)
		}
	}
	if s.header.Get("X-Custom") != "kept" || s.header.Get("X-Request-Id") != "req-abc-1" {
		t.Errorf("client headers not mirrored: %v", s.header)
	}

	primary, shadow := splitRecords(out.records())
	if len(primary) != 1 || len(shadow) != 1 {
		t.Fatalf("%d primary and %d shadow records, want 1 and 1", len(primary), len(shadow))
	}
	pr, sr := primary[0], shadow[0]
	if sr.ID != pr.ID || sr.RequestID != "req-abc-1" || pr.RequestID != "req-abc-1" {
		t.Errorf("ids: primary %s/%s shadow %s/%s", pr.ID, pr.RequestID, sr.ID, sr.RequestID)
	}
	if pr.OutputTokens != 5 || sr.OutputTokens != 3 || sr.TokensSource != capture.TokensUsage || sr.Status != 200 {
		t.Errorf("tokens: primary %d, shadow %d (%s, status %d)", pr.OutputTokens, sr.OutputTokens, sr.TokensSource, sr.Status)
	}
	if len(sr.ChunksUS) != 3 || sr.TTFTNs <= 0 || sr.E2ENs < sr.TTFTNs || sr.Aborted || sr.Error != "" {
		t.Errorf("shadow timing: %+v", sr)
	}
	if sr.Model != "m1" || sr.PromptChars != pr.PromptChars || len(sr.HashIDs) != len(pr.HashIDs) || sr.Upstream != "10.0.0.7:8000" {
		t.Errorf("shadow request fields differ from the primary's: %+v vs %+v", sr, pr)
	}
	if sr.T < pr.T {
		t.Errorf("shadow sent (t=%d) before the request arrived (t=%d)", sr.T, pr.T)
	}
	if st := p.ShadowStats(); st.Sent != 1 || st.Recorded != 1 || st.Failed != 0 || st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestShadowForwardAuth(t *testing.T) {
	backend := httptest.NewServer(sseBackend(1, 0))
	defer backend.Close()
	cand := newCandidate(t, 1)
	p, px := newShadowProxy(t, backend.URL, ShadowConfig{URL: cand.URL, Fraction: 1, ForwardAuth: true}, &memWriter{})
	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions?api_key=k1", strings.NewReader(chatBody))
	req.Header.Set("Authorization", "Bearer k2")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	stopShadow(p, 5*time.Second)
	seen := cand.requests()
	if len(seen) != 1 || seen[0].header.Get("Authorization") != "Bearer k2" || seen[0].uri != "/v1/chat/completions?api_key=k1" {
		t.Fatalf("credentials not forwarded with ForwardAuth: %+v", seen)
	}
}

func TestShadowWithoutBody(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "{}") }))
	defer backend.Close()
	cand := newCandidate(t, 1)
	out := &memWriter{}
	p, px := newShadowProxy(t, backend.URL, ShadowConfig{URL: cand.URL, Fraction: 1}, out)
	resp, err := testClient.Get(px.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stopShadow(p, 5*time.Second)
	if seen := cand.requests(); len(seen) != 1 || seen[0].method != "GET" || seen[0].uri != "/v1/models" {
		t.Fatalf("candidate saw %+v", seen)
	}
	if _, shadow := splitRecords(out.records()); len(shadow) != 1 || shadow[0].Path != "/v1/models" {
		t.Fatalf("shadow records %+v", shadow)
	}
}

// stallingCandidate accepts connections and never reads or answers them,
// like a hung server; it closes them at cleanup.
func stallingCandidate(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String()
}

func TestStalledCandidateIsSkippedNeverWaitedFor(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the servers' cleanups
	backend := httptest.NewServer(sseBackend(2, 0))
	defer backend.Close()
	out := &memWriter{}
	p, px := newShadowProxy(t, backend.URL, ShadowConfig{URL: stallingCandidate(t), Fraction: 1, MaxInFlight: 2}, out)
	const n = 10
	for i := 0; i < n; i++ {
		resp, body := post(t, px.URL, chatBody, nil)
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte("[DONE]")) {
			t.Fatalf("request %d: status %d body %q", i, resp.StatusCode, body)
		}
	}
	p.Wait()
	st := p.ShadowStats()
	if st.Sampled != n || st.Sent != 2 || st.SkippedFull != n-2 || st.InFlight != 2 {
		t.Fatalf("stats with every slot stalled: %+v", st)
	}
	// Shutdown cancels the stalled shadows; they are recorded as failed.
	stopShadow(p, 50*time.Millisecond)
	primary, shadow := splitRecords(out.records())
	if len(primary) != n || len(shadow) != 2 {
		t.Fatalf("%d primary, %d shadow records", len(primary), len(shadow))
	}
	for _, r := range shadow {
		if r.Status != 0 || !strings.Contains(r.Error, "cancelled at shutdown") {
			t.Errorf("stalled shadow record: status %d error %q", r.Status, r.Error)
		}
	}
	if st := p.ShadowStats(); st.Failed != 2 || st.InFlight != 0 {
		t.Errorf("stats after stop: %+v", st)
	}
	backend.CloseClientConnections()
	px.CloseClientConnections()
}

func TestShadowTimeoutAndDeadCandidate(t *testing.T) {
	backend := httptest.NewServer(sseBackend(1, 0))
	defer backend.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name, url, want string
	}{
		{"stalled", stallingCandidate(t), "shadow timeout after 100ms"},
		{"dead", dead, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &memWriter{}
			p, px := newShadowProxy(t, backend.URL, ShadowConfig{URL: tc.url, Fraction: 1, Timeout: 100 * time.Millisecond}, out)
			post(t, px.URL, chatBody, nil)
			stopShadow(p, 10*time.Second)
			_, shadow := splitRecords(out.records())
			if len(shadow) != 1 || !strings.Contains(shadow[0].Error, tc.want) || shadow[0].Status != 0 {
				for _, r := range shadow {
					t.Logf("shadow record %+v", *r)
				}
				t.Fatalf("%d shadow records, want 1 with error %q", len(shadow), tc.want)
			}
			if st := p.ShadowStats(); st.Failed != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestShadowSkipsBodyOverParseCap(t *testing.T) {
	backend := httptest.NewServer(sseBackend(1, 0))
	defer backend.Close()
	cand := newCandidate(t, 1)
	p, err := New(Config{Upstream: backend.URL, MaxBody: 16, Shadow: ShadowConfig{URL: cand.URL, Fraction: 1}}, &memWriter{}, nil, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(p)
	defer px.Close()
	post(t, px.URL, chatBody, nil)
	stopShadow(p, 5*time.Second)
	if st := p.ShadowStats(); st.SkippedBody != 1 || st.Sent != 0 || len(cand.requests()) != 0 {
		t.Fatalf("stats %+v, candidate saw %d", st, len(cand.requests()))
	}
}

func TestShadowSampleIsSeededAndUnbiased(t *testing.T) {
	draw := func(seed uint64, f float64, n int) []bool {
		s := newShadower(ShadowConfig{URL: "http://x", Fraction: f, Seed: seed}, nil, time.Now(), nil, "", zapNop())
		out := make([]bool, n)
		for i := range out {
			out[i] = s.sample()
		}
		return out
	}
	a, b, c := draw(7, 0.3, 20000), draw(7, 0.3, 20000), draw(8, 0.3, 20000)
	same, hits := true, 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same seed, different sample")
		}
		same = same && a[i] == c[i]
		if a[i] {
			hits++
		}
	}
	if same {
		t.Error("different seeds gave the same sample")
	}
	// Binomial(20000, 0.3): sd ≈ 65; ±400 is over 6 sd.
	if hits < 6000-400 || hits > 6000+400 {
		t.Errorf("fraction 0.3 picked %d of 20000", hits)
	}
	for _, f := range []float64{0, 1} {
		for _, v := range draw(1, f, 100) {
			if v != (f == 1) {
				t.Fatalf("fraction %v picked %v", f, v)
			}
		}
	}
}

func TestShadowConfigValidate(t *testing.T) {
	if err := (&ShadowConfig{}).Validate(); err != nil {
		t.Fatalf("zero config (off): %v", err)
	}
	err := (&ShadowConfig{URL: "ftp://x", Fraction: 1.5, MaxInFlight: -1, Timeout: -1, Headers: HeaderList{"novalue"}}).Validate()
	for _, want := range []string{"--shadow ", "--shadow-fraction", "--shadow-max-inflight", "--shadow-timeout", "--shadow-header"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	var h HeaderList
	if h.Set("X-Key: v") != nil || h.Set(": v") == nil || h.String() != "1 header(s)" {
		t.Errorf("HeaderList: %v", h)
	}
}

func zapNop() *zap.Logger { return zap.NewNop() }
