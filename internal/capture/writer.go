package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Writer defaults.
const (
	DefaultQueueSize     = 4096
	DefaultQueueBytes    = 256 << 20
	DefaultSegmentBytes  = 64 << 20
	DefaultSegmentAge    = 10 * time.Minute
	DefaultFlushInterval = time.Second
	// retryDelay is how long a Writer waits after a failed segment before
	// trying to open a new one; records arriving meanwhile are lost (counted).
	retryDelay = time.Second
)

// ManifestName is the manifest's file name inside a capture directory.
const ManifestName = "manifest.json"

// ErrClosed is returned by Rotate after Close.
var ErrClosed = errors.New("capture writer closed")

// WriterOptions configure a Writer. Zero values take the defaults.
type WriterOptions struct {
	// Manifest is written to manifest.json; Format and Version default to
	// FormatName and FormatVersion, Start to Now().
	Manifest Manifest
	// QueueSize is how many records may wait for the disk; Write drops and
	// counts beyond it. Default 4096.
	QueueSize int
	// QueueBytes bounds the approximate memory of queued records, which
	// matters with content capture "full" (a record holds its prompt).
	// Default 256 MiB.
	QueueBytes int64
	// SegmentBytes rotates a segment once its compressed size passes it.
	// Default 64 MiB.
	SegmentBytes int64
	// SegmentAge rotates a segment this long after it was opened (checked
	// on every record and every flush tick). Default 10 minutes.
	SegmentAge time.Duration
	// RetainBytes deletes the oldest finished segments while the segments
	// on disk total more than this many compressed bytes. 0 keeps all.
	RetainBytes int64
	// FlushInterval is how often buffered records are pushed to the file
	// (a zstd block flush, readable after a crash). Default 1 s.
	FlushInterval time.Duration
	// Now is the clock for segment age; default time.Now.
	Now func() time.Time
	// OnReady, when set, is called once with the directory the capture is
	// written to, as soon as it and its manifest exist: from NewWriter when
	// the directory is usable at start, else from the writer goroutine
	// when a retry succeeds. It must not block.
	OnReady func(dir string)
}

// Validate reports every invalid option.
func (o *WriterOptions) Validate() error {
	var errs []error
	if o.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("queue size %d is negative", o.QueueSize))
	}
	if o.QueueBytes < 0 {
		errs = append(errs, fmt.Errorf("queue bytes %d is negative", o.QueueBytes))
	}
	if o.SegmentBytes < 0 {
		errs = append(errs, fmt.Errorf("segment bytes %d is negative", o.SegmentBytes))
	}
	if o.SegmentAge < 0 {
		errs = append(errs, fmt.Errorf("segment age %s is negative", o.SegmentAge))
	}
	if o.RetainBytes < 0 {
		errs = append(errs, fmt.Errorf("retain bytes %d is negative", o.RetainBytes))
	}
	if o.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("flush interval %s is negative", o.FlushInterval))
	}
	if m := o.Manifest; m.Version > FormatVersion || (m.Format != "" && m.Format != FormatName) {
		errs = append(errs, fmt.Errorf("manifest format %q version %d: this writer writes %q version %d", m.Format, m.Version, FormatName, FormatVersion))
	}
	return errors.Join(errs...)
}

// WriterStats is a snapshot of a Writer's counters.
type WriterStats struct {
	Written     uint64 // records encoded into a segment
	Dropped     uint64 // records refused by Write: queue full (count or bytes) or writer closed
	Lost        uint64 // records accepted but not stored because of a write error
	WriteErrors uint64 // failed disk operations (open, write, flush, sync, close)
	QueueDepth  int    // records waiting
	Segments    int    // segments opened so far
	Removed     int    // segments deleted by retention
	Bytes       int64  // compressed bytes written, all segments
	LastError   string // the latest write error, "" if none yet
	Healthy     bool   // the latest disk write succeeded (a new segment counts once its first flush does)
}

