package bench

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/redact"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Issue 13: one plan, N shards, one result. Every shard computes the same
// global plan and runs only its part (engine.Config.ShardIndex for
// open-loop schedules; for closed loops the workload is dealt by the same
// workload.Sharder and the streams split). Besides its own
// benchmarks.json, a shard writes ShardFile: every request's full result
// (chunk offsets included), streamed as requests end, between a header
// naming the plan and a trailer the shard writes once it has finished.
// Merge reads N of them and computes the metrics from the union of the
// results, exactly as one process running the whole plan would have.

// ShardFile is the name of a shard's state file in its results directory.
const ShardFile = "shard.jsonl.zst"

// Shard format.
const (
	shardFormat  = "reprise-shard"
	shardVersion = 1
)

// Shard is a plan's shard: Index of Count (Count 0 or 1: not sharded).
type Shard struct{ Index, Count int }

// Sharded reports whether s splits the plan.
func (s Shard) Sharded() bool { return s.Count > 1 }

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// share is this shard's part of n things dealt round robin: n/Count, one
// more for the first n%Count shards.
func (s Shard) share(n int) int {
	q := n / s.Count
	if s.Index < n%s.Count {
		q++
	}
	return q
}

// shardHeader is a shard file's first line.
type shardHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Shard   string `json:"shard"` // i/N
	Index   int    `json:"index"`
	Count   int    `json:"count"`
	// Plan is the plan's fingerprint (Plan.Fingerprint): shards of one run
	// have the same.
	Plan string `json:"plan"`
	// StartAt is the instant the shards were to start together (empty
	// without one).
	StartAt string `json:"start_at,omitempty"`
	// The benchmark, and how its metrics are computed.
	Name       string           `json:"name"`
	Target     string           `json:"target"`
	Profile    string           `json:"profile"`
	Config     report.RunConfig `json:"config"`
	Stats      shardStats       `json:"stats"`
	SLO        string           `json:"slo,omitempty"`
	SLOFromInt bool             `json:"slo_from_intended,omitempty"`
}

// shardStats are the stats.Options the shard's metrics were computed
// with (the per-request SLO is rebuilt from the header's SLO).
type shardStats struct {
	RequestedRate  float64 `json:"requested_rate"`
	LagThresholdMs float64 `json:"lag_threshold_ms"`
	OpenLoop       bool    `json:"open_loop"`
}

// shardTrailer is a shard file's last line, written when the shard ended.
type shardTrailer struct {
	Trailer   bool               `json:"reprise_shard_trailer"`
	Requests  int                `json:"requests"`
	Phases    map[string]string  `json:"phases,omitempty"` // request index → warmup or cooldown
	Run       shardRunEnd        `json:"run"`
	ClientLag stats.Distribution `json:"client_lag_ms"` // the shard's own send lag less its waits
	// Stalls counts results that waited for the writer (its queue full):
	// their requests' slots were held that long.
	Stalls int `json:"stalls,omitempty"`
}

type shardRunEnd struct {
	Origin         time.Time `json:"origin"` // the wall time the shard's offsets count from
	StopReason     string    `json:"stop_reason"`
	StoppedAtS     float64   `json:"stopped_at_s"`
	DurationS      float64   `json:"duration_s"`
	InFlightAtStop int       `json:"in_flight_at_stop"`
	Cancelled      int       `json:"cancelled"`
	Dropped        int       `json:"dropped"`
	Scheduled      int       `json:"scheduled"`
	Unresolved     int       `json:"graph_unresolved_after,omitempty"`
}

