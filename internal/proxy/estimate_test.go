package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// Issue 16: plain SDK streams carry no usage, and the proxy estimated each
// event at ceil(chars/4) tokens, recording about twice the output the
// server generated; the replay then asked for those lengths and halved the
// captured inter-token latency. Through the real proxy, against the
// simulator (one token per event, words of 2 to 9 characters, no usage
// unless asked), every recorded output_tokens must be the tokens the
// simulator generated, for natural stops and max_tokens cut-offs alike.
func TestStreamWithoutUsageRecordsGeneratedTokens(t *testing.T) {
	upstream, s := simtest.Start(t, func(c *sim.Config) {
		c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq, c.Jitter = 0, 0, 0, 0, 0
		c.NaturalOutputMean = 40
	})
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: upstream}, out)

	var truth []int
	for i := range 12 {
		path, body := "/v1/chat/completions", fmt.Sprintf(`{"model":"m","stream":true,"max_tokens":%d,"messages":[{"role":"user","content":"question %d"}]}`, 30+10*i, i)
		if i%3 == 2 {
			path, body = "/v1/completions", fmt.Sprintf(`{"model":"m","stream":true,"max_tokens":%d,"prompt":"prompt %d"}`, 30+10*i, i)
		}
		before := s.Stats().GenerationTokens
		postPath(t, px.URL, path, body)
		p.Wait()
		truth = append(truth, int(s.Stats().GenerationTokens-before))
	}
	t.Logf("generated %v", truth)
	recs := out.records()
	if len(recs) != len(truth) {
		t.Fatalf("%d records for %d requests", len(recs), len(truth))
	}
	for i, r := range recs {
		if r.TokensSource != capture.TokensEstimate || r.ChunkTokensSource != capture.TokensEstimate {
			t.Errorf("request %d: tokens_source %q chunk_tokens_source %q, want estimates flagged", i, r.TokensSource, r.ChunkTokensSource)
		}
		if r.OutputTokens != truth[i] || len(r.ChunkTokens) != truth[i] {
			t.Errorf("request %d: output_tokens %d over %d events, the simulator generated %d", i, r.OutputTokens, len(r.ChunkTokens), truth[i])
		}
	}
}

// The holdout's case: 16 tokens of 6 characters each, streamed without
// usage by a server that is not the simulator, recorded as 32 before.
func TestSixCharacterTokensNotDoubled(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for range 16 {
			fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"content":" token"}}]}`+"\n\n")
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`+"\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(backend.Close)
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: backend.URL}, out)
	post(t, px.URL, strings.Replace(chatBody, `"max_tokens":5`, `"max_tokens":16`, 1), nil)
	if r := onlyRecord(t, p, out); r.OutputTokens != 16 || r.TokensSource != capture.TokensEstimate {
		t.Errorf("output_tokens %d (%s), want 16", r.OutputTokens, r.TokensSource)
	}
}

// A client that cancels mid-stream is logged as a client abort, not as an
// upstream that broke off (issue 16: the upstream read fails with the
// client's cancellation, and the log blamed the upstream).
func TestClientAbortLoggedAsClientAbort(t *testing.T) {
	upstreamDone := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(upstreamDone)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}]}\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
	}))
	t.Cleanup(backend.Close)
	core, logs := observer.New(zap.InfoLevel)
	out := &memWriter{}
	p, err := New(Config{Upstream: backend.URL}, out, capture.NewHasher([]byte("k"), 64), time.Now(), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(p)
	t.Cleanup(px.Close)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", px.URL+"/v1/chat/completions", strings.NewReader(chatBody))
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for range 6 { // three events
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	resp.Body.Close()
	<-upstreamDone
	p.Wait()
	if recs := out.records(); len(recs) != 1 || !recs[0].Aborted {
		t.Fatalf("records: %+v", recs)
	}
	if n := logs.FilterMessage("upstream response broke off").Len(); n != 0 {
		t.Errorf("a client abort logged as %q %d times", "upstream response broke off", n)
	}
	aborts := logs.FilterMessage("client went away before the response ended").All()
	if len(aborts) != 1 {
		t.Fatalf("%d client-abort lines, want 1; all: %v", len(aborts), logs.All())
	}
	if f := aborts[0].ContextMap(); f["path"] != "/v1/chat/completions" || f["request_id"] == "" || f["error"] != "context canceled" {
		t.Errorf("client-abort line fields: %v", f)
	}
}

// An upstream that breaks the stream is still logged as one.
func TestUpstreamBreakLoggedAsUpstreamFailure(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"partial\"}}]}\n\n")
		w.(http.Flusher).Flush()
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close() // reset mid-stream
		}
	}))
	t.Cleanup(backend.Close)
	core, logs := observer.New(zap.InfoLevel)
	p, err := New(Config{Upstream: backend.URL}, &memWriter{}, nil, time.Now(), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(p)
	t.Cleanup(px.Close)
	resp, err := testClient.Post(px.URL+"/v1/chat/completions", "application/json", strings.NewReader(chatBody))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.Wait()
	if n := logs.FilterMessage("upstream response broke off").Len(); n != 1 {
		t.Errorf("%d %q lines, want 1; all: %v", n, "upstream response broke off", logs.All())
	}
	if n := logs.FilterMessage("client went away before the response ended").Len(); n != 0 {
		t.Errorf("an upstream break logged as a client abort")
	}
}
