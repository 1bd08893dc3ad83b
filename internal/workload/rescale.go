package workload

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"
)

// Measure reads src to its end and returns how many requests it holds
// and its span (the largest offset), closing it. Memory stays constant:
// nothing is kept.
func Measure(src Source) (n int, span time.Duration, err error) {
	defer closeSource(src)
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			return n, span, nil
		}
		if err != nil {
			return n, span, err
		}
		n++
		span = max(span, r.Offset)
	}
}

// rescaleFactor measures a first pass of open's source and returns the
// factor that brings its mean rate, n / span, to rate requests per second.
func rescaleFactor(open func() (Source, error), rate float64) (float64, error) {
	src, err := open()
	if err != nil {
		return 0, err
	}
	n, span, err := Measure(src)
	if err != nil {
		return 0, fmt.Errorf("measuring the mean rate to rescale to: %w", err)
	}
	if n < 2 || span <= 0 {
		return 0, fieldErr("Rate", fmt.Sprint(rate), fmt.Sprintf("the workload has %d requests over %v, so it has no mean rate to rescale "+
			"(a source without arrival times, such as synthetic or prompts, takes profile constant or poisson)", n, span))
	}
	// New offsets are old × f, so the new mean is n / (span × f) = rate.
	return float64(n) / (span.Seconds() * rate), nil
}

// looped plays a reopenable source passes times. Pass k's offsets start
// one mean inter-arrival gap after pass k-1's last offset, so the seam
// keeps the trace's mean rate instead of sending two requests at once.
// Each pass renumbers what identifies a request: indices and ids continue,
// sessions and conversation graphs get a "/loopK" suffix, and prefix-block ids move to a range of
// their own, so pass k shares prefixes within itself exactly as the
// recording did, and none with pass k-1.
type looped struct {
	cur    Source
	open   func() (Source, error)
	passes int
	pass   int
	// measured on pass 0
	n        int
	span     time.Duration
	maxIndex int
	maxID    uint32
	// per pass
	base     time.Duration
	idStride uint64
	warnings []string
	skipped  int
	wrapped  bool // ids ran out of uint32 range
}

func newLooped(first Source, open func() (Source, error), passes int) *looped {
	return &looped{cur: first, open: open, passes: passes}
}

func (l *looped) Next() (Request, error) {
	for {
		r, err := l.cur.Next()
		if errors.Is(err, io.EOF) {
			if l.pass+1 >= l.passes || l.n == 0 {
				return r, err
			}
			if err := l.nextPass(); err != nil {
				return Request{}, err
			}
			continue
		}
		if err != nil {
			return r, err
		}
		if l.pass == 0 {
			l.n++
			l.span = max(l.span, r.Offset)
			l.maxIndex = max(l.maxIndex, r.Index)
			for _, id := range r.HashIDs {
				l.maxID = max(l.maxID, id)
			}
			return r, nil
		}
		l.renumber(&r)
		return r, nil
	}
}

// nextPass closes the finished pass and opens the next.
func (l *looped) nextPass() error {
	l.collect()
	_ = closeSource(l.cur)
	src, err := l.open()
	if err != nil {
		return fmt.Errorf("--loop pass %d: %w", l.pass+2, err)
	}
	l.cur = src
	l.pass++
	period := l.span
	if l.n > 1 {
		period += l.span / time.Duration(l.n-1)
	}
	l.base = time.Duration(l.pass) * period
	l.idStride = uint64(l.maxID) + 1
	return nil
}

func (l *looped) renumber(r *Request) {
	k := l.pass
	r.Offset += l.base
	r.Index += k * (l.maxIndex + 1)
	suffix := "/loop" + strconv.Itoa(k)
	if r.ID != "" {
		r.ID += suffix
	}
	if r.Session != "" {
		r.Session += suffix
	}
	if r.Graph != nil && r.Graph.Conversation != "" {
		g := *r.Graph
		g.Conversation += suffix
		r.Graph = &g
	}
	if len(r.HashIDs) > 0 {
		ids := make([]uint32, len(r.HashIDs))
		shift := uint64(k) * l.idStride
		if shift+l.idStride > math.MaxUint32+1 {
			l.wrapped = true
		}
		for i, id := range r.HashIDs {
			ids[i] = uint32(uint64(id) + shift)
		}
		r.HashIDs = ids
	}
}

// collect keeps the finished pass's warnings and skipped count.
func (l *looped) collect() {
	if s, ok := l.cur.(interface{ Warnings() []string }); ok {
		for _, w := range s.Warnings() {
			if !slices.Contains(l.warnings, w) {
				l.warnings = append(l.warnings, w)
			}
		}
	}
	if s, ok := l.cur.(interface{ Skipped() int }); ok {
		l.skipped = max(l.skipped, s.Skipped())
	}
}

// Warnings returns every pass's warnings, each once.
func (l *looped) Warnings() []string {
	l.collect()
	w := slices.Clone(l.warnings)
	if l.wrapped {
		w = append(w, fmt.Sprintf("--loop %d: prefix-block ids up to %d do not fit %d passes in 32 bits; later passes may share blocks with earlier ones", l.passes, l.maxID, l.passes))
	}
	return w
}

// Skipped returns the invalid lines skipped in one pass.
func (l *looped) Skipped() int {
	l.collect()
	return l.skipped
}

// Close closes the current pass.
func (l *looped) Close() error { return closeSource(l.cur) }

// Unwrap returns the current pass's source.
func (l *looped) Unwrap() Source { return l.cur }
