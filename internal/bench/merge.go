package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/stats"
)

// Merge reads the shards of one split run and returns one results file,
// as if one process had run the whole plan: the metrics are computed from
// the union of every shard's results (each request's full timeline, chunk
// offsets included), on one time origin (the earliest shard's; with an
// aligned start the shards' origins differ by their start skew, which is
// reported). Request counts, token totals and every percentile are those
// of the union, exactly; throughput is over the union's window. Each
// shard's own client lag is kept next to the merged one.
//
// dirs are shards' results directories (holding ShardFile), or
// directories holding them (a run's shard-* directories). Every shard of
// the run must be there once: a shard missing, given twice, of another
// run (another plan or start) or of another format version is refused by
// name, and nothing is merged.
func Merge(dirs []string) (*report.File, error) {
	paths, err := shardPaths(dirs)
	if err != nil {
		return nil, err
	}
	readers := make([]*shardReader, 0, len(paths))
	defer func() {
		for _, r := range readers {
			r.close()
		}
	}()
	for _, p := range paths {
		r, err := openShard(p)
		if err != nil {
			return nil, err
		}
		readers = append(readers, r)
	}
	if err := checkShards(readers); err != nil {
		return nil, err
	}
	sort.Slice(readers, func(i, j int) bool { return readers[i].header.Index < readers[j].header.Index })

	// Each shard's own view (benchmarks.json beside its state): its
	// origin, and its per-request records when it saved them.
	views := make([]*report.Benchmark, len(readers))
	origin := time.Time{}
	for i, r := range readers {
		f, _, err := report.ReadResults(filepath.Dir(r.path))
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", r.header.Shard, err)
		}
		var b *report.Benchmark
		for k := range f.Benchmarks {
			if c := f.Benchmarks[k].Config; c.Shard == r.header.Shard && c.Plan == r.header.Plan {
				b = &f.Benchmarks[k]
			}
		}
		if b == nil {
			return nil, fmt.Errorf("%s: its benchmarks.json holds no benchmark of shard %s of plan %s: the results and the shard state are of different runs",
				filepath.Dir(r.path), r.header.Shard, r.header.Plan)
		}
		views[i] = b
		if origin.IsZero() || b.Start.Before(origin) {
			origin = b.Start
		}
	}

	h := readers[0].header
	opts := stats.Options{RequestedRate: h.Stats.RequestedRate, OpenLoop: h.Stats.OpenLoop,
		LagThreshold: time.Duration(h.Stats.LagThresholdMs * float64(time.Millisecond))}
	var spec *slo.Spec
	if h.SLO != "" {
		if spec, err = slo.Parse(h.SLO); err != nil {
			return nil, fmt.Errorf("%s: its --slo %q: %w", readers[0].path, h.SLO, err)
		}
		spec.FromIntended = h.SLOFromInt
		opts.SLO = spec.PerRequest()
	}
	rec := stats.NewRecorder(opts)
	var forSLO []engine.Result // the results without chunk offsets, when an SLO is evaluated
	var records []report.RequestRecord
	saved := true
	merged := report.Benchmark{Name: h.Name, Target: h.Target, Profile: h.Profile, Start: origin, Config: h.Config}
	c := &merged.Config
	c.Shard, c.ClockOffsetS, c.StopReason = "", nil, ""
	c.MergedShards = len(readers)
	var stop []string
	var inFlight, cancelled, dropped int
	var end time.Duration
	for i, r := range readers {
		shift := views[i].Start.Sub(origin)
		var last time.Duration
		firstSend := time.Duration(-1)
		t, err := r.each(func(res *engine.Result) {
			if firstSend < 0 || res.Sent < firstSend {
				firstSend = res.Sent
			}
			shiftResult(res, shift)
			last = max(last, res.End)
			rec.Record(res)
			if spec != nil {
				res.Chunks, res.ChunkTokens = nil, nil
				forSLO = append(forSLO, *res)
			}
		})
		if err != nil {
			return nil, err
		}
		if !t.Run.Origin.IsZero() && !t.Run.Origin.Equal(views[i].Start) {
			return nil, fmt.Errorf("%s: the shard state's run began at %s, its benchmarks.json's at %s: they are of different runs",
				r.path, t.Run.Origin.Format(time.RFC3339Nano), views[i].Start.Format(time.RFC3339Nano))
		}
		end = max(end, last, shift+time.Duration(t.Run.DurationS*float64(time.Second)))
		stop = append(stop, t.Run.StopReason)
		inFlight += t.Run.InFlightAtStop
		cancelled += t.Run.Cancelled
		c.GraphUnresolvedAfter += t.Run.Unresolved
		dropped += t.Run.Dropped
		at := shift.Seconds() + t.Run.StoppedAtS
		if c.StoppedAtS == nil || at > *c.StoppedAtS {
			c.StoppedAtS = report.Ptr(at)
		}
		merged.Shards = append(merged.Shards, report.ShardSummary{
			Shard: r.header.Shard, Requests: t.Requests, StartOffsetMs: float64(shift) / float64(time.Millisecond),
			FirstSendMs: float64(max(firstSend, 0)) / float64(time.Millisecond),
			ClientLag:   t.ClientLag, ClockOffsetS: views[i].Config.ClockOffsetS, StopReason: t.Run.StopReason,
			WriterStalls: t.Stalls,
		})
		if len(views[i].Requests) == 0 {
			saved = false
		} else {
			for _, q := range views[i].Requests {
				records = append(records, shiftRecord(q, shift))
			}
		}
	}
	merged.Metrics = rec.Metrics()
	merged.Metrics.DroppedRequests = int64(dropped)
	merged.DurationS = end.Seconds()
	c.InFlightAtStop, c.CancelledByDrain = report.Ptr(inFlight), report.Ptr(cancelled)
	c.StopReason = stop[0]
	for _, s := range stop[1:] {
		if s != stop[0] {
			c.StopReason = "shards: " + strings.Join(stop, ",")
			break
		}
	}
	if spec != nil {
		v := spec.Evaluate(forSLO)
		merged.SLO = &v
	}
	if saved {
		slices.SortFunc(records, func(a, b report.RequestRecord) int { return a.Index - b.Index })
		merged.Requests = records
	}
	return &report.File{Tool: "reprise", Benchmarks: []report.Benchmark{merged}}, nil
}

