package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/progress"
	"github.com/reprise-llm/reprise/internal/redact"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/scrape"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/synth"
	"github.com/reprise-llm/reprise/internal/tokenizer"
	"github.com/reprise-llm/reprise/internal/workload"
)

const runSynopsis = "replay run --target URL --workload SPEC [--profile P] [--rate R] [--max-seconds S] [--max-requests N] [--output-dir DIR]"

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type benchOptions struct {
	target, workload, profile, model, outputDir, name, encoding, apiKey string
	rate, timeScale, maxSeconds                                         float64
	concurrency, maxConcurrency, maxRequests                            int
	seed                                                                int64
	timeout, drain                                                      time.Duration
	headers, labels                                                     listFlag
	saveRequests, quiet, skipInvalid, noBaseline                        bool
	eng                                                                 engineFlags   // --burstiness, --warmup, --max-errors, --http2, … (engineflags.go)
	gate                                                                gateOptions   // --detect-saturation, --slo, --sweep-points (gate.go)
	wl                                                                  workloadFlags // --window, --filter-*, --sample, --loop, caps, --model-map, --shard (workloadflags.go)
	req                                                                 requestFlags  // --ignore-eos, --start-at (workloadflags.go)
	scrape                                                              scrape.Flags  // --scrape-metrics, --scrape-interval, --scrape-series (internal/scrape)

	plainProgress bool // progress as plain lines even on a terminal
	warnOnce      sync.Once
	warn          *warnings // see warnings
}

func benchFlags(o *benchOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("replay run", flag.ContinueOnError)
	fs.StringVar(&o.target, "target", "", "base URL of the deployment to benchmark, e.g. http://candidate:8000, without /v1: replay adds /v1/... itself (required)")
	fs.StringVar(&o.workload, "workload", "", "capture directory, mooncake:PATH, azure:PATH, burstgpt:PATH, prompts:PATH (.jsonl, .csv or .txt) or synthetic:k=v,... (required)")
	fs.StringVar(&o.profile, "profile", "trace", "load model: trace, constant, poisson, gamma, synchronous, concurrent, throughput or sweep")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second for constant and poisson; with trace, rescale the trace to this mean rate keeping the shape of its bursts")
	registerTimeScale(fs, &o.timeScale) // workloadflags.go
	fs.IntVar(&o.concurrency, "concurrency", 1, "concurrent: number of closed-loop streams")
	fs.IntVar(&o.maxConcurrency, "max-concurrency", 1024, "cap on requests in flight (throughput: the level it keeps)")
	fs.Float64Var(&o.maxSeconds, "max-seconds", 0, "stop scheduling after this many seconds (0: no limit)")
	fs.IntVar(&o.maxRequests, "max-requests", 0, "stop scheduling after this many requests (0: no limit)")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "after scheduling stops, how long in-flight requests may take before they are cancelled")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "per-request timeout")
	fs.StringVar(&o.model, "model", "", "model name to send, overriding the workload's")
	fs.StringVar(&o.outputDir, "output-dir", "results", "directory for benchmarks.json, benchmarks.csv and report.html")
	fs.StringVar(&o.name, "name", "candidate", "name of this benchmark in the results")
	fs.StringVar(&o.encoding, "tokenizer", "cl100k_base", "tokenizer prompts are synthesised to exact lengths with: a tiktoken encoding (cl100k_base, o200k_base, p50k_base, r50k_base), hf:PATH to a Hugging Face tokenizer.json, or server (the target's /tokenize, vLLM)")
	fs.StringVar(&o.apiKey, "api-key", "", "bearer token for the target (also OPENAI_API_KEY); never written to results or logs")
	fs.Var(&o.headers, "header", "extra request header 'Name: value' (repeatable)")
	fs.Var(&o.labels, "label", "key=value carried into every output (repeatable)")
	fs.Int64Var(&o.seed, "seed", 42, "seed for every random choice (schedules, prompts)")
	fs.BoolVar(&o.saveRequests, "save-requests", false, "include per-request records in benchmarks.json")
	fs.BoolVar(&o.skipInvalid, "skip-invalid", false, "skip malformed workload lines (counted) instead of stopping")
	fs.BoolVar(&o.noBaseline, "no-baseline", false, "for a capture workload, do not report production's recorded timings next to the target")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	registerEngineFlags(fs, &o.eng)
	registerGateFlags(fs, &o.gate)
	registerWorkloadFlags(fs, &o.wl)
	registerRequestFlags(fs, &o.req)
	o.scrape.Register(fs)
	return fs
}

