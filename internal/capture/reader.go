package capture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Reader limits. Memory is bounded by them, never by file size.
const (
	// MaxLineBytes bounds one record's JSON line (full content capture of
	// a huge prompt is the largest legitimate case).
	MaxLineBytes = 256 << 20
	// maxWindow bounds the zstd window a segment may declare: 64 MiB
	// covers the zstd CLI at every level short of --long.
	maxWindow = 64 << 20
)

// CorruptError reports a record or compressed stream that cannot be read
// somewhere other than the cut-off end of a capture.
type CorruptError struct {
	File   string // segment file name
	Offset int64  // uncompressed byte offset of the bad line
	Line   int    // 1-based line number within the segment
	// FileOffset locates the problem in the file itself: in a compressed
	// segment, how many of its bytes had been read when the error was
	// found (the bad bytes are before it, within about one zstd block:
	// 128 KiB, plus the reader's 64 KiB of read-ahead for a bad record);
	// in a plain .jsonl segment, the same as Offset.
	FileOffset int64
	Compressed bool // the segment is zstd-compressed
	Err        error
}

func (e *CorruptError) Error() string {
	if e.Compressed {
		return fmt.Sprintf("capture %s line %d (uncompressed offset %d, compressed offset %d): %v",
			e.File, e.Line, e.Offset, e.FileOffset, e.Err)
	}
	return fmt.Sprintf("capture %s line %d (offset %d): %v", e.File, e.Line, e.Offset, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// segmentRe matches segment file names: seg-NNNNNN[.partial].jsonl[.zst].
var segmentRe = regexp.MustCompile(`^seg-(\d+)(\.partial)?\.jsonl(\.zst)?$`)

type segmentPath struct {
	path    string
	seq     int
	partial bool // abandoned by the writer after a write error
	zst     bool
}

// Reader streams the records of a capture in order.
type Reader struct {
	manifest Manifest
	segs     []segmentPath
	next     int      // index of the next segment to open
	gaps     []Gap    // holes in the segment numbering
	notes    []string // what Open passed over (empty captures)

	cur       *segmentPath
	f         *os.File
	src       eofReader
	dec       *zstd.Decoder // reused across segments
	br        *bufio.Reader
	off       int64 // uncompressed offset of the next line in cur
	line      int   // lines read in cur
	recs      int   // records returned from cur
	intact    bool  // the last error is a record that did not parse in a stream that decodes: SkipSegment can count the rest
	buf       []byte
	truncated bool
	err       error // sticky
}

// eofReader counts the bytes read from the file under a decompressor and
// remembers whether it reached its end, which tells a file cut short from
// one corrupted in the middle.
type eofReader struct {
	r   io.Reader
	n   int64 // bytes read
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

// MultipleCapturesError is Open's answer for a directory that holds more
// than one capture: the proxy, restarted on a directory that already held a
// capture, writes each later run to a run-* subdirectory. Runs are not
// merged: each has its own time origin and its own hash-id numbering (and,
// without --hash-key-file, its own key), so one of them must be chosen.
type MultipleCapturesError struct {
	Dir      string   // the directory opened
	Captures []string // the captures in it, oldest first: Dir's own (as Dir/manifest.json), then run subdirectories
	// Empty lists the captures in Dir with no records (a proxy start that
	// failed or served nothing), passed over and not in Captures.
	Empty []string
}

func (e *MultipleCapturesError) Error() string {
	msg := fmt.Sprintf("%s holds %d captures (one per proxy run; runs are not merged because their times and hash ids are not comparable): open one of %s",
		e.Dir, len(e.Captures), strings.Join(e.Captures, ", "))
	if len(e.Empty) > 0 {
		msg += fmt.Sprintf(" (ignored as empty: %s)", strings.Join(e.Empty, ", "))
	}
	return msg
}

// HoldsCapture reports whether Open treats the directory dir as a capture:
// it has a manifest.json, or a subdirectory (a run-* directory) has one.
func HoldsCapture(dir string) bool {
	return fileExists(filepath.Join(dir, ManifestName)) || len(captureDirs(dir)) > 0
}

// captureDirs returns dir's immediate subdirectories that hold a manifest,
// sorted by name (run-* names sort by start time).
func captureDirs(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		sub := filepath.Join(dir, e.Name())
		if e.IsDir() && fileExists(filepath.Join(sub, ManifestName)) {
			out = append(out, sub)
		}
	}
	sort.Strings(out)
	return out
}

// Open opens a capture: a capture directory (manifest.json and its seg-*
// segments, in order), a single segment file (.jsonl.zst or plain .jsonl;
// its directory's manifest is used when there is one), or a capture
// directory's manifest.json (that directory's capture alone, ignoring run
// subdirectories). A directory with no capture of its own and exactly one
// subdirectory holding one (a run-* directory) opens that one; a directory
// holding several captures is a *MultipleCapturesError naming them.
// Captures without records (a manifest and no segments: a proxy start that
// failed or served nothing) are passed over when exactly one capture in
// the directory holds records, or none does and the directory has its own;
// Notes names each.
func Open(path string) (*Reader, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening capture: %w", err)
	}
	if !st.IsDir() && filepath.Base(path) == ManifestName {
		return openDir(filepath.Dir(path))
	}
	if st.IsDir() {
		own := fileExists(filepath.Join(path, ManifestName))
		subs := captureDirs(path)
		if len(subs) == 0 {
			return openDir(path)
		}
		dir, notes, err := choose(path, own, subs)
		if err != nil {
			return nil, err
		}
		r, err := openDir(dir)
		if err != nil {
			return nil, err
		}
		r.notes = notes
		return r, nil
	}
	r := &Reader{}
	base := filepath.Base(path)
	zst := strings.HasSuffix(base, ".zst")
	if !zst && !strings.HasSuffix(base, ".jsonl") {
		return nil, fmt.Errorf("opening capture %s: want a capture directory, a .jsonl.zst or a .jsonl file", path)
	}
	sp := segmentPath{path: path, zst: zst}
	if m := segmentRe.FindStringSubmatch(base); m != nil {
		sp.partial = m[2] != ""
	}
	r.segs = []segmentPath{sp}
	mpath := filepath.Join(filepath.Dir(path), ManifestName)
	if fileExists(mpath) {
		if r.manifest, err = readManifest(mpath); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// openDir opens the capture directory path.
func openDir(path string) (*Reader, error) {
	r := &Reader{}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("opening capture: %w", err)
	}
	for _, e := range entries {
		m := segmentRe.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		seq, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		r.segs = append(r.segs, segmentPath{path: filepath.Join(path, e.Name()), seq: seq, partial: m[2] != "", zst: m[3] != ""})
	}
	sort.SliceStable(r.segs, func(i, j int) bool { return r.segs[i].seq < r.segs[j].seq })
	r.gaps = findGaps(path, r.segs)
	mpath := filepath.Join(path, ManifestName)
	if !fileExists(mpath) {
		if len(r.segs) > 0 {
			return nil, fmt.Errorf("capture directory %s has %d segments but no %s", path, len(r.segs), ManifestName)
		}
		return nil, fmt.Errorf("%s is not a capture directory: no %s", path, ManifestName)
	}
	if r.manifest, err = readManifest(mpath); err != nil {
		return nil, err
	}
	return r, nil
}

func readManifest(path string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("reading capture manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("reading capture manifest %s: %w", path, err)
	}
	if m.Format != FormatName {
		return m, fmt.Errorf("%s is not a reprise capture manifest (format %q)", path, m.Format)
	}
	if m.Version > FormatVersion {
		return m, fmt.Errorf("capture %s is format version %d; this build of reprise reads versions up to %d: upgrade reprise",
			filepath.Dir(path), m.Version, FormatVersion)
	}
	return m, nil
}

// Manifest is the capture's manifest (zero for a lone segment file outside
// a capture directory).
func (r *Reader) Manifest() Manifest { return r.manifest }

// Gaps lists the runs of segments missing from the capture's numbering
// (see Gap), known from Open on; their records are not returned.
func (r *Reader) Gaps() []Gap { return r.gaps }

// Notes names what Open passed over to pick the capture it reads: empty
// captures next to it (see Open).
func (r *Reader) Notes() []string { return r.notes }

// Truncated reports whether a segment's end was cut off: the last segment
// of a capture whose writer crashed (or is still writing), or one the
// writer marked partial after a disk error. Every whole record before the
// cut was returned.
func (r *Reader) Truncated() bool { return r.truncated }

// Next returns the next record, or io.EOF after the last. A record that
// cannot be read anywhere but at the cut-off end of the capture is a
// *CorruptError; errors are sticky.
func (r *Reader) Next() (*Record, error) {
	for r.err == nil {
		if r.cur == nil {
			if r.next >= len(r.segs) {
				r.err = io.EOF
				break
			}
			sp := &r.segs[r.next]
			r.next++ // past it even when it cannot be opened: SkipSegment goes on after it
			if err := r.open(sp); err != nil {
				r.err = err
				break
			}
		}
		rec, err := r.readRecord()
		if rec != nil || err != nil {
			if err != nil {
				r.err = err
			} else {
				r.recs++
			}
			return rec, err
		}
		// End of this segment.
		r.closeSegment()
	}
	return nil, r.err
}

// SkipSegment gives up the segment that Next's last *CorruptError came
// from, records after the corruption included, and lets Next go on with
// the following segment (for readers that would rather lose part of one
// segment than the rest of the capture). It returns what was given up:
// the records after the corrupt one are counted exactly when the segment
// decodes to its end, else as far as it does, with the bytes left unread.
// It reports false, and changes nothing, when Next's last error was not a
// corruption.
func (r *Reader) SkipSegment() (SkippedSegment, bool) {
	var ce *CorruptError
	if !errors.As(r.err, &ce) {
		return SkippedSegment{}, false
	}
	s := SkippedSegment{Err: ce, Record: r.recs + 1}
	if r.cur != nil {
		streamErr := ce.Err
		if r.intact {
			s.After, streamErr = r.countRest()
		}
		s.Exact = streamErr == nil
		s.Cut = errors.Is(streamErr, io.ErrUnexpectedEOF) && r.src.eof
		s.Size = r.fileSize()
		if !s.Exact {
			s.Unread = max(s.Size-r.src.n, 0)
		}
	}
	r.closeSegment()
	r.err = nil
	return s, true
}

func (r *Reader) open(sp *segmentPath) error {
	f, err := os.Open(sp.path)
	if err != nil {
		return fmt.Errorf("opening capture segment: %w", err)
	}
	r.f, r.cur, r.off, r.line, r.recs, r.intact = f, sp, 0, 0, 0, false
	r.src = eofReader{r: f}
	var src io.Reader = &r.src
	if sp.zst {
		if r.dec == nil {
			r.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow),
				zstd.WithDecoderLowmem(true))
			if err != nil {
				return fmt.Errorf("creating zstd decoder: %w", err)
			}
		}
		if err := r.dec.Reset(&r.src); err != nil {
			return r.corrupt(err)
		}
		src = r.dec
	}
	if r.br == nil {
		r.br = bufio.NewReaderSize(src, 64<<10)
	} else {
		r.br.Reset(src)
	}
	return nil
}

