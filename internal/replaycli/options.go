package replaycli

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/bench"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/scrape"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/workload"
)

// The options of the commands that benchmark (run, capacity, compare),
// declared once each below and registered by section: a command registers
// the sections it honours, so its --help lists exactly the flags it reads.
// Each option's value parses in Set where its type allows (the choices,
// the time scale); what depends on other options is checked when the plan
// is built (planOptions.plan), naming the flags.

// Load profiles a command line accepts: the engine's, and sweep, which
// runs several benchmarks.
const (
	profileSweep = "sweep"
	profileKnee  = "knee"
)

// choice is a flag whose value is one of a fixed list; Set refuses any
// other, naming every accepted value.
type choice struct {
	value   string
	choices []string
}

func newChoice(def string, choices ...string) choice { return choice{def, choices} }

func (c *choice) String() string { return c.value }
func (c *choice) Set(v string) error {
	if !slices.Contains(c.choices, v) {
		return fmt.Errorf("want %s", orList(c.choices))
	}
	c.value = v
	return nil
}

// orList is "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// rfc3339 is an instant flag (--start-at): RFC 3339, checked in Set.
type rfc3339 struct{ t time.Time }

func (r *rfc3339) String() string {
	if r.t.IsZero() {
		return ""
	}
	return r.t.UTC().Format(time.RFC3339Nano)
}
func (r *rfc3339) Set(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return errors.New("want an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	r.t = t
	return nil
}

// planOptions are the flags a benchmark plan is built from.
type planOptions struct {
	target                               string // run, capacity: one URL (compare: targets)
	workload                             string
	wl                                   workloadFlags
	skipInvalid, noBaseline              bool
	model, tokenizer                     string
	seed                                 int64
	ignoreEOS                            choice
	promptNamespace, startBarrier, runID string
	barrierLead                          time.Duration
	reusePrompts                         bool

	profile     choice
	rate        float64
	concurrency int
	burstiness  float64
	timeScale   float64

	maxSeconds                    float64
	maxRequests, maxConcurrency   int
	drain, timeout, settleTimeout time.Duration
	warmup, cooldown              string
	maxErrors                     int
	maxErrorRate                  float64
	apiKey, caCert                string
	headers                       cli.List
	http2, insecure               bool
	spin, lagThreshold            time.Duration
	startAt                       rfc3339
	detect, slo                   string
	sloFrom                       choice
	scrape                        scrape.Flags
	saveRequests, quiet           bool
	outputDir, name               string
	labels                        cli.List
	sweepPoints                   int
	kneeStreams                   intList
	kneeRefine                    bool
	rateProfile                   choice
}

func newPlanOptions() *planOptions {
	profiles := append(slices.Clone(engine.Profiles), profileSweep, profileKnee)
	return &planOptions{
		ignoreEOS:   newChoice("auto", "auto", "on", "off"),
		profile:     newChoice(engine.ProfileTrace, profiles...),
		sloFrom:     newChoice(bench.SLOFromAuto, bench.SLOFromAuto, bench.SLOFromSent, bench.SLOFromIntended),
		rateProfile: newChoice(engine.ProfileConstant, engine.ProfileConstant, engine.ProfilePoisson),
	}
}

func (o *planOptions) targetSection(fs *flag.FlagSet) {
	fs.StringVar(&o.target, "target", "", "base URL of the deployment to benchmark, e.g. http://candidate:8000, without /v1: replay adds /v1/... itself (required)")
}

func (o *planOptions) workloadSection(fs *flag.FlagSet) {
	fs.StringVar(&o.workload, "workload", "", "capture directory, mooncake:PATH, azure:PATH, burstgpt:PATH, prompts:PATH (.jsonl, .csv or .txt) or synthetic:k=v,... (required)")
	fs.BoolVar(&o.skipInvalid, "skip-invalid", false, "skip malformed workload lines (counted) instead of stopping")
	fs.StringVar(&o.model, "model", "", "model name to send, overriding the workload's")
	fs.StringVar(&o.tokenizer, "tokenizer", "cl100k_base", "tokenizer prompts are synthesised to exact lengths with: a tiktoken encoding (cl100k_base, o200k_base, p50k_base, r50k_base), hf:PATH to a Hugging Face tokenizer.json, PATH.gguf (or gguf:PATH) for the tokenizer a GGUF model file embeds, or server (the target's /tokenize: vLLM, SGLang or llama.cpp's llama-server)")
	fs.Int64Var(&o.seed, "seed", 42, "seed for every random choice (schedules, prompts, samples)")
	fs.Var(&o.ignoreEOS, "ignore-eos", "send ignore_eos with max_tokens so outputs have the workload's lengths: auto (on), on, or off for strict OpenAI APIs that reject unknown fields (outputs may then stop early: the shortfall is reported)")
	fs.StringVar(&o.promptNamespace, "prompt-namespace", bench.NamespaceAuto, "content of the synthesised prompts: auto (fresh text for this invocation, so a rerun does not hit its own earlier prompts in the target's prefix cache), none (the text --seed alone gives, the same every run), or a name (the same text wherever it is given: a run's results record theirs as prompt_namespace). Lengths and prefix sharing are the workload's whatever the content")
	fs.BoolVar(&o.reusePrompts, "reuse-prompts", false, "send every benchmark of this invocation (a sweep's points, a capacity search's probes, a comparison's repetitions) the same prompts, instead of fresh ones each (a later benchmark then finds the earlier ones' prompts in the target's prefix cache)")
	registerWorkloadFlags(fs, &o.wl, false)
}

// splitSection registers replay run's flags of a run split across
// processes or pods (bench.Shard; docs/kubernetes.md).
func (o *planOptions) splitSection(fs *flag.FlagSet) {
	fs.StringVar(&o.wl.shard, "shard", "", "run shard i of a run split N ways (i/N, from 0; auto/N takes i from $JOB_COMPLETION_INDEX, as in a Kubernetes Indexed Job): every shard computes the same plan and sends its part; replay merge joins their results into one")
	fs.StringVar(&o.startBarrier, "start-barrier", "", "directory the shards share (a volume every pod mounts): each writes that it is ready and all start together, at the last one's ready time plus --barrier-lead; a shard whose clock is off the target's refuses to start")
	fs.DurationVar(&o.barrierLead, "barrier-lead", bench.DefaultBarrierLead, "with --start-barrier: the time from the last shard's ready time to the start")
	fs.StringVar(&o.runID, "run-id", "", "names one run of a split plan, the same in every shard (on Kubernetes the Job's uid, from the downward API): a barrier directory still holding another run's files is refused, and each run gets fresh prompts")
}

func (o *planOptions) loadSection(fs *flag.FlagSet) {
	fs.Var(&o.profile, "profile", "load model: "+orList(o.profile.choices))
	fs.Float64Var(&o.rate, "rate", 0, "requests per second for constant, poisson and gamma; with trace, rescale the trace to this mean rate keeping the shape of its bursts")
	fs.IntVar(&o.concurrency, "concurrency", 1, "concurrent: number of closed-loop streams")
	fs.Float64Var(&o.burstiness, "burstiness", 1, "gamma: shape of the gaps between requests (1 is Poisson, below 1 burstier, above 1 more even; as vLLM bench serve's --burstiness)")
	registerTimeScale(fs, &o.timeScale)
}

// limitsSection registers the limits; multi adds --settle-timeout, for
// commands that run several benchmarks against one target.
func (o *planOptions) limitsSection(fs *flag.FlagSet, multi bool) {
	fs.Float64Var(&o.maxSeconds, "max-seconds", 0, "stop scheduling after this many seconds (0: no limit)")
	fs.IntVar(&o.maxRequests, "max-requests", 0, "stop scheduling after this many requests (0: no limit)")
	fs.IntVar(&o.maxConcurrency, "max-concurrency", 1024, "cap on requests in flight (throughput: the level it keeps)")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "after scheduling stops, how long in-flight requests may take before they are cancelled")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "per-request timeout")
	if multi {
		fs.DurationVar(&o.settleTimeout, "settle-timeout", bench.DefaultSettleTimeout, "after a benchmark that gave up on requests (cancelled by --drain, timed out), wait at most this long for the target to finish them before the next benchmark: idle by its metrics (running and waiting requests 0), else by one-token probes")
	}
	fs.StringVar(&o.warmup, "warmup", "", "requests at the start sent but left out of the metrics: a duration (10s), a count (50) or a fraction (5% or 0.05) of --max-requests, --max-seconds or the requests sent")
	fs.StringVar(&o.cooldown, "cooldown", "", "requests at the end sent but left out of the metrics, as --warmup")
	fs.IntVar(&o.maxErrors, "max-errors", 0, "stop scheduling once this many requests have failed (0: no limit)")
	fs.Float64Var(&o.maxErrorRate, "max-error-rate", 0, "stop scheduling once, of the last 30 finished requests (and at least 30 finished), this fraction or more failed (0: no limit)")
}

