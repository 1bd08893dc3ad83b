// Package capturetest writes and reads captures for tests with the real
// capture writer and reader, so a test's fixture is exactly what the proxy
// would have left on disk: a manifest and zstd segments.
package capturetest

import (
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
)

// Write writes recs, in order, as a capture of one segment in a new
// directory under t.TempDir() and returns that directory. The manifest
// starts at the time of the call, and its hash block is the first block a
// record names (a proxy writes its records' block there), else
// capture.DefaultBlockChars; opts change the writer's options after those
// defaults (for example the manifest's Block, Content or Source).
func Write(t testing.TB, recs []capture.Record, opts ...func(*capture.WriterOptions)) string {
	t.Helper()
	return WriteSegments(t, [][]capture.Record{recs}, opts...)
}

// WriteSegments is Write with each of segs in a segment of its own
// (seg-000001, seg-000002, ... in order): the writer rotates between them,
// as the proxy does by size or age.
func WriteSegments(t testing.TB, segs [][]capture.Record, opts ...func(*capture.WriterOptions)) string {
	t.Helper()
	total, block := 0, 0
	for _, seg := range segs {
		total += len(seg)
		for i := range seg {
			if block == 0 {
				block = seg[i].Block
			}
		}
	}
	if block == 0 {
		block = capture.DefaultBlockChars
	}
	wo := capture.WriterOptions{
		Manifest: capture.Manifest{Block: block},
		// The writer drops records it cannot queue rather than block the
		// proxy's traffic; a fixture must hold every record.
		QueueSize: max(total, capture.DefaultQueueSize),
	}
	for _, o := range opts {
		o(&wo)
	}
	dir := filepath.Join(t.TempDir(), "cap")
	w, err := capture.NewWriter(dir, wo)
	if err != nil {
		t.Fatalf("capturetest: %v", err)
	}
	for i, seg := range segs {
		if i > 0 {
			if err := w.Rotate(); err != nil {
				t.Fatalf("capturetest: rotating to segment %d: %v", i+1, err)
			}
		}
		for j := range seg {
			rec := seg[j] // the writer owns what it is given; the caller keeps recs
			if !w.Write(&rec) {
				t.Fatalf("capturetest: the writer refused record %d of segment %d (%+v)", j, i+1, w.Stats())
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("capturetest: closing %s: %v", dir, err)
	}
	return dir
}

// Read returns every record of the capture at path (a capture directory,
// or one segment file), in the order stored, failing the test on any error.
func Read(t testing.TB, path string) []*capture.Record {
	t.Helper()
	r, err := capture.Open(path)
	if err != nil {
		t.Fatalf("capturetest: opening capture: %v", err)
	}
	defer r.Close()
	var recs []*capture.Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatalf("capturetest: reading %s: %v", path, err)
		}
		recs = append(recs, rec)
	}
}