// Fingerprint identifies what a plan runs, the same for every shard of
// one run: the engine's configuration (target, profile, rate, limits,
// seed, client measurement settings; not the shard), the workload and its
// transforms, the tokenizer, the prompts' namespace setting, the checks
// (SLO, detector) and the run id: shards that differ in any of these are
// not one run and are not merged.
func (p *Plan) Fingerprint() string {
	cfg := p.Engine
	cfg.ShardIndex, cfg.ShardCount = 0, 0
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(struct {
		Target, Profile                           string
		Rate, TimeScale, MaxSeconds, Burstiness   float64
		Concurrency, MaxConcurrency, MaxRequests  int
		Seed                                      int64
		Warmup, Cooldown, Model                   string
		Workload, Tokenizer, Namespace            string
		Transforms                                workload.Transforms
		Rescale                                   float64
		Count                                     int
		OmitIgnoreEOS, ReusePrompts, DropWhenFull bool
	}{cfg.Target, cfg.Profile, cfg.Rate, cfg.TimeScale, cfg.MaxSeconds, cfg.Burstiness,
		cfg.Concurrency, cfg.MaxConcurrency, cfg.MaxRequests, cfg.Seed, cfg.Warmup.String(), cfg.Cooldown.String(), cfg.Model,
		p.Workload, p.Tokenizer, p.PromptNamespace, p.Transforms, p.Rescale, p.Shard.Count, p.OmitIgnoreEOS, p.ReusePrompts, cfg.DropWhenFull})
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// shardWriter streams a shard's results to its file as they end. The
// engine hands each result over from the request's goroutine, before the
// request's slot is freed, so record only queues it; one goroutine
// encodes and compresses. When the queue is full (a writer far behind
// the requests) record waits for room rather than lose a result the merge
// needs: the wait is the request's, counted (stalls) and reported. Unlike
// a capture, which drops and counts rather than slow traffic, a shard's
// results are the benchmark: a short wait costs less than a shard that
// cannot be merged. The wait is bounded (stallLimit): a writer stuck that
// long (a hung disk) loses the result, and the shard fails, saying so,
// rather than hang the run.
type shardWriter struct {
	f     *os.File
	z     *zstd.Encoder
	w     *bufio.Writer
	enc   *json.Encoder
	queue chan *engine.Result
	done  chan struct{}

	mu       sync.Mutex
	n        int   // results written (the goroutine's)
	err      error // the first write error (the goroutine's)
	stalls   int   // results that waited for room in the queue
	lost     int   // results that found no room within stallLimit
	finished bool

	stallLimit time.Duration   // how long a result waits for room
	hold       <-chan struct{} // tests: the writer starts once this is closed (nil: at once)
}

// shardStallLimit is how long a result waits for room in a full queue
// before it is lost and the shard fails.
const shardStallLimit = 10 * time.Second

// shardQueue is how many results may wait for the writer.
const shardQueue = 1 << 16

func newShardWriter(path string, h shardHeader) (*shardWriter, error) {
	return newShardWriterQueue(path, h, shardQueue, shardStallLimit, nil)
}

// newShardWriterQueue is newShardWriter with a queue of the given
// length, waits bounded by stallLimit, and a writer that starts once hold
// is closed (nil: at once).
func newShardWriterQueue(path string, h shardHeader, queue int, stallLimit time.Duration, hold <-chan struct{}) (*shardWriter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("shard state: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("shard state: %w", err)
	}
	z, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		f.Close()
		return nil, err
	}
	w := bufio.NewWriterSize(z, 1<<16)
	s := &shardWriter{f: f, z: z, w: w, enc: json.NewEncoder(w), queue: make(chan *engine.Result, queue), done: make(chan struct{}),
		stallLimit: stallLimit, hold: hold}
	if err := s.enc.Encode(h); err != nil {
		s.close()
		return nil, fmt.Errorf("shard state %s: %w", path, err)
	}
	go s.drain()
	return s, nil
}

