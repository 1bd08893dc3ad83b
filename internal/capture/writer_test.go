package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testRecord is a varied record: i picks the shape.
func testRecord(i int) *Record {
	temp := 0.25 * float64(i%5)
	r := &Record{
		ID:           fmt.Sprintf("r-%d", i),
		T:            int64(i) * 1_234_567,
		Wall:         testOrigin.Add(time.Duration(i) * time.Millisecond),
		Method:       "POST",
		Path:         "/v1/chat/completions",
		Model:        "llama-3-8b",
		Stream:       i%2 == 0,
		MaxTokens:    64 + i%100,
		Temperature:  &temp,
		NMessages:    1 + i%7,
		PromptChars:  100 + 37*i,
		HashIDs:      []uint32{0, 1, uint32(2 + i%50), uint32(1000 + i)},
		Block:        DefaultBlockChars,
		Status:       200,
		FinishReason: "stop",
		PromptTokens: 25 + i,
		OutputTokens: 10 + i%90,
		TokensSource: TokensUsage,
		TTFBNs:       int64(i%1000) * 1000,
		TTFTNs:       int64(i%1000)*1000 + 5e6,
		ChunksUS:     []int64{5000, 20000, 21000, int64(i)},
		ChunkTokens:  []int{1, 1, 2, 1},
		E2ENs:        int64(i) * 1e6,
	}
	if i%3 == 0 {
		r.Session = fmt.Sprintf("%016x", i)
		r.Upstream = "10.0.0.7:8000"
	}
	if i%11 == 0 {
		r.Status, r.Error, r.Aborted = 500, "engine <died> & \"quoted\"", true
	}
	if i%13 == 0 {
		r.Prompt = "system\x1fhé\x1e"
		r.Messages = []byte(`[{"role":"user","content":"hi"}]`)
	}
	return r
}

// sameRecord compares records after a JSON round trip (time.Time loses
// its monotonic reading and location pointer).
func sameRecord(a, b *Record) bool {
	if !a.Wall.Equal(b.Wall) {
		return false
	}
	x, y := *a, *b
	x.Wall, y.Wall = time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

func readAll(t *testing.T, path string) ([]*Record, *Reader, error) {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var out []*Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out, r, nil
		}
		if err != nil {
			return out, r, err
		}
		out = append(out, rec)
	}
}

func testManifest() Manifest {
	return Manifest{Start: testOrigin, Source: "test", Block: DefaultBlockChars, KeyID: "abcd", Content: ContentHashed}
}

