package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/proxy/proxytest"
)

// h2cClient speaks cleartext HTTP/2 with prior knowledge.
func h2cClient(t *testing.T) *http.Client {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// Issue 16: with the upstream down, the transport never read the request
// body, so the record had no model, stream flag or max_tokens and a false
// body_truncated, and replayed as an empty prompt. The record must carry the
// request the client sent, over HTTP/1.1 (with a length or chunked) and
// HTTP/2, and the client must still get the proxy's 502 as before.
func TestDeadUpstreamRecordKeepsRequest(t *testing.T) {
	upstream := "http://" + proxytest.ClosedAddr(t)
	for _, tc := range []struct {
		name    string
		client  *http.Client
		chunked bool
	}{
		{"http1", testClient, false},
		{"http1 chunked", testClient, true},
		{"h2c", h2cClient(t), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &memWriter{}
			p, px := startProxy(t, Config{Upstream: upstream}, out)
			var body io.Reader = strings.NewReader(chatBody)
			if tc.chunked {
				body = io.MultiReader(strings.NewReader(chatBody[:40]), strings.NewReader(chatBody[40:])) // no length
			}
			req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", body)
			req.Header.Set("Content-Type", "application/json")
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(string(got), "upstream request failed: ") ||
				resp.Header.Get("Content-Length") != strconv.Itoa(len(got)) {
				t.Errorf("client got %d (Content-Length %q) %q, want the proxy's 502 naming the failure",
					resp.StatusCode, resp.Header.Get("Content-Length"), got)
			}
			r := onlyRecord(t, p, out)
			if r.Status != http.StatusBadGateway || r.Error == "" {
				t.Errorf("status %d error %q", r.Status, r.Error)
			}
			if r.Model != "m1" || !r.Stream || r.MaxTokens != 5 || r.NMessages != 2 || r.PromptChars == 0 {
				t.Errorf("request fields lost: model %q stream %v max_tokens %d n_messages %d prompt_chars %d",
					r.Model, r.Stream, r.MaxTokens, r.NMessages, r.PromptChars)
			}
			if r.BodyTruncated || len(r.HashIDs) == 0 || r.PromptTokens == 0 || r.TokensSource != capture.TokensEstimate {
				t.Errorf("body_truncated %v hash_ids %v prompt_tokens %d (%s): the %d-byte body is whole",
					r.BodyTruncated, r.HashIDs, r.PromptTokens, r.TokensSource, len(chatBody))
			}
		})
	}
}

// A body over the parse cap is truncated whether or not the upstream was
// up: body_truncated says the cap was passed, and the salvaged scalars
// come from the part read.
func TestDeadUpstreamBodyOverParseCapIsTruncated(t *testing.T) {
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: "http://" + proxytest.ClosedAddr(t), MaxBody: 256}, out)
	body := `{"model":"m-big","stream":true,"max_tokens":9,"messages":[{"role":"user","content":"` +
		strings.Repeat("long prompt ", 2000) + `"}]}`
	resp, err := testClient.Post(px.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r := onlyRecord(t, p, out)
	if resp.StatusCode != http.StatusBadGateway || r.Status != http.StatusBadGateway {
		t.Errorf("status: client %d record %d", resp.StatusCode, r.Status)
	}
	if !r.BodyTruncated || r.Model != "m-big" || !r.Stream || r.MaxTokens != 9 || r.HashIDs != nil {
		t.Errorf("truncated %v model %q stream %v max_tokens %d ids %v", r.BodyTruncated, r.Model, r.Stream, r.MaxTokens, r.HashIDs)
	}
}

// A client that sent "Expect: 100-continue" has sent no body when the
// upstream fails: the proxy does not ask for it, answers 502 at once, and
// records no request fields rather than false ones.
func TestDeadUpstreamExpectContinueNotAskedForBody(t *testing.T) {
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: "http://" + proxytest.ClosedAddr(t)}, out)
	// The client waits for 100 Continue far longer than the test runs:
	// only the proxy's final answer can end its wait.
	// Keep-alive on: net/http must not wait for a body nobody asked for.
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Hour}}
	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Expect", "100-continue")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r := onlyRecord(t, p, out)
	if resp.StatusCode != http.StatusBadGateway || r.Status != http.StatusBadGateway {
		t.Errorf("status: client %d record %d", resp.StatusCode, r.Status)
	}
	if r.BodyTruncated || r.Model != "" {
		t.Errorf("body never sent: truncated %v model %q", r.BodyTruncated, r.Model)
	}
}

// A client that stops sending its body and waits for the answer gets its
// 502 without sending the rest: the proxy waits for the body only a
// bounded time (restReadWait), then answers with "Connection: close" so
// that net/http does not wait either. The record keeps what arrived,
// marked body_truncated, with the fields its prefix holds.
func TestDeadUpstreamStalledBodyStillAnswered(t *testing.T) {
	out := &memWriter{}
	p, px := startProxy(t, Config{Upstream: "http://" + proxytest.ClosedAddr(t), MaxBody: 4 << 20}, out)
	body := []byte(`{"model":"m-long","stream":true,"max_tokens":7,"messages":[{"role":"user","content":"` +
		strings.Repeat("a long prompt ", 60_000) + `"}]}`) // 840 KB
	half := 300 << 10
	conn, err := net.Dial("tcp", px.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A bound on the wait, not a timing check: without it a proxy that
	// held the answer back for the whole body would hang the test
	// instead of failing it.
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:half]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !resp.Close {
		t.Fatalf("status %d, close %v: want 502 with Connection: close", resp.StatusCode, resp.Close)
	}
	r := onlyRecord(t, p, out)
	if !r.BodyTruncated || r.Model != "m-long" || !r.Stream || r.MaxTokens != 7 {
		t.Errorf("truncated %v model %q stream %v max_tokens %d", r.BodyTruncated, r.Model, r.Stream, r.MaxTokens)
	}
}
