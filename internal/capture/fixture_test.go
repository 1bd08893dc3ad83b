package capture

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// fixtureDir is a v1 capture written once by the writer and committed:
// every later build must keep reading it the same way. Regenerate it only
// for a new format version (go test -run TestV1Fixture -write-v1-fixture),
// never to make a changed reader pass.
const fixtureDir = "testdata/capture-v1"

var writeV1Fixture = flag.Bool("write-v1-fixture", false, "rewrite "+fixtureDir+" with the current writer")

var fixtureStart = time.Date(2026, 11, 27, 3, 15, 0, 0, time.UTC)

func fixtureRecords() []*Record {
	temp, topP := 0.7, 0.95
	return []*Record{{
		ID: "0001", T: 1_500_000, Wall: fixtureStart.Add(1500 * time.Microsecond), Session: "5f2b9c01d4e3a877",
		RequestID: "client-req-1", Method: "POST", Path: "/v1/chat/completions", Model: "llama-3-8b", Stream: true,
		MaxTokens: 128, Temperature: &temp, TopP: &topP, N: 1, NMessages: 2, PromptChars: 4100,
		HashIDs: []uint32{0, 1, 2}, Block: 2048, Status: 200, FinishReason: "length",
		PromptTokens: 1025, OutputTokens: 4, CachedTokens: 512, TokensSource: TokensUsage,
		TTFBNs: 2_000_000, TTFTNs: 35_000_000, ChunksUS: []int64{35000, 12000, 11000, 13000},
		ChunkTokens: []int{1, 1, 1, 1}, ChunkTokensSource: TokensUsage, E2ENs: 80_000_000, Upstream: "10.0.0.7:8000",
	}, {
		ID: "0001", Shadow: true, T: 1_600_000, Wall: fixtureStart.Add(1600 * time.Microsecond), RequestID: "client-req-1",
		Method: "POST", Path: "/v1/chat/completions", Model: "llama-3-8b", Stream: true, Status: 200,
		FinishReason: "stop", PromptTokens: 1025, OutputTokens: 2, TokensSource: TokensUsage,
		TTFBNs: 3_000_000, TTFTNs: 40_000_000, ChunksUS: []int64{40000, 9000}, ChunkTokens: []int{2, 1},
		ChunkTokensSource: TokensEstimate, E2ENs: 60_000_000,
	}, {
		ID: "0002", T: 2_000_000_000, Wall: fixtureStart.Add(2 * time.Second), Method: "POST", Path: "/v1/completions",
		Model: "llama-3-8b", MaxTokens: 16, Prompt: "Say hi", Messages: []byte(`[{"role":"user","content":"hi"}]`),
		BodyTruncated: true, Status: 502, Error: "upstream request failed: connection refused", Aborted: true,
		TokensSource: TokensEstimate, PromptTokens: 2, E2ENs: 1_000_000,
	}, {
		ID: "0003", T: 3_000_000_000, Wall: fixtureStart.Add(3 * time.Second), Method: "GET", Path: "/v1/models",
		Status: 200, TTFBNs: 500_000, E2ENs: 700_000,
	}}
}

