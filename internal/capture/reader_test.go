package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// encodeLines returns JSONL for records first..first+n-1 and each line's
// length.
func encodeLines(t testing.TB, first, n int) ([]byte, []int) {
	t.Helper()
	var b bytes.Buffer
	var lens []int
	for i := first; i < first+n; i++ {
		line, err := json.Marshal(testRecord(i))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
		lens = append(lens, len(line)+1)
	}
	return b.Bytes(), lens
}

// compress zstd-compresses JSONL the way the writer does, flushing a block
// after every flushEvery lines (as the writer's flush interval would), so
// that a cut file still holds readable records.
func compress(t testing.TB, jsonl []byte, flushEvery int) []byte {
	t.Helper()
	var out bytes.Buffer
	enc, err := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(segmentWindow))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.SplitAfter(jsonl, []byte("\n")) {
		if _, err := enc.Write(line); err != nil {
			t.Fatal(err)
		}
		if flushEvery > 0 && (i+1)%flushEvery == 0 {
			if err := enc.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// makeCapture writes a capture directory whose segments hold the given
// file contents, named seg-000001... in order.
func makeCapture(t *testing.T, segs ...[]byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := writeManifest(dir, Manifest{Format: FormatName, Version: FormatVersion, Start: testOrigin}); err != nil {
		t.Fatal(err)
	}
	for i, s := range segs {
		if err := os.WriteFile(filepath.Join(dir, segmentName(i+1, false)), s, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func checkPrefix(t *testing.T, got []*Record, first int) {
	t.Helper()
	for i, rec := range got {
		if !sameRecord(rec, testRecord(first+i)) {
			t.Fatalf("record %d is %s, not the expected r-%d", i, rec.ID, first+i)
		}
	}
}

func TestReaderTruncatedLastSegment(t *testing.T) {
	jsonl1, _ := encodeLines(t, 0, 30)
	seg1 := compress(t, jsonl1, 0)
	jsonl2, _ := encodeLines(t, 30, 120)
	seg2 := compress(t, jsonl2, 7)
	prev := -1
	dir := makeCapture(t, seg1, nil)
	for cut := 0; cut <= len(seg2); cut += 1 + cut%23 {
		if err := os.WriteFile(filepath.Join(dir, segmentName(2, false)), seg2[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		got, r, err := readAll(t, dir)
		if err != nil {
			t.Fatalf("cut at %d of %d: %v", cut, len(seg2), err)
		}
		if len(got) < 30 || len(got) > 150 {
			t.Fatalf("cut at %d: %d records", cut, len(got))
		}
		checkPrefix(t, got, 0)
		if len(got) < prev {
			t.Fatalf("cut at %d returned fewer records (%d) than an earlier cut (%d)", cut, len(got), prev)
		}
		prev = len(got)
		if cut > 0 && cut < len(seg2) && !r.Truncated() {
			t.Fatalf("cut at %d: not reported truncated", cut)
		}
	}
	// The whole file is not truncated and returns everything.
	got, r, err := readAll(t, makeCapture(t, seg1, seg2))
	if err != nil || len(got) != 150 || r.Truncated() {
		t.Fatalf("whole: %d records, truncated %v, %v", len(got), r.Truncated(), err)
	}
	if prev < 140 {
		t.Fatalf("the longest cut only returned %d records: flushed blocks are not being read", prev)
	}
}

func TestReaderTruncatedPlainJSONL(t *testing.T) {
	jsonl, lens := encodeLines(t, 0, 20)
	path := filepath.Join(t.TempDir(), "cut.jsonl")
	// Every byte around line ends, every 7th elsewhere.
	near := map[int]bool{}
	for end, i := 0, 0; i <= len(lens); i++ {
		for d := -2; d <= 1; d++ {
			near[end+d] = true
		}
		if i < len(lens) {
			end += lens[i]
		}
	}
	for cut := 0; cut <= len(jsonl); cut++ {
		if !near[cut] && cut%7 != 0 {
			continue
		}
		if err := os.WriteFile(path, jsonl[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		got, r, err := readAll(t, path)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		// Whole lines before the cut; a cut just before a '\n' still
		// leaves a complete object, which is returned.
		whole, end := 0, 0
		for _, l := range lens {
			if end+l-1 <= cut {
				whole++
			}
			end += l
		}
		if len(got) != whole {
			t.Fatalf("cut at %d: %d records, want %d", cut, len(got), whole)
		}
		checkPrefix(t, got, 0)
		atBoundary := false
		for end, i := 0, 0; i <= len(lens); i++ {
			if cut == end || cut == end-1 {
				atBoundary = true
			}
			if i < len(lens) {
				end += lens[i]
			}
		}
		if r.Truncated() == atBoundary {
			t.Fatalf("cut at %d: truncated %v", cut, r.Truncated())
		}
	}
}

func TestReaderCorruptMiddleSegment(t *testing.T) {
	a, _ := encodeLines(t, 0, 10)
	b, _ := encodeLines(t, 10, 10)
	c, _ := encodeLines(t, 20, 10)
	segB := compress(t, b, 0)
	bad := append([]byte(nil), segB...)
	for i := len(bad) / 3; i < len(bad)/3+8; i++ {
		bad[i] ^= 0x5a
	}
	dir := makeCapture(t, compress(t, a, 0), bad, compress(t, c, 0))
	got, _, err := readAll(t, dir)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != "seg-000002.jsonl.zst" {
		t.Fatalf("got %v (%T), want a CorruptError for seg-000002", err, err)
	}
	if len(got) < 10 {
		t.Fatalf("the first segment's records were not returned before the error: %d", len(got))
	}
	checkPrefix(t, got, 0)
	if !strings.HasPrefix(ce.Error(), "capture seg-000002.jsonl.zst line ") {
		t.Fatalf("message %q", ce.Error())
	}

	// A middle segment cut short is corruption too (it is not the end).
	dir = makeCapture(t, compress(t, a, 0), segB[:len(segB)/2], compress(t, c, 0))
	if _, _, err := readAll(t, dir); !errors.As(err, &ce) || ce.File != "seg-000002.jsonl.zst" {
		t.Fatalf("cut middle segment: %v", err)
	}
}

// SkipSegment gives up the rest of a corrupt segment and reading goes on
// with the next: a damaged segment, one that cannot even be decoded, and a
// middle segment cut short are each skipped, and the segment after them is
// read whole.
func TestReaderSkipSegment(t *testing.T) {
	a, _ := encodeLines(t, 0, 10)
	b, _ := encodeLines(t, 10, 10)
	c, _ := encodeLines(t, 20, 10)
	d, _ := encodeLines(t, 30, 10)
	badB := compress(t, b, 0)
	for i := len(badB) / 3; i < len(badB)/3+8; i++ {
		badB[i] ^= 0x5a
	}
	segC := compress(t, c, 0)
	segD := compress(t, d, 0)
	dir := makeCapture(t, compress(t, a, 0), badB, []byte("not zstd at all"), segC[:len(segC)/2], segD)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.SkipSegment(); ok {
		t.Fatal("SkipSegment before any error reported true")
	}
	var ids []string
	var skipped []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			if _, ok := r.SkipSegment(); !ok {
				t.Fatalf("SkipSegment after %v reported false", err)
			}
			skipped = append(skipped, ce.File)
			continue
		}
		if err != nil {
			t.Fatalf("after %d records: %v", len(ids), err)
		}
		ids = append(ids, rec.ID)
	}
	want := []string{"seg-000002.jsonl.zst", "seg-000003.jsonl.zst", "seg-000004.jsonl.zst"}
	if !reflect.DeepEqual(skipped, want) {
		t.Errorf("skipped %v, want %v", skipped, want)
	}
	// a's records, whatever of b and c could be read before their damage,
	// then all of d's, in order.
	if len(ids) < 20 || ids[0] != "r-0" || ids[9] != "r-9" {
		t.Fatalf("records %v", ids)
	}
	if tail := strings.Join(ids[len(ids)-10:], ","); tail != "r-30,r-31,r-32,r-33,r-34,r-35,r-36,r-37,r-38,r-39" {
		t.Errorf("the last segment read as %s", tail)
	}
	for _, id := range ids[10 : len(ids)-10] {
		if n, _ := strconv.Atoi(strings.TrimPrefix(id, "r-")); n < 10 || n >= 30 {
			t.Errorf("record %s between a's and d's", id)
		}
	}
	if _, ok := r.SkipSegment(); ok {
		t.Error("SkipSegment after EOF reported true")
	}
}

func TestReaderCorruptLineOffset(t *testing.T) {
	jsonl, lens := encodeLines(t, 0, 20)
	lines := bytes.SplitAfter(jsonl, []byte("\n"))
	lines[16] = []byte(`{"id":"x","t":"not a number"}` + "\n") // line 17
	var offset int64
	for _, l := range lens[:16] {
		offset += int64(l)
	}
	bad := bytes.Join(lines, nil)
	for _, zst := range []bool{false, true} {
		segs := [][]byte{bad, bad}
		if zst {
			segs = [][]byte{compress(t, bad, 3), compress(t, bad, 3)}
		}
		dir := makeCapture(t, segs...)
		if !zst {
			for i := 1; i <= 2; i++ {
				old := filepath.Join(dir, segmentName(i, false))
				if err := os.Rename(old, strings.TrimSuffix(old, ".zst")); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, _, err := readAll(t, dir)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Line != 17 || ce.Offset != offset || len(got) != 16 {
			t.Fatalf("zst=%v: %d records, %v", zst, len(got), err)
		}
		want := fmt.Sprintf("line 17 (offset %d): ", offset)
		if zst {
			if ce.FileOffset <= 0 || ce.FileOffset > int64(len(segs[0])) {
				t.Fatalf("compressed offset %d of a %d-byte segment", ce.FileOffset, len(segs[0]))
			}
			want = fmt.Sprintf("line 17 (uncompressed offset %d, compressed offset %d): ", offset, ce.FileOffset)
		} else if ce.FileOffset != offset {
			t.Fatalf("plain segment: file offset %d, want %d", ce.FileOffset, offset)
		}
		if !strings.Contains(ce.Error(), "seg-000001.jsonl") || !strings.Contains(ce.Error(), want) {
			t.Fatalf("message %q", ce.Error())
		}
	}
}

func TestReaderManifestErrors(t *testing.T) {
	// Segments without a manifest.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "seg-000001.jsonl.zst"), compress(t, nil, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "no manifest.json") {
		t.Fatalf("missing manifest: %v", err)
	}
	// An empty directory is not a capture.
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a capture directory") {
		t.Fatalf("empty dir: %v", err)
	}
	// A newer format version.
	dir = t.TempDir()
	if err := writeManifest(dir, Manifest{Format: FormatName, Version: FormatVersion + 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "upgrade") ||
		!strings.Contains(err.Error(), fmt.Sprintf("version %d", FormatVersion+1)) {
		t.Fatalf("newer version: %v", err)
	}
	// Not a reprise manifest.
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(`{"format":"other"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a reprise capture") {
		t.Fatalf("foreign manifest: %v", err)
	}
	// Unknown file types and missing paths.
	other := filepath.Join(t.TempDir(), "x.csv")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(other); err == nil {
		t.Fatal("a .csv should not open")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("a missing path should not open")
	}
}

func TestReaderLoneSegmentAndOrder(t *testing.T) {
	// Segments sort by number, not name length; blank lines are skipped.
	a, _ := encodeLines(t, 0, 3)
	b, _ := encodeLines(t, 3, 3)
	dir := makeCapture(t)
	if err := os.WriteFile(filepath.Join(dir, "seg-000010.jsonl.zst"), compress(t, b, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seg-000002.jsonl"), append([]byte("\n  \n"), a...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(t, dir)
	if err != nil || len(got) != 6 {
		t.Fatalf("%d records: %v", len(got), err)
	}
	checkPrefix(t, got, 0)
	// A lone plain file outside any capture has a zero manifest.
	lone := filepath.Join(t.TempDir(), "trace.jsonl")
	if err := os.WriteFile(lone, a, 0o644); err != nil {
		t.Fatal(err)
	}
	got, r, err := readAll(t, lone)
	if err != nil || len(got) != 3 || r.Manifest().Format != "" {
		t.Fatalf("lone file: %d records, %v", len(got), err)
	}
}

func TestReaderRejectsNonObjects(t *testing.T) {
	dir := makeCapture(t, []byte("null\n"), nil)
	if err := os.Rename(filepath.Join(dir, "seg-000001.jsonl.zst"), filepath.Join(dir, "seg-000001.jsonl")); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptError
	if _, _, err := readAll(t, dir); !errors.As(err, &ce) || ce.Line != 1 {
		t.Fatalf("null line: %v", err)
	}
}

// FuzzReader feeds arbitrary bytes to the reader as a plain and as a zstd
// segment (it must never panic and never return a record that is not a JSON
// object), and round-trips a record built from the inputs.
func FuzzReader(f *testing.F) {
	jsonl, _ := encodeLines(f, 0, 3)
	f.Add(jsonl, "m", "hello", int64(5), 3)
	f.Add(compress(f, jsonl, 1), "", "", int64(0), 0)
	f.Add(compress(f, jsonl, 1)[:40], "x\x00y", "\u2028<>&", int64(-1), -7)
	f.Add([]byte("{}\n{\"id\":5}\n"), "m", "p", int64(math.MaxInt64), 1<<30)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0x58, 0, 0, 0}, "", "", int64(1), 1)
	dir := f.TempDir() // reused by every input: fuzz inputs run one at a time per process
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(segmentWindow))
	if err != nil {
		f.Fatal(err)
	}
	if err := writeManifest(dir, Manifest{Format: FormatName, Version: FormatVersion}); err != nil {
		f.Fatal(err)
	}
	// A capture whose first segment is the input and whose second is whole:
	// with SkipSegment, whatever the first holds, the second is read entire.
	skipDir := f.TempDir()
	if err := writeManifest(skipDir, Manifest{Format: FormatName, Version: FormatVersion}); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(skipDir, segmentName(2, false)), compress(f, jsonl, 1), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, model, prompt string, n int64, k int) {
		if err := os.WriteFile(filepath.Join(skipDir, segmentName(1, false)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sr, err := Open(skipDir)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for {
			rec, err := sr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				skip, ok := sr.SkipSegment()
				if !ok {
					t.Fatalf("SkipSegment refused after %v", err)
				}
				if skip.After < 0 || skip.Unread < 0 || skip.Record < 1 || !strings.Contains(skip.String(), skip.Err.File) {
					t.Fatalf("skip report %+v: %s", skip, skip)
				}
				continue
			}
			ids = append(ids, rec.ID)
		}
		sr.Close()
		if len(ids) < 3 || strings.Join(ids[len(ids)-3:], ",") != "r-0,r-1,r-2" {
			t.Fatalf("the whole second segment was not read after the first: %q", ids)
		}

		for _, name := range []string{"seg.jsonl", "seg.jsonl.zst"} {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 1000; i++ {
				rec, err := r.Next()
				if err != nil {
					break
				}
				if rec == nil {
					t.Fatal("nil record without error")
				}
			}
			r.Close()
		}

		if !utf8.ValidString(model) || !utf8.ValidString(prompt) {
			return // encoding/json replaces invalid UTF-8: no round trip
		}
		want := testRecord(int(uint(k) % 1000))
		want.Model, want.Prompt, want.T, want.E2ENs = model, prompt, n, n/2
		want.ChunkTokens = append(want.ChunkTokens, k)
		want.HashIDs = append(want.HashIDs, uint32(k))
		if len(data) > 0 && len(data) < 256 {
			want.Messages = append([]byte(nil), data...)
		}
		// Encode exactly as the writer does (its json.Encoder settings and
		// zstd options) without its goroutine and fsyncs, which would make
		// each input cost milliseconds.
		var line, seg bytes.Buffer
		je := json.NewEncoder(&line)
		je.SetEscapeHTML(false)
		if err := je.Encode(want); err != nil {
			t.Fatal(err)
		}
		enc.Reset(&seg)
		if _, err := enc.Write(line.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, segmentName(1, false))
		if err := os.WriteFile(path, seg.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		got, _, err := readAll(t, dir)
		if err != nil || len(got) != 1 || !sameRecord(got[0], want) {
			t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, want)
		}
	})
}