// drain writes the queued results until the queue is closed.
func (s *shardWriter) drain() {
	defer close(s.done)
	if s.hold != nil {
		<-s.hold
	}
	for r := range s.queue {
		err := s.enc.Encode(r)
		s.mu.Lock()
		if err == nil {
			s.n++
		} else if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
}

// record queues one result (from the engine's OnResult, concurrently).
func (s *shardWriter) record(r *engine.Result) {
	c := *r
	c.Chunks, c.ChunkTokens = slices.Clone(r.Chunks), slices.Clone(r.ChunkTokens) // the engine may drop them once OnResult returns
	select {
	case s.queue <- &c:
	default:
		s.mu.Lock()
		s.stalls++
		s.mu.Unlock()
		t := time.NewTimer(s.stallLimit)
		defer t.Stop()
		select {
		case s.queue <- &c:
		case <-t.C:
			s.mu.Lock()
			s.lost++
			s.mu.Unlock()
		}
	}
}

// finish writes the trailer and closes the file.
func (s *shardWriter) finish(run *engine.Run, clientLag stats.Distribution) error {
	close(s.queue)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = true
	if s.lost > 0 {
		err := fmt.Errorf("shard state %s: %d results could not be written (the writer made no room for %v); this shard cannot be merged", s.f.Name(), s.lost, s.stallLimit)
		return errors.Join(err, s.close())
	}
	t := shardTrailer{Trailer: true, Requests: s.n, ClientLag: clientLag, Stalls: s.stalls}
	if run != nil {
		t.Run = shardRunEnd{Origin: run.Start, StopReason: run.StopReason, StoppedAtS: run.StoppedAt.Seconds(), DurationS: run.Duration.Seconds(),
			InFlightAtStop: run.InFlightAtStop, Cancelled: run.Cancelled, Dropped: run.Dropped, Scheduled: run.Scheduled, Unresolved: run.UnresolvedAfter}
	}
	if s.err == nil {
		s.err = s.enc.Encode(t)
	}
	if err := errors.Join(s.err, s.close()); err != nil {
		return fmt.Errorf("shard state %s: %w", s.f.Name(), err)
	}
	return nil
}

// abandon closes the file of a shard that did not finish (an error path),
// leaving it without its trailer, which Merge refuses; a no-op after
// finish.
func (s *shardWriter) abandon() {
	s.mu.Lock()
	finished := s.finished
	s.finished = true
	s.mu.Unlock()
	if finished {
		return
	}
	close(s.queue)
	<-s.done
	_ = s.close()
}

func (s *shardWriter) close() error {
	return errors.Join(s.w.Flush(), s.z.Close(), s.f.Sync(), s.f.Close())
}

// shardReader reads a shard file: its header, then results, then the
// trailer, a JSON document a line.
type shardReader struct {
	path   string
	f      *os.File
	z      *zstd.Decoder
	lines  *bufio.Scanner
	header shardHeader
}

// maxShardLine bounds one result's line (a long stream's chunk offsets).
const maxShardLine = 256 << 20

func openShard(path string) (*shardReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	z, err := zstd.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := &shardReader{path: path, f: f, z: z, lines: bufio.NewScanner(z)}
	r.lines.Buffer(make([]byte, 0, 1<<16), maxShardLine)
	if !r.lines.Scan() {
		err := r.lines.Err()
		r.close()
		return nil, fmt.Errorf("%s: not a shard file (no header: %v)", path, err)
	}
	if err := json.Unmarshal(r.lines.Bytes(), &r.header); err != nil {
		r.close()
		return nil, fmt.Errorf("%s: not a shard file (its header does not read: %v)", path, err)
	}
	switch {
	case r.header.Format != shardFormat:
		r.close()
		return nil, fmt.Errorf("%s: format %q, want %s", path, r.header.Format, shardFormat)
	case r.header.Version < 1 || r.header.Version > shardVersion:
		r.close()
		return nil, fmt.Errorf("%s: shard format version %d; this build reads versions 1 to %d", path, r.header.Version, shardVersion)
	case r.header.Count < 2 || r.header.Index < 0 || r.header.Index >= r.header.Count:
		r.close()
		return nil, fmt.Errorf("%s: shard %d/%d is not a shard of a split run", path, r.header.Index, r.header.Count)
	}
	return r, nil
}

func (r *shardReader) close() {
	r.z.Close()
	r.f.Close()
}

// trailerPrefix starts the trailer's line (its first field), which no
// result's line starts with.
var trailerPrefix = []byte(`{"reprise_shard_trailer":true`)

// each calls fn with every result of the shard, then returns the
// trailer; a file that ends before its trailer (a shard that did not
// finish, a file cut short) is an error.
func (r *shardReader) each(fn func(*engine.Result)) (shardTrailer, error) {
	var t shardTrailer
	n := 0
	for r.lines.Scan() {
		line := r.lines.Bytes()
		if bytes.HasPrefix(line, trailerPrefix) {
			if err := json.Unmarshal(line, &t); err != nil {
				return t, fmt.Errorf("%s: trailer: %w", r.path, err)
			}
			if t.Requests != n {
				return t, fmt.Errorf("%s: %d results, its trailer says %d", r.path, n, t.Requests)
			}
			return t, nil
		}
		var res engine.Result
		if err := json.Unmarshal(line, &res); err != nil {
			return t, fmt.Errorf("%s: result %d: %w", r.path, n+1, err)
		}
		n++
		fn(&res)
	}
	if err := r.lines.Err(); err != nil {
		return t, fmt.Errorf("%s: after %d results: %w: the file is damaged or cut short", r.path, n, err)
	}
	return t, fmt.Errorf("%s: ends after %d results without its trailer: the shard did not finish, or the file was cut short", r.path, n)
}

// validateShard checks what a shard of a split run needs.
func (p *Plan) validateShard() error {
	s := p.Shard
	if s.Count == 0 && s.Index == 0 {
		if p.StartBarrier != "" {
			return &FieldError{Field: "StartBarrier", Value: p.StartBarrier, Err: errors.New("is for the shards of a split run: give the shard too")}
		}
		return nil
	}
	var errs []error
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		errs = append(errs, &FieldError{Field: "Shard", Value: s.String(), Err: errors.New("want i/N with 0 <= i < N")})
	}
	if !s.Sharded() {
		return errors.Join(errs...)
	}
	cfg := &p.Engine
	switch cfg.Profile {
	case engine.ProfileSynchronous:
		errs = append(errs, &FieldError{Field: "Shard", Value: s.String(), Err: errors.New("profile synchronous is one stream: it cannot be split (run it unsharded, or concurrent with a stream per shard)")})
	case engine.ProfileConcurrent:
		if cfg.Concurrency < s.Count {
			errs = append(errs, &FieldError{Field: "Shard", Value: s.String(), Err: fmt.Errorf("%d concurrent streams cannot be split %d ways", cfg.Concurrency, s.Count)})
		}
	case engine.ProfileThroughput:
		if cfg.MaxConcurrency > 0 && cfg.MaxConcurrency < s.Count {
			errs = append(errs, &FieldError{Field: "Shard", Value: s.String(), Err: fmt.Errorf("a throughput level of %d cannot be split %d ways", cfg.MaxConcurrency, s.Count)})
		}
	}
	// Each shard marks its warmup and cooldown from its own first and
	// last requests, not the plan's: not split yet.
	for _, w := range []struct {
		field string
		p     engine.Portion
	}{{"Warmup", cfg.Warmup}, {"Cooldown", cfg.Cooldown}} {
		if !w.p.IsZero() {
			errs = append(errs, &FieldError{Field: w.field, Value: w.p.String(), Err: errors.New("not with a split run: each shard would leave out its own first or last requests, not the plan's")})
		}
	}
	if !OpenLoop(cfg.Profile) && cfg.MaxRequests > 0 && cfg.MaxRequests < s.Count {
		errs = append(errs, &FieldError{Field: "MaxRequests", Value: fmt.Sprint(cfg.MaxRequests), Err: fmt.Errorf("a closed loop's requests are dealt to the shards: %d cannot be split %d ways", cfg.MaxRequests, s.Count)})
	}
	if p.ShardState == "" {
		errs = append(errs, &FieldError{Field: "ShardState", Err: errors.New("a shard writes its state for the merge: give its path")})
	}
	return errors.Join(errs...)
}

