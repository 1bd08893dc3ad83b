package synth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/proxy"
	"github.com/reprise-llm/reprise/internal/synth"
	"github.com/reprise-llm/reprise/internal/workload"
)

// A capture the proxy made of code-like traffic (2 characters per token by
// the server's usage) replays its shared prefixes as blocks of Block/2
// tokens: two requests whose first 3 hash blocks were equal share exactly
// 3 blocks of that many tokens of synthesised prompt.
func TestProxyCaptureSharesPrefixTokens(t *testing.T) {
	const blockChars = 64
	// The backend reports one token per 2 characters of message content.
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		chars := 0
		for _, m := range body.Messages {
			chars += utf8.RuneCountInString(m.Content)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":1}}`, chars/2)
	}))
	defer backend.Close()

	dir := filepath.Join(t.TempDir(), "cap")
	w, err := capture.NewWriter(dir, capture.WriterOptions{Manifest: capture.Manifest{
		Format: capture.FormatName, Version: capture.FormatVersion, Start: time.Now(), Block: blockChars, Content: capture.ContentHashed}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Upstream: backend.URL}, w, capture.NewHasher([]byte("k"), blockChars), time.Now(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	shared := strings.Repeat("func f(x int) int { return x }\n", 8)[:3*blockChars]
	for _, tail := range []string{strings.Repeat("a", 2*blockChars), strings.Repeat("b", 2*blockChars)} {
		msgs, _ := json.Marshal([]map[string]string{{"role": "user", "content": shared + tail}})
		resp, err := http.Post(front.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","max_tokens":1,"messages":`+string(msgs)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("proxy answered %d", resp.StatusCode)
		}
	}
	front.Close()
	p.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	src, err := workload.Open(dir, workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []workload.Request
	for {
		r, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r)
	}
	if len(reqs) != 2 {
		t.Fatalf("%d requests replayed, want 2", len(reqs))
	}
	a, b := reqs[0], reqs[1]
	const k, blockTokens = 3, blockChars / 2
	if a.BlockTokens != blockTokens || b.BlockTokens != blockTokens {
		t.Fatalf("blocks of %d and %d tokens, want %d (2 characters per token)", a.BlockTokens, b.BlockTokens, blockTokens)
	}
	// The proxy hashes the messages with their roles, so there may be a
	// block more than the content's 5.
	if len(a.HashIDs) < 5 || len(b.HashIDs) != len(a.HashIDs) || a.PromptTokens != 5*blockTokens {
		t.Fatalf("hash ids %v and %v, %d prompt tokens; want 5 or more blocks and %d tokens", a.HashIDs, b.HashIDs, a.PromptTokens, 5*blockTokens)
	}
	for i := range a.HashIDs {
		if (a.HashIDs[i] == b.HashIDs[i]) != (i < k) {
			t.Fatalf("hash ids %v and %v: want exactly %d equal leading ids", a.HashIDs, b.HashIDs, k)
		}
	}

	bld, err := synth.New(synth.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pa, err := bld.Prompt(&a)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := bld.Prompt(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n := bld.CountTokens(pa); n != a.PromptTokens {
		t.Errorf("prompt a has %d tokens, want %d", n, a.PromptTokens)
	}
	// The first k blocks alone, and then k+1.
	prefix := func(r workload.Request, blocks int) string {
		r.HashIDs, r.PromptTokens = r.HashIDs[:blocks], blocks*blockTokens
		s, err := bld.Prompt(&r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	shk := prefix(a, k)
	if !strings.HasPrefix(pa, shk) || !strings.HasPrefix(pb, shk) || prefix(b, k) != shk {
		t.Fatalf("the requests do not share their first %d blocks of text", k)
	}
	if n := bld.CountTokens(shk); n != k*blockTokens {
		t.Errorf("shared prefix is %d tokens, want %d", n, k*blockTokens)
	}
	if prefix(a, k+1) == prefix(b, k+1) {
		t.Errorf("the requests share block %d too", k+1)
	}
}