func (o *planOptions) clientSection(fs *flag.FlagSet) {
	fs.StringVar(&o.apiKey, "api-key", "", "bearer token for the target (also OPENAI_API_KEY); never written to results or logs")
	fs.Var(&o.headers, "header", "extra request header 'Name: value'")
	fs.BoolVar(&o.http2, "http2", false, "use HTTP/2: h2 over TLS, prior knowledge (h2c) for http:// targets")
	fs.StringVar(&o.caCert, "ca-cert", "", "PEM file of certificate authorities to trust for an https:// target")
	fs.BoolVar(&o.insecure, "insecure-skip-verify", false, "do not verify an https:// target's TLS certificate")
	fs.DurationVar(&o.spin, "spin", 0, "open-loop profiles: spend this much before each due time yielding in a loop rather than asleep (1ms meets due times within microseconds instead of up to 1 ms late, at the cost of CPU: about a core at 1,000 req/s and above; a warning on hosts with fewer than 3 cores, 4 with a target on the same host)")
	fs.DurationVar(&o.lagThreshold, "lag-threshold", 10*time.Millisecond, "mark the benchmark degraded when the client's own send lag p99 exceeds this (open-loop profiles are also degraded when the gaps between sends stray from the schedule's: docs/metrics.md)")
	fs.Var(&o.startAt, "start-at", "RFC 3339 instant (e.g. 2026-01-02T15:04:05Z) at which to send the first request, after the workload and tokenizer are ready: shards on machines with aligned clocks start together")
}

