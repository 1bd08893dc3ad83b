package capture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// failingFlushes returns a create hook whose files are created for real
// but fail every write with ENOSPC while *full is set: a full disk, where
// creating a segment succeeds and its first flush does not.
func failingFlushes(full *atomic.Bool, creates *atomic.Int64) func(string) (segmentFile, error) {
	return func(path string) (segmentFile, error) {
		creates.Add(1)
		f, err := createFile(path)
		if err != nil {
			return nil, err
		}
		return &flakyFile{f: f.(*os.File), fail: full}, nil
	}
}

func TestWriterHealthStaysDownWhileFlushesFail(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	var full atomic.Bool
	var creates atomic.Int64
	w, err := newWriter(dir, WriterOptions{QueueSize: 64, FlushInterval: 2 * time.Millisecond, Now: clk.Now},
		writerHooks{create: failingFlushes(&full, &creates)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	full.Store(true)
	const retries, perRetry = 5, 3000 // far more than the queue holds
	sent := 0
	for retry := 1; retry <= retries; retry++ {
		for i := 0; i < perRetry; i++ {
			w.Write(testRecord(sent)) // must return at once, accepted or not
			sent++
		}
		waitFor(t, fmt.Sprintf("retry %d to fail", retry), func() bool {
			s := w.Stats()
			return s.WriteErrors == uint64(retry) && s.Written == 0 && s.Lost+s.Dropped == uint64(sent) && s.QueueDepth == 0
		})
		if s := w.Stats(); s.Healthy || s.Segments != retry || !strings.Contains(s.LastError, "no space") {
			t.Fatalf("retry %d: stats %+v", retry, s)
		}
		clk.Advance(2 * retryDelay) // the next record opens a new segment
	}
	if n := w.recovered.Load(); n != 0 {
		t.Fatalf("health flapped to healthy %d times while every flush failed", n)
	}
	if int(creates.Load()) != retries {
		t.Fatalf("%d segments created, want one per retry (%d)", creates.Load(), retries)
	}
	s := w.Stats()
	if s.Lost == 0 || s.Lost+s.Dropped != uint64(sent) {
		t.Fatalf("lost records not counted: %+v", s)
	}

	// The disk has room again: the first successful flush makes it healthy.
	full.Store(false)
	w.Write(testRecord(sent))
	waitFor(t, "recovery", func() bool { return w.Stats().Healthy })
	if n := w.recovered.Load(); n != 1 || w.Stats().Written != 1 {
		t.Fatalf("recovered %d times, stats %+v", n, w.Stats())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(t, dir)
	if err != nil || len(got) != 1 || got[0].ID != fmt.Sprintf("r-%d", sent) {
		t.Fatalf("read %d records: %v", len(got), err)
	}
	names := segmentNames(t, dir)
	if len(names) != retries+1 || !strings.Contains(names[0], ".partial.") || strings.Contains(names[retries], ".partial.") {
		t.Fatalf("segments %v", names)
	}
}

func TestWriterRetentionRetriesAFailedDelete(t *testing.T) {
	dir := t.TempDir()
	var failures atomic.Int64
	failures.Store(1)
	remove := func(path string) error {
		if failures.Add(-1) >= 0 {
			return &os.PathError{Op: "remove", Path: path, Err: syscall.EBUSY}
		}
		return os.Remove(path)
	}
	// RetainBytes 1: every finished segment is over the budget.
	w, err := newWriter(dir, WriterOptions{RetainBytes: 1}, writerHooks{remove: remove})
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(first int) {
		t.Helper()
		for i := first; i < first+10; i++ {
			w.Write(testRecord(i))
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	rotate(0)
	s := w.Stats()
	if s.Removed != 0 || s.Healthy || !strings.Contains(s.LastError, "seg-000001") {
		t.Fatalf("after the failed delete: stats %+v", s)
	}
	if names := segmentNames(t, dir); !reflect.DeepEqual(names, []string{"seg-000001.jsonl.zst"}) {
		t.Fatalf("segments %v", names)
	}
	// The next rotation deletes the segment kept from last time, then its own.
	rotate(10)
	if s := w.Stats(); s.Removed != 2 || !s.Healthy {
		t.Fatalf("after the retry: stats %+v", s)
	}
	if names := segmentNames(t, dir); len(names) != 0 {
		t.Fatalf("segments left behind: %v", names)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriterStartsDegradedAndRecovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	clk := newFakeClock()
	var blocked atomic.Bool
	blocked.Store(true)
	setup := func(d string) error {
		if blocked.Load() {
			return &os.PathError{Op: "mkdir", Path: d, Err: syscall.EACCES}
		}
		return nil
	}
	readyDir := make(chan string, 1)
	opts := WriterOptions{QueueSize: 16, FlushInterval: 2 * time.Millisecond, Now: clk.Now, Manifest: testManifest(),
		OnReady: func(d string) { readyDir <- d }}
	w, err := newWriter(dir, opts, writerHooks{setup: setup})
	if err != nil {
		t.Fatalf("an unwritable directory must not stop the proxy: %v", err)
	}
	defer w.Close()
	if s := w.Stats(); s.Healthy || s.WriteErrors != 1 || !strings.Contains(s.LastError, "permission denied") {
		t.Fatalf("stats at start %+v", s)
	}
	for i := 0; i < 1000; i++ { // traffic flows on; records are counted lost
		w.Write(testRecord(i))
	}
	waitFor(t, "records counted", func() bool { s := w.Stats(); return s.Lost+s.Dropped == 1000 && s.QueueDepth == 0 })
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory created while blocked: %v", err)
	}
	// The flush tick retries once retryDelay has passed, traffic or not.
	blocked.Store(false)
	clk.Advance(2 * retryDelay)
	select {
	case d := <-readyDir:
		if d != dir {
			t.Fatalf("ready in %s, want %s", d, dir)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the writer never set the directory up")
	}
	waitFor(t, "healthy", func() bool { return w.Stats().Healthy })
	for i := 1000; i < 1005; i++ {
		w.Write(testRecord(i))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, r, err := readAll(t, dir)
	if err != nil || len(got) != 5 || got[0].ID != "r-1000" || !r.Manifest().Start.Equal(testOrigin) {
		t.Fatalf("read %d records: %v (manifest %+v)", len(got), err, r.Manifest())
	}
}

func TestNewWriterMisconfiguredPathFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		if w, err := NewWriter(dir, WriterOptions{}); err == nil {
			_ = w.Close()
			t.Fatalf("%s: a path that can never be a directory was accepted", dir)
		}
	}
}

func TestNewWriterRestartGetsRunDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 27, 3, 15, 0, 0, time.UTC)
	run := func(first int) string {
		t.Helper()
		m := testManifest()
		m.Start = start
		w, err := NewWriter(dir, WriterOptions{Manifest: m})
		if err != nil {
			t.Fatal(err)
		}
		for i := first; i < first+3; i++ {
			w.Write(testRecord(i))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// Each run reads back from its own directory.
		got, _, err := readAll(t, w.Dir())
		if err != nil || len(got) != 3 || got[0].ID != fmt.Sprintf("r-%d", first) {
			t.Fatalf("%s: %d records, %v", w.Dir(), len(got), err)
		}
		return w.Dir()
	}
	// A volume root with lost+found is used as it is; a restart on it goes
	// to a run directory, and a second restart within the same second too.
	dirs := []string{run(0), run(10), run(20)}
	want := []string{dir, filepath.Join(dir, "run-20261127T031500Z"), filepath.Join(dir, "run-20261127T031500Z-2")}
	if !reflect.DeepEqual(dirs, want) {
		t.Fatalf("capture directories %v, want %v", dirs, want)
	}
	// The parent holds three captures: a clear error naming each.
	_, err := Open(dir)
	var mce *MultipleCapturesError
	if !errors.As(err, &mce) || !reflect.DeepEqual(mce.Captures, []string{filepath.Join(dir, ManifestName), want[1], want[2]}) {
		t.Fatalf("opening the parent: %v", err)
	}
	for _, w := range want[1:] {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not name %s", err, w)
		}
	}
	// Its manifest.json opens the top-level capture alone.
	got, _, err := readAll(t, filepath.Join(dir, ManifestName))
	if err != nil || len(got) != 3 || got[0].ID != "r-0" {
		t.Fatalf("top-level capture by its manifest: %d records, %v", len(got), err)
	}
	// A directory whose only capture is in a run directory opens it.
	only := t.TempDir()
	if err := os.Rename(want[1], filepath.Join(only, "run-20261127T031500Z")); err != nil {
		t.Fatal(err)
	}
	if !HoldsCapture(only) || !HoldsCapture(dir) || HoldsCapture(t.TempDir()) {
		t.Fatal("HoldsCapture disagrees with Open")
	}
	got, _, err = readAll(t, only)
	if err != nil || len(got) != 3 || got[0].ID != "r-10" {
		t.Fatalf("parent of a single run: %d records, %v", len(got), err)
	}
}

func TestReaderCorruptCompressedOffset(t *testing.T) {
	jsonl, _ := encodeLines(t, 0, 4000)
	seg := compress(t, jsonl, 20) // a block per 20 records, as flushes make
	pos := len(seg) / 3
	bad := append([]byte(nil), seg...)
	for i := pos; i < pos+16; i++ {
		bad[i] ^= 0xa5
	}
	dir := makeCapture(t, bad, compress(t, jsonl[:0], 0))
	got, _, err := readAll(t, dir)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != "seg-000001.jsonl.zst" || !ce.Compressed {
		t.Fatalf("got %v, want a CorruptError", err)
	}
	checkPrefix(t, got, 0)
	if ce.FileOffset < int64(pos) || ce.FileOffset >= int64(len(bad)) {
		t.Fatalf("compressed offset %d: the bad bytes are at %d..%d of %d", ce.FileOffset, pos, pos+16, len(bad))
	}
	if ce.Offset <= 0 || ce.Line != len(got)+1 {
		t.Fatalf("uncompressed offset %d line %d after %d records", ce.Offset, ce.Line, len(got))
	}
	want := fmt.Sprintf("capture seg-000001.jsonl.zst line %d (uncompressed offset %d, compressed offset %d): ", ce.Line, ce.Offset, ce.FileOffset)
	if !strings.HasPrefix(ce.Error(), want) {
		t.Fatalf("message %q, want prefix %q", ce.Error(), want)
	}
	t.Logf("bad bytes at %d, reported at compressed offset %d (%d later), line %d", pos, ce.FileOffset, ce.FileOffset-int64(pos), ce.Line)
}
