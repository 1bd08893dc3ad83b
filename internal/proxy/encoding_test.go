package proxy

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/reprise-llm/reprise/internal/capture"
)

func encode(t testing.TB, coding string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	case "deflate":
		w, _ = zlib.NewWriterLevel(&buf, zlib.DefaultCompression)
	case "raw-deflate":
		w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		t.Fatalf("no encoder for %q", coding)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestEncodedRequestBodyForwardedAsReceivedAndParsed(t *testing.T) {
	backend := httptest.NewServer(hashingBackend())
	defer backend.Close()
	plain := []byte(`{"model":"m-enc","max_tokens":4,"user":"u1","messages":[{"role":"system","content":"` +
		strings.Repeat("be brief and kind. ", 20) + `"},{"role":"user","content":"hello"}]}`)
	for _, coding := range []string{"gzip", "br", "deflate", "zstd"} {
		t.Run(coding, func(t *testing.T) {
			out := &memWriter{}
			p, px := startProxy(t, Config{Upstream: backend.URL}, out)
			sent := encode(t, coding, plain)
			req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", bytes.NewReader(sent))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Content-Encoding", coding)
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := fmt.Sprintf(`"n":%d,"sha":%q,"te":"","ce":%q`, len(sent), sha(sent), coding)
			if !strings.Contains(string(got), want) {
				t.Errorf("upstream saw %s, want the encoded bytes as sent: %s", got, want)
			}
			r := onlyRecord(t, p, out)
			if r.Model != "m-enc" || r.MaxTokens != 4 || r.NMessages != 2 || r.BodyTruncated || len(r.HashIDs) == 0 || r.Session == "" {
				t.Errorf("record not parsed from the decoded body: %+v", r)
			}
			if r.PromptTokens != 7 || r.OutputTokens != 2 || r.TokensSource != capture.TokensUsage {
				t.Errorf("tokens: %+v", r)
			}
		})
	}
}