// waitFor polls cond until it holds; it fails the test after a generous
// deadline (nothing here asserts on timing).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "capture")
	w, err := NewWriter(dir, WriterOptions{Manifest: testManifest()})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	var want []*Record
	for i := 0; i < n; i++ {
		rec := testRecord(i)
		want = append(want, rec)
		for !w.Write(rec) { // the queue (4096) never fills here
			t.Fatal("write refused")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s := w.Stats()
	if s.Written != n || s.Dropped != 0 || s.Lost != 0 || s.Segments != 1 || !s.Healthy || s.Bytes <= 0 || s.QueueDepth != 0 {
		t.Fatalf("stats %+v", s)
	}
	got, r, err := readAll(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || r.Truncated() {
		t.Fatalf("read %d records, truncated %v", len(got), r.Truncated())
	}
	for i := range got {
		if !sameRecord(got[i], want[i]) {
			t.Fatalf("record %d differs:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	m := r.Manifest()
	if m.Format != FormatName || m.Version != FormatVersion || !m.Start.Equal(testOrigin) || m.KeyID != "abcd" || m.Content != ContentHashed {
		t.Fatalf("manifest %+v", m)
	}
	// The segment also opens on its own, finding the manifest next to it.
	got, r, err = readAll(t, filepath.Join(dir, "seg-000001.jsonl.zst"))
	if err != nil || len(got) != n || r.Manifest().KeyID != "abcd" {
		t.Fatalf("single segment: %d records, %v, %+v", len(got), err, r.Manifest())
	}
}

func TestWriterOptionsValidate(t *testing.T) {
	o := WriterOptions{QueueSize: -1, SegmentBytes: -1, RetainBytes: -5, Manifest: Manifest{Version: FormatVersion + 1}}
	err := o.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"queue size", "segment bytes", "retain bytes", "version"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := NewWriter(t.TempDir(), o); err == nil {
		t.Fatal("NewWriter accepted invalid options")
	}
}

func TestWriterDropsWhenQueueFull(t *testing.T) {
	gate := make(chan struct{})
	w, err := newWriter(t.TempDir(), WriterOptions{QueueSize: 4}, writerHooks{gate: gate})
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for i := 0; i < 10; i++ {
		if w.Write(testRecord(i)) {
			accepted++
		}
	}
	if s := w.Stats(); accepted != 4 || s.Dropped != 6 || s.QueueDepth != 4 {
		t.Fatalf("accepted %d, stats %+v", accepted, s)
	}
	close(gate)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Write(testRecord(99)) {
		t.Fatal("Write after Close accepted")
	}
	if s := w.Stats(); s.Written != 4 || s.Dropped != 7 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWriterDropsBeyondQueueBytes(t *testing.T) {
	big := func(i int) *Record {
		r := testRecord(i)
		r.Prompt = strings.Repeat("p", 2000)
		return r
	}
	gate := make(chan struct{})
	limit := approxSize(big(1)) + approxSize(testRecord(3))
	w, err := newWriter(t.TempDir(), WriterOptions{QueueBytes: limit}, writerHooks{gate: gate})
	if err != nil {
		t.Fatal(err)
	}
	if !w.Write(big(1)) || w.Write(big(2)) {
		t.Fatal("want the first big record queued and the second dropped")
	}
	if !w.Write(testRecord(3)) { // a small one still fits
		t.Fatal("small record refused")
	}
	close(gate)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Written != 2 || s.Dropped != 1 || w.queued.Load() != 0 {
		t.Fatalf("stats %+v, queued bytes %d", s, w.queued.Load())
	}
}

func TestWriterCloseDrainsEverything(t *testing.T) {
	dir := t.TempDir()
	gate := make(chan struct{}) // never opened: only Close lets the loop run
	w, err := newWriter(dir, WriterOptions{QueueSize: 500}, writerHooks{gate: gate})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 5; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if !w.Write(testRecord(g*100 + i)) {
					t.Error("write refused")
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(t, dir)
	if err != nil || len(got) != 500 || w.Stats().Written != 500 {
		t.Fatalf("read %d records (%v), stats %+v", len(got), err, w.Stats())
	}
}

func TestWriterConcurrentWriteAndClose(t *testing.T) {
	// Writes racing Close are either stored or counted as dropped; the
	// race detector checks the handoff.
	w, err := NewWriter(t.TempDir(), WriterOptions{QueueSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Uint64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				if w.Write(testRecord(i)) {
					accepted.Add(1)
				}
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s := w.Stats()
	if s.Written != accepted.Load() || s.Written+s.Dropped != 8000 {
		t.Fatalf("accepted %d, stats %+v", accepted.Load(), s)
	}
}

// fakeClock is an adjustable clock for segment ages and retries.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(testOrigin.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func segmentNames(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "seg-*"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

func TestWriterRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir, WriterOptions{SegmentBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := 0; i < n; i++ {
		rec := testRecord(i)
		rec.Prompt = fmt.Sprintf("%x", time.Duration(i*7919).String()+strings.Repeat(fmt.Sprint(i*i), 20))
		for !w.Write(rec) {
			time.Sleep(time.Millisecond) // queue full: let the writer catch up
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names := segmentNames(t, dir)
	if len(names) < 3 || w.Stats().Segments != len(names) {
		t.Fatalf("segments %v, stats %+v", names, w.Stats())
	}
	got, r, err := readAll(t, dir)
	if err != nil || len(got) != n || r.Truncated() {
		t.Fatalf("read %d records, %v", len(got), err)
	}
	for i, rec := range got {
		if rec.ID != fmt.Sprintf("r-%d", i) {
			t.Fatalf("record %d is %s: segments out of order", i, rec.ID)
		}
	}
}

func TestWriterRotatesByAge(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	w, err := NewWriter(dir, WriterOptions{SegmentAge: time.Minute, FlushInterval: 5 * time.Millisecond, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 5; i++ {
		w.Write(testRecord(i))
	}
	waitFor(t, "5 records", func() bool { return w.Stats().Written == 5 })
	clk.Advance(61 * time.Second)
	// A record after the age limit starts a new segment.
	for i := 5; i < 8; i++ {
		w.Write(testRecord(i))
	}
	waitFor(t, "8 records", func() bool { return w.Stats().Written == 8 })
	if s := w.Stats(); s.Segments != 2 {
		t.Fatalf("segments %d, want 2", s.Segments)
	}
	// With no traffic, the flush tick finishes an aged segment, so it is
	// complete on disk while the writer runs.
	clk.Advance(61 * time.Second)
	waitFor(t, "the aged segment finished", func() bool {
		recs, r, err := readAll(t, dir)
		return err == nil && len(recs) == 8 && !r.Truncated()
	})
}

func TestWriterRotate(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Rotate(); err != nil || w.Stats().Segments != 0 {
		t.Fatalf("rotating an empty writer: %v, %+v", err, w.Stats())
	}
	for i := 0; i < 3; i++ {
		w.Write(testRecord(i))
	}
	// Rotate stores what is queued first, then finishes the segment.
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	got, r, err := readAll(t, filepath.Join(dir, "seg-000001.jsonl.zst"))
	if err != nil || len(got) != 3 || r.Truncated() {
		t.Fatalf("rotated segment: %d records, truncated %v, %v", len(got), r.Truncated(), err)
	}
	w.Write(testRecord(3))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Rotate(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Rotate after Close: %v", err)
	}
	if names := segmentNames(t, dir); !reflect.DeepEqual(names, []string{"seg-000001.jsonl.zst", "seg-000002.jsonl.zst"}) {
		t.Fatalf("segments %v", names)
	}
}

func TestWriterRetention(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir, WriterOptions{RetainBytes: 3000})
	if err != nil {
		t.Fatal(err)
	}
	const perSeg, segs = 20, 12
	for s := 0; s < segs; s++ {
		for i := 0; i < perSeg; i++ {
			w.Write(testRecord(s*perSeg + i))
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names := segmentNames(t, dir)
	var total int64
	for _, n := range names {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	s := w.Stats()
	if total > 3000 || len(names) == 0 || s.Removed != segs-len(names) || names[len(names)-1] != segmentName(segs, false) {
		t.Fatalf("kept %v (%d bytes), stats %+v", names, total, s)
	}
	// What is left reads back as the newest records, in order.
	got, _, err := readAll(t, dir)
	if err != nil || len(got) != len(names)*perSeg {
		t.Fatalf("read %d records: %v", len(got), err)
	}
	if first := (segs - len(names)) * perSeg; got[0].ID != fmt.Sprintf("r-%d", first) {
		t.Fatalf("first kept record %s, want r-%d", got[0].ID, first)
	}
}

func TestWriterUnwritableDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	clk := newFakeClock()
	w, err := NewWriter(dir, WriterOptions{QueueSize: 8, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	// Replace the directory by a file: creating segments now fails, even
	// for root.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10000; i++ { // far more than the queue: must never block
		w.Write(testRecord(i))
	}
	waitFor(t, "the queue to drain", func() bool {
		s := w.Stats()
		return s.Lost+s.Dropped == 10000
	})
	s := w.Stats()
	if s.Healthy || s.WriteErrors == 0 || s.LastError == "" || s.Written != 0 {
		t.Fatalf("stats %+v", s)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close with no segment open: %v", err)
	}
}

// flakyFile fails every write while *fail is set, like a full disk.
type flakyFile struct {
	f    *os.File
	fail *atomic.Bool
}

func (f *flakyFile) Write(p []byte) (int, error) {
	if f.fail.Load() {
		return 0, &os.PathError{Op: "write", Path: f.f.Name(), Err: syscall.ENOSPC}
	}
	return f.f.Write(p)
}
func (f *flakyFile) Sync() error  { return f.f.Sync() }
func (f *flakyFile) Close() error { return f.f.Close() }

func TestWriterDiskFullRecovers(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	var full atomic.Bool
	create := func(path string) (segmentFile, error) {
		if full.Load() {
			return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ENOSPC}
		}
		f, err := createFile(path)
		if err != nil {
			return nil, err
		}
		return &flakyFile{f: f.(*os.File), fail: &full}, nil
	}
	w, err := newWriter(dir, WriterOptions{FlushInterval: 2 * time.Millisecond, Now: clk.Now}, writerHooks{create: create})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		w.Write(testRecord(i))
	}
	waitFor(t, "the first records on disk", func() bool {
		st, err := os.Stat(filepath.Join(dir, "seg-000001.jsonl.zst"))
		return err == nil && st.Size() > 0 && w.Stats().Written == 10
	})
	full.Store(true)
	for i := 10; i < 15; i++ {
		w.Write(testRecord(i))
	}
	// Every record sent while the disk is full is settled (lost) before
	// the disk frees up: otherwise one still queued would be written after
	// recovery, where the test expects only r-15 onwards.
	waitFor(t, "the writer to notice the full disk and settle r-10…r-14", func() bool {
		s := w.Stats()
		return !s.Healthy && s.Written+s.Lost == 15
	})
	full.Store(false)
	clk.Advance(2 * retryDelay)
	waitFor(t, "the lost records to be counted", func() bool { s := w.Stats(); return s.Written+s.Lost == 15 })
	for i := 15; i < 20; i++ {
		w.Write(testRecord(i))
	}
	waitFor(t, "recovery", func() bool { s := w.Stats(); return s.Written+s.Lost == 20 && s.Healthy })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s := w.Stats()
	if s.WriteErrors == 0 || !strings.Contains(s.LastError, "no space") || s.Segments != 2 {
		t.Fatalf("stats %+v", s)
	}
	names := segmentNames(t, dir)
	if !reflect.DeepEqual(names, []string{"seg-000001.partial.jsonl.zst", "seg-000002.jsonl.zst"}) {
		t.Fatalf("segments %v", names)
	}
	got, r, err := readAll(t, dir)
	if err != nil {
		t.Fatalf("a partial segment must not make the capture unreadable: %v", err)
	}
	if !r.Truncated() || uint64(len(got)) != s.Written || got[len(got)-1].ID != "r-19" {
		t.Fatalf("read %d records (written %d), truncated %v", len(got), s.Written, r.Truncated())
	}
	// A prefix of the records sent before the disk filled (those flushed
	// in time), then everything after recovery.
	k := len(got) - 5
	for i, rec := range got {
		want := fmt.Sprintf("r-%d", i)
		if i >= k {
			want = fmt.Sprintf("r-%d", 15+i-k)
		}
		if rec.ID != want {
			t.Fatalf("record %d is %s, want %s", i, rec.ID, want)
		}
	}
	if k > 10 || s.Lost != uint64(15-k) {
		t.Fatalf("%d records before the failure survived, lost %d", k, s.Lost)
	}
}

func TestWriterEncodingErrorIsNotADiskError(t *testing.T) {
	w, err := NewWriter(t.TempDir(), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nan := 0.0
	nan = nan / nan
	bad := testRecord(1)
	bad.Temperature = &nan
	w.Write(bad)
	w.Write(testRecord(2))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Lost != 1 || s.Written != 1 || !s.Healthy || !strings.Contains(s.LastError, "r-1") {
		t.Fatalf("stats %+v", s)
	}
}

func BenchmarkWriter(b *testing.B) {
	w, err := NewWriter(b.TempDir(), WriterOptions{QueueSize: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*Record, 1024)
	for i := range recs {
		recs[i] = testRecord(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Back-pressure instead of drops: this measures the writer's
		// sustained throughput (encode + compress), not Write alone.
		for !w.Write(recs[i%len(recs)]) {
			time.Sleep(10 * time.Microsecond)
		}
		i++
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(w.Stats().Bytes)/float64(b.N), "disk-bytes/record")
}
