package workload

import (
	"io"
	"math"
	"time"
)

// wrapper is embedded by transforms: it forwards Close, Warnings and
// Skipped to the wrapped source, so a transformed source still reports
// what its reader saw.
type wrapper struct{ inner Source }

// Close closes the wrapped source when it holds files.
func (w wrapper) Close() error { return closeSource(w.inner) }

// Warnings returns the wrapped source's warnings.
func (w wrapper) Warnings() []string {
	if s, ok := w.inner.(interface{ Warnings() []string }); ok {
		return s.Warnings()
	}
	return nil
}

// Skipped returns the wrapped source's count of skipped lines.
func (w wrapper) Skipped() int {
	if s, ok := w.inner.(interface{ Skipped() int }); ok {
		return s.Skipped()
	}
	return 0
}

// Unwrap returns the wrapped source.
func (w wrapper) Unwrap() Source { return w.inner }

func closeSource(s Source) error {
	if c, ok := s.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

type mapped struct {
	wrapper
	f func(*Request)
}

// Map returns src with f applied to every request.
func Map(src Source, f func(*Request)) Source { return &mapped{wrapper{src}, f} }

func (m *mapped) Next() (Request, error) {
	r, err := m.inner.Next()
	if err == nil {
		m.f(&r)
	}
	return r, err
}

type limited struct {
	wrapper
	left int
}

// Limit returns src cut after n requests.
func Limit(src Source, n int) Source { return &limited{wrapper{src}, max(n, 0)} }

func (l *limited) Next() (Request, error) {
	if l.left <= 0 {
		return Request{}, io.EOF
	}
	r, err := l.inner.Next()
	if err == nil {
		l.left--
	}
	return r, err
}

// TimeScale returns src with every Offset and Delay multiplied by f: 0.5
// replays twice as fast, 2 half as fast. f must be positive.
func TimeScale(src Source, f float64) Source {
	return Map(src, func(r *Request) {
		r.Offset = scaleDuration(r.Offset, f)
		r.Delay = scaleDuration(r.Delay, f)
	})
}

func scaleDuration(d time.Duration, f float64) time.Duration {
	v := math.Round(float64(d) * f)
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(max(v, 0))
}
