// Package bench runs benchmarks: a typed Plan (workload, transforms, load
// profile, limits, target, gates, observers) runs and returns typed
// results (report.Benchmark). Every command of the replay program that
// benchmarks (run, a sweep, a capacity search, a live comparison) builds a
// Plan and calls in here; the command line only maps flags onto plans and
// prints what comes back.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/scrape"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/synth"
	"github.com/reprise-llm/reprise/internal/tokenizer"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Plan is what every benchmark of one invocation shares. The engine
// configuration holds the load (profile, rate, limits, client); a
// benchmark may change its profile, rate and target (a sweep's points, a
// comparison's targets).
type Plan struct {
	Engine engine.Config

	// Workload is the workload spec (workload.Open), read afresh by every
	// benchmark, with Transforms applied (their Rate is set per benchmark
	// from Rescale).
	Workload    string
	SkipInvalid bool // skip malformed workload lines (counted) instead of stopping
	Transforms  workload.Transforms
	// Rescale > 0 rescales a trace to this mean rate (profile trace).
	Rescale float64

	// Tokenizer names the tokenizer prompts are synthesised with
	// (tokenizer.Open); OmitIgnoreEOS leaves ignore_eos out of bodies.
	Tokenizer     string
	OmitIgnoreEOS bool

	// Detector is the over-saturation detector (nil: off); SLO the
	// objectives (nil: none), measured from the origin SLOFrom names.
	Detector *saturation.Config
	SLO      *slo.Spec
	SLOFrom  string

	// Scrape is how the target's metrics are scraped.
	Scrape scrape.Flags
	// SaveRequests keeps per-request records in the results.
	SaveRequests bool
	// NoBaseline leaves production's recorded timings out for a capture
	// workload.
	NoBaseline bool
	// Quiet: no progress display; PlainProgress: plain lines even on a
	// terminal (several benchmarks share it).
	Quiet, PlainProgress bool
	// StartAt, when set, is the instant the first benchmark sends its
	// first request at (shards started together).
	StartAt time.Time

	// PromptNamespace is the content namespace of the invocation's
	// prompts (synth.Options.Namespace): NamespaceAuto (the default) draws
	// a fresh one for the invocation, so a rerun with the same seed does
	// not find its own earlier prompts in the target's prefix cache;
	// NamespaceNone is the content the seed alone gives (the same on every
	// run); any other name is used as given (a rerun that must send the
	// bytes of an earlier one gives its recorded prompt_namespace). The
	// invocation's benchmarks each take their own under it (a sweep's
	// points, a capacity search's probes, a comparison's repetitions),
	// unless ReusePrompts: then they all send the same prompts. Targets
	// compared with each other always get the same prompts.
	PromptNamespace string
	ReusePrompts    bool

	// Shard, when it splits the plan, makes this process one shard of a
	// run split across several (shard.go): the same plan, its part of the
	// requests, and ShardState (a path) for the state Merge reads.
	Shard      Shard
	ShardState string
	// StartBarrier, when set, is a directory shared by the shards (a
	// volume every pod mounts): each writes that it is ready and waits for
	// the others; all start at the latest ready time plus BarrierLead
	// (barrier.go).
	StartBarrier string
	BarrierLead  time.Duration
	// RunID names one run of a split plan, the same in every shard (on
	// Kubernetes the Job's uid): ready files at the barrier of another run
	// are refused, and a split run's prompts are fresh for each run.
	RunID string

	// SettleTimeout bounds the wait for an idle target before a benchmark
	// that follows one which gave up on requests (settle.go); 0:
	// DefaultSettleTimeout.
	SettleTimeout time.Duration
	// ThroughputConcurrency is the requests a sweep's or a capacity
	// search's throughput benchmark keeps in flight (0: the engine's
	// MaxConcurrency). See DefaultThroughputConcurrency.
	ThroughputConcurrency int
}

// DefaultThroughputConcurrency is what the command line gives a sweep's or
// a capacity search's throughput benchmark when --max-concurrency is not
// set: vLLM's default cap on the sequences it batches (max_num_seqs, 256
// on most GPUs), so the point saturates the engine's batch without piling
// up hundreds of requests the benchmark will then cancel (issue 18:
// llama.cpp kept 976 cancelled requests queued after a throughput point
// at 1,024).
const DefaultThroughputConcurrency = 256

