package inspect

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/inspect/inspecttest"
	"github.com/reprise-llm/reprise/internal/workload"
)

// A capture's prefix reuse is reported at its own (fine) hash block and at
// Mooncake's coarse one: three 760-character prompts sharing a 700-
// character system prompt share their first two 256-character blocks, and
// nothing at 2,048 characters, where each prompt is one partial block of
// its own (issue 18: the short shared prefix invisible at the old block).
func TestCapturedReuseAtBothGranularities(t *testing.T) {
	var recs []capture.Record
	for i, last := range []uint32{3, 4, 5} {
		recs = append(recs, capture.Record{
			ID: "r" + string(rune('a'+i)), T: int64(i) * int64(time.Second), Path: "/v1/chat/completions", Status: 200,
			PromptTokens: 190, OutputTokens: 5, Block: 256, HashIDs: []uint32{1, 2, last}, PromptChars: 760,
		})
	}
	dir := capturetest.Write(t, recs)
	src, err := workload.Open(dir, workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Read(context.Background(), src, Options{Spec: dir})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.Print(&out); err != nil {
		t.Fatal(err)
	}
	got := inspecttest.Field(t, out.String(), "captured reuse")
	// 4 of 9 fine blocks repeat: 2 × 512 characters of 3 × 760.
	for _, want := range []string{"44.9% of prompt characters", "at the capture's 256-character blocks", "0.0% (0.0%) at Mooncake's 2048 characters"} {
		if !strings.Contains(got, want) {
			t.Errorf("captured reuse %q lacks %q", got, want)
		}
	}
}