func writeFixture(t *testing.T) {
	if err := os.RemoveAll(fixtureDir); err != nil {
		t.Fatal(err)
	}
	m := Manifest{Start: fixtureStart, Source: "proxy upstream=http://127.0.0.1:8000", Block: 2048, KeyID: "k-3f9a", Content: ContentFull}
	w, err := NewWriter(fixtureDir, WriterOptions{Manifest: m, Now: func() time.Time { return fixtureStart }})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range fixtureRecords() {
		w.Write(r)
		if i == 1 { // two segments: the reader must read them in order
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestV1Fixture(t *testing.T) {
	if *writeV1Fixture {
		writeFixture(t)
	}
	got, r, err := readAll(t, fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated() {
		t.Fatal("fixture reads as truncated")
	}
	m := r.Manifest()
	if m.Format != "reprise-capture" || m.Version != 1 || !m.Start.Equal(fixtureStart) || m.Block != 2048 ||
		m.KeyID != "k-3f9a" || m.Content != "full" || m.Source != "proxy upstream=http://127.0.0.1:8000" {
		t.Fatalf("manifest %+v", m)
	}
	if names := segmentNames(t, fixtureDir); !reflect.DeepEqual(names, []string{"seg-000001.jsonl.zst", "seg-000002.jsonl.zst"}) {
		t.Fatalf("segments %v", names)
	}
	if len(got) != 4 {
		t.Fatalf("%d records, want 4", len(got))
	}
	// Field by field, with literal values: a renamed JSON key or a changed
	// unit shows up here as the field that no longer reads back.
	a := got[0]
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: record %+v", what, a)
		}
	}
	check("id", a.ID == "0001")
	check("t", a.T == 1_500_000)
	check("wall", a.Wall.Equal(time.Date(2026, 11, 27, 3, 15, 0, 1_500_000, time.UTC)))
	check("session", a.Session == "5f2b9c01d4e3a877")
	check("shadow", !a.Shadow)
	check("request_id", a.RequestID == "client-req-1")
	check("method", a.Method == "POST")
	check("path", a.Path == "/v1/chat/completions")
	check("model", a.Model == "llama-3-8b")
	check("stream", a.Stream)
	check("max_tokens", a.MaxTokens == 128)
	check("temperature", a.Temperature != nil && *a.Temperature == 0.7)
	check("top_p", a.TopP != nil && *a.TopP == 0.95)
	check("n", a.N == 1)
	check("n_messages", a.NMessages == 2)
	check("prompt_chars", a.PromptChars == 4100)
	check("hash_ids", reflect.DeepEqual(a.HashIDs, []uint32{0, 1, 2}))
	check("block", a.Block == 2048)
	check("status", a.Status == 200)
	check("finish_reason", a.FinishReason == "length")
	check("prompt_tokens", a.PromptTokens == 1025)
	check("output_tokens", a.OutputTokens == 4)
	check("cached_tokens", a.CachedTokens == 512)
	check("tokens_source", a.TokensSource == "usage")
	check("ttfb_ns", a.TTFBNs == 2_000_000)
	check("ttft_ns", a.TTFTNs == 35_000_000)
	check("chunks_us", reflect.DeepEqual(a.ChunksUS, []int64{35000, 12000, 11000, 13000}))
	check("chunk_tokens", reflect.DeepEqual(a.ChunkTokens, []int{1, 1, 1, 1}))
	check("chunk_tokens_source", a.ChunkTokensSource == "usage")
	check("e2e_ns", a.E2ENs == 80_000_000)
	check("upstream", a.Upstream == "10.0.0.7:8000")

	a = got[1]
	check("shadow record", a.ID == "0001" && a.Shadow && a.RequestID == "client-req-1" && a.T == 1_600_000 &&
		a.Session == "" && a.ChunkTokensSource == "estimate" && reflect.DeepEqual(a.ChunkTokens, []int{2, 1}))

	a = got[2] // first record of the second segment
	check("prompt", a.Prompt == "Say hi")
	check("messages", string(a.Messages) == `[{"role":"user","content":"hi"}]`)
	check("body_truncated", a.BodyTruncated)
	check("error", a.Status == 502 && a.Error == "upstream request failed: connection refused")
	check("aborted", a.Aborted)
	check("estimate", a.TokensSource == "estimate" && a.PromptTokens == 2 && a.OutputTokens == 0)
	check("optional fields absent", a.Temperature == nil && a.TopP == nil && a.HashIDs == nil && a.ChunksUS == nil)

	a = got[3]
	check("non-OpenAI path", a.Path == "/v1/models" && a.Method == "GET" && a.Model == "" && a.TokensSource == "" &&
		a.TTFBNs == 500_000 && a.E2ENs == 700_000)

	// And the whole set, so a field added to fixtureRecords is covered.
	want := fixtureRecords()
	for i := range got {
		if !sameRecord(got[i], want[i]) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if _, err := os.Stat(filepath.Join(fixtureDir, ManifestName)); err != nil {
		t.Fatal(err)
	}
}