func (o *planOptions) gateSection(fs *flag.FlagSet) {
	fs.StringVar(&o.detect, "detect-saturation", "", "over-saturation detection, GuideLLM-compatible: enforce (stop the benchmark) or monitor (report only), optionally followed by ,key=value with GuideLLM's parameter names (enabled: false is monitor, min_seconds, max_window_seconds, moe_threshold, minimum_ttft, maximum_window_ratio, minimum_window_size, confidence) or the backlog signal's (backlog, backlog_growth, backlog_min, rate_deficit)")
	fs.StringVar(&o.slo, "slo", "", "service-level objectives, e.g. 'ttft_p99<=200ms,itl_p99<=50ms,e2e_p99<=3s' (metrics ttft; itl, each request's mean gap between tokens after the first (GuideLLM's ITL formula and vLLM's TPOT, weighted per request); tpot, GuideLLM's TPOT formula, (last token − send) / output tokens, TTFT included, per request; e2e. p50…p99.9, mean, or none for every request; ms or s): pass/fail per benchmark, attainment and goodput")
	fs.Var(&o.sloFrom, "slo-from", "where --slo measures ttft, tpot and e2e from: sent (the actual send), intended (the schedule's send time, so client-side queueing under --max-concurrency cannot hide delay), or auto: intended for open-loop profiles (constant, poisson, gamma, trace), sent for closed loops (synchronous, concurrent, throughput)")
}

