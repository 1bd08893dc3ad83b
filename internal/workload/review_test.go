package workload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
)

// writeCapture writes recs as a capture directory of one segment.
func writeCapture(t *testing.T, recs []capture.Record) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cap")
	w, err := capture.NewWriter(dir, capture.WriterOptions{Manifest: capture.Manifest{Format: capture.FormatName, Version: capture.FormatVersion, Start: time.Now(), Block: 2048}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if !w.Write(&recs[i]) {
			t.Fatal("write refused")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A user's overlapping requests must not be chained: only a request that
// arrived after every earlier one of its session had ended is a next turn.
func TestCaptureChainsOnlyRealNextTurns(t *testing.T) {
	const ms = int64(time.Millisecond)
	chat := "/v1/chat/completions"
	dir := writeCapture(t, []capture.Record{
		{ID: "a", T: 0, E2ENs: 100 * ms, Path: chat, Session: "u", Status: 200},
		// overlaps a (arrives at 50 ms, a ends at 100 ms)
		{ID: "b", T: 50 * ms, E2ENs: 200 * ms, Path: chat, Session: "u", Status: 200},
		// after both ended (b at 250 ms): the next turn, following b
		{ID: "c", T: 300 * ms, E2ENs: 10 * ms, Path: chat, Session: "u", Status: 200},
		// another user's request is never chained to u's
		{ID: "d", T: 60 * ms, E2ENs: 10 * ms, Path: chat, Session: "v", Status: 200},
	})
	src, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Request{}
	for _, r := range drain(t, src) {
		byID[r.ID] = r
	}
	a, b, c, d := byID["a"], byID["b"], byID["c"], byID["d"]
	if a.Session != "u" || a.Turn != 0 {
		t.Errorf("a: session %q turn %d", a.Session, a.Turn)
	}
	if b.Session == "" || b.Session == a.Session {
		t.Errorf("b overlapped a but is chained to it: session %q (a's %q)", b.Session, a.Session)
	}
	if c.Session != b.Session || c.Turn != 1 || c.Delay != 50*time.Millisecond {
		t.Errorf("c: session %q turn %d delay %v, want b's session %q, turn 1, delay 50ms", c.Session, c.Turn, c.Delay, b.Session)
	}
	if d.Session != "v" || d.Turn != 0 {
		t.Errorf("d: session %q turn %d", d.Session, d.Turn)
	}
}

// --skip-invalid on a capture: a corrupt record is counted and reading goes
// on with the next segment; without it the corrupt line stops the read.
func TestCaptureSkipInvalid(t *testing.T) {
	dir := writeCapture(t, []capture.Record{{ID: "a", T: 0, Path: "/v1/chat/completions", Status: 200}})
	line := func(id string, tns int64) string {
		b, err := json.Marshal(capture.Record{ID: id, T: tns, Path: "/v1/chat/completions", Status: 200})
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	seg2 := line("b", 10) + "{not json\n" + line("lost", 20)
	seg3 := line("c", 30)
	for name, data := range map[string]string{"seg-000002.jsonl": seg2, "seg-000003.jsonl": seg3} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	strict, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Next(); err == nil || !strings.Contains(err.Error(), "seg-000002.jsonl line 2") {
		t.Errorf("strict read: %v, want the corrupt line named", err)
	}
	var warned []string
	src, err := Open(dir, OpenOptions{SkipInvalid: true, Warn: func(m string) { warned = append(warned, m) }})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range drain(t, src) {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Errorf("read %v, want a,b,c (the corrupt segment's rest skipped, the next read)", ids)
	}
	if n := src.(*Capture).Skipped(); n != 1 {
		t.Errorf("skipped %d, want 1", n)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "seg-000002.jsonl") {
		t.Errorf("warnings %q", warned)
	}
}

// CSV formats are told apart by header names as the readers match them
// (request_tokens is BurstGPT's "Request tokens"), and a CSV with a prompt
// column is a prompt file without the prompts: prefix.
func TestOpenDetectsCSVByHeader(t *testing.T) {
	burst := write(t, "b.csv", "timestamp,model,request_tokens,response_tokens,total_tokens,log_type\n1,ChatGPT,10,5,15,Conversation log\n")
	src, err := Open(burst, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(*BurstGPT); !ok {
		t.Errorf("request_tokens header: %T, want BurstGPT", src)
	}
	closeSource(src)
	prompts := write(t, "p.csv", "id,Prompt,output_tokens\n1,\"hello, world\",4\n")
	src, err = Open(prompts, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, src)
	if len(reqs) != 1 || reqs[0].Prompt != "hello, world" || reqs[0].OutputTokens != 4 {
		t.Errorf("prompt csv: %+v", reqs)
	}
	closeSource(src)
	if _, err := Open(write(t, "x.csv", "a,b\n1,2\n"), OpenOptions{}); err == nil {
		t.Error("a CSV with unknown columns was accepted")
	}
}

// A recorded output length of 0 is sent as max_tokens 1 (never left to the
// server, which would generate freely), counted in a warning.
func TestZeroOutputLengthSentAsOne(t *testing.T) {
	moon := write(t, "m.jsonl", `{"timestamp":0,"input_length":10,"output_length":0}`+"\n"+
		`{"timestamp":5,"input_length":10,"output_length":7}`+"\n"+`{"timestamp":6,"input_length":10}`+"\n")
	az := write(t, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,0\n2023-11-16 18:15:47.0000000,10,3\n")
	for _, tc := range []struct {
		path string
		want []int
	}{{moon, []int{1, 7, 0}}, {az, []int{1, 3}}} {
		src, err := Open(tc.path, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		reqs := drain(t, src)
		var got []int
		for _, r := range reqs {
			got = append(got, r.OutputTokens)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: outputs %v, want %v", tc.path, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: outputs %v, want %v (absent output_length stays 0: left to the server)", tc.path, got, tc.want)
			}
		}
		if w := warnings(src); len(w) != 1 || !strings.Contains(w[0], "1 rows record") || !strings.Contains(w[0], "max_tokens 1") {
			t.Errorf("%s: warnings %q", tc.path, w)
		}
		closeSource(src)
	}
}

// Synthetic block ids are uint32: running out is an error, never a silent
// wrap that would make unrelated conversations share prefixes.
func TestSyntheticBlockIDsDoNotWrap(t *testing.T) {
	s, err := ParseSynthetic("prompt_tokens=2000,output_tokens=1,turns=2,samples=5")
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.HashIDs) == 0 {
		t.Fatal("a multi-turn synthetic request has no block ids")
	}
	s.nextID = maxBlockIDs - 3 // the next conversation needs more than 3 blocks
	if _, err := s.Next(); err != nil {
		t.Fatalf("turn 2 of the first conversation: %v", err)
	}
	if _, err := s.Next(); err == nil || !strings.Contains(err.Error(), "2^32") {
		t.Errorf("ids past 2^32: err %v", err)
	}
}
