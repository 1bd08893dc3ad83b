package stats

import (
	"cmp"
	"slices"
	"time"
)

// series builds the time series over [start, end], the peak concurrency and
// the time spent at each concurrency level (inFlight). Buckets are aligned
// to multiples of the bucket width from the run origin; when the window
// holds more than MaxBuckets of them, the width becomes the smallest whole
// multiple that fits, so counters stay exact sums.
func (rec *Recorder) series(start, end time.Duration) ([]Bucket, float64, int64, map[int64]time.Duration) {
	base := rec.opts.BucketWidth
	b0, bL := floorDiv(start, base), floorDiv(end, base)
	for k := range rec.buckets { // chunk times can lie outside [sent, end] only on bad input
		b0, bL = min(b0, k), max(bL, k)
	}
	factor := (bL - b0 + 1 + int64(rec.opts.MaxBuckets) - 1) / int64(rec.opts.MaxBuckets)
	width := base * time.Duration(factor)
	f0, fL := floorDiv(time.Duration(b0)*base, width), floorDiv(time.Duration(bL)*base, width)
	out := make([]Bucket, fL-f0+1)
	ws := width.Seconds()
	for i := range out {
		out[i].T = float64(f0+int64(i)) * ws
	}
	ttftSum := make([]float64, len(out))
	for k, b := range rec.buckets {
		i := floorDiv(time.Duration(k)*base, width) - f0
		o := &out[i]
		o.Started += b.started
		o.Completed += b.completed
		o.Errored += b.errored
		o.OutputTokensPerS += b.outTokens
		ttftSum[i] += b.ttftSumMs
		o.TTFTCount += b.ttftN
	}
	for i := range out {
		out[i].OutputTokensPerS = ratio(out[i].OutputTokensPerS, ws)
		out[i].MeanTTFTMs = ratio(ttftSum[i], float64(out[i].TTFTCount))
	}
	peak, levels := rec.inFlight(out, time.Duration(f0)*width, width, start, end)
	return out, ws, peak, levels
}

// inFlight sweeps the requests' send and end events in time order: the level
// between events is the number in flight, its integral over each bucket
// (divided by the width) the bucket's time-weighted mean, its maximum the
// peak, and the time it holds each value over the window [start, end]
// (levels, 0 included; the times add up to end − start) its time-weighted
// distribution. An end sorts before a send at the same instant (no
// overlap), and a zero-length request is never in flight.
func (rec *Recorder) inFlight(out []Bucket, origin, width, start, end time.Duration) (int64, map[int64]time.Duration) {
	type event struct {
		t time.Duration
		d int64
	}
	ev := make([]event, 0, 2*len(rec.spans))
	for _, s := range rec.spans {
		if s.end > s.sent {
			ev = append(ev, event{s.sent, 1}, event{s.end, -1})
		}
	}
	slices.SortFunc(ev, func(a, b event) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.d, b.d)
	})
	area := make([]float64, len(out)) // request·ns per bucket
	levels := map[int64]time.Duration{}
	var level, peak int64
	prev, held := start, start // held: the sweep has counted [start, held) into levels
	for _, e := range ev {
		if t := min(max(e.t, start), end); t > held {
			levels[level] += t - held
			held = t
		}
		for t := prev; level > 0 && t < e.t; {
			i := floorDiv(t-origin, width)
			next := min(e.t, origin+time.Duration(i+1)*width)
			if i >= 0 && i < int64(len(area)) {
				area[i] += float64(level) * float64(next-t)
			}
			t = next
		}
		level += e.d
		peak = max(peak, level)
		prev = e.t
	}
	if end > held {
		levels[level] += end - held
	}
	for i := range out {
		out[i].InFlight = ratio(area[i], float64(width))
	}
	return peak, levels
}