// Prompt namespaces with a meaning of their own (Plan.PromptNamespace).
const (
	NamespaceAuto = "auto"
	NamespaceNone = "none"
)

// SLO origins (Plan.SLOFrom).
const (
	SLOFromAuto     = "auto" // intended for open loops, sent for closed loops
	SLOFromSent     = slo.FromSent
	SLOFromIntended = slo.FromIntended
)

// Runner runs the benchmarks of one Plan. It holds what they share: the
// body builder (so every target receives identical bodies), the warnings
// printer (a warning repeated by every benchmark of a sweep is printed
// once) and the start instant.
type Runner struct {
	plan   Plan
	bodies engine.BodyBuilder
	warn   *Warnings
	stderr io.Writer

	mu      sync.Mutex
	started bool // StartAt was reached; later benchmarks do not wait
	// namespace is the invocation's prompt namespace ("" for the seed's
	// own content); benchmarks counts the benchmarks given one so far.
	namespace  string
	benchmarks int
	// gaveUp says, per target, that its last benchmark left requests
	// behind (leftBehind): its next one waits for it to be idle first.
	gaveUp map[string]bool
}

// resolveNamespace is the invocation's namespace for the plan's setting:
// auto draws 64 random bits, so two invocations never share prompts.
func resolveNamespace(ns string) string {
	switch ns {
	case "", NamespaceAuto:
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		return hex.EncodeToString(b[:])
	case NamespaceNone:
		return ""
	}
	return ns
}

// nextNamespace is the prompt namespace of the invocation's next
// benchmark: the invocation's own for the first (and for every one with
// ReusePrompts), then a name under it per benchmark.
func (r *Runner) nextNamespace() string {
	r.mu.Lock()
	k := r.benchmarks
	r.benchmarks++
	r.mu.Unlock()
	return r.namespaceOf(k)
}

// namespaceOf is the namespace of the invocation's k-th benchmark (or
// repetition, from 0).
func (r *Runner) namespaceOf(k int) string {
	if k == 0 || r.plan.ReusePrompts {
		return r.namespace
	}
	return r.namespace + "/" + strconv.Itoa(k)
}

// NewRunner checks plan and opens its tokenizer (against the plan's target
// for a server tokenizer) and prompt synthesiser. Progress and warnings go
// to stderr.
func NewRunner(plan Plan, stderr io.Writer) (*Runner, error) {
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{plan: plan, warn: NewWarnings(stderr), stderr: stderr, namespace: resolveNamespace(plan.PromptNamespace), gaveUp: map[string]bool{}}
	if plan.Shard.Sharded() && (plan.PromptNamespace == "" || plan.PromptNamespace == NamespaceAuto) {
		// Every shard synthesises the same text for the same request, as
		// one process would: a namespace of the run, not of the process.
		h := sha256.Sum256([]byte(plan.Fingerprint() + "\x00" + plan.RunID + "\x00" + plan.StartAt.UTC().Format(time.RFC3339Nano) + "\x00" + plan.StartBarrier))
		r.namespace = "split-" + hex.EncodeToString(h[:8])
	}
	cfg := plan.Engine
	tok, err := tokenizer.Open(plan.Tokenizer, tokenizer.Options{Target: cfg.Target, Model: cfg.Model, Header: cfg.Headers})
	if err != nil {
		return nil, &FieldError{Field: "Tokenizer", Value: plan.Tokenizer, Err: err}
	}
	bodies, err := synth.New(synth.Options{Tokenizer: tok, Seed: cfg.Seed, OmitIgnoreEOS: plan.OmitIgnoreEOS})
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", plan.Tokenizer, err)
	}
	r.bodies = bodies
	return r, nil
}

// Plan returns the runner's plan.
func (r *Runner) Plan() Plan { return r.plan }

// Warnings is the runner's printer of warnings.
func (r *Runner) Warnings() *Warnings { return r.warn }

