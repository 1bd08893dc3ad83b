package capturefilter_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/filters/wasm/capturefilter"
	"github.com/reprise-llm/reprise/filters/wasm/filtertest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest"
)

// TestCaptureThroughCollector runs the script natively against a real
// collector, the hash key fetched from it on the first tick, and checks
// the records field by field.
func TestCaptureThroughCollector(t *testing.T) {
	col := startCollector(t, filtertest.Native, ingest.Config{})
	h := startHost(t, filtertest.Native, pluginConfig(`"session_header": "X-Session"`),
		filtertest.Options{Collector: col.URL, Answer: true})
	flush(t, h) // fetches the key; nothing queued yet
	if n := len(h.GetCalloutAttributesFromContext(1)); n != 1 {
		t.Fatalf("first tick made %d calls, want 1 (the key)", n)
	}
	ex := script()
	doAll(t, h, ex)
	flush(t, h)
	recs := col.Sink.Records()
	if len(recs) != len(ex) {
		t.Fatalf("collector wrote %d records, want %d", len(recs), len(ex))
	}
	if got := counter(t, h, capturefilter.MetricSent); got != uint64(len(ex)) {
		t.Errorf("%s = %d, want %d", capturefilter.MetricSent, got, len(ex))
	}
	for _, m := range []string{capturefilter.MetricDroppedCollector, capturefilter.MetricDroppedQueueFull,
		capturefilter.MetricRejected, capturefilter.MetricUnhashed, capturefilter.MetricPanics} {
		if got := counter(t, h, m); got != 0 {
			t.Errorf("%s = %d, want 0", m, got)
		}
	}
	if got := counter(t, h, capturefilter.MetricNotParsed); got != 1 {
		t.Errorf("%s = %d, want 1 (the gzip stream)", capturefilter.MetricNotParsed, got)
	}
	r := byID(recs)
	first, second := r["1"], r["2"]
	if first.Model != "m1" || !first.Stream || first.MaxTokens != 64 || first.Status != 200 || first.Source != capture.SourceWasm {
		t.Errorf("first record: %+v", first)
	}
	if first.RequestID != "req-1" || first.Upstream != "10.0.0.7:8000" || first.FinishReason != "stop" {
		t.Errorf("first record: request id %q, upstream %q, finish %q", first.RequestID, first.Upstream, first.FinishReason)
	}
	if len(first.ChunksUS) != 3 || first.OutputTokens != 3 || first.PromptTokens != 12 || first.TokensSource != capture.TokensUsage {
		t.Errorf("first record: chunks %v, tokens %d/%d (%s)", first.ChunksUS, first.PromptTokens, first.OutputTokens, first.TokensSource)
	}
	if first.TTFBNs <= 0 || first.TTFTNs < first.TTFBNs || first.E2ENs < first.TTFTNs {
		t.Errorf("first record: ttfb %d, ttft %d, e2e %d", first.TTFBNs, first.TTFTNs, first.E2ENs)
	}
	// The session header wins over the body's user, is hashed with the
	// collector's key, and the same key gives the same hash.
	if want := col.Hasher.Session("alice"); first.Session != want || second.Session != want {
		t.Errorf("sessions %q, %q, want %q", first.Session, second.Session, want)
	}
	if want := col.Hasher.Session("bob"); r["3"].Session != want {
		t.Errorf("without the session header the body's user is the session: got %q, want %q", r["3"].Session, want)
	}
	// Shared prefix: the two long prompts share every block but their last.
	n := len(first.HashIDs)
	if n < 3 || len(second.HashIDs) != n || first.Block != capture.DefaultBlockChars {
		t.Fatalf("hash ids %v, %v (block %d)", first.HashIDs, second.HashIDs, first.Block)
	}
	if !slices.Equal(first.HashIDs[:n-1], second.HashIDs[:n-1]) || first.HashIDs[n-1] == second.HashIDs[n-1] {
		t.Errorf("prefix sharing lost: %v vs %v", first.HashIDs, second.HashIDs)
	}
	if second.Path != "/v1/chat/completions" {
		t.Errorf("query string kept: %q", second.Path)
	}
	for _, rec := range recs {
		if rec.Prompt != "" || len(rec.Messages) > 0 {
			t.Errorf("record %s carries prompt text in hashed mode", rec.ID)
		}
		if strings.Contains(rec.Error, "sk-") {
			t.Errorf("record %s error not scrubbed: %q", rec.ID, rec.Error)
		}
	}
	for _, c := range h.GetCalloutAttributesFromContext(1) {
		if strings.Contains(string(c.Body), "sk-secret") || strings.Contains(string(c.Body), "authorization") {
			t.Errorf("a batch carries the Authorization header: %s", c.Body)
		}
	}
	for _, logs := range [][]string{h.GetInfoLogs(), h.GetWarnLogs(), h.GetErrorLogs(), h.GetDebugLogs()} {
		for _, l := range logs {
			if strings.Contains(l, "sk-secret") || strings.Contains(l, "You are a helpful") {
				t.Errorf("a log line carries a credential or prompt text: %q", l)
			}
		}
	}
	notJSON := r["7"]
	if notJSON.Status != 400 || notJSON.Model != "" || !strings.Contains(notJSON.Error, "bad request") {
		t.Errorf("non-JSON body record: %+v", notJSON)
	}
	if a := r["8"]; !a.Aborted || len(a.ChunksUS) != 2 || !strings.Contains(a.Error, "stream ended before its response did") {
		t.Errorf("aborted stream record: aborted %v, chunks %v, error %q", a.Aborted, a.ChunksUS, a.Error)
	}
	if z := r["9"]; z.Status != 200 || len(z.ChunksUS) != 0 || z.Aborted {
		t.Errorf("encoded stream record: %+v", z)
	}
	if n := r["10"]; !n.Aborted || n.Status != 0 || n.Model != "m1" {
		t.Errorf("unanswered request record: %+v", n)
	}
}