// shardPaths finds the shard files dirs name: each dir's own, or those of
// its subdirectories.
func shardPaths(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		p := filepath.Join(d, ShardFile)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		found := 0
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			p := filepath.Join(d, e.Name(), ShardFile)
			if _, err := os.Stat(p); err == nil {
				out = append(out, p)
				found++
			}
		}
		if found == 0 {
			return nil, fmt.Errorf("merge: %s holds no shard (%s) and no directory with one: was it run with --shard?", d, ShardFile)
		}
	}
	return out, nil
}

// checkShards refuses shards of different runs, a shard given twice and a
// missing one.
func checkShards(rs []*shardReader) error {
	first := rs[0].header
	var errs []error
	seen := map[int]string{}
	for _, r := range rs {
		h := r.header
		switch {
		case h.Plan != first.Plan:
			errs = append(errs, fmt.Errorf("%s: shard %s of another run (plan %s; %s is of plan %s): merge the shards of one run", r.path, h.Shard, h.Plan, rs[0].path, first.Plan))
			continue
		case h.Count != first.Count:
			errs = append(errs, fmt.Errorf("%s: shard %s, but %s is of a run split %d ways", r.path, h.Shard, rs[0].path, first.Count))
			continue
		case h.StartAt != first.StartAt:
			errs = append(errs, fmt.Errorf("%s: shard %s started at %s, %s at %s: shards of different runs", r.path, h.Shard, orNone(h.StartAt), rs[0].path, orNone(first.StartAt)))
			continue
		case h.Name != first.Name:
			errs = append(errs, fmt.Errorf("%s: benchmark %q, %s's is %q", r.path, h.Name, rs[0].path, first.Name))
			continue
		}
		if prev, dup := seen[h.Index]; dup {
			errs = append(errs, fmt.Errorf("shard %s given twice: %s and %s", h.Shard, prev, r.path))
			continue
		}
		seen[h.Index] = r.path
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var missing []string
	for i := range first.Count {
		if _, ok := seen[i]; !ok {
			missing = append(missing, strconv.Itoa(i)+"/"+strconv.Itoa(first.Count))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("merge: shard %s missing (have %d of %d)", strings.Join(missing, ", "), len(seen), first.Count)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "no set time"
	}
	return s
}

// shiftResult moves a shard's result onto the merged origin: every offset
// of an event that happened (0: never, for first byte, event and token).
func shiftResult(r *engine.Result, d time.Duration) {
	if d == 0 {
		return
	}
	r.Intended += d
	r.Sent += d
	r.End += d
	for _, p := range []*time.Duration{&r.FirstByte, &r.FirstEvent, &r.FirstToken, &r.LastToken} {
		if *p != 0 {
			*p += d
		}
	}
	for i := range r.Chunks {
		r.Chunks[i] += d
	}
}

// shiftRecord is shiftResult for a saved per-request record.
func shiftRecord(q report.RequestRecord, d time.Duration) report.RequestRecord {
	ms := float64(d) / float64(time.Millisecond)
	q.IntendedMs += ms
	q.SentMs += ms
	q.EndMs += ms
	for _, p := range []*float64{&q.FirstByteMs, &q.FirstEventMs, &q.FirstTokenMs, &q.LastTokenMs} {
		if *p != 0 {
			*p += ms
		}
	}
	return q
}
