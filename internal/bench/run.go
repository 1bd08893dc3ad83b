package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/progress"
	"github.com/reprise-llm/reprise/internal/redact"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/scrape"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/synth"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Outcome is one benchmark's results and the engine's run behind them.
type Outcome struct {
	Benchmark report.Benchmark
	Run       *engine.Run
	// Recorded holds, for a capture workload, each replayed request's
	// capture record (timings only) by request index: production's side
	// of the request (Captured joins on the index). Nil for other
	// workloads or with Plan.NoBaseline.
	Recorded map[int]*capture.Record
}

// Run runs one benchmark of cfg (the plan's engine configuration with this
// benchmark's profile, rate and target), named name, with the detector det
// (nil: none): the workload opened afresh with its transforms (rescale > 0:
// the mean rate a trace is rescaled to), the progress display and metrics
// scraper, the SLO verdict. A target that does not accept connections
// fails it at once. A workload that fails to read mid-run (a bad line late
// in a trace) stops scheduling and drains: the requests sent are still a
// result, returned together with the error (Partial).
func (r *Runner) Run(ctx context.Context, cfg engine.Config, name string, rescale float64, det *saturation.Config) (Outcome, error) {
	return r.run(ctx, cfg, name, rescale, det, r.nextNamespace())
}

// run is Run with the benchmark's prompt namespace ns.
func (r *Runner) run(ctx context.Context, cfg engine.Config, name string, rescale float64, det *saturation.Config, ns string) (Outcome, error) {
	warnSpin(r.warn, cfg)
	cfg, shardT := r.plan.forShard(cfg, r.plan.Transforms)
	bodies := r.bodies
	if b, ok := bodies.(*synth.Builder); ok {
		bodies = b.WithNamespace(ns)
	}
	t := shardT
	t.Rate = rescale
	opts := workload.OpenOptions{SkipInvalid: r.plan.SkipInvalid, Warn: r.warn.Print}
	src, err := workload.OpenTransformed(r.plan.Workload, opts, t)
	if err != nil {
		return Outcome{}, err
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	var recorded map[int]*capture.Record
	if _, ok := workload.CapturePath(r.plan.Workload); ok && !r.plan.NoBaseline {
		recorded = map[int]*capture.Record{}
		src = keepRecords(src, recorded)
	}
	pred := &prefixPrediction{seen: map[uint64]struct{}{}}
	src = workload.Map(src, pred.add)
	if b, ok := bodies.(*synth.Builder); ok {
		// Verbatim prompts get a requested token count too (see synth.Measured).
		src = synth.Measured(src, b)
	}
	if err := checkReachable(ctx, cfg.Target); err != nil { // after the workload, so a bad one is named first
		return Outcome{}, err
	}
	client := httpClient(cfg)
	vp := measureVantage(ctx, cfg.Target, cfg.Headers, client)
	r.mu.Lock()
	wait := r.gaveUp[cfg.Target]
	r.mu.Unlock()
	st := r.settle(ctx, cfg, wait, client)
	if line := st.line(name); line != "" {
		fmt.Fprintln(r.stderr, line)
	}
	var clockOffset *float64
	if r.plan.Shard.Sharded() && (!r.plan.StartAt.IsZero() || r.plan.StartBarrier != "") {
		off, ok, err := clockCheck(ctx, cfg.Target, cfg.Headers, client)
		if err != nil {
			return Outcome{}, err
		}
		if ok {
			clockOffset = &off
		}
	}
	startAt, err := r.resolveStart(ctx, time.Now) // after the workload and tokenizer are ready
	if err != nil {
		return Outcome{}, err
	}
	if !startAt.IsZero() {
		cfg.Origin = startAt // shards started together share an origin
	}
	var sw *shardWriter
	if r.plan.Shard.Sharded() {
		if sw, err = r.newShardWriter(name, cfg, rescale, startAt, ns, t); err != nil {
			return Outcome{}, err
		}
		defer sw.abandon() // an error path: closes the file; a no-op after finish
		onResult := cfg.OnResult
		cfg.OnResult = func(res engine.Result) {
			sw.record(&res)
			if onResult != nil {
				onResult(res)
			}
		}
	}
	spec := r.specFor(cfg.Profile)
	var perRequest *stats.SLO // goodput, computed with the metrics
	if spec != nil {
		perRequest = spec.PerRequest()
	}
	online := recordOnline(&cfg, rescale, perRequest) // wraps OnResult after the shard writer, which so sees each result's chunk offsets whole
	finish := r.observe(ctx, name, &cfg)
	// Everything is set up (the scraper's first scrape included): only the
	// wake-up lies between the agreed instant and the first send.
	if err := r.waitUntilStart(ctx, startAt, time.Now); err != nil {
		finish(nil)
		return Outcome{}, err
	}
	run, sat, err := executeGated(ctx, det, cfg, src, bodies)
	serverMetrics := finish(run)
	r.mu.Lock()
	r.gaveUp[cfg.Target] = leftBehind(run)
	r.mu.Unlock()
	if err != nil && !Partial(run, err) {
		return Outcome{Run: run}, err
	}
	workloadErr := err
	skipped := r.warn.Finish(src)
	b := targetBenchmark(name, run, cfg, rescale, r.plan.SaveRequests, online, perRequest)
	b.Config.Transforms = TransformsConfig(t)
	b.Config.PromptNamespace = ns
	vp.record(&b.Config)
	if s := r.plan.Shard; s.Sharded() {
		b.Config.Shard, b.Config.Plan, b.Config.ClockOffsetS = s.String(), r.plan.Fingerprint(), clockOffset
		if err := sw.finish(run, b.Metrics.ClientLag); err != nil {
			return Outcome{Run: run}, err
		}
	}
	b.Config.BacklogAtStart = st.backlog
	if st.how != "" {
		b.Config.SettledS = report.Ptr(st.waited.Seconds())
	}
	b.Config.SkippedInvalid = skipped
	if !startAt.IsZero() {
		b.Config.StartAt = startAt.UTC().Format(time.RFC3339Nano)
	}
	if r.plan.OmitIgnoreEOS {
		b.Config.IgnoreEOS = report.Ptr(false)
	}
	attachGate(&b, run, sat, spec)
	b.ServerMetrics = serverMetrics
	if workloadErr != nil {
		b.Config.WorkloadError = workloadErr.Error()
	}
	if share, ok := pred.share(); ok {
		b.Config.WorkloadPrefixShare = report.Ptr(share)
		cacheWarning(r.stderr, &b, share)
	}
	degradedWarning(r.stderr, &b)
	graphWarning(r.stderr, &b)
	return Outcome{Benchmark: b, Run: run, Recorded: recorded}, workloadErr
}

// keepRecords passes src's requests on, keeping each capture record's
// timings in into by request index. The engine never sees capture
// records: production's side of a request is joined to the replayed one
// after the run, on the index.
func keepRecords(src workload.Source, into map[int]*capture.Record) workload.Source {
	return workload.Map(src, func(r *workload.Request) {
		if r.Recorded != nil {
			into[r.Index] = timingsOnly(r.Recorded)
		}
	})
}

// timingsOnly is a copy of rec with what production's side of a
// comparison reads (times, status, token counts, chunk gaps) and none of
// its prompt text or hash ids, so a long replay does not hold every
// prompt until the end.
func timingsOnly(rec *capture.Record) *capture.Record {
	if rec == nil {
		return nil
	}
	c := *rec
	c.Prompt, c.Messages, c.HashIDs = "", nil, nil
	return &c
}

// Partial reports whether err, returned by the engine with run, is a
// workload read error after some requests were sent: Run then returns the
// results of those together with the error.
func Partial(run *engine.Run, err error) bool {
	return err != nil && run != nil && run.StopReason == engine.StopWorkloadError && len(run.Results) > 0
}

// FailureSummary turns a run in which nothing succeeded into an error, so a
// broken target never looks like an empty, successful benchmark.
func FailureSummary(run *engine.Run) error {
	ok, first, eosRejected, notFound := 0, "", false, 0
	for i := range run.Results {
		r := &run.Results[i]
		if r.OK() {
			ok++
			continue
		}
		if r.Status == http.StatusNotFound {
			notFound++
		}
		if first == "" {
			first = r.Err
			if first == "" {
				first = fmt.Sprintf("http %d", r.Status)
			}
		}
		// A strict OpenAI-compatible API rejects the unknown field that
		// ignore_eos (on by default) sends.
		eosRejected = eosRejected || (r.Status == http.StatusBadRequest && strings.Contains(r.Err, "ignore_eos"))
	}
	switch {
	case len(run.Results) == 0:
		return errors.New("the workload produced no requests")
	case ok == 0 && eosRejected:
		return fmt.Errorf("no request succeeded (%d failed; first error: %s); the target rejects ignore_eos: rerun with --ignore-eos off", len(run.Results), first)
	case ok == 0 && notFound == len(run.Results):
		return fmt.Errorf("no request succeeded (%d failed, every one 404 Not Found; first error: %s): the target has no such path; check the path of --target (Reprise appends /v1/chat/completions or /v1/completions to it)",
			len(run.Results), first)
	case ok == 0:
		return fmt.Errorf("no request succeeded (%d failed; first error: %s)", len(run.Results), first)
	}
	return nil
}

// checkReachable dials the target once so that a wrong target fails in a
// second with one line rather than as thousands of failed requests.
func checkReachable(ctx context.Context, target string) error {
	u, _ := url.Parse(target)
	host := cli.DialAddress(u)
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("target %s unreachable: %w", redact.URL(target), err)
	}
	return conn.Close()
}