func (o *planOptions) sweepSection(fs *flag.FlagSet) {
	fs.IntVar(&o.sweepPoints, "sweep-points", 10, "sweep: total benchmarks (synchronous, throughput, then this minus 2 constant rates between their rates)")
	o.rateProfileFlag(fs, "sweep")
}

// kneeSection registers the knee profile's flags.
func (o *planOptions) kneeSection(fs *flag.FlagSet) {
	o.kneeStreams = intList(bench.DefaultKneeStreams)
	fs.Var(&o.kneeStreams, "knee-streams", "knee: the initial sweep's concurrencies, ascending, comma-separated (at least 5)")
	fs.BoolVar(&o.kneeRefine, "knee-refine", true, "knee: once a knee is found, measure up to 2 more concurrencies on each side of it and analyse again")
}

func (o *planOptions) rateProfileFlag(fs *flag.FlagSet, who string) {
	fs.Var(&o.rateProfile, "rate-profile", who+": arrival process of the fixed-rate benchmarks, constant (GuideLLM's default) or poisson")
}

func (o *planOptions) scrapeSection(fs *flag.FlagSet) { o.scrape.Register(fs) }

// outputSection registers the results flags; named adds --name and
// --no-baseline (replay run: one benchmark, perhaps of a capture).
func (o *planOptions) outputSection(fs *flag.FlagSet, named bool) {
	fs.StringVar(&o.outputDir, "output-dir", "results", "directory for benchmarks.json, benchmarks.csv and report.html")
	if named {
		fs.StringVar(&o.name, "name", "candidate", "name of this benchmark in the results")
		fs.BoolVar(&o.noBaseline, "no-baseline", false, "for a capture workload, do not report production's recorded timings next to the target")
	}
	fs.Var(&o.labels, "label", "key=value carried into every output")
	fs.BoolVar(&o.saveRequests, "save-requests", false, "include per-request records in benchmarks.json")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
}

// planFlags maps the fields of a plan and of the engine's configuration
// to the flags that set them, so their errors name the flags.
var planFlags = map[string]string{
	"Target": "target", "Rate": "rate", "Profile": "profile", "Concurrency": "concurrency", "TimeScale": "time-scale",
	"Burstiness": "burstiness", "MaxErrors": "max-errors", "MaxErrorRate": "max-error-rate", "Warmup": "warmup",
	"Cooldown": "cooldown", "CACert": "ca-cert", "InsecureSkipVerify": "insecure-skip-verify", "MaxConcurrency": "max-concurrency",
	"MaxSeconds": "max-seconds", "MaxRequests": "max-requests", "Spin": "spin", "LagThreshold": "lag-threshold",
	"Drain": "drain", "Timeout": "timeout", "Workload": "workload", "Tokenizer": "tokenizer", "SLOFrom": "slo-from",
	"SLO": "slo", "StartAt": "start-at", "Points": "sweep-points", "RateProfile": "rate-profile",
	"MinRate": "min-rate", "MaxRate": "max-rate", "Precision": "precision", "Repetitions": "repetitions", "Targets": "target",
	// workload.Transforms
	"Window": "window", "Fraction": "sample", "Loop": "loop", "MaxPromptTokens": "max-prompt-tokens",
	"MaxOutputTokens": "max-output-tokens", "Shard": "shard", "Statuses": "filter-status", "ModelMap": "model-map",
	"KneeStreams": "knee-streams", "ShardState": "output-dir", "StartBarrier": "start-barrier", "BarrierLead": "barrier-lead",
	"SessionTiming.MaxWait": "clamp-wait", "SessionTiming.MaxIdle": "pack-idle",
}

