package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A hole in the segment numbering is a lost segment: the reader reads on
// and names it, with its neighbours, from Open on. Segments deleted by
// retention (a run starting above 1) are not a hole.
func TestReaderNamesMissingSegments(t *testing.T) {
	dir := t.TempDir()
	if err := writeManifest(dir, Manifest{Format: FormatName, Version: FormatVersion, Start: testOrigin}); err != nil {
		t.Fatal(err)
	}
	for i, seq := range []int{2, 3, 5, 8} {
		jsonl, _ := encodeLines(t, 10*i, 10)
		if err := os.WriteFile(filepath.Join(dir, segmentName(seq, false)), compress(t, jsonl, 0), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, r, err := readAll(t, dir)
	if err != nil || len(got) != 40 {
		t.Fatalf("%d records, %v: want the 40 of the segments present", len(got), err)
	}
	checkPrefix(t, got, 0)
	want := []Gap{{Dir: dir, First: 4, Last: 4}, {Dir: dir, First: 6, Last: 7}}
	if !reflect.DeepEqual(r.Gaps(), want) {
		t.Fatalf("gaps %+v, want %+v", r.Gaps(), want)
	}
	if msg := want[0].String(); msg != "capture "+dir+": segment 000004 missing (between 000003 and 000005); its records are lost" {
		t.Errorf("message %q", msg)
	}
	if msg := want[1].String(); !strings.Contains(msg, "segments 000006 to 000007 missing (2 segments, between 000005 and 000008)") {
		t.Errorf("message %q", msg)
	}
	if g := makeCaptureGaps(t); len(g) != 0 {
		t.Errorf("a contiguous capture reports gaps %+v", g)
	}
}

func makeCaptureGaps(t *testing.T) []Gap {
	t.Helper()
	a, _ := encodeLines(t, 0, 2)
	r, err := Open(makeCapture(t, compress(t, a, 0), compress(t, a, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.Gaps()
}

// skipFirstCorruption reads dir until its first corruption, skips that
// segment and returns the report, with every record read before and after.
func skipFirstCorruption(t *testing.T, dir string) (SkippedSegment, []*Record) {
	t.Helper()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var recs []*Record
	var skip *SkippedSegment
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s, ok := r.SkipSegment()
			if !ok || skip != nil {
				t.Fatalf("after %d records: %v (skip reported %v)", len(recs), err, ok)
			}
			skip = &s
			continue
		}
		recs = append(recs, rec)
	}
	if skip == nil {
		t.Fatal("no corruption found")
	}
	t.Log(skip)
	return *skip, recs
}

// A record that does not parse in a segment that decodes fine: SkipSegment
// gives up the rest of the segment and counts exactly what it gave up, in
// a compressed and in a plain segment alike.
func TestSkipSegmentCountsRecordsAfterTheCorruption(t *testing.T) {
	a, _ := encodeLines(t, 0, 10)
	b, lens := encodeLines(t, 10, 25)
	c, _ := encodeLines(t, 35, 10)
	// Record 7 of segment 2 (r-16) becomes garbage of the same length.
	off := 0
	for _, n := range lens[:6] {
		off += n
	}
	badB := append([]byte(nil), b...)
	copy(badB[off:], bytes.Repeat([]byte("#"), lens[6]-1))
	for _, zst := range []bool{true, false} {
		dir := makeCapture(t, compress(t, a, 0), nil, compress(t, c, 0))
		seg2 := filepath.Join(dir, segmentName(2, false))
		data := compress(t, badB, 4)
		if !zst {
			if err := os.Remove(seg2); err != nil {
				t.Fatal(err)
			}
			seg2, data = strings.TrimSuffix(seg2, ".zst"), badB
		}
		if err := os.WriteFile(seg2, data, 0o644); err != nil {
			t.Fatal(err)
		}
		skip, recs := skipFirstCorruption(t, dir)
		if skip.Record != 7 || skip.After != 18 || !skip.Exact || skip.Lost() != 19 || skip.Unread != 0 {
			t.Errorf("zst %v: skip %+v, want record 7 and exactly 18 after it", zst, skip)
		}
		want := "segment " + filepath.Base(seg2) + ": corrupt at record 7; 18 records after it skipped (capture " + filepath.Base(seg2) + " line 7 "
		if msg := skip.String(); !strings.HasPrefix(msg, want) {
			t.Errorf("zst %v: message %q, want it to start %q", zst, msg, want)
		}
		// Segment 1, the six records of segment 2 before the corruption,
		// and all of segment 3.
		if len(recs) != 26 || recs[15].ID != "r-15" || recs[16].ID != "r-35" || recs[25].ID != "r-44" {
			t.Errorf("zst %v: read %d records", zst, len(recs))
		}
	}
}

// A segment that cannot be decoded past the corruption: the records after
// it cannot be counted, so the report says how much of the file was not
// read; one cut short says so.
func TestSkipSegmentUndecodableRest(t *testing.T) {
	a, _ := encodeLines(t, 0, 10)
	b, _ := encodeLines(t, 10, 200)
	c, _ := encodeLines(t, 210, 10)
	segB := compress(t, b, 10)
	bad := append([]byte(nil), segB...)
	for i := len(bad) / 3; i < len(bad)/3+8; i++ {
		bad[i] ^= 0x5a
	}
	skip, recs := skipFirstCorruption(t, makeCapture(t, compress(t, a, 0), bad, compress(t, c, 0)))
	if skip.Exact || skip.Cut || skip.Size != int64(len(bad)) || skip.Unread <= 0 || skip.Unread >= skip.Size {
		t.Errorf("skip %+v: want inexact with part of the file unread", skip)
	}
	if msg := skip.String(); !strings.Contains(msg, "segment seg-000002.jsonl.zst: corrupt at record ") ||
		!strings.Contains(msg, "it cannot be decoded past that point (about ") || !strings.Contains(msg, "lost uncounted") {
		t.Errorf("message %q", msg)
	}
	if got := len(recs) - 20; skip.Record != got+1 {
		t.Errorf("corrupt at record %d, but %d of the segment's records were read before it", skip.Record, got)
	}

	skip, _ = skipFirstCorruption(t, makeCapture(t, compress(t, a, 0), segB[:len(segB)/2], compress(t, c, 0)))
	if skip.Exact || !skip.Cut || skip.Unread != 0 || !strings.Contains(skip.String(), "cut short") {
		t.Errorf("a middle segment cut short: %+v %s", skip, skip)
	}

	skip, _ = skipFirstCorruption(t, makeCapture(t, compress(t, a, 0), []byte("not zstd at all"), compress(t, c, 0)))
	if skip.Exact || skip.Record != 1 || !strings.Contains(skip.String(), "corrupt at record 1; the rest of the segment skipped") {
		t.Errorf("a segment that is not zstd: %+v %s", skip, skip)
	}
}

// fullManifest is testManifest with the format and version a reader needs.
func fullManifest() Manifest {
	m := testManifest()
	m.Format, m.Version = FormatName, FormatVersion
	return m
}

// emptyRun makes dir/name a capture directory with a manifest and no
// segment, as a proxy start that failed used to leave.
func emptyRun(t *testing.T, dir, name string) string {
	t.Helper()
	sub := filepath.Join(dir, name)
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeManifest(sub, fullManifest()); err != nil {
		t.Fatal(err)
	}
	return sub
}

// Empty captures next to the one that holds records are passed over with
// a note naming each; with two captures holding records the choice stays
// the user's, and the error names the empty ones apart.
func TestOpenPassesOverEmptyRuns(t *testing.T) {
	a, _ := encodeLines(t, 0, 5)
	dir := makeCapture(t, compress(t, a, 0))
	e1 := emptyRun(t, dir, "run-20261127T031500Z")
	e2 := emptyRun(t, dir, "run-20261127T031500Z-2")
	got, r, err := readAll(t, dir)
	if err != nil || len(got) != 5 {
		t.Fatalf("%d records, %v: want the top-level capture's 5", len(got), err)
	}
	if n := r.Notes(); len(n) != 2 || !strings.Contains(n[0], "ignored "+e1+": an empty capture") || !strings.Contains(n[1], "ignored "+e2+": ") {
		t.Errorf("notes %q", n)
	}

	// The top-level capture empty and one run with records: the run.
	only := t.TempDir()
	if err := writeManifest(only, fullManifest()); err != nil {
		t.Fatal(err)
	}
	full := emptyRun(t, only, "run-20261127T031500Z")
	if err := os.WriteFile(filepath.Join(full, segmentName(1, false)), compress(t, a, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	got, r, err = readAll(t, only)
	if err != nil {
		t.Fatalf("empty top level, one run with records: %v", err)
	}
	if len(got) != 5 || len(r.Notes()) != 1 || !strings.Contains(r.Notes()[0], "ignored "+filepath.Join(only, ManifestName)) {
		t.Fatalf("empty top level, one run with records: %d records, notes %q", len(got), r.Notes())
	}

	// Only empty captures: the top-level one, which reads as empty.
	none := t.TempDir()
	if err := writeManifest(none, fullManifest()); err != nil {
		t.Fatal(err)
	}
	emptyRun(t, none, "run-20261127T031500Z")
	if got, _, err := readAll(t, none); err != nil || len(got) != 0 {
		t.Fatalf("only empty captures: %d records, %v", len(got), err)
	}

	// Two captures with records: an error naming them, and the empty one apart.
	if err := os.WriteFile(filepath.Join(e2, segmentName(1, false)), compress(t, a, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	var mce *MultipleCapturesError
	if !errors.As(err, &mce) || !reflect.DeepEqual(mce.Captures, []string{filepath.Join(dir, ManifestName), e2}) ||
		!reflect.DeepEqual(mce.Empty, []string{e1}) || !strings.Contains(err.Error(), "holds 2 captures") ||
		!strings.Contains(err.Error(), "(ignored as empty: "+e1+")") {
		t.Fatalf("two captures with records and an empty one: %v", err)
	}
}

// IsSegmentName tells segment files from other JSONL.
func TestIsSegmentName(t *testing.T) {
	for name, want := range map[string]bool{
		"seg-000001.jsonl.zst": true, "/x/seg-000012.jsonl": true, "seg-000003.partial.jsonl.zst": true,
		"prompts.jsonl": false, "manifest.json": false, "seg-1.csv": false,
	} {
		if got := IsSegmentName(name); got != want {
			t.Errorf("IsSegmentName(%q) = %v", name, got)
		}
	}
}
