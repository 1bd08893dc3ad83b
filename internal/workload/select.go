package workload

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

// window keeps requests with WindowStart <= offset < WindowEnd, shifted
// down by WindowStart. The whole source is read: a file whose timestamps
// go backwards may still hold in-window rows after a later one.
type window struct {
	wrapper
	start, end time.Duration
}

func newWindow(src Source, start, end time.Duration) Source {
	return &window{wrapper{src}, start, end}
}

func (w *window) Next() (Request, error) {
	for {
		r, err := w.inner.Next()
		if err != nil {
			return r, err
		}
		if r.Offset < w.start || (w.end > 0 && r.Offset >= w.end) {
			continue
		}
		r.Offset -= w.start
		return r, nil
	}
}

// statusTerm is one --filter-status term.
type statusTerm struct {
	exclude bool
	code    int    // exact code, or the class's first digit × 100 when class
	class   bool   // "5xx"
	word    string // "error" or "aborted"
}

func parseStatusTerm(s string) (statusTerm, error) {
	var t statusTerm
	s = strings.ToLower(strings.TrimSpace(s))
	if rest, ok := strings.CutPrefix(s, "!"); ok {
		t.exclude, s = true, rest
	}
	switch {
	case s == "error" || s == "aborted":
		t.word = s
		return t, nil
	case len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5':
		t.class, t.code = true, int(s[0]-'0')*100
		return t, nil
	}
	if c, err := strconv.Atoi(s); err == nil && c >= 0 && c <= 999 {
		t.code = c
		return t, nil
	}
	return t, fieldErr("Statuses", fmt.Sprintf("%q", s), "want a code (200), a class (5xx), error or aborted, optionally after ! to exclude")
}

func (t statusTerm) match(r *Request) bool {
	rec := r.Recorded
	switch t.word {
	case "error":
		return rec.Status < 200 || rec.Status > 299 || rec.Error != ""
	case "aborted":
		return rec.Aborted
	}
	if t.class {
		return rec.Status/100*100 == t.code
	}
	return rec.Status == t.code
}

// filtered keeps requests matching every given kind of filter.
type filtered struct {
	wrapper
	models, paths []string
	include       []statusTerm
	exclude       []statusTerm
	hasStatus     bool
	unrecorded    int // requests left out for having no recorded status
	done          bool
}

func newFiltered(src Source, models, paths, statuses []string) Source {
	f := &filtered{wrapper: wrapper{src}, models: models, paths: paths, hasStatus: len(statuses) > 0}
	for _, s := range statuses {
		t, _ := parseStatusTerm(s) // validated by Transforms.Validate
		if t.exclude {
			f.exclude = append(f.exclude, t)
		} else {
			f.include = append(f.include, t)
		}
	}
	return f
}

func (f *filtered) Next() (Request, error) {
	for {
		r, err := f.inner.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				f.done = true
			}
			return r, err
		}
		if f.keep(&r) {
			return r, nil
		}
	}
}

func (f *filtered) keep(r *Request) bool {
	if len(f.models) > 0 && !matchAny(f.models, r.Model) && !matchAny(f.models, r.TraceModel) {
		return false
	}
	if len(f.paths) > 0 {
		p := openai.PathFor(r.Endpoint)
		if r.Recorded != nil {
			p = r.Recorded.Path
		}
		if !matchAny(f.paths, p) {
			return false
		}
	}
	if f.hasStatus {
		if r.Recorded == nil {
			f.unrecorded++
			return false
		}
		for _, t := range f.exclude {
			if t.match(r) {
				return false
			}
		}
		if len(f.include) > 0 {
			for _, t := range f.include {
				if t.match(r) {
					return true
				}
			}
			return false
		}
	}
	return true
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// Warnings adds, once the source is read, the requests a status filter
// left out for having no recorded status.
func (f *filtered) Warnings() []string {
	w := f.wrapper.Warnings()
	if f.done && f.unrecorded > 0 {
		w = append(w, fmt.Sprintf("--filter-status left out %d requests that have no recorded status: only captures record one", f.unrecorded))
	}
	return w
}

// key64 is the 64-bit key that sample and shard decide by: the
// conversation graph's or the session's when there is one, so a
// conversation is kept or dropped whole, else the request's index.
func key64(r *Request) uint64 {
	if g := r.Graph; g != nil && g.Conversation != "" {
		// A conversation graph's agents are sessions of their own: the
		// whole conversation goes one way, so a sub-agent is never apart
		// from the parent it joins.
		h := fnv.New64a()
		h.Write([]byte("graph\x00" + g.Conversation))
		return h.Sum64()
	}
	if r.Session != "" {
		h := fnv.New64a()
		h.Write([]byte(r.Session))
		return h.Sum64()
	}
	return uint64(r.Index) | 1<<63
}

// mix64 is SplitMix64's finaliser: a bijection that spreads every input bit
// over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// sampled keeps a request when a hash of its key and the seed falls below
// the fraction: the same requests for the same seed however the source is
// cut, reopened or sharded, with no state.
type sampled struct {
	wrapper
	threshold uint64 // keep when the hash's top 53 bits < threshold
	seed      uint64
}

func newSampled(src Source, fraction float64, seed uint64) Source {
	return &sampled{wrapper{src}, uint64(fraction * (1 << 53)), mix64(seed + 0x9e3779b97f4a7c15)}
}

func (s *sampled) Next() (Request, error) {
	for {
		r, err := s.inner.Next()
		if err != nil {
			return r, err
		}
		if mix64(key64(&r)^s.seed)>>11 < s.threshold {
			return r, nil
		}
	}
}

// Sharder deals a stream of requests to n shards: requests without a
// session round robin in stream order (the k-th to shard k mod n), which
// splits any rate evenly; a session whole to the shard its key hashes to.
// Every replayer reading the same stream deals it the same way, so the
// shards are disjoint and together are the whole. The shard transform and
// the engine's sharded schedules (engine.Config.Shard) deal with it.
type Sharder struct {
	i, n uint64
	k    uint64 // requests without a session dealt
}

// NewSharder deals to shard i of n (0 <= i < n).
func NewSharder(i, n int) *Sharder { return &Sharder{i: uint64(i), n: uint64(n)} }

// Mine deals r, the next request of the stream, and reports whether it is
// this shard's.
func (s *Sharder) Mine(r *Request) bool {
	var shard uint64
	if r.Session != "" || (r.Graph != nil && r.Graph.Conversation != "") {
		shard = mix64(key64(r)) % s.n
	} else {
		shard = s.k % s.n
		s.k++
	}
	return shard == s.i
}

// sharded keeps shard i of n (Sharder).
type sharded struct {
	wrapper
	deal *Sharder
}

func newSharded(src Source, i, n int) Source {
	return &sharded{wrapper: wrapper{src}, deal: NewSharder(i, n)}
}

func (s *sharded) Next() (Request, error) {
	for {
		r, err := s.inner.Next()
		if err != nil {
			return r, err
		}
		if s.deal.Mine(&r) {
			return r, nil
		}
	}
}
