package engine

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// protoServer serves like llmServer and records each request's protocol.
type protoServer struct {
	llm    llmServer
	mu     sync.Mutex
	protos map[string]int
}

func (p *protoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.protos[r.Proto]++
	p.mu.Unlock()
	p.llm.serve(w, r)
}

func (p *protoServer) seen() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.protos {
		out[k] = v
	}
	clear(p.protos)
	return out
}

func streams(n int) *sliceSource {
	s := &sliceSource{}
	for i := range n {
		s.reqs = append(s.reqs, workload.Request{Index: i, Endpoint: openai.Chat, Stream: true, PromptTokens: 4, OutputTokens: 8})
	}
	return s
}

// runAgainst runs 6 streamed requests, 3 at a time, and returns the
// results' errors (empty strings for successes).
func runAgainst(t *testing.T, cfg Config) []string {
	t.Helper()
	cfg.Profile, cfg.Concurrency = ProfileConcurrent, 3
	run, err := Execute(context.Background(), cfg, streams(6), bodies{})
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, r := range run.Results {
		if !r.OK() && r.Err == "" {
			r.Err = "not ok"
		}
		errs = append(errs, r.Err)
	}
	return errs
}

func allOK(errs []string) bool {
	for _, e := range errs {
		if e != "" {
			return false
		}
	}
	return len(errs) > 0
}

func TestHTTP2OverTLSAndTrust(t *testing.T) {
	ps := &protoServer{protos: map[string]int{}}
	srv := httptest.NewUnstartedServer(ps)
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case's handshake errors
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	if errs := runAgainst(t, Config{Target: srv.URL, HTTP2: true, CACert: ca}); !allOK(errs) {
		t.Fatalf("--http2 --ca-cert: %v", errs)
	}
	if got := ps.seen(); got["HTTP/2.0"] != 6 || len(got) != 1 {
		t.Errorf("--http2: server saw %v, want 6 HTTP/2.0", got)
	}
	if errs := runAgainst(t, Config{Target: srv.URL, CACert: ca}); !allOK(errs) {
		t.Fatalf("--ca-cert: %v", errs)
	}
	if got := ps.seen(); got["HTTP/1.1"] != 6 || len(got) != 1 {
		t.Errorf("default: server saw %v, want 6 HTTP/1.1", got)
	}
	if errs := runAgainst(t, Config{Target: srv.URL, HTTP2: true, InsecureSkipVerify: true}); !allOK(errs) {
		t.Fatalf("--insecure-skip-verify: %v", errs)
	}
	// Without the CA the server's certificate is not trusted.
	errs := runAgainst(t, Config{Target: srv.URL, HTTP2: true})
	if len(errs) != 6 || !strings.Contains(errs[0], "certificate") {
		t.Errorf("untrusted certificate: %v", errs)
	}

	if _, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileSynchronous, CACert: filepath.Join(t.TempDir(), "none.pem")}, streams(1), bodies{}); !slices.Contains(configErrorFields(err), "CACert") {
		t.Errorf("missing CA file: %v", err)
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	if _, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileSynchronous, CACert: notPEM}, streams(1), bodies{}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("CA file without a certificate: %v", err)
	}
}

func TestHTTP2PriorKnowledgeForPlainHTTP(t *testing.T) {
	ps := &protoServer{protos: map[string]int{}}
	srv := httptest.NewUnstartedServer(ps)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)

	if errs := runAgainst(t, Config{Target: srv.URL, HTTP2: true}); !allOK(errs) {
		t.Fatalf("h2c: %v", errs)
	}
	if got := ps.seen(); got["HTTP/2.0"] != 6 || len(got) != 1 {
		t.Errorf("--http2 on http://: server saw %v, want 6 HTTP/2.0", got)
	}
	if errs := runAgainst(t, Config{Target: srv.URL}); !allOK(errs) {
		t.Fatalf("http/1.1: %v", errs)
	}
	if got := ps.seen(); got["HTTP/1.1"] != 6 || len(got) != 1 {
		t.Errorf("default on http://: server saw %v, want 6 HTTP/1.1", got)
	}
}

func TestTransportPoolIsSizedToTheLoad(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want int
	}{
		{Config{Profile: ProfileConstant, MaxConcurrency: 500}, 500},
		{Config{Profile: ProfileConcurrent, Concurrency: 40, MaxConcurrency: 8}, 40},
		{Config{Profile: ProfileSynchronous, MaxConcurrency: 1}, 16},
	} {
		c := tc.cfg.withDefaults()
		tr, err := newTransport(&c)
		if err != nil {
			t.Fatal(err)
		}
		if tr.MaxIdleConnsPerHost != tc.want || tr.MaxIdleConns != 0 || tr.MaxConnsPerHost != 0 {
			t.Errorf("%+v: idle per host %d, want %d", tc.cfg, tr.MaxIdleConnsPerHost, tc.want)
		}
	}
}