func TestEncodedResponseForwardedAsReceivedAndParsed(t *testing.T) {
	plain := []byte(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"four words right here"},"finish_reason":"stop"}],"usage":{"prompt_tokens":21,"completion_tokens":4}}`)
	for _, coding := range []string{"gzip", "br"} {
		t.Run(coding, func(t *testing.T) {
			sent := encode(t, coding, plain)
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", coding)
				_, _ = w.Write(sent)
			}))
			defer backend.Close()
			out := &memWriter{}
			p, px := startProxy(t, Config{Upstream: backend.URL}, out)
			// DisableCompression: the client neither asks for nor decodes
			// gzip itself; it sends the Accept-Encoding of a real SDK.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
			req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m1","messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Accept-Encoding", "gzip, br")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, sent) || resp.Header.Get("Content-Encoding") != coding {
				t.Errorf("client got %d bytes (%q), want the %d encoded bytes as sent", len(got), resp.Header.Get("Content-Encoding"), len(sent))
			}
			r := onlyRecord(t, p, out)
			if r.PromptTokens != 21 || r.OutputTokens != 4 || r.TokensSource != capture.TokensUsage || r.FinishReason != "stop" {
				t.Errorf("usage not parsed from the decoded response: %+v", r)
			}
		})
	}
}

func TestZipBombRequestBoundedByParseCap(t *testing.T) {
	backend := httptest.NewServer(hashingBackend())
	defer backend.Close()
	out := &memWriter{}
	const maxParse = 1 << 20
	p, px := startProxy(t, Config{Upstream: backend.URL, MaxBody: maxParse}, out)
	// 64 MiB of JSON that gzips to a few tens of KiB.
	var plain bytes.Buffer
	plain.WriteString(`{"model":"bomb","messages":[{"role":"user","content":"`)
	plain.Write(bytes.Repeat([]byte("a"), 64<<20))
	plain.WriteString(`"}]}`)
	sent := encode(t, "gzip", plain.Bytes())
	if len(sent) >= maxParse {
		t.Fatalf("test body compresses to %d bytes, want under the cap", len(sent))
	}
	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", bytes.NewReader(sent))
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`"n":%d,"sha":%q`, len(sent), sha(sent)); !strings.Contains(string(got), want) {
		t.Errorf("upstream saw %s, want %s", got, want)
	}
	r := onlyRecord(t, p, out)
	if !r.BodyTruncated || r.Model != "bomb" {
		t.Errorf("record: truncated %v model %q, want a capped parse that still names the model", r.BodyTruncated, r.Model)
	}
}

func TestDecodeBounded(t *testing.T) {
	plain := []byte(strings.Repeat("the quick brown fox ", 500)) // 10,000 bytes
	gz := encode(t, "gzip", plain)
	cases := []struct {
		name     string
		enc      string
		in       []byte
		max      int
		wantLen  int
		complete bool
		err      error
	}{
		{"gzip whole", "gzip", gz, 1 << 20, len(plain), true, nil},
		{"x-gzip alias", "x-gzip", gz, 1 << 20, len(plain), true, nil},
		{"capped", "gzip", gz, 100, 100, false, nil},
		{"exactly max", "gzip", gz, len(plain), len(plain), true, nil},
		{"truncated input", "gzip", gz[:len(gz)/2], 1 << 20, -1, false, nil},
		{"br", "br", encode(t, "br", plain), 1 << 20, len(plain), true, nil},
		{"deflate (zlib)", "deflate", encode(t, "deflate", plain), 1 << 20, len(plain), true, nil},
		{"deflate (raw)", "deflate", encode(t, "raw-deflate", plain), 1 << 20, len(plain), true, nil},
		{"zstd", "zstd", encode(t, "zstd", plain), 1 << 20, len(plain), true, nil},
		{"chain gzip then br", "gzip, br", encode(t, "br", gz), 1 << 20, len(plain), true, nil},
		{"unknown coding", "compress", gz, 1 << 20, 0, false, errUnsupportedEncoding},
		{"not gzip", "gzip", []byte("plain text"), 1 << 20, 0, false, gzip.ErrHeader},
	}
	for _, c := range cases {
		got, complete, err := decodeBounded(c.enc, c.in, c.max)
		switch {
		case c.err != nil:
			if !errors.Is(err, c.err) {
				t.Errorf("%s: error %v, want %v", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case complete != c.complete || (c.wantLen >= 0 && len(got) != c.wantLen) || !bytes.HasPrefix(plain, got) || len(got) == 0:
			t.Errorf("%s: %d bytes complete=%v, want %d complete=%v (a prefix of the input)", c.name, len(got), complete, c.wantLen, c.complete)
		}
	}
	if got := contentEncoding(http.Header{"Content-Encoding": {" Identity "}}); got != "" {
		t.Errorf("identity: %q", got)
	}
	if got := contentEncoding(http.Header{"Content-Encoding": {"GZIP", "br"}}); got != "gzip,br" {
		t.Errorf("list: %q", got)
	}
}

// FuzzDecodeBounded: any input under any supported coding decodes without
// panicking, to at most max bytes.
func FuzzDecodeBounded(f *testing.F) {
	f.Add("gzip", encode(f, "gzip", []byte(`{"model":"m"}`)), 8)
	f.Add("br", encode(f, "br", []byte(`{"model":"m"}`)), 64)
	f.Add("deflate", []byte{0x78, 0x9c, 0x03, 0x00}, 4)
	f.Add("zstd", encode(f, "zstd", []byte("abc")), 2)
	f.Fuzz(func(t *testing.T, enc string, in []byte, max int) {
		if max <= 0 || max > 1<<16 {
			return
		}
		out, complete, err := decodeBounded(enc, in, max)
		if len(out) > max {
			t.Fatalf("%d bytes decoded, cap %d", len(out), max)
		}
		if err != nil && (len(out) > 0 || complete) {
			t.Fatalf("error %v with %d bytes, complete=%v", err, len(out), complete)
		}
	})
}

func TestShadowGetsEncodedBodyAsReceivedAndParsesIt(t *testing.T) {
	backend := httptest.NewServer(sseBackend(2, 0))
	defer backend.Close()
	cand := newCandidate(t, 3)
	out := &memWriter{}
	p, px := newShadowProxy(t, backend.URL, ShadowConfig{URL: cand.URL, Fraction: 1}, out)
	sent := encode(t, "gzip", []byte(chatBody))
	req, _ := http.NewRequest("POST", px.URL+"/v1/chat/completions", bytes.NewReader(sent))
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	stopShadow(p, 10*time.Second)
	seen := cand.requests()
	if len(seen) != 1 || !bytes.Equal(seen[0].body, sent) || seen[0].header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("candidate saw %d requests; want the gzip bytes as sent", len(seen))
	}
	primary, shadow := splitRecords(out.records())
	if len(primary) != 1 || len(shadow) != 1 {
		t.Fatalf("%d primary, %d shadow records", len(primary), len(shadow))
	}
	for _, r := range []*capture.Record{primary[0], shadow[0]} {
		if r.Model != "m1" || r.MaxTokens != 5 || len(r.HashIDs) == 0 {
			t.Errorf("shadow=%v record not parsed from the decoded body: %+v", r.Shadow, r)
		}
	}
}
