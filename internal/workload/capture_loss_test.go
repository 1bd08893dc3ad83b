package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// writeSegments writes a capture of four segments of five chat records
// each (c0-0 ... c3-4) and returns its directory.
func writeSegments(t *testing.T) string {
	t.Helper()
	segs := make([][]capture.Record, 4)
	for s := range segs {
		for i := range 5 {
			n := 5*s + i
			segs[s] = append(segs[s], capture.Record{ID: segRecordID(s, i), T: int64(n) * 1e6, Path: "/v1/chat/completions", Status: 200})
		}
	}
	return capturetest.WriteSegments(t, segs)
}

func segRecordID(seg, i int) string { return fmt.Sprintf("c%d-%d", seg, i) }

// A capture that lost a segment (a gap in the numbering) and holds a
// corrupt one: with --skip-invalid the replay reads on, and the warnings
// name the missing segment with its neighbours and the corrupt one with
// the records skipped after the corruption, as they happen; the last
// warning totals them.
func TestCaptureWarnsOfLostRecordsAndSegments(t *testing.T) {
	dir := writeSegments(t)
	if err := os.Remove(filepath.Join(dir, "seg-000003.jsonl.zst")); err != nil {
		t.Fatal(err)
	}
	// Segment 2's second record becomes garbage; the stream stays whole.
	var jsonl bytes.Buffer
	for i := range 5 {
		if i == 1 {
			jsonl.WriteString("{\"id\": broken\n")
			continue
		}
		b, err := json.Marshal(capture.Record{ID: segRecordID(1, i), T: int64(5+i) * 1e6, Path: "/v1/chat/completions", Status: 200})
		if err != nil {
			t.Fatal(err)
		}
		jsonl.Write(append(b, '\n'))
	}
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seg-000002.jsonl.zst"), enc.EncodeAll(jsonl.Bytes(), nil), 0o644); err != nil {
		t.Fatal(err)
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
	if want := "c0-0,c0-1,c0-2,c0-3,c0-4,c1-0,c3-0,c3-1,c3-2,c3-3,c3-4"; strings.Join(ids, ",") != want {
		t.Errorf("read %s, want %s", strings.Join(ids, ","), want)
	}
	wantWarned := []string{
		"capture " + dir + ": segment 000003 missing (between 000002 and 000004); its records are lost",
		"capture " + dir + ": segment seg-000002.jsonl.zst: corrupt at record 2; 3 records after it skipped (",
	}
	if len(warned) != 2 || warned[0] != wantWarned[0] || !strings.HasPrefix(warned[1], wantWarned[1]) {
		t.Errorf("warnings as they happened:\n%s\nwant\n%s", strings.Join(warned, "\n"), strings.Join(wantWarned, "\n"))
	}
	all := src.(*Capture).Warnings()
	total := "capture " + dir + ": not replayed: 4 records skipped in 1 corrupt segment; 1 segment missing, their records lost"
	if !slices.Contains(all, total) {
		t.Errorf("Warnings() %q: no total %q", all, total)
	}
	if n := src.(*Capture).Skipped(); n != 1 {
		t.Errorf("skipped %d, want 1 corrupt record", n)
	}
}

// Every documented way to name a capture is a capture workload: its
// directory, its manifest.json, a segment (compressed or plain), and
// capture:PATH.
func TestCaptureWorkloadForms(t *testing.T) {
	dir := writeSegments(t)
	plain := filepath.Join(t.TempDir(), "seg-000001.jsonl")
	b, err := json.Marshal(capture.Record{ID: "p", Path: "/v1/chat/completions", Status: 200, HashIDs: []uint32{1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	for spec, want := range map[string]int{
		dir: 20, filepath.Join(dir, capture.ManifestName): 20, filepath.Join(dir, "seg-000002.jsonl.zst"): 5,
		"capture:" + dir: 20, plain: 1,
	} {
		if _, ok := CapturePath(spec); !ok {
			t.Errorf("CapturePath(%q) is not a capture", spec)
		}
		src, err := Open(spec, OpenOptions{})
		if err != nil {
			t.Errorf("Open(%q): %v", spec, err)
			continue
		}
		if _, ok := src.(*Capture); !ok {
			t.Errorf("Open(%q) = %T, want a capture", spec, src)
		}
		if got := len(drain(t, src)); got != want {
			t.Errorf("Open(%q): %d requests, want %d", spec, got, want)
		}
		closeSource(src)
	}
}