func (o *benchOptions) validate() error {
	var errs []error
	if o.target == "" {
		errs = append(errs, errors.New("--target is required"))
	} else if u, err := url.Parse(o.target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--target %q: want an http:// or https:// URL", o.target))
	} else if err := cli.CheckBaseURL("--target", "", o.target); err != nil {
		errs = append(errs, err)
	}
	if o.workload == "" {
		errs = append(errs, errors.New("--workload is required"))
	}
	return errors.Join(append(errs, o.listErrors()...)...)
}

// listErrors checks the repeatable --header and --label values.
func (o *benchOptions) listErrors() []error {
	var errs []error
	for _, h := range o.headers {
		if name, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(name) == "" {
			errs = append(errs, fmt.Errorf("--header %q: want 'Name: value'", h))
		}
	}
	for _, l := range o.labels {
		if k, _, ok := strings.Cut(l, "="); !ok || k == "" {
			errs = append(errs, fmt.Errorf("--label %q: want key=value", l))
		}
	}
	return errs
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o benchOptions
	fs := benchFlags(&o)
	if err := parse(fs, args, stdout, runSynopsis, nil); err != nil { // nil: the environment, os.LookupEnv semantics
		return err
	}
	if fs.NArg() > 0 {
		return cli.UsageError("replay run: unexpected argument %q", fs.Arg(0))
	}
	if err := o.validate(); err != nil {
		return cli.AsUsage(err)
	}
	if err := o.gate.parse(); err != nil {
		return err
	}
	if err := o.scrape.Validate(); err != nil {
		return cli.AsUsage(err)
	}
	if o.profile == profileSweep {
		return runSweep(ctx, &o, args, stdout, stderr)
	}
	// With --profile trace, --rate rescales the trace (workloadflags.go).
	engineRate, rescale, err := traceRate(o.profile, o.rate, o.timeScale)
	if err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	cfg, err := o.baseConfig(o.profile)
	if err != nil {
		return cli.AsUsage(err)
	}
	cfg.Target, cfg.Rate = strings.TrimRight(o.target, "/"), engineRate
	if err := cfg.Validate(); err != nil {
		return cli.AsUsage(err)
	}
	bodies, err := o.bodyBuilder(cfg)
	if err != nil {
		return err
	}
	bench, run, err := o.benchmark(ctx, cfg, o.name, rescale, bodies, o.gate.detector, stderr)
	if err != nil && !partialRun(run, err) {
		return err
	}
	workloadErr := err // the results so far are written, then it is the exit error

	file := &report.File{Tool: "reprise", Created: time.Now().UTC(), Command: append([]string{"replay", "run"}, args...), Labels: labels(o.labels)}
	if path, ok := workload.CapturePath(o.workload); ok && !o.noBaseline {
		results, start := capturedResults(run)
		file.Benchmarks = append(file.Benchmarks, capturedBenchmark(path, results, start))
	}
	file.Benchmarks = append(file.Benchmarks, bench)
	if err := report.WriteAll(o.outputDir, file); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if err := report.WriteTable(stdout, file); err != nil {
		return err
	}
	tokenShortfall(stdout, bench.Name, &bench.Metrics)
	fmt.Fprintf(stdout, "\nresults in %s (benchmarks.json, benchmarks.csv, report.html)\n", o.outputDir)
	gateSummary(stdout, &bench)
	if bench.ServerMetrics != nil {
		fmt.Fprintf(stdout, "%s: %s\n", bench.Name, bench.ServerMetrics.Line())
	}
	if workloadErr != nil {
		fmt.Fprintf(stdout, "%s: stopped early at a workload error; the results cover the %d requests sent before it\n", bench.Name, len(run.Results))
		return workloadErr
	}
	if err := failureSummary(run); err != nil {
		return err
	}
	return sloError(&bench)
}

