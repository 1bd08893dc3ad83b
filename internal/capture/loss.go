package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// This file accounts for what a Reader cannot return: segments missing
// from a capture's numbering, the part of a corrupt segment SkipSegment
// gives up, and empty captures Open passes over. Each is named so that a
// replay never loses records without saying which and how many.

// Gap is a run of segment numbers missing between two segments of a
// capture directory. The writer numbers segments 1, 2, 3... and retention
// only ever deletes the oldest, so segments on disk are a contiguous run:
// a hole in it is a segment lost (deleted or never copied), records and
// all.
type Gap struct {
	Dir         string // the capture directory
	First, Last int    // the missing segment numbers, inclusive
}

func (g Gap) String() string {
	if g.First == g.Last {
		return fmt.Sprintf("capture %s: segment %06d missing (between %06d and %06d); its records are lost",
			g.Dir, g.First, g.First-1, g.Last+1)
	}
	return fmt.Sprintf("capture %s: segments %06d to %06d missing (%d segments, between %06d and %06d); their records are lost",
		g.Dir, g.First, g.Last, g.Last-g.First+1, g.First-1, g.Last+1)
}

// Segments is how many segments the gap misses.
func (g Gap) Segments() int { return g.Last - g.First + 1 }

// findGaps returns the holes in the numbering of segs, sorted by number.
func findGaps(dir string, segs []segmentPath) []Gap {
	var gaps []Gap
	for i := 1; i < len(segs); i++ {
		if prev, seq := segs[i-1].seq, segs[i].seq; seq > prev+1 {
			gaps = append(gaps, Gap{Dir: dir, First: prev + 1, Last: seq - 1})
		}
	}
	return gaps
}

// SkippedSegment is what SkipSegment gave up of one segment: the corrupt
// record and everything after it in that segment.
type SkippedSegment struct {
	Err *CorruptError // the corruption: file, line and offsets
	// Record is the 1-based number, within the segment, of the record that
	// could not be read; the ones before it were returned.
	Record int
	// After counts the records after the corrupt one that were skipped:
	// all of them when Exact, else those that could still be decoded
	// before the segment became unreadable.
	After int
	// Exact reports that the segment could be read to its end past the
	// corruption (a bad record in an intact stream), so After is the
	// exact count.
	Exact bool
	// Cut reports that the segment ends in the middle of a record or a
	// compressed block (a copy cut short), so nothing follows the point
	// where reading stopped.
	Cut bool
	// Unread is how many of the file's bytes (compressed, for a .zst
	// segment) lie after the point where decoding failed, within about one
	// zstd block and the reader's read-ahead: records in them are lost
	// uncounted. 0 when Exact.
	Unread int64
	// Size is the segment file's size in bytes.
	Size int64
}

func (s SkippedSegment) String() string {
	head := fmt.Sprintf("segment %s: corrupt at record %d", s.Err.File, s.Record)
	var rest string
	switch {
	case s.Exact && s.After == 0:
		rest = "no records after it"
	case s.Exact:
		rest = records(s.After) + " after it skipped"
	case s.Cut:
		rest = "the segment is cut short there"
		if s.After > 0 {
			rest = records(s.After) + " after it skipped, then the segment is cut short"
		}
		rest += " (records after the cut are lost uncounted)"
	default:
		rest = "the rest of the segment skipped"
		if s.After > 0 {
			rest = records(s.After) + " after it skipped, then the rest of the segment"
		}
		rest += ": it cannot be decoded past that point"
		if s.Unread > 0 {
			rest += fmt.Sprintf(" (about %d of its %d bytes)", s.Unread, s.Size)
		}
		rest += "; its records there are lost uncounted"
	}
	return fmt.Sprintf("%s; %s (%v)", head, rest, s.Err)
}

// records is "1 record" or "n records".
func records(n int) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}

// Lost is how many records are known lost with the segment: the corrupt
// one and those counted after it (a lower bound unless Exact).
func (s SkippedSegment) Lost() int { return 1 + s.After }

// countRest counts the records left in the current segment after a
// record that did not parse, reading on to the segment's end. It returns
// the stream's error when the stream itself fails first (a decompression
// error or a cut), leaving the rest uncounted; nil when n is exact.
func (r *Reader) countRest() (n int, err error) {
	for {
		line, _, err := r.readLine()
		if len(bytes.TrimSpace(line)) > 0 && (err == nil || err == io.EOF) {
			n++
		}
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case err != nil:
			return n, err
		}
	}
}

// fileSize is the size of the open segment file, 0 if it cannot be known.
func (r *Reader) fileSize() int64 {
	if r.f == nil {
		return 0
	}
	st, err := r.f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

// emptyCapture reports whether the capture directory dir holds no records
// for certain: no segment file, or only empty ones. A proxy start that
// failed before any request, or that served none, leaves one.
func emptyCapture(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() || !segmentRe.MatchString(e.Name()) {
			continue
		}
		if info, err := e.Info(); err != nil || info.Size() > 0 {
			return false
		}
	}
	return true
}

// IsSegmentName reports whether name (a file's base name) is a capture
// segment's: seg-NNNNNN.jsonl.zst, a plain seg-NNNNNN.jsonl, or their
// .partial forms.
func IsSegmentName(name string) bool { return segmentRe.MatchString(filepath.Base(name)) }

// choose picks the capture to open in dir, which holds the captures
// cands (dir itself, as dir/manifest.json, and run subdirectories, oldest
// first). Empty captures (see emptyCapture) are passed over with a note
// when exactly one capture holds records, or none does and dir has its
// own; otherwise the choice is the user's (*MultipleCapturesError).
func choose(dir string, own bool, subs []string) (string, []string, error) {
	var cands []string
	if own {
		cands = append(cands, filepath.Join(dir, ManifestName))
	}
	cands = append(cands, subs...)
	var full, empty []string
	for _, c := range cands {
		d := c
		if filepath.Base(c) == ManifestName {
			d = dir
		}
		if emptyCapture(d) {
			empty = append(empty, c)
		} else {
			full = append(full, c)
		}
	}
	pick := ""
	switch {
	case len(full) == 1:
		pick = full[0]
	case len(full) == 0 && own:
		pick = cands[0]
	case len(full) == 0 && len(cands) == 1:
		pick = cands[0]
	case len(full) == 0:
		return "", nil, &MultipleCapturesError{Dir: dir, Captures: cands}
	default:
		return "", nil, &MultipleCapturesError{Dir: dir, Captures: full, Empty: empty}
	}
	var notes []string
	for _, e := range empty {
		if e == pick {
			continue
		}
		notes = append(notes, fmt.Sprintf("capture %s: ignored %s: an empty capture (a manifest and no records: a proxy start that failed or served no request); reading %s",
			dir, e, pick))
	}
	if filepath.Base(pick) == ManifestName {
		pick = dir
	}
	return pick, notes, nil
}