// Writer stores records asynchronously in zstd-compressed JSONL segments.
// Write never blocks the request path: a bounded queue feeds one goroutine
// that encodes, compresses, flushes, rotates and applies retention. Disk
// errors never reach callers; they are counted, mark the Writer unhealthy,
// and the queue keeps draining (records lost meanwhile are counted) while it
// retries with a new segment.
type Writer struct {
	base string                 // the directory asked for
	dir  atomic.Pointer[string] // where this capture is written (base or a run subdirectory)
	opts WriterOptions

	mu     sync.RWMutex // guards closed against Write's send
	closed bool
	queue  chan *Record
	rotate chan chan error
	stop   chan struct{}
	done   chan struct{}
	gate   chan struct{} // tests: the loop waits for it before starting

	closeOnce sync.Once
	closeErr  error

	// Counters read by Stats from other goroutines.
	written, dropped, lost, writeErrors atomic.Uint64
	segments, removed                   atomic.Int64
	bytes                               atomic.Int64
	queued                              atomic.Int64 // approximate bytes of queued records
	healthy                             atomic.Bool
	recovered                           atomic.Uint64 // unhealthy → healthy transitions (tests)
	lastErr                             atomic.Pointer[string]

	// Loop state, owned by the writer goroutine.
	ready     bool   // the capture directory and its manifest exist
	runDir    string // the run subdirectory once created, reused by retries
	seg       *segment
	seq       int
	finished  []finishedSegment // on disk, oldest first
	retryAt   time.Time
	zenc      *zstd.Encoder                          // reused across segments
	line      bytes.Buffer                           // one encoded record
	enc       *json.Encoder                          // writes into line
	create    func(name string) (segmentFile, error) // tests inject failures
	remove    func(name string) error                // tests inject failures
	setupHook func(dir string) error                 // tests inject failures
}

type finishedSegment struct {
	name string
	size int64
}

// NewWriter creates dir (and parents) if needed, writes its manifest and
// starts the writer goroutine. Captures are never appended to: when dir
// already holds one (a restart on the same volume), this capture goes to a
// new subdirectory named by its start time, dir/run-20060102T150405Z (see
// Dir).
//
// A directory that cannot be used for now (permission denied, read-only or
// full file system, I/O error) does not fail NewWriter: the Writer starts
// unhealthy, counts every record as lost and retries every second, setting
// the directory up as soon as it can. Only a path that can never be a
// directory (it or a parent is a regular file, a name too long, a symlink
// loop) and invalid options are errors.
func NewWriter(dir string, opts WriterOptions) (*Writer, error) {
	return newWriter(dir, opts, writerHooks{})
}

// writerHooks let tests hold the writer goroutine before it starts (gate)
// and inject file failures (create, remove, setup).
type writerHooks struct {
	gate   chan struct{}
	create func(path string) (segmentFile, error)
	remove func(path string) error
	setup  func(dir string) error // runs before each attempt to set dir up
}

func newWriter(dir string, opts WriterOptions, hooks writerHooks) (*Writer, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("capture writer options: %w", err)
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.QueueBytes == 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.SegmentAge == 0 {
		opts.SegmentAge = DefaultSegmentAge
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &opts.Manifest
	if m.Format == "" {
		m.Format = FormatName
	}
	if m.Version == 0 {
		m.Version = FormatVersion
	}
	if m.Start.IsZero() {
		m.Start = opts.Now()
	}
	m.Start = m.Start.UTC()
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(segmentWindow),
		zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, fmt.Errorf("creating zstd encoder: %w", err)
	}
	w := &Writer{
		zenc:      zenc,
		base:      dir,
		opts:      opts,
		queue:     make(chan *Record, opts.QueueSize),
		rotate:    make(chan chan error),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		gate:      hooks.gate,
		create:    hooks.create,
		remove:    hooks.remove,
		setupHook: hooks.setup,
	}
	if w.create == nil {
		w.create = createFile
	}
	if w.remove == nil {
		w.remove = os.Remove
	}
	w.dir.Store(&dir)
	w.healthy.Store(true)
	if err := w.setup(); err != nil {
		if neverADirectory(dir, err) {
			return nil, err
		}
		w.fail(err)
		w.retryAt = opts.Now().Add(retryDelay)
	}
	w.enc = json.NewEncoder(&w.line)
	w.enc.SetEscapeHTML(false)
	go w.loop()
	return w, nil
}

// setup creates the capture directory (a run subdirectory when the one
// asked for already holds a capture) and writes its manifest. A failed
// attempt is retried; a run subdirectory once created is reused.
func (w *Writer) setup() error {
	if w.setupHook != nil {
		if err := w.setupHook(w.base); err != nil {
			return err
		}
	}
	dir := w.runDir
	if dir == "" {
		if err := os.MkdirAll(w.base, 0o755); err != nil {
			return fmt.Errorf("creating capture directory: %w", err)
		}
		dir = w.base
		if holdsCapture(w.base) {
			sub, err := makeRunDir(w.base, w.opts.Manifest.Start)
			if err != nil {
				return err
			}
			w.runDir, dir = sub, sub
		}
	}
	if err := writeManifest(dir, w.opts.Manifest); err != nil {
		return err
	}
	w.dir.Store(&dir)
	w.ready = true
	if w.opts.OnReady != nil {
		w.opts.OnReady(dir)
	}
	return nil
}