// baseConfig is the engine configuration the benchmarks of one invocation
// share, for profile: everything but the target and the rate.
func (o *benchOptions) baseConfig(profile string) (engine.Config, error) {
	cfg := engine.Config{
		Model: o.model, Profile: profile, TimeScale: o.timeScale, Concurrency: o.concurrency,
		MaxConcurrency: o.maxConcurrency, MaxSeconds: o.maxSeconds, MaxRequests: o.maxRequests,
		Drain: o.drain, Timeout: o.timeout, Headers: http.Header{}, Seed: o.seed,
	}
	for _, h := range o.headers {
		name, value, _ := strings.Cut(h, ":")
		cfg.Headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if o.apiKey == "" {
		o.apiKey = os.Getenv("OPENAI_API_KEY")
	}
	if o.apiKey != "" {
		cfg.Headers.Set("Authorization", "Bearer "+o.apiKey)
	}
	return cfg, errors.Join(o.eng.apply(&cfg), untimedTrace(profile, o.workload)) // a flag's error: callers report it as a usage error
}

// bodyBuilder opens --tokenizer (against cfg's target for server) and the
// prompt synthesiser every benchmark of the invocation shares, so each
// target receives identical bodies.
func (o *benchOptions) bodyBuilder(cfg engine.Config) (engine.BodyBuilder, error) {
	if err := o.req.parse(); err != nil {
		return nil, cli.AsUsage(err)
	}
	tok, err := tokenizer.Open(o.encoding, tokenizer.Options{Target: cfg.Target, Model: cfg.Model, Header: cfg.Headers})
	if err != nil {
		return nil, fmt.Errorf("%w: --tokenizer %s: %v", cli.ErrUsage, o.encoding, err)
	}
	bodies, err := synth.New(synth.Options{Tokenizer: tok, Seed: o.seed, OmitIgnoreEOS: o.req.omitIgnoreEOS()})
	if err != nil {
		return nil, fmt.Errorf("--tokenizer %s: %w", o.encoding, err)
	}
	return bodies, nil
}

// benchmark runs one benchmark of cfg, named name, and builds its results:
// the workload opened afresh with its transforms (rescale > 0: the mean
// rate a trace is rescaled to), the progress display and metrics scraper,
// the saturation detector det (nil: none), the SLO verdict. A target that
// does not accept connections fails it at once. Every command
// that runs benchmarks (run, sweep, capacity, compare) goes through it.
func (o *benchOptions) benchmark(ctx context.Context, cfg engine.Config, name string, rescale float64, bodies engine.BodyBuilder, det *saturation.Config, stderr io.Writer) (report.Benchmark, *engine.Run, error) {
	warn := o.warnings(stderr)
	warnSpin(warn, cfg) // engineflags.go
	src, transforms, err := o.openSource(rescale, warn)
	if err != nil {
		return report.Benchmark{}, nil, err
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	if b, ok := bodies.(*synth.Builder); ok {
		// Verbatim prompts get a requested token count too (see synth.Measured).
		src = synth.Measured(src, b)
	}
	if err := checkReachable(ctx, cfg.Target); err != nil { // after the workload, so a bad one is named first
		return report.Benchmark{}, nil, err
	}
	startAt, err := o.req.waitStart(ctx, time.Now) // --start-at: after the workload and tokenizer are ready
	if err != nil {
		return report.Benchmark{}, nil, err
	}
	spec := o.gate.specFor(cfg.Profile)
	var perRequest *stats.SLO // goodput, computed with the metrics
	if spec != nil {
		perRequest = spec.PerRequest()
	}
	online := recordOnline(&cfg, rescale, perRequest)
	finish := observe(ctx, o, name, &cfg, stderr)
	run, sat, err := executeGated(ctx, det, cfg, src, bodies)
	serverMetrics := finish(run)
	// A workload that fails to read mid-run (a bad line late in a trace)
	// stopped scheduling and drained: the requests sent are still a
	// result, returned together with the error (partialRun).
	if err != nil && !partialRun(run, err) {
		return report.Benchmark{}, run, err
	}
	workloadErr := err
	skipped := warn.finish(src)
	b := targetBenchmark(name, run, cfg, rescale, o.saveRequests, online, perRequest)
	if t := describeTransforms(transforms); t != nil {
		b.Config["workload_transforms"] = t
	}
	if skipped > 0 {
		b.Config["skipped_invalid_lines"] = skipped
	}
	if !startAt.IsZero() {
		b.Config["start_at"] = startAt.UTC().Format(time.RFC3339Nano)
	}
	if o.req.omitIgnoreEOS() {
		b.Config["ignore_eos"] = false
	}
	attachGate(&b, run, sat, spec)
	b.ServerMetrics = serverMetrics
	if workloadErr != nil {
		b.Config["workload_error"] = workloadErr.Error()
	}
	degradedWarning(stderr, &b)
	return b, run, workloadErr
}

// partialRun reports whether err, returned by the engine with run, is a
// workload read error after some requests were sent: benchmark then
// returns the results of those together with the error.
func partialRun(run *engine.Run, err error) bool {
	return err != nil && run != nil && run.StopReason == engine.StopWorkloadError && len(run.Results) > 0
}

// warnings is the invocation's one printer of workload warnings, so a
// warning repeated by every benchmark of a sweep is printed once.
func (o *benchOptions) warnings(stderr io.Writer) *warnings {
	o.warnOnce.Do(func() { o.warn = newWarnings(stderr) })
	return o.warn
}

// failureSummary turns a run in which nothing succeeded into an error, so a
// broken target never looks like an empty, successful benchmark.
func failureSummary(run *engine.Run) error {
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
		// --ignore-eos auto/on sends.
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

// checkReachable dials the target once so that a wrong --target fails in a
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

func labels(kv []string) map[string]string {
	if len(kv) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, l := range kv {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

// recordOnline makes a benchmark without warmup or cooldown record its
// metrics as requests end, and keep no chunk offsets in its results, so
// that its memory follows the requests in flight rather than the
// workload's length; nil (metrics from the results at the end) when the
// run has a warmup or cooldown, which the engine marks only once it is over.
func recordOnline(cfg *engine.Config, rescale float64, perRequest *stats.SLO) *stats.Online {
	if !cfg.Warmup.IsZero() || !cfg.Cooldown.IsZero() {
		return nil
	}
	online := stats.NewOnline(statsOptions(*cfg, rescale, perRequest)) // engineflags.go
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
// a trace was rescaled to (--profile trace --rate), its requested rate.
// online, when not nil, recorded the run's results as they ended (with
// perRequest, as here). perRequest, when set, is the --slo per request,
// for goodput.
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
		Config:    benchConfig(cfg),
		Metrics:   m,
	}
	engineConfig(b.Config, cfg, run)
	if saveRequests {
		b.Requests = report.RequestRecords(run.Results)
	}
	return b
}

func benchConfig(cfg engine.Config) map[string]any {
	m := map[string]any{"profile": cfg.Profile, "target": redact.URL(cfg.Target), "seed": cfg.Seed}
	if cfg.Rate > 0 {
		m["rate"] = cfg.Rate
	}
	if cfg.Profile == "trace" {
		m["time_scale"] = cfg.TimeScale
	}
	if cfg.Profile == "concurrent" {
		m["concurrency"] = cfg.Concurrency
	}
	m["max_concurrency"] = cfg.MaxConcurrency
	if cfg.MaxSeconds > 0 {
		m["max_seconds"] = cfg.MaxSeconds
	}
	if cfg.MaxRequests > 0 {
		m["max_requests"] = cfg.MaxRequests
	}
	if cfg.Model != "" {
		m["model"] = cfg.Model
	}
	return m
}

// observe attaches to one benchmark's cfg the progress display (live on a
// terminal, plain lines otherwise; none with --quiet) and the target's
// metrics scraper (--scrape-*). Call finish when the run ends (run may be
// nil): it closes the display and returns what the scraper saw, nil when
// nothing was scraped.
func observe(ctx context.Context, o *benchOptions, name string, cfg *engine.Config, stderr io.Writer) (finish func(*engine.Run) *scrape.Report) {
	scraper := o.scrape.Begin(ctx, cfg, stderr) // nil when off or the target has no metrics; before the display, which owns the terminal
	var display *progress.Display
	switch {
	case o.quiet:
	case o.plainProgress: // several benchmarks at once (compare --mode parallel) share the terminal
		display = progress.NewPlain(stderr, name)
	default:
		display = progress.New(stderr, name, cfg.MaxRequests)
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
	case "constant", "poisson", "gamma":
		return cfg.Rate
	case "trace":
		return max(rescale, 0)
	}
	return 0
}