// Validate checks what the plan adds to the engine's configuration.
func (p *Plan) Validate() error {
	var errs []error
	if p.Workload == "" {
		errs = append(errs, &FieldError{Field: "Workload", Err: errors.New("is required")})
	}
	switch p.SLOFrom {
	case "", SLOFromAuto, SLOFromSent, SLOFromIntended:
	default:
		errs = append(errs, &FieldError{Field: "SLOFrom", Value: p.SLOFrom, Err: errors.New("want auto, sent or intended")})
	}
	if err := p.Scrape.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := untimedTrace(p.Engine.Profile, p.Workload); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, p.validateShard())
	return errors.Join(errs...)
}

// FieldError is a problem with one setting of a Plan, named by its field;
// the command line maps the field to its flag (engine.ConfigError does the
// same for the engine's configuration).
type FieldError struct {
	Field string // e.g. "Tokenizer"
	Value string // the value refused, when it helps
	Err   error
}

func (e *FieldError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// FieldParts names the field, the value and the problem, for a command
// line to put its flag in the field's place.
func (e *FieldError) FieldParts() (field, value, msg string) { return e.Field, e.Value, e.Err.Error() }

// resolveStart is the instant this benchmark starts at: the plan's
// StartAt, or the instant the shards agree on at the start barrier; zero
// without either, or once a benchmark of the runner has started (a
// sweep's later benchmarks start when the earlier ones end).
// Benchmarks that start together (compare in parallel mode) all get it.
func (r *Runner) resolveStart(ctx context.Context, now func() time.Time) (time.Time, error) {
	start := r.plan.StartAt
	r.mu.Lock()
	skip := (start.IsZero() && r.plan.StartBarrier == "") || r.started
	r.mu.Unlock()
	if skip {
		return time.Time{}, nil
	}
	if start.IsZero() {
		return r.barrierStart(ctx, now)
	}
	return start, nil
}

// waitUntilStart waits until start (zero: not at all), which the caller
// resolved and set everything up for first, so that nothing but the wake
// up lies between the instant and the first send. An instant that passed
// more than startSlack ago is an error: the shards would not start
// together.
func (r *Runner) waitUntilStart(ctx context.Context, start time.Time, now func() time.Time) error {
	if start.IsZero() {
		return nil
	}
	wait := start.Sub(now())
	if wait < -startSlack {
		return &FieldError{Field: "StartAt", Value: start.UTC().Format(time.RFC3339Nano),
			Err: fmt.Errorf("is %v in the past (the workload and tokenizer were ready at %s): give a later time",
				(-wait).Round(time.Millisecond), now().UTC().Format(time.RFC3339Nano))}
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	return nil
}

// startSlack is how far in the past StartAt may be when it is reached
// (the time opening the workload took, clock steps): beyond it the shards
// would not start together, which is an error.
const startSlack = time.Second

// untimedTrace is the error of profile trace (the default) with a workload
// that has no arrival times: synthetic: and prompt files yield every
// request at offset 0, so trace would send them all at once, with
// scheduled_rate 0 and not a word (issue 17). nil for any other profile or
// workload, and for a workload that does not open (its own error is
// reported when the benchmark opens it).
func untimedTrace(profile, spec string) error {
	if profile != engine.ProfileTrace || !untimedWorkload(spec) {
		return nil
	}
	return &FieldError{Field: "Profile", Value: engine.ProfileTrace, Err: fmt.Errorf("replays the workload's recorded arrival times, and %s has none: every request would be sent at once. "+
		"Give it a rate (profile poisson with a rate, or constant, gamma) or a closed loop (concurrent with a concurrency, synchronous, throughput)", spec)}
}

// untimedWorkload reports whether spec opens as a workload without arrival
// times: a synthetic: spec or a file of prompts, however it was named.
// Captures are never opened here: they are timed, and may be large.
func untimedWorkload(spec string) bool {
	if _, ok := workload.CapturePath(spec); ok {
		return false
	}
	src, err := workload.Open(spec, workload.OpenOptions{})
	if err != nil {
		return false
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	switch src.(type) {
	case *workload.Synthetic, *workload.Prompts:
		return true
	}
	return false
}
