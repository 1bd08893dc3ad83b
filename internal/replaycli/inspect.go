package replaycli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/tokenizer"
	"github.com/reprise-llm/reprise/internal/workload"
)

const inspectSynopsis = "replay inspect [flags] SPEC [flags]   (SPEC: a capture directory, mooncake:PATH, azure:PATH, burstgpt:PATH, prompts:PATH or synthetic:k=v,...)"

// workloadSummary is what `replay inspect` reports of a source. Requests
// are read as a stream; memory follows the distinct seconds, prefix blocks
// and sessions the source holds, plus 16 bytes a request for exact length
// statistics up to exactLengthsMax requests (then a fixed-size histogram).
type workloadSummary struct {
	requests, streams int
	span              time.Duration
	perSecond         map[int64]int // requests by whole second of offset
	perMinute         map[int64]int
	// prompt and output hold the token counts that are known; verbatim
	// prompts without a count and outputs left to the server are counted
	// apart.
	prompt, output            *lengths
	promptUnknown, outputFree int
	// Prefix blocks: every id, keyed with its block size. blocks counts
	// ids, reused those seen in an earlier request; hitTokens counts the
	// prompt tokens of each request's leading run of seen blocks — what an
	// unbounded prefix cache would hit — out of promptTokens.
	seen                    map[uint64]struct{}
	blocks, reused          int
	hitTokens, promptTokens int64
	sessions                map[string]int // turns per session
	inSessions              int
	// conventions is what each trace session's rows count, as the
	// source decided it (sessions not in it are single-turn or
	// undecided); traceRows says whether any request is a trace's
	// session row, whose convention is then printed.
	conventions       map[string]workload.SessionConvention
	traceRows         bool
	models, endpoints map[string]int
	// outcomes is production's answer, for captures: "200", "http 503",
	// "aborted", "error: ..." (recorded is how many had a record).
	outcomes map[string]int
	recorded int
	// count measures verbatim prompts that carry no token count (nil:
	// they stay unknown); countErr is its first failure.
	count    func(string) (int, error)
	countErr error
	measured int    // verbatim prompts measured with count
	countBy  string // the tokenizer's name, for the report
}

func newSummary() *workloadSummary {
	return &workloadSummary{
		perSecond: map[int64]int{}, perMinute: map[int64]int{},
		prompt: newLengths(), output: newLengths(),
		seen: map[uint64]struct{}{}, sessions: map[string]int{}, conventions: map[string]workload.SessionConvention{},
		models: map[string]int{}, endpoints: map[string]int{}, outcomes: map[string]int{},
	}
}

func (s *workloadSummary) add(r *workload.Request) {
	s.requests++
	s.span = max(s.span, r.Offset)
	s.perSecond[int64(r.Offset/time.Second)]++
	s.perMinute[int64(r.Offset/time.Minute)]++
	if r.Stream {
		s.streams++
	}
	if r.PromptTokens > 0 || (r.Prompt == "" && len(r.Messages) == 0) {
		s.prompt.record(int64(r.PromptTokens))
		s.promptTokens += int64(r.PromptTokens)
	} else if n, ok := s.countVerbatim(r); ok {
		s.measured++
		s.prompt.record(int64(n))
		s.promptTokens += int64(n)
	} else {
		s.promptUnknown++
	}
	if r.OutputTokens > 0 {
		s.output.record(int64(r.OutputTokens))
	} else {
		s.outputFree++
	}
	s.addBlocks(r)
	if r.Session != "" {
		s.sessions[r.Session]++
		s.inSessions++
		if r.Convention != workload.ConventionUndecided {
			s.conventions[r.Session] = r.Convention
		}
		s.traceRows = s.traceRows || r.History || r.Convention != workload.ConventionUndecided
	}
	model := r.Model
	if model == "" {
		model = r.TraceModel
	}
	if model == "" {
		model = "(unset: the replayer's --model)"
	}
	s.models[model]++
	s.endpoints[string(r.Endpoint)]++
	if rec := r.Recorded; rec != nil {
		s.recorded++
		s.outcomes[outcome(rec.Status, rec.Error, rec.Aborted)]++
	}
}

