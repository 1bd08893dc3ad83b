package capture

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// segmentWindow is the zstd window the writer uses: 2 MiB is plenty for
// JSONL records (their redundancy is local) and keeps encoder memory small.
const segmentWindow = 1 << 21

// segmentFile is what a segment is written to; *os.File in production.
type segmentFile interface {
	io.Writer
	Sync() error
	Close() error
}

func createFile(path string) (segmentFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

// segmentName is the file name of segment seq; partial names a segment
// abandoned after a write error, whose end may be cut mid-frame.
func segmentName(seq int, partial bool) string {
	if partial {
		return fmt.Sprintf("seg-%06d.partial.jsonl.zst", seq)
	}
	return fmt.Sprintf("seg-%06d.jsonl.zst", seq)
}

// segment is the file being written.
type segment struct {
	seq    int
	f      segmentFile
	cw     countingWriter
	opened time.Time
	dirty  bool // records not yet flushed
	// pending counts records written since the last successful flush:
	// a write error loses them (they move from Written to Lost).
	pending uint64
}

// countingWriter counts compressed bytes on their way to the file.
type countingWriter struct {
	w     io.Writer
	n     int64         // this segment
	total *atomic.Int64 // all segments
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.total.Add(int64(n))
	return n, err
}

// loop is the writer goroutine: the only one that touches segments.
func (w *Writer) loop() {
	defer close(w.done)
	if w.gate != nil {
		select {
		case <-w.gate:
		case <-w.stop:
		}
	}
	tick := time.NewTicker(w.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case r := <-w.queue:
			w.store(r)
		case reply := <-w.rotate:
			w.drain()
			reply <- w.finish()
		case <-tick.C:
			if !w.ready {
				w.retrySetup(w.opts.Now())
			}
			w.flush()
			if w.seg != nil && w.opts.Now().Sub(w.seg.opened) >= w.opts.SegmentAge {
				_ = w.finish()
			}
		case <-w.stop:
			w.drain()
			w.closeErr = w.finish()
			return
		}
	}
}

// drain stores every record queued right now.
func (w *Writer) drain() {
	for {
		select {
		case r := <-w.queue:
			w.store(r)
		default:
			return
		}
	}
}

func (w *Writer) store(r *Record) {
	w.queued.Add(-approxSize(r))
	now := w.opts.Now()
	if w.seg != nil && (w.seg.cw.n >= w.opts.SegmentBytes || now.Sub(w.seg.opened) >= w.opts.SegmentAge) {
		_ = w.finish()
	}
	if w.seg == nil {
		if now.Before(w.retryAt) {
			w.lost.Add(1)
			return
		}
		if !w.ready && !w.retrySetup(now) {
			w.lost.Add(1)
			return
		}
		if err := w.open(now); err != nil {
			w.fail(err)
			w.retryAt = now.Add(retryDelay)
			w.lost.Add(1)
			return
		}
	}
	w.line.Reset()
	if err := w.enc.Encode(r); err != nil {
		// Not a disk problem (a NaN sampling parameter, say): lose the
		// record, keep the writer healthy.
		w.lost.Add(1)
		msg := fmt.Sprintf("encoding record %s: %v", r.ID, err)
		w.lastErr.Store(&msg)
		return
	}
	if _, err := w.zenc.Write(w.line.Bytes()); err != nil {
		w.lost.Add(1)
		w.abandon(fmt.Errorf("writing %s: %w", segmentName(w.seg.seq, false), err), now)
		return
	}
	w.written.Add(1)
	w.seg.pending++
	w.seg.dirty = true
	if w.seg.cw.n >= w.opts.SegmentBytes {
		_ = w.finish()
	}
}

// retrySetup tries to set the capture directory up once retryDelay has
// passed since the last failure, and reports whether it is ready.
func (w *Writer) retrySetup(now time.Time) bool {
	if now.Before(w.retryAt) {
		return false
	}
	if err := w.setup(); err != nil {
		w.fail(err)
		w.retryAt = now.Add(retryDelay)
		return false
	}
	w.ok()
	return true
}