// usage is err, a plan's or a flag's problem, as a usage error naming the
// flags.
func usageErr(err error) error { return cli.AsUsage(cli.MapFields(err, planFlags)) }

// runnerErr is the error of bench.NewRunner: a usage error when a setting
// is refused (the tokenizer named does not open), else as it is.
func runnerErr(err error) error {
	var fe cli.FieldError
	if errors.As(err, &fe) {
		return usageErr(err)
	}
	return err
}

// built is what a command line gives a benchmark plan: the plan, and what
// the command does around it.
type built struct {
	plan   bench.Plan
	labels map[string]string
	sweep  *bench.Sweep // run --profile sweep
	knee   *bench.Knee  // run --profile knee
	outDir string
	name   string
}

// plan builds the plan of the flags fs parsed; target is the URL the
// tokenizer and checks use (run and capacity: --target; compare: the
// first target). profile is the profile to run ("" for a capacity search,
// which picks its own). Every problem is reported at once.
func (o *planOptions) plan(fs *cli.Flags, target, profile string) (built, error) {
	var errs []error
	given := fs.Given
	if o.workload == "" {
		errs = append(errs, errors.New("--workload is required"))
	}
	cfg := engine.Config{
		Target: strings.TrimRight(target, "/"), Model: o.model, Profile: profile, TimeScale: o.timeScale,
		Concurrency: o.concurrency, MaxConcurrency: o.maxConcurrency, MaxSeconds: o.maxSeconds, MaxRequests: o.maxRequests,
		Drain: o.drain, Timeout: o.timeout, Headers: http.Header{}, Seed: o.seed,
		MaxErrors: o.maxErrors, MaxErrorRate: o.maxErrorRate, LagThreshold: o.lagThreshold, Spin: o.spin,
		HTTP2: o.http2, CACert: o.caCert, InsecureSkipVerify: o.insecure,
	}
	var err error
	if cfg.Warmup, err = engine.ParsePortion(o.warmup); err != nil {
		errs = append(errs, fmt.Errorf("--warmup %w", err))
	}
	if cfg.Cooldown, err = engine.ParsePortion(o.cooldown); err != nil {
		errs = append(errs, fmt.Errorf("--cooldown %w", err))
	}
	if profile == engine.ProfileGamma {
		cfg.Burstiness = o.burstiness
	}
	for _, h := range o.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			errs = append(errs, fmt.Errorf("--header %q: want 'Name: value'", h))
			continue
		}
		cfg.Headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	key := o.apiKey
	if key == "" {
		key = os.Getenv("OPENAI_API_KEY")
	}
	if key != "" {
		cfg.Headers.Set("Authorization", "Bearer "+key)
	}
	labels, lerr := parseLabels(o.labels)
	errs = append(errs, lerr)

	b := built{labels: labels, outDir: o.outputDir, name: o.name}
	p := bench.Plan{
		Workload: o.workload, SkipInvalid: o.skipInvalid, Tokenizer: o.tokenizer, OmitIgnoreEOS: o.ignoreEOS.value == "off",
		SLOFrom: o.sloFrom.value, Scrape: o.scrape, SaveRequests: o.saveRequests, NoBaseline: o.noBaseline,
		Quiet: o.quiet, StartAt: o.startAt.t, PromptNamespace: o.promptNamespace, ReusePrompts: o.reusePrompts,
		SettleTimeout: o.settleTimeout, StartBarrier: o.startBarrier, BarrierLead: o.barrierLead, RunID: o.runID,
	}
	if o.wl.shard != "" {
		s, err := parseShard(o.wl.shard, os.LookupEnv)
		if err != nil {
			errs = append(errs, err)
		}
		p.Shard = s
		o.wl.shard = "" // not a transform here: the plan is split (bench.Shard)
		if o.outputDir != "" {
			p.ShardState = filepath.Join(o.outputDir, bench.ShardFile)
		}
		if profile == profileSweep || profile == profileKnee {
			errs = append(errs, errors.New("--shard with --profile sweep or knee: a sweep's rates come from its own measurements, which would differ by shard; run each rate as a split --profile constant --rate R run"))
		}
	} else if fs.OnCommandLine("barrier-lead") || fs.OnCommandLine("run-id") {
		errs = append(errs, errors.New("--barrier-lead and --run-id are for the shards of a split run: give --shard i/N"))
	}
	if (profile == profileSweep || profile == "") && !given("max-concurrency") {
		p.ThroughputConcurrency = bench.DefaultThroughputConcurrency
	}
	// With --profile trace, --rate rescales the trace (the engine's rate
	// stays 0).
	if profile == engine.ProfileTrace && given("rate") {
		if !(o.rate > 0) || math.IsInf(o.rate, 0) {
			errs = append(errs, fmt.Errorf("--rate %v: must be > 0", o.rate))
		} else if o.timeScale != 1 {
			errs = append(errs, errors.New("--rate and --time-scale with --profile trace: a rescale to a mean rate replaces the time scale; give one of them"))
		}
		p.Rescale = o.rate
	} else {
		cfg.Rate = o.rate
	}
	if p.Transforms, err = o.wl.transforms(o.seed, 0, 0); err != nil {
		errs = append(errs, err)
	}
	if o.detect != "" {
		c, err := saturation.Parse(o.detect)
		if err != nil {
			errs = append(errs, err)
		}
		p.Detector = &c
	}
	if o.slo != "" {
		s, err := slo.Parse(o.slo)
		if err != nil {
			errs = append(errs, err)
		}
		p.SLO = s
	} else if given("slo-from") {
		errs = append(errs, errors.New("--slo-from without --slo: there is no objective to measure"))
	}
	if target != "" {
		if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--target %q: want an http:// or https:// URL", target))
		} else if err := cli.CheckBaseURL("--target", "", target); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, o.applicable(fs, profile))
	p.Engine = cfg
	check := cfg // a sweep or a capacity search: each benchmark's profile and rate are its own
	if profile == profileSweep || profile == profileKnee || profile == "" {
		check.Profile, check.Rate = engine.ProfileSynchronous, 0
	}
	if target == "" { // compare without --target: the command says so itself
		check.Target = "http://target.invalid"
	}
	errs = append(errs, check.Validate())
	errs = append(errs, p.Validate())
	b.plan = p
	if profile == profileSweep {
		b.sweep = &bench.Sweep{Points: o.sweepPoints, RateProfile: o.rateProfile.value}
		errs = append(errs, b.sweep.Validate(), p.Bounded())
	}
	if profile == profileKnee {
		b.knee = &bench.Knee{Streams: o.kneeStreams, Refine: o.kneeRefine}
		errs = append(errs, b.knee.Validate(), p.Bounded())
	}
	return b, cli.MapFields(errors.Join(errs...), planFlags)
}