// CheckReachable is checkReachable for a command that checks every target
// before it starts any (compare).
func CheckReachable(ctx context.Context, target string) error { return checkReachable(ctx, target) }

// recordOnline makes a benchmark without warmup or cooldown record its
// metrics as requests end, and keep no chunk offsets in its results, so
// that its memory follows the requests in flight rather than the
// workload's length; nil (metrics from the results at the end) when the
// run has a warmup or cooldown, which the engine marks only once it is over.
func recordOnline(cfg *engine.Config, rescale float64, perRequest *stats.SLO) *stats.Online {
	if !cfg.Warmup.IsZero() || !cfg.Cooldown.IsZero() {
		return nil
	}
	online := stats.NewOnline(statsOptions(*cfg, rescale, perRequest))
	onResult := cfg.OnResult
	cfg.OnResult = func(r engine.Result) {
		if onResult != nil {
			onResult(r)
		}
		online.Record(&r)
	}
	cfg.DiscardChunks = true
	return online
}

// targetBenchmark builds the results of run; rescale > 0 is the mean rate
// a trace was rescaled to, its requested rate. online, when not nil,
// recorded the run's results as they ended (with perRequest, as here).
// perRequest, when set, is the per-request SLO, for goodput.
func targetBenchmark(name string, run *engine.Run, cfg engine.Config, rescale float64, saveRequests bool, online *stats.Online, perRequest *stats.SLO) report.Benchmark {
	var m stats.Metrics
	if online != nil {
		m = online.Metrics()
		m.DroppedRequests = int64(max(run.Dropped, 0))
	} else {
		opts := statsOptions(cfg, rescale, perRequest)
		opts.Dropped = int64(run.Dropped)
		m = stats.Summarize(run.Results, opts)
	}
	b := report.Benchmark{
		Name: name, Target: redact.URL(cfg.Target), Profile: cfg.Profile, Start: run.Start,
		DurationS: run.Duration.Seconds(),
		Config:    runConfig(cfg, run),
		Metrics:   m,
	}
	if saveRequests {
		b.Requests = report.RequestRecords(run.Results)
	}
	return b
}