// open starts segment w.seq+1. The writer stays unhealthy (if it is) until
// the segment's first flush succeeds: on a full disk creating a file works
// and writing to it does not.
func (w *Writer) open(now time.Time) error {
	seq := w.seq + 1
	name := segmentName(seq, false)
	f, err := w.create(filepath.Join(w.Dir(), name))
	if err != nil {
		return fmt.Errorf("creating segment: %w", err)
	}
	w.seq = seq
	s := &segment{seq: seq, f: f, opened: now}
	s.cw = countingWriter{w: f, total: &w.bytes}
	w.zenc.Reset(&s.cw)
	w.seg = s
	w.segments.Add(1)
	return nil
}

// flush pushes buffered records to the file so a crash loses at most one
// FlushInterval of records.
func (w *Writer) flush() {
	if w.seg == nil || !w.seg.dirty {
		return
	}
	if err := w.zenc.Flush(); err != nil {
		w.abandon(fmt.Errorf("flushing %s: %w", segmentName(w.seg.seq, false), err), w.opts.Now())
		return
	}
	w.seg.dirty, w.seg.pending = false, 0
	w.ok()
}

// finish ends the current segment's zstd frame, fsyncs and closes it, then
// applies retention. A segment that fails here is kept under its partial
// name, so readers know its end may be missing.
func (w *Writer) finish() error {
	s := w.seg
	if s == nil {
		return nil
	}
	w.seg = nil
	name := segmentName(s.seq, false)
	err := w.zenc.Close()
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		err = fmt.Errorf("finishing %s: %w", name, err)
		w.fail(err)
		w.losePending(s)
		name = w.markPartial(s.seq)
	} else {
		w.ok()
	}
	syncDir(w.Dir())
	w.finished = append(w.finished, finishedSegment{name: name, size: s.cw.n})
	w.retain()
	return err
}

// abandon gives up on the current segment after a write error: close it as
// it is, rename it partial, and retry with a new segment after retryDelay.
func (w *Writer) abandon(err error, now time.Time) {
	s := w.seg
	w.seg = nil
	_ = s.f.Close()
	w.fail(err)
	w.losePending(s)
	w.finished = append(w.finished, finishedSegment{name: w.markPartial(s.seq), size: s.cw.n})
	w.retryAt = now.Add(retryDelay)
	w.retain()
}

// markPartial renames segment seq to its partial name and returns the name
// it ends up with (the original if the rename fails, e.g. read-only disk).
func (w *Writer) markPartial(seq int) string {
	from, to := segmentName(seq, false), segmentName(seq, true)
	if err := os.Rename(filepath.Join(w.Dir(), from), filepath.Join(w.Dir(), to)); err != nil {
		return from
	}
	return to
}

// retain deletes the oldest finished segments while the capture is larger
// than RetainBytes. The segment being written is never deleted. A segment
// that cannot be deleted stays the oldest in the list and is retried at the
// next rotation; newer segments are not deleted before it, so what remains
// is always a contiguous run of the newest segments.
func (w *Writer) retain() {
	if w.opts.RetainBytes <= 0 {
		return
	}
	var total int64
	for _, f := range w.finished {
		total += f.size
	}
	if w.seg != nil {
		total += w.seg.cw.n
	}
	for len(w.finished) > 0 && total > w.opts.RetainBytes {
		f := w.finished[0]
		if err := w.remove(filepath.Join(w.Dir(), f.name)); err != nil && !os.IsNotExist(err) {
			w.fail(fmt.Errorf("removing old segment %s (retried at the next rotation): %w", f.name, err))
			return
		}
		w.finished = w.finished[1:]
		total -= f.size
		w.removed.Add(1)
	}
}

// losePending moves a failed segment's unflushed records from Written to
// Lost. Some of them may still be readable (zstd emits full blocks on its
// own), so Lost is an upper bound.
func (w *Writer) losePending(s *segment) {
	w.written.Add(^(s.pending - 1))
	w.lost.Add(s.pending)
	s.pending = 0
}

func (w *Writer) ok() {
	if !w.healthy.Swap(true) {
		w.recovered.Add(1)
	}
}

func (w *Writer) fail(err error) {
	w.writeErrors.Add(1)
	w.healthy.Store(false)
	msg := err.Error()
	w.lastErr.Store(&msg)
}