// countVerbatim counts a verbatim prompt's tokens with s.count: the prompt,
// or every text content of its chat messages (no chat template).
func (s *workloadSummary) countVerbatim(r *workload.Request) (int, bool) {
	if s.count == nil || s.countErr != nil {
		return 0, false
	}
	texts := []string{r.Prompt}
	if r.Prompt == "" {
		var msgs []struct {
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(r.Messages, &msgs) != nil {
			return 0, false
		}
		texts = texts[:0]
		for _, m := range msgs {
			var str string
			var parts []struct {
				Text string `json:"text"`
			}
			switch {
			case json.Unmarshal(m.Content, &str) == nil:
				texts = append(texts, str)
			case json.Unmarshal(m.Content, &parts) == nil:
				for _, p := range parts {
					texts = append(texts, p.Text)
				}
			}
		}
	}
	total := 0
	for _, t := range texts {
		n, err := s.count(t)
		if err != nil {
			s.countErr = err
			return 0, false
		}
		total += n
	}
	return total, true
}

// addBlocks counts r's prefix blocks against those seen before.
func (s *workloadSummary) addBlocks(r *workload.Request) {
	block := r.BlockTokens
	if block <= 0 {
		block = workload.MooncakeBlockTokens
	}
	leading := true
	hit := 0
	for _, id := range r.HashIDs {
		s.blocks++
		key := uint64(block)<<32 | uint64(id)
		if _, ok := s.seen[key]; ok {
			s.reused++
			if leading {
				hit++
			}
		} else {
			leading = false
			s.seen[key] = struct{}{}
		}
	}
	s.hitTokens += int64(min(hit*block, r.PromptTokens))
}

// outcome names how production answered a captured request.
func outcome(status int, errMsg string, aborted bool) string {
	switch {
	case aborted:
		return "aborted"
	case errMsg != "":
		if len(errMsg) > 60 {
			errMsg = errMsg[:57] + "..."
		}
		return "error: " + errMsg
	case status >= 200 && status <= 299:
		return fmt.Sprint(status)
	}
	return fmt.Sprintf("http %d", status)
}

// lazyCounter counts tokens with the tokenizer spec names, opened at the
// first call (most workloads carry their counts and never need it); spec
// passed checkInspectTokenizer.
func lazyCounter(spec string) func(string) (int, error) {
	var tok tokenizer.Tokenizer
	var err error
	opened := false
	return func(text string) (int, error) {
		if !opened {
			opened = true
			if tok, err = tokenizer.Open(spec, tokenizer.Options{}); err != nil {
				err = fmt.Errorf("--tokenizer %s: %w", spec, err)
			}
		}
		if err != nil {
			return 0, err
		}
		return tok.Count(text)
	}
}

// checkInspectTokenizer rejects a --tokenizer inspect cannot use before
// the workload is read: "server" (no target here), an unknown encoding, a
// tokenizer.json that does not load. An encoding is only named here, and
// loaded when a verbatim prompt needs it.
func checkInspectTokenizer(spec string) error {
	switch {
	case spec == "server":
		return errors.New("needs a target; inspect takes an embedded tokenizer (cl100k_base, o200k_base, hf:PATH)")
	case strings.HasPrefix(spec, "hf:") || strings.HasSuffix(spec, ".json"):
		_, err := tokenizer.Open(spec, tokenizer.Options{})
		return err
	case !slices.Contains(tokenizer.TiktokenEncodings, spec):
		return fmt.Errorf("unknown tokenizer: want a tiktoken encoding (%s) or hf:PATH to a tokenizer.json", strings.Join(tokenizer.TiktokenEncodings, ", "))
	}
	return nil
}

func peak(m map[int64]int) int {
	p := 0
	for _, n := range m {
		p = max(p, n)
	}
	return p
}

// buckets is how many whole units (seconds, minutes) the span covers,
// counted from offset 0 through the last arrival's: the buckets perSecond
// and perMinute count requests in.
func (s *workloadSummary) buckets(unit time.Duration) int64 { return int64(s.span/unit) + 1 }

// meanRate is requests per whole second: the mean of the per-second counts
// over every second from 0 through the last arrival's, empty ones
// included, so never above the busiest second's count (0 without a span).
// Issue 16: requests ÷ span put the mean of a span under a second above
// its peak (10 requests in 0.5 s: a mean of 20 and a peak of 10), and of a
// steady trace slightly above it (the span ends at the last arrival, one
// gap short of the last second).
func (s *workloadSummary) meanRate() float64 {
	if s.span <= 0 {
		return 0
	}
	return float64(s.requests) / float64(s.buckets(time.Second))
}

// meanPerMinute is requests per whole minute, as meanRate per second.
func (s *workloadSummary) meanPerMinute() float64 {
	return float64(s.requests) / float64(s.buckets(time.Minute))
}

type inspectOptions struct {
	skipInvalid     bool
	html            string
	seed            int64
	rate, timeScale float64
	encoding        string
	wl              workloadFlags
}

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o inspectOptions
	fs := flag.NewFlagSet("replay inspect", flag.ContinueOnError)
	fs.BoolVar(&o.skipInvalid, "skip-invalid", false, "skip malformed lines (counted) instead of stopping")
	fs.StringVar(&o.html, "html", "", "also write the summary as a self-contained HTML page to this file")
	fs.Int64Var(&o.seed, "seed", 42, "seed of --sample")
	fs.Float64Var(&o.rate, "rate", 0, "rescale the workload to this mean rate (requests/s), keeping the shape of its bursts")
	registerTimeScale(fs, &o.timeScale) // workloadflags.go
	fs.StringVar(&o.encoding, "tokenizer", "cl100k_base", "tokenizer verbatim prompts without a token count are measured with: a tiktoken encoding or hf:PATH to a tokenizer.json (embedded, offline)")
	registerWorkloadFlags(fs, &o.wl)
	// Flags may come before and after the spec.
	if err := parse(fs, flagsFirst(fs, args), stdout, inspectSynopsis, nil); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return cli.UsageError("replay inspect takes one workload spec, got %q and %q", fs.Arg(0), fs.Arg(1))
	}
	spec := fs.Arg(0)
	if spec == "" {
		return cli.UsageError("replay inspect: a workload spec is required (%s)", inspectSynopsis)
	}
	t, err := o.wl.transforms(o.seed, o.rate, o.timeScale)
	if err != nil {
		return cli.AsUsage(err)
	}
	if err := checkInspectTokenizer(o.encoding); err != nil {
		return fmt.Errorf("%w: --tokenizer %s: %v", cli.ErrUsage, o.encoding, err)
	}
	warn := newWarnings(stderr)
	src, err := openWorkload(spec, o.skipInvalid, t, warn)
	if err != nil {
		return err
	}
	defer func() {
		if c, ok := src.(io.Closer); ok {
			c.Close()
		}
	}()
	s := newSummary()
	s.count, s.countBy = lazyCounter(o.encoding), o.encoding
	for {
		if s.requests%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		s.add(&r)
	}
	skipped := warn.finish(src)
	if s.countErr != nil {
		warn.print(fmt.Sprintf("verbatim prompts left uncounted: %v", s.countErr))
	}
	var msgs []string
	if w, ok := src.(interface{ Warnings() []string }); ok {
		msgs = w.Warnings()
	}
	if err := s.print(stdout, spec, skipped); err != nil {
		return err
	}
	if o.html != "" {
		f, err := os.Create(o.html)
		if err != nil {
			return fmt.Errorf("--html: %w", err)
		}
		err = s.writeHTML(f, spec, describeTransforms(t), msgs, skipped)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("--html %s: %w", o.html, err)
		}
		fmt.Fprintf(stdout, "\nHTML summary in %s\n", o.html)
	}
	return nil
}