func (r *Reader) closeSegment() {
	if r.f != nil {
		_ = r.f.Close()
	}
	r.f, r.cur = nil, nil
}

// tolerant reports whether the current segment may end cut off.
func (r *Reader) tolerant() bool {
	return r.cur.partial || r.next == len(r.segs)
}

func (r *Reader) corrupt(err error) *CorruptError {
	return r.corruptAt(r.off, r.line+1, err)
}

func (r *Reader) corruptAt(off int64, line int, err error) *CorruptError {
	e := &CorruptError{File: filepath.Base(r.cur.path), Offset: off, Line: line, FileOffset: off, Compressed: r.cur.zst, Err: err}
	if r.cur.zst {
		e.FileOffset = r.src.n
	}
	return e
}

// readRecord returns the next record of the current segment, (nil, nil) at
// its end.
func (r *Reader) readRecord() (*Record, error) {
	for {
		line, terminated, err := r.readLine()
		if err != nil && err != io.EOF {
			cut := r.cur.zst && errors.Is(err, io.ErrUnexpectedEOF) && r.src.eof
			if cut && r.tolerant() {
				r.truncated = true // the partial line, if any, is dropped
				return nil, nil
			}
			return nil, r.corrupt(err)
		}
		if len(line) == 0 && !terminated {
			return nil, nil // clean end
		}
		start := r.off
		r.off += int64(len(line))
		if terminated {
			r.off++
		}
		r.line++
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		rec, perr := parseRecord(line)
		if perr == nil {
			return rec, nil
		}
		if !terminated && r.tolerant() {
			// A proper prefix of a JSON object never parses, so an
			// unterminated unparsable last line is a cut record.
			r.truncated = true
			return nil, nil
		}
		r.intact = true // the stream decodes: SkipSegment can count the rest
		return nil, r.corruptAt(start, r.line, perr)
	}
}