// RunDirPrefix starts the name of the subdirectory a capture goes to when
// its directory already holds one.
const RunDirPrefix = "run-"

// holdsCapture reports whether dir has a manifest or segments of its own.
func holdsCapture(dir string) bool {
	if fileExists(filepath.Join(dir, ManifestName)) {
		return true
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
	return len(segs) > 0
}

// makeRunDir creates base/run-<start, UTC, to the second>, with a -2, -3…
// suffix if that exists (two starts within a second).
func makeRunDir(base string, start time.Time) (string, error) {
	name := RunDirPrefix + start.UTC().Format("20060102T150405Z")
	for i := 1; i <= 100; i++ {
		dir := filepath.Join(base, name)
		if i > 1 {
			dir = fmt.Sprintf("%s-%d", dir, i)
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			syncDir(base)
			return dir, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("creating run directory in %s (it holds an earlier capture): %w", base, err)
		}
	}
	return "", fmt.Errorf("creating run directory in %s: %s and 99 others exist", base, name)
}

// neverADirectory tells a misconfigured capture path, which no retry can
// fix, from a directory that cannot be written for now.
func neverADirectory(dir string, err error) bool {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ENAMETOOLONG) || errors.Is(err, syscall.ELOOP) {
		return true
	}
	st, serr := os.Stat(dir)
	return serr == nil && !st.IsDir()
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// writeManifest writes manifest.json atomically: a temporary file, fsync,
// rename, fsync of the directory.
func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(dir, ".manifest-*.tmp")
	if err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644) // CreateTemp makes it 0600; segments are 0644
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, ManifestName))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing manifest: %w", err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename or create durable; errors are ignored because some
// file systems do not support syncing directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Dir is the directory this capture is written to: the one given to
// NewWriter, or a run subdirectory of it when it already held a capture.
// While the writer could not yet set it up, it is the one given.
func (w *Writer) Dir() string { return *w.dir.Load() }

// Manifest is the manifest as written.
func (w *Writer) Manifest() Manifest { return w.opts.Manifest }

// Write queues r for storage and reports whether it was accepted. It never
// blocks: when the queue is full (QueueSize records or QueueBytes) or the
// writer is closed, r is dropped and counted. The writer owns r afterwards;
// the caller must not modify it.
func (w *Writer) Write(r *Record) bool {
	ok := false
	w.mu.RLock()
	if !w.closed && r != nil {
		size := approxSize(r)
		if w.queued.Add(size) <= w.opts.QueueBytes {
			select {
			case w.queue <- r:
				ok = true
			default:
			}
		}
		if !ok {
			w.queued.Add(-size)
		}
	}
	w.mu.RUnlock()
	if !ok {
		w.dropped.Add(1)
	}
	return ok
}

// approxSize estimates the memory a queued record holds, in bytes: the
// struct and its strings and slices.
func approxSize(r *Record) int64 {
	n := 512 + len(r.ID) + len(r.Session) + len(r.Method) + len(r.Path) + len(r.Model) + len(r.Prompt) +
		len(r.Messages) + len(r.Error) + len(r.FinishReason) + len(r.Upstream) + len(r.TokensSource) + len(r.ChunkTokensSource) +
		4*len(r.HashIDs) + 8*len(r.ChunksUS) + 8*len(r.ChunkTokens)
	return int64(n)
}

// Rotate finishes the current segment (after storing every record already
// queued) so it can be shipped; the next record starts a new one. It
// returns the error of finishing the segment, or ErrClosed.
func (w *Writer) Rotate() error {
	reply := make(chan error, 1)
	select {
	case w.rotate <- reply:
		return <-reply
	case <-w.done:
		return ErrClosed
	}
}

// Stats returns the counters.
func (w *Writer) Stats() WriterStats {
	s := WriterStats{
		Written:     w.written.Load(),
		Dropped:     w.dropped.Load(),
		Lost:        w.lost.Load(),
		WriteErrors: w.writeErrors.Load(),
		QueueDepth:  len(w.queue),
		Segments:    int(w.segments.Load()),
		Removed:     int(w.removed.Load()),
		Bytes:       w.bytes.Load(),
		Healthy:     w.healthy.Load(),
	}
	if p := w.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// Close stops accepting records, stores every queued one, finishes and
// fsyncs the last segment, and returns the first error of doing so. It is
// idempotent; later calls return the same error.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.stop)
		<-w.done
	})
	return w.closeErr
}
