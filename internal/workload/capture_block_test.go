package workload

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// A capture's blocks are characters; their token size comes from the
// capture's own characters per token (server usage), not a fixed 4.
func TestCaptureBlockTokensFollowCharsPerToken(t *testing.T) {
	chat := "/v1/chat/completions"
	for _, tc := range []struct {
		name       string
		chars, tok int
		source     string
		want       int
	}{
		{"code-like, 2 chars per token", 4000, 2000, capture.TokensUsage, 1024},
		{"prose, 4 chars per token", 4000, 1000, capture.TokensUsage, 512},
		{"3 chars per token rounds", 3000, 1000, capture.TokensUsage, 683}, // 2048/3 = 682.67
		{"estimates are not measurements", 4000, 2000, capture.TokensEstimate, 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := capturetest.Write(t, []capture.Record{
				{ID: "a", T: 0, Path: chat, Status: 200, PromptChars: tc.chars, PromptTokens: tc.tok, TokensSource: tc.source, HashIDs: []uint32{0, 1}, Block: 2048},
				{ID: "b", T: 10, Path: chat, Status: 200, PromptChars: tc.chars, PromptTokens: tc.tok, TokensSource: tc.source, HashIDs: []uint32{0, 2}, Block: 2048},
				// no usage: contributes nothing to the ratio, same block size
				{ID: "c", T: 20, Path: chat, Status: 200, HashIDs: []uint32{0}, Block: 2048},
			})
			src, err := Open(dir, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			reqs := drain(t, src)
			if len(reqs) != 3 {
				t.Fatalf("%d requests, want 3", len(reqs))
			}
			for _, r := range reqs {
				if r.BlockTokens != tc.want {
					t.Errorf("request %s: %d tokens per block, want %d", r.ID, r.BlockTokens, tc.want)
				}
			}
		})
	}
}

// Shadow records and other paths are valid records that are not replayed:
// counted on their own, never as invalid lines.
func TestCaptureNotReplayableCountedApart(t *testing.T) {
	src, err := Open(filepath.Join("..", "capture", "testdata", "capture-v1"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, src)
	c := src.(*Capture)
	shadow, other := c.NotReplayable()
	if len(reqs) != 2 || shadow != 1 || other != 1 || c.Skipped() != 0 {
		t.Fatalf("%d requests, shadow %d, other %d, skipped %d; want 2, 1, 1, 0", len(reqs), shadow, other, c.Skipped())
	}
	want := "2 capture records not replayable: shadow 1, other paths 1"
	found := false
	for _, w := range c.Warnings() {
		found = found || w == want
		if strings.Contains(w, "invalid") {
			t.Errorf("warning calls valid records invalid: %q", w)
		}
	}
	if !found {
		t.Errorf("warnings %q lack %q", c.Warnings(), want)
	}
}
