package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// An upstream that closes kept-alive connections without notice right
// after a stream (as llama.cpp's server does) costs the client nothing
// through the proxy: each request that met such a close, never having
// reached the upstream, is sent again from the proxy's copy of its body,
// and the client and the capture see every answer (issue 18).
func TestProxyResendsRequestsTheUpstreamNeverSaw(t *testing.T) {
	upstream, s := simtest.Start(t, func(c *sim.Config) {
		c.KeepAliveCloseRate, c.TTFTBase, c.ITLBase, c.ITLPerSeq, c.PrefixCache = 0.4, time.Millisecond, time.Millisecond, 0, false
	})
	out := &memWriter{}
	p, err := New(Config{Upstream: upstream}, out, capture.NewHasher([]byte("k"), 64), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	srv := front.URL
	const n = 40
	for i := range n {
		resp, err := http.Post(srv+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","stream":true,"max_tokens":3,"ignore_eos":true,"messages":[{"role":"user","content":"hello"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "[DONE]") {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	p.Wait()
	st := p.Stats()
	if st.UpstreamErr != 0 || st.UpstreamRetried == 0 || s.Stats().KeepAliveCloses == 0 {
		t.Errorf("upstream errors %d, re-sent %d, closes %d: want none, some, some", st.UpstreamErr, st.UpstreamRetried, s.Stats().KeepAliveCloses)
	}
	for _, r := range out.records() {
		if r.Status != http.StatusOK {
			t.Errorf("record %s: status %d %q", r.ID, r.Status, r.Error)
		}
	}
}