// applicable refuses flags given that the profile does not read, so a
// flag listed in --help either changes the benchmark or is refused with a
// reason. profile "" is a capacity search (fixed rates it picks itself).
func (o *planOptions) applicable(fs *cli.Flags, profile string) error {
	var errs []error
	refuse := func(name, why string) {
		if fs.Lookup(name) != nil && fs.OnCommandLine(name) {
			errs = append(errs, fmt.Errorf("--%s: %s", name, why))
		}
	}
	switch profile {
	case engine.ProfileSynchronous, engine.ProfileConcurrent, engine.ProfileThroughput:
		refuse("rate", "profile "+profile+" is a closed loop: each request is sent when one ends, at no rate")
		refuse("spin", "profile "+profile+" is a closed loop, with no due times to spin for")
	case profileSweep:
		refuse("rate", "a sweep finds its rates itself, between its synchronous and throughput benchmarks")
		refuse("time-scale", "a sweep's benchmarks run at fixed rates and closed loops, not at the workload's recorded times")
		refuse("name", "a sweep names its benchmarks after their profiles and rates")
	case profileKnee:
		refuse("rate", "a knee sweep is a closed loop at each of --knee-streams")
		refuse("time-scale", "a knee sweep's benchmarks are closed loops, not the workload's recorded times")
		refuse("name", "a knee sweep names its benchmarks after their concurrency")
	}
	if fs.Name() == "replay run" && profile != profileSweep && profile != profileKnee {
		refuse("settle-timeout", "one benchmark has no earlier one to settle after (a sweep or a knee sweep has)")
		refuse("reuse-prompts", "one benchmark has no other to share its prompts with (a sweep or a knee sweep has)")
	}
	if profile != engine.ProfileConcurrent {
		refuse("concurrency", "only profile concurrent has closed-loop streams (throughput keeps --max-concurrency in flight; knee takes --knee-streams)")
	}
	if profile != profileKnee {
		refuse("knee-streams", "only profile knee sweeps concurrencies")
		refuse("knee-refine", "only profile knee refines a knee")
	}
	if profile != engine.ProfileGamma {
		refuse("burstiness", "only profile gamma shapes its gaps")
	}
	if profile != profileSweep {
		refuse("sweep-points", "only profile sweep has points")
		if profile != "" {
			refuse("rate-profile", "only a sweep (profile sweep) or a capacity search runs fixed-rate benchmarks")
		}
	}
	if _, ok := workload.CapturePath(o.workload); !ok && o.workload != "" {
		refuse("no-baseline", "the workload is not a capture: there are no recorded timings to leave out")
	}
	if o.scrape.Metrics == scrape.ModeOff {
		refuse("scrape-interval", "--scrape-metrics off scrapes nothing")
		refuse("scrape-series", "--scrape-metrics off scrapes nothing")
	}
	return errors.Join(errs...)
}

