// Package inspect summarises a workload — a capture or a trace — for
// `replay inspect`: rate over time, length distributions, prefix reuse,
// sessions, models and production's answers, printed as aligned lines or
// written as a self-contained HTML page drawn with the report's charts.
// The command maps its flags onto an opened, transformed workload.Source;
// this package reads it and renders what it holds.
package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/tokenizer"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Options configure Read.
type Options struct {
	// Spec names the workload: the summary's first line and the page's
	// title.
	Spec string
	// Tokenizer measures verbatim prompts that carry no token count: a
	// tiktoken encoding (cl100k_base, ...) or hf:PATH to a tokenizer.json,
	// opened at the first such prompt (see CheckTokenizer). Empty: such
	// prompts stay uncounted.
	Tokenizer string
}

// Summary is what a workload holds. Requests are read as a stream; memory
// follows the distinct seconds, prefix blocks and sessions the source
// holds, plus 16 bytes a request for exact length statistics up to
// exactLengthsMax requests (then a fixed-size histogram).
type Summary struct {
	spec              string
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
	// capReuse counts a capture's prefix reuse from its records, at the
	// capture's own hash block and at Mooncake's coarse one (2,048
	// characters, about 512 tokens); capSeen keeps each record counted
	// once when --loop repeats it. reuseErr is the first record whose ids
	// could not be counted.
	capReuse   *capture.ReuseCounter
	capSeen    map[string]struct{}
	reuseErr   error
	sessions   map[string]int // turns per session
	inSessions int
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
	// skipped is how many invalid lines the source skipped; warnings are
	// the source's own, read once it ended (the page lists them).
	skipped  int
	warnings []string
}

func newSummary(spec string) *Summary {
	return &Summary{
		spec:      spec,
		perSecond: map[int64]int{}, perMinute: map[int64]int{},
		prompt: newLengths(), output: newLengths(),
		seen: map[uint64]struct{}{}, sessions: map[string]int{}, conventions: map[string]workload.SessionConvention{},
		capReuse: capture.NewReuseCounter(0), capSeen: map[string]struct{}{},
		models: map[string]int{}, endpoints: map[string]int{}, outcomes: map[string]int{},
	}
}

// Read summarises src, reading it to its end (the caller closes it). It
// stops with ctx's error when ctx ends, and with the source's first error.
// A tokenizer that fails does not stop it: the prompts it should have
// measured stay uncounted, and CountErr says why.
func Read(ctx context.Context, src workload.Source, opts Options) (*Summary, error) {
	s := newSummary(opts.Spec)
	if opts.Tokenizer != "" {
		s.count, s.countBy = lazyCounter(opts.Tokenizer), opts.Tokenizer
	}
	for {
		// Checking every request would cost more than the read itself on
		// a large trace; every 4096 still stops within milliseconds.
		if s.requests%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		s.add(&r)
	}
	if w, ok := src.(interface{ Warnings() []string }); ok {
		s.warnings = w.Warnings()
	}
	if sk, ok := src.(interface{ Skipped() int }); ok {
		s.skipped = sk.Skipped()
	}
	return s, nil
}

// CountErr is the tokenizer's first failure (nil when every verbatim
// prompt it was given was measured): the prompts after it stay uncounted.
func (s *Summary) CountErr() error { return s.countErr }

func (s *Summary) add(r *workload.Request) {
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
	if rec := r.Recorded; rec != nil && s.reuseErr == nil {
		if _, again := s.capSeen[rec.ID]; !again {
			s.capSeen[rec.ID] = struct{}{}
			s.reuseErr = s.capReuse.Add(rec)
		}
	}
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
func (s *Summary) countVerbatim(r *workload.Request) (int, bool) {
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
func (s *Summary) addBlocks(r *workload.Request) {
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
// passed CheckTokenizer.
func lazyCounter(spec string) func(string) (int, error) {
	var tok tokenizer.Tokenizer
	var err error
	opened := false
	return func(text string) (int, error) {
		if !opened {
			opened = true
			if tok, err = tokenizer.Open(spec, tokenizer.Options{}); err != nil {
				err = fmt.Errorf("opening tokenizer %s: %w", spec, err)
			}
		}
		if err != nil {
			return 0, err
		}
		return tok.Count(text)
	}
}

// CheckTokenizer rejects a tokenizer Read cannot use, before the workload
// is read: "server" (inspecting has no target), an unknown encoding, a
// tokenizer.json that does not load. An encoding is only named here, and
// loaded when a verbatim prompt needs it.
func CheckTokenizer(spec string) error {
	switch {
	case spec == "server":
		return errors.New("needs a target; inspect takes an embedded tokenizer (cl100k_base, o200k_base, hf:PATH)")
	case strings.HasPrefix(spec, "hf:") || strings.HasSuffix(spec, ".json") || strings.HasPrefix(spec, "gguf:") || strings.HasSuffix(spec, ".gguf"):
		_, err := tokenizer.Open(spec, tokenizer.Options{})
		return err
	case !slices.Contains(tokenizer.TiktokenEncodings, spec):
		return fmt.Errorf("unknown tokenizer: want a tiktoken encoding (%s), hf:PATH to a tokenizer.json or PATH.gguf", strings.Join(tokenizer.TiktokenEncodings, ", "))
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
func (s *Summary) buckets(unit time.Duration) int64 { return int64(s.span/unit) + 1 }

// meanRate is requests per whole second: the mean of the per-second counts
// over every second from 0 through the last arrival's, empty ones
// included, so never above the busiest second's count (0 without a span).
// Issue 16: requests ÷ span put the mean of a span under a second above
// its peak (10 requests in 0.5 s: a mean of 20 and a peak of 10), and of a
// steady trace slightly above it (the span ends at the last arrival, one
// gap short of the last second).
func (s *Summary) meanRate() float64 {
	if s.span <= 0 {
		return 0
	}
	return float64(s.requests) / float64(s.buckets(time.Second))
}

// meanPerMinute is requests per whole minute, as meanRate per second.
func (s *Summary) meanPerMinute() float64 {
	return float64(s.requests) / float64(s.buckets(time.Minute))
}