// forShard is cfg and t for this shard of a split plan: an open-loop
// schedule is walked whole and dealt by the engine; a closed loop's
// workload is dealt by the same Sharder and its streams (and request
// budget) split round robin.
func (p *Plan) forShard(cfg engine.Config, t workload.Transforms) (engine.Config, workload.Transforms) {
	s := p.Shard
	if !s.Sharded() {
		return cfg, t
	}
	if OpenLoop(cfg.Profile) {
		// The cap on requests in flight is the plan's: dealt like the
		// requests, so the shards together hold it.
		cfg.ShardIndex, cfg.ShardCount = s.Index, s.Count
		if cfg.MaxConcurrency > 0 {
			cfg.MaxConcurrency = max(s.share(cfg.MaxConcurrency), 1)
		}
		return cfg, t
	}
	t.ShardIndex, t.ShardCount = s.Index, s.Count
	switch cfg.Profile {
	case engine.ProfileConcurrent:
		cfg.Concurrency = s.share(cfg.Concurrency)
	case engine.ProfileThroughput:
		cfg.MaxConcurrency = s.share(cfg.MaxConcurrency)
	}
	if cfg.MaxRequests > 0 {
		cfg.MaxRequests = s.share(cfg.MaxRequests)
	}
	return cfg, t
}

// newShardWriter starts this shard's state file with its header.
func (r *Runner) newShardWriter(name string, cfg engine.Config, rescale float64, startAt time.Time, ns string, t workload.Transforms) (*shardWriter, error) {
	s := r.plan.Shard
	h := shardHeader{Format: shardFormat, Version: shardVersion, Shard: s.String(), Index: s.Index, Count: s.Count,
		Plan: r.plan.Fingerprint(), Name: name, Target: redact.URL(cfg.Target), Profile: cfg.Profile,
		Config: runConfig(r.plan.Engine, nil)}
	h.Config.Target, h.Config.Plan, h.Config.PromptNamespace = h.Target, h.Plan, ns
	t.ShardIndex, t.ShardCount = 0, 0 // the merged run is the plan's
	h.Config.Transforms = TransformsConfig(t)
	if r.plan.OmitIgnoreEOS {
		h.Config.IgnoreEOS = report.Ptr(false)
	}
	if !startAt.IsZero() {
		h.StartAt = startAt.UTC().Format(time.RFC3339Nano)
		h.Config.StartAt = h.StartAt
	}
	o := statsOptions(r.plan.Engine, rescale, nil)
	h.Stats = shardStats{RequestedRate: o.RequestedRate, LagThresholdMs: float64(o.LagThreshold) / float64(time.Millisecond), OpenLoop: o.OpenLoop}
	if spec := r.specFor(cfg.Profile); spec != nil {
		h.SLO, h.SLOFromInt = spec.String(), spec.FromIntended
	}
	return newShardWriter(r.plan.ShardState, h)
}

func sloString(s *slo.Spec) string {
	if s == nil {
		return ""
	}
	return s.String()
}

func detectorString(d *saturation.Config) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf("%+v", *d)
}