// runConfig is the settings of a benchmark of cfg, and how run (nil: not
// run) ended.
func runConfig(cfg engine.Config, run *engine.Run) report.RunConfig {
	c := report.RunConfig{
		Profile: cfg.Profile, Target: redact.URL(cfg.Target), Seed: report.Ptr(cfg.Seed), Rate: cfg.Rate,
		MaxConcurrency: report.Ptr(cfg.MaxConcurrency), MaxSeconds: cfg.MaxSeconds, MaxRequests: cfg.MaxRequests,
		Model: cfg.Model, Warmup: cfg.Warmup.String(), Cooldown: cfg.Cooldown.String(),
		MaxErrors: cfg.MaxErrors, HTTP2: cfg.HTTP2, SpinS: cfg.Spin.Seconds(), DrainS: report.Ptr(cfg.Drain.Seconds()),
	}
	switch cfg.Profile {
	case engine.ProfileTrace:
		c.TimeScale = cfg.TimeScale
	case engine.ProfileConcurrent:
		c.Concurrency = cfg.Concurrency
	case engine.ProfileGamma:
		c.Burstiness = cfg.Burstiness
	}
	if cfg.MaxErrorRate > 0 {
		c.MaxErrorRate, c.ErrorWindow = cfg.MaxErrorRate, cfg.ErrorWindow
	}
	if run != nil {
		c.StopReason = run.StopReason
		c.StoppedAtS = report.Ptr(run.StoppedAt.Seconds())
		c.InFlightAtStop = report.Ptr(run.InFlightAtStop)
		c.CancelledByDrain = report.Ptr(run.Cancelled)
		c.GraphUnresolvedAfter = run.UnresolvedAfter
	}
	return c
}

