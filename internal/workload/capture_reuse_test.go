package workload

import (
	"math"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// A capture written before issue 18 (2048-character blocks) reads as it
// always did: its blocks are the coarse ones, so both granularities agree.
// Shadow records and other paths are not replayed, so not counted.
func TestCapturePrefixReuseOfOldCoarseCapture(t *testing.T) {
	chat := "/v1/chat/completions"
	dir := capturetest.Write(t, []capture.Record{
		{ID: "b", T: 10, Path: chat, Status: 200, NMessages: 1, PromptChars: 3*2048 - 100, PromptTokens: 1500, TokensSource: capture.TokensUsage, HashIDs: []uint32{0, 1, 3}, Block: 2048},
		{ID: "a", T: 0, Path: chat, Status: 200, NMessages: 1, PromptChars: 3*2048 - 100, PromptTokens: 1500, TokensSource: capture.TokensUsage, HashIDs: []uint32{0, 1, 2}, Block: 2048},
		{ID: "a", T: 1, Shadow: true, Path: chat, Status: 200, HashIDs: []uint32{0, 1, 2}, Block: 2048},
		{ID: "e", T: 15, Path: "/v1/embeddings", Status: 200, HashIDs: []uint32{0}, Block: 2048},
		{ID: "c", T: 20, Path: chat, Status: 200, NMessages: 1, PromptChars: 1000, HashIDs: []uint32{4}, Block: 2048},
	}, func(o *capture.WriterOptions) { o.Manifest.Block = 2048 })
	fine, coarse, err := CapturePrefixReuse(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fine != coarse {
		t.Errorf("fine %+v and coarse %+v differ for a capture of 2048-character blocks", fine, coarse)
	}
	// a and b: 3 blocks each, b reuses 2 whole ones (4096 characters) of
	// its 6046; c: 1 new block of 1002 characters.
	if fine.Requests != 3 || fine.Blocks != 7 || fine.ReusedBlocks != 2 || fine.ReusedChars != 4096 || fine.Chars != 2*6046+1002 {
		t.Errorf("reuse %+v; want 3 requests, 7 blocks, 2 reused, 4096 of %d characters", fine, 2*6046+1002)
	}
	if want := int64(math.Round(1500 * 4096 / 6046.0)); fine.Tokens != 3000 || fine.ReusedTokens != want {
		t.Errorf("tokens %d, %d reused; want 3000 and %d (pro rata)", fine.Tokens, fine.ReusedTokens, want)
	}
}

// A capture whose block does not divide Mooncake's cannot be coarsened: an
// error names the capture and the record rather than a wrong figure.
func TestCapturePrefixReuseRefusesOddBlocks(t *testing.T) {
	dir := capturetest.Write(t, []capture.Record{
		{ID: "odd-1", Path: "/v1/completions", Status: 200, PromptChars: 500, HashIDs: []uint32{0, 1}, Block: 300},
	}, func(o *capture.WriterOptions) { o.Manifest.Block = 300 })
	_, _, err := CapturePrefixReuse(dir, OpenOptions{})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "odd-1") || !strings.Contains(err.Error(), "300") {
		t.Fatalf("error %v, want one naming %s, record odd-1 and its block", err, dir)
	}
	if _, _, err := CapturePrefixReuse(dir+"-missing", OpenOptions{}); err == nil {
		t.Fatal("no error for a missing capture")
	}
}
