package bench

import (
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
)

// Production's side of a replayed request keeps its timings for the whole
// run (joined on the request index after it), never its prompt: the
// workload's own record is left intact.
func TestResultKeepsTimingsNotContent(t *testing.T) {
	rec := &capture.Record{ID: "r", T: 5, Status: 200, TTFTNs: 7, ChunksUS: []int64{1, 2}, ChunkTokens: []int{1, 1},
		PromptTokens: 3, Prompt: "secret prompt", Messages: []byte(`[{"role":"user"}]`), HashIDs: []uint32{1, 2}}
	got := timingsOnly(rec)
	if got.Prompt != "" || got.Messages != nil || got.HashIDs != nil {
		t.Errorf("content kept: %q %q %v", got.Prompt, got.Messages, got.HashIDs)
	}
	if got.T != 5 || got.Status != 200 || got.TTFTNs != 7 || len(got.ChunksUS) != 2 || got.PromptTokens != 3 {
		t.Errorf("timings lost: %+v", got)
	}
	if rec.Prompt != "secret prompt" || len(rec.HashIDs) != 2 {
		t.Error("the workload's record was changed")
	}
	if timingsOnly(nil) != nil {
		t.Error("nil record")
	}
}