// TransformsConfig is the transforms in use, for a benchmark's config (or
// an inspect page), or nil.
func TransformsConfig(t workload.Transforms) *report.TransformsConfig {
	c := report.TransformsConfig{
		FilterModel: t.Models, FilterPath: t.Paths, FilterStatus: t.Statuses,
		MaxPromptTokens: t.MaxPromptTokens, MaxOutputTokens: t.MaxOutputTokens, ModelMap: t.ModelMap,
		TraceRate: t.Rate, ClampWaitS: t.SessionTiming.MaxWait.Seconds(), PackIdleS: t.SessionTiming.MaxIdle.Seconds(),
	}
	if t.WindowStart > 0 || t.WindowEnd > 0 {
		c.WindowStartS = t.WindowStart.Seconds()
		c.WindowEndS = t.WindowEnd.Seconds()
	}
	if t.Fraction > 0 && t.Fraction < 1 {
		c.Sample = t.Fraction
	}
	if t.Loop > 1 {
		c.Loop = t.Loop
	}
	if t.ShardCount > 1 {
		c.Shard = fmt.Sprintf("%d/%d", t.ShardIndex, t.ShardCount)
	}
	if c.IsZero() {
		return nil
	}
	return &c
}

// observe attaches to one benchmark's cfg the progress display (live on a
// terminal, plain lines otherwise; none when quiet) and the target's
// metrics scraper. Call finish when the run ends (run may be nil): it
// closes the display and returns what the scraper saw, nil when nothing
// was scraped.
func (r *Runner) observe(ctx context.Context, name string, cfg *engine.Config) (finish func(*engine.Run) *scrape.Report) {
	scraper := r.plan.Scrape.Begin(ctx, cfg, r.stderr) // nil when off or the target has no metrics; before the display, which owns the terminal
	var display *progress.Display
	switch {
	case r.plan.Quiet:
	case r.plan.PlainProgress: // several benchmarks at once (compare in parallel) share the terminal
		display = progress.NewPlain(r.stderr, name)
	default:
		display = progress.New(r.stderr, name, cfg.MaxRequests)
	}
	if display != nil {
		display.Attach(cfg)
	}
	return func(run *engine.Run) *scrape.Report {
		display.Close()
		return scraper.Finish(run)
	}
}

// requestedRate is the rate the profile asked for, when it names one: the
// rate of constant, poisson and gamma, or the mean rate rescale > 0 a trace
// was rescaled to.
func requestedRate(cfg engine.Config, rescale float64) float64 {
	switch cfg.Profile {
	case engine.ProfileConstant, engine.ProfilePoisson, engine.ProfileGamma:
		return cfg.Rate
	case engine.ProfileTrace:
		return max(rescale, 0)
	}
	return 0
}

// OpenLoop reports whether profile sends at scheduled times: trace,
// constant, poisson and gamma. Closed loops have no schedule to keep.
func OpenLoop(profile string) bool {
	switch profile {
	case engine.ProfileTrace, engine.ProfileConstant, engine.ProfilePoisson, engine.ProfileGamma:
		return true
	}
	return false
}

// statsOptions are the metrics options of a benchmark of cfg; rescale > 0
// is the mean rate a trace was rescaled to, perRequest the per-request SLO
// (nil: none).
func statsOptions(cfg engine.Config, rescale float64, perRequest *stats.SLO) stats.Options {
	return stats.Options{RequestedRate: requestedRate(cfg, rescale), LagThreshold: cfg.LagThreshold, SLO: perRequest, OpenLoop: OpenLoop(cfg.Profile)}
}