// parseLabels reads --label key=value pairs.
func parseLabels(kv []string) (map[string]string, error) {
	var errs []error
	var m map[string]string
	for _, l := range kv {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("--label %q: want key=value", l))
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[k] = v
	}
	return m, errors.Join(errs...)
}

// tlsOnly refuses --ca-cert and --insecure-skip-verify when no target is
// https://: they would change nothing.
func tlsOnly(fs *cli.Flags, targets ...string) error {
	for _, t := range targets {
		if strings.HasPrefix(strings.ToLower(t), "https://") {
			return nil
		}
	}
	var errs []error
	for _, n := range []string{"ca-cert", "insecure-skip-verify"} {
		if fs.Given(n) {
			errs = append(errs, fmt.Errorf("--%s: no target is https://, so there is no TLS to configure", n))
		}
	}
	return errors.Join(errs...)
}

// parseShard reads --shard: i/N, or auto/N with i from the environment
// variable JOB_COMPLETION_INDEX that Kubernetes sets in an Indexed Job's
// pods.
func parseShard(v string, lookup func(string) (string, bool)) (bench.Shard, error) {
	if n, ok := strings.CutPrefix(v, "auto/"); ok {
		idx, set := lookup("JOB_COMPLETION_INDEX")
		if !set {
			return bench.Shard{}, fmt.Errorf("--shard %s: auto takes the shard's index from JOB_COMPLETION_INDEX, which is not set (it is in the pods of an Indexed Job); give i/%s", v, n)
		}
		v = strings.TrimSpace(idx) + "/" + n
	}
	i, n, err := workload.ParseShard(v)
	if err != nil {
		return bench.Shard{}, err
	}
	return bench.Shard{Index: i, Count: n}, nil
}

// intList is a comma-separated list of integers (--knee-streams).
type intList []int

func (l *intList) String() string {
	var s []string
	for _, v := range *l {
		s = append(s, strconv.Itoa(v))
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%q: want integers separated by commas, e.g. 1,2,4,8,16", f)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}