// readLine returns the next line without its '\n'. terminated is false for
// a final line without one; err is io.EOF at the end of the segment or the
// decompressor's error. The slice is valid until the next call.
func (r *Reader) readLine() (line []byte, terminated bool, err error) {
	if cap(r.buf) > 4<<20 {
		r.buf = nil // do not keep one huge record's buffer for the rest
	}
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.buf)+len(chunk) > MaxLineBytes {
			return nil, false, fmt.Errorf("line longer than %d bytes", MaxLineBytes)
		}
		switch err {
		case nil:
			if len(r.buf) == 0 {
				return chunk[:len(chunk)-1], true, nil
			}
			r.buf = append(r.buf, chunk[:len(chunk)-1]...)
			return r.buf, true, nil
		case bufio.ErrBufferFull:
			r.buf = append(r.buf, chunk...)
		default:
			r.buf = append(r.buf, chunk...)
			return r.buf, false, err
		}
	}
}

func parseRecord(line []byte) (*Record, error) {
	if t := bytes.TrimSpace(line); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	rec := new(Record)
	if err := json.Unmarshal(line, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// Close releases the open segment and the decompressor.
func (r *Reader) Close() error {
	r.closeSegment()
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
	if r.err == nil {
		r.err = errors.New("capture reader closed")
	}
	return nil
}
