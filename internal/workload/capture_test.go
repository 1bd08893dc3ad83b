package workload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// A user's overlapping requests must not be chained: only a request that
// arrived after every earlier one of its session had ended is a next turn.
func TestCaptureChainsOnlyRealNextTurns(t *testing.T) {
	const ms = int64(time.Millisecond)
	chat := "/v1/chat/completions"
	dir := capturetest.Write(t, []capture.Record{
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
	dir := capturetest.Write(t, []capture.Record{{ID: "a", T: 0, Path: "/v1/chat/completions", Status: 200}})
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