// row is one line of the summary, shared by the terminal and the page.
type row struct{ Label, Value string }

// rows is the summary as label/value lines.
func (s *workloadSummary) rows(spec string, skipped int) []row {
	out := []row{{"workload", spec}, {"requests", fmt.Sprintf("%d (%d streamed)", s.requests, s.streams)}}
	if skipped > 0 {
		out = append(out, row{"skipped", fmt.Sprintf("%d invalid lines (--skip-invalid)", skipped)})
	}
	if s.requests == 0 {
		return out
	}
	secs, mins := s.buckets(time.Second), s.buckets(time.Minute)
	out = append(out,
		row{"span", s.span.Round(time.Millisecond).String()},
		row{"rate per second", fmt.Sprintf("mean %.3g, peak %d (per whole second: mean over the %d %s from 0 through the last arrival, peak the busiest)", s.meanRate(), peak(s.perSecond), secs, plural(secs, "second"))},
		row{"rate per minute", fmt.Sprintf("mean %.4g, peak %d (per whole minute: mean over the %d %s from 0 through the last arrival, peak the busiest)", s.meanPerMinute(), peak(s.perMinute), mins, plural(mins, "minute"))},
	)
	if s.span < time.Minute {
		// A mean per minute would be extrapolated from less than a minute.
		out[len(out)-1].Value = fmt.Sprintf("span under a minute: %d requests in all", s.requests)
	}
	if s.span <= 0 {
		out[len(out)-2].Value = "no arrival times (every offset is 0): a rate profile schedules this workload"
		out = out[:len(out)-1]
	}
	out = append(out, row{"prompt tokens", s.prompt.String()})
	if s.measured > 0 {
		out = append(out, row{"", fmt.Sprintf("%d verbatim prompts measured with %s (message contents, no chat template)", s.measured, s.countBy)})
	}
	if s.promptUnknown > 0 {
		out = append(out, row{"", fmt.Sprintf("%d verbatim prompts of unknown length not counted", s.promptUnknown)})
	}
	out = append(out, row{"output tokens", s.output.String()})
	if s.outputFree > 0 {
		out = append(out, row{"", fmt.Sprintf("%d requests leave the output length to the server", s.outputFree)})
	}
	if s.blocks > 0 {
		out = append(out,
			row{"prefix blocks", fmt.Sprintf("%d, of which %d (%.1f%%) repeat an earlier request's; %d distinct", s.blocks, s.reused, pct(s.reused, s.blocks), len(s.seen))},
			row{"prefix reuse", fmt.Sprintf("%.1f%% of prompt tokens are in a leading run of earlier blocks (an unbounded prefix cache's hit ratio)", pct64(s.hitTokens, s.promptTokens))})
	}
	if len(s.sessions) > 0 {
		most := 0
		for _, n := range s.sessions {
			most = max(most, n)
		}
		out = append(out, row{"sessions", fmt.Sprintf("%d holding %d requests: %.2f turns on average, at most %d; %d requests without a session",
			len(s.sessions), s.inSessions, float64(s.inSessions)/float64(len(s.sessions)), most, s.requests-s.inSessions)})
		if s.traceRows {
			out = append(out, row{"session rows", s.conventionCounts()})
		}
	} else {
		out = append(out, row{"sessions", "none (every request stands alone)"})
	}
	out = append(out, row{"models", countsString(s.models)}, row{"endpoints", countsString(s.endpoints)})
	if s.recorded > 0 {
		errs := 0
		for k, n := range s.outcomes {
			if len(k) != 3 { // not a 2xx code
				errs += n
			}
		}
		out = append(out, row{"production answers", fmt.Sprintf("%s (%.1f%% errors or aborts)", countsString(s.outcomes), pct(errs, s.recorded))})
	} else {
		out = append(out, row{"production answers", "not recorded (only captures record them)"})
	}
	return out
}

// conventionCounts says how many trace sessions were found whole-context,
// delta, and neither (see workload.SessionConvention).
func (s *workloadSummary) conventionCounts() string {
	var whole, delta int
	for _, c := range s.conventions {
		switch c {
		case workload.ConventionWhole:
			whole++
		case workload.ConventionDelta:
			delta++
		}
	}
	return fmt.Sprintf("%d sessions whole-context (input_length counts the whole conversation: sent at that length, no history added), "+
		"%d delta (input_length counts the new turn: sent after the conversation so far), %d single-turn or undecided (sent as delta)",
		whole, delta, len(s.sessions)-whole-delta)
}

// plural is unit, with an s unless n is 1.
func plural(n int64, unit string) string {
	if n == 1 {
		return unit
	}
	return unit + "s"
}

func pct(a, b int) float64 { return pct64(int64(a), int64(b)) }

func pct64(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func (s *workloadSummary) print(w io.Writer, spec string, skipped int) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range s.rows(spec, skipped) {
		fmt.Fprintf(tw, "%s\t%s\n", r.Label, r.Value)
	}
	return tw.Flush()
}

func countsString(m map[string]int) string {
	type kv struct {
		k string
		n int
	}
	var l []kv
	for k, n := range m {
		l = append(l, kv{k, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || (l[i].n == l[j].n && l[i].k < l[j].k) })
	var sb strings.Builder
	for i, e := range l {
		if i == 8 {
			fmt.Fprintf(&sb, ", ... %d more", len(l)-8)
			break
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s %d", e.k, e.n)
	}
	return sb.String()
}

// rateSeries is requests per second in at most maxBins bins of whole
// seconds over the span: bin width and the mean rate in each.
func (s *workloadSummary) rateSeries(maxBins int) (width int64, rates []float64) {
	last := int64(s.span / time.Second)
	width = max(1, (last+int64(maxBins))/int64(maxBins))
	counts := make([]int, last/width+1)
	for sec, n := range s.perSecond {
		counts[sec/width] += n
	}
	rates = make([]float64, len(counts))
	for i, n := range counts {
		rates[i] = float64(n) / float64(width)
	}
	return width, rates
}

// svgBars draws values as bars, x labelled by the bin start (xunit per
// bin), in the report's chart style.
func svgBars(values []float64, binWidth float64, xLabel, yLabel string, mean float64) template.HTML {
	const W, H, left, right, top, bottom = 640.0, 260.0, 56.0, 12.0, 10.0, 40.0
	pw, ph := W-left-right, H-top-bottom
	ymax := 0.0
	for _, v := range values {
		ymax = max(ymax, v)
	}
	ymax = niceCeil(max(ymax, mean))
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s by %s">`, W, H, template.HTMLEscapeString(yLabel), template.HTMLEscapeString(xLabel))
	for i := 0; i <= 4; i++ {
		y := top + ph - ph*float64(i)/4
		fmt.Fprintf(&sb, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, left, W-right, y, y)
		fmt.Fprintf(&sb, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-4, y+4, short(ymax*float64(i)/4))
	}
	bw := pw / float64(max(len(values), 1))
	for i, v := range values {
		if v <= 0 {
			continue
		}
		h := ph * v / ymax
		fmt.Fprintf(&sb, `<rect class="bar s0" x="%.2f" y="%.2f" width="%.2f" height="%.2f"><title>%s %s–%s: %s</title></rect>`,
			left+float64(i)*bw, top+ph-h, max(bw-0.5, 0.5), h, template.HTMLEscapeString(xLabel),
			short(float64(i)*binWidth), short(float64(i+1)*binWidth), short(v))
	}
	if mean > 0 {
		y := top + ph - ph*mean/ymax
		fmt.Fprintf(&sb, `<line class="mark sat" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/><text class="marklabel sat" x="%.1f" y="%.1f" text-anchor="end">mean %s</text>`,
			left, W-right, y, y, W-right, y-3, short(mean))
	}
	fmt.Fprintf(&sb, `<line class="axis" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, left, W-right, top+ph, top+ph)
	for i := 0; i <= 4; i++ {
		x := left + pw*float64(i)/4
		fmt.Fprintf(&sb, `<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x, top+ph+14, short(float64(len(values))*binWidth*float64(i)/4))
	}
	fmt.Fprintf(&sb, `<text class="label" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, left+pw/2, H-6, template.HTMLEscapeString(xLabel))
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// short formats a chart number compactly.
func short(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

type figure struct {
	Caption, Note string
	SVG           template.HTML
}

var inspectPage = template.Must(template.New("inspect").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reprise workload: {{.Spec}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; color: #1b1b1b; margin: 24px auto; max-width: 1360px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; margin: 0 0 8px; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; font-variant-numeric: tabular-nums; }
th { font-weight: normal; color: #333; white-space: nowrap; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; flex: 1 1 600px; max-width: 660px; }
figcaption { font-weight: 600; margin-bottom: 2px; }
svg.chart { width: 100%; height: auto; display: block; }
.note { font-size: 12px; color: #777; margin: 2px 0; }
.grid { stroke: #e6e6e6; stroke-width: 1; }
.axis { stroke: #888; stroke-width: 1; }
.tick { font-size: 11px; fill: #555; }
.label { font-size: 12px; fill: #333; }
rect.bar:hover { opacity: .8; }
.mark { stroke-width: 1.5; stroke-dasharray: 4 3; }
.mark.sat { stroke: #6a3d9a; }
text.marklabel { font-size: 11px; }
text.marklabel.sat { fill: #6a3d9a; }
.warn { color: #b00020; }
.s0 { stroke: #1f77b4; fill: #1f77b4; background: #1f77b4; }
</style>
</head>
<body>
<h1>Reprise workload summary</h1>
<p class="meta">{{.Spec}} — inspected {{.Created}}</p>
{{- if .Transforms}}
<p class="meta">Transforms: {{range $k, $v := .Transforms}}{{$k}}={{$v}} {{end}}</p>
{{- end}}
{{- if .Warnings}}
<h2>Warnings</h2>
<ul>{{range .Warnings}}<li class="warn">{{.}}</li>{{end}}</ul>
{{- end}}
<h2>Summary</h2>
<table id="summary">
<tbody>
{{- range .Rows}}
<tr><th>{{.Label}}</th><td>{{.Value}}</td></tr>
{{- end}}
</tbody>
</table>
{{- if .Figures}}
<h2>Charts</h2>
<div class="charts">
{{- range .Figures}}
<figure><figcaption>{{.Caption}}</figcaption>{{.SVG}}<p class="note">{{.Note}}</p></figure>
{{- end}}
</div>
{{- end}}
</body>
</html>
`))

// writeHTML writes the summary as a self-contained page in the report's
// style: the summary table, rate over time and length histograms as
// inline SVG.
func (s *workloadSummary) writeHTML(w io.Writer, spec string, transforms map[string]any, warnings []string, skipped int) error {
	var figs []figure
	if s.requests > 0 && s.span > 0 {
		width, rates := s.rateSeries(240)
		figs = append(figs, figure{Caption: "Arrival rate over time (requests/s)",
			Note: fmt.Sprintf("Mean over bins of %d s; the dashed line is the mean per whole second from 0 through the last arrival.", width),
			SVG:  svgBars(rates, float64(width), "offset (s)", "requests/s", s.meanRate())})
	}
	for _, h := range []struct {
		name string
		h    *lengths
	}{{"Prompt tokens", s.prompt}, {"Output tokens", s.output}} {
		if h.h.count() == 0 {
			continue
		}
		width, counts := h.h.bins(40)
		vals := make([]float64, len(counts))
		for i, c := range counts {
			vals[i] = float64(c)
		}
		figs = append(figs, figure{Caption: h.name + " (requests per bin)",
			Note: fmt.Sprintf("Bins of %d tokens. %s.", width, h.h),
			SVG:  svgBars(vals, float64(width), strings.ToLower(h.name), "requests", 0)})
	}
	return inspectPage.Execute(w, map[string]any{
		"Spec": spec, "Created": time.Now().UTC().Format(time.RFC3339), "Transforms": transforms,
		"Warnings": warnings, "Rows": s.rows(spec, skipped), "Figures": figs,
	})
}
