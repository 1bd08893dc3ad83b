package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/workload"
)

// workloadSummary is what `replay inspect` reports of a source.
type workloadSummary struct {
	requests            int
	span                time.Duration
	perSecond, perMin   map[int64]int
	prompt, output      *hdrhistogram.Histogram
	blocks, reusedBlock int
	sessions            map[string]bool
	models              map[string]int
	statuses            map[int]int
	streams             int
}

func newSummary() *workloadSummary {
	return &workloadSummary{
		perSecond: map[int64]int{}, perMin: map[int64]int{},
		prompt: hdrhistogram.New(0, 10_000_000, 3), output: hdrhistogram.New(0, 10_000_000, 3),
		sessions: map[string]bool{}, models: map[string]int{}, statuses: map[int]int{},
	}
}

func (s *workloadSummary) add(r *workload.Request, seen map[uint32]struct{}) {
	s.requests++
	s.span = max(s.span, r.Offset)
	s.perSecond[int64(r.Offset/time.Second)]++
	s.perMin[int64(r.Offset/time.Minute)]++
	_ = s.prompt.RecordValue(int64(r.PromptTokens))
	_ = s.output.RecordValue(int64(r.OutputTokens))
	for _, id := range r.HashIDs {
		s.blocks++
		if _, ok := seen[id]; ok {
			s.reusedBlock++
		} else {
			seen[id] = struct{}{}
		}
	}
	if r.Session != "" {
		s.sessions[r.Session] = true
	}
	model := r.Model
	if model == "" {
		model = "(unset)"
	}
	s.models[model]++
	if r.Stream {
		s.streams++
	}
	if r.Recorded != nil {
		s.statuses[r.Recorded.Status]++
	}
}

func peak(m map[int64]int) int {
	p := 0
	for _, n := range m {
		p = max(p, n)
	}
	return p
}

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay inspect", flag.ContinueOnError)
	skip := fs.Bool("skip-invalid", false, "skip malformed lines (counted) instead of stopping")
	if err := parse(fs, args, stdout, "replay inspect SPEC  (a capture directory, mooncake:PATH, azure:PATH, synthetic:...)", os.Getenv); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.UsageError("replay inspect takes one workload spec, got %d arguments", fs.NArg())
	}
	spec := fs.Arg(0)
	src, err := workload.Open(spec, workload.OpenOptions{SkipInvalid: *skip})
	if err != nil {
		return err
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	s := newSummary()
	seen := map[uint32]struct{}{}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		s.add(&r, seen)
	}
	if w, ok := src.(interface{ Warnings() []string }); ok {
		for _, msg := range w.Warnings() {
			fmt.Fprintf(stderr, "warning: %s\n", msg)
		}
	}
	if k, ok := src.(interface{ Skipped() int }); ok && k.Skipped() > 0 {
		fmt.Fprintf(stderr, "skipped %d invalid lines\n", k.Skipped())
	}
	return s.print(stdout, spec)
}

func (s *workloadSummary) print(w io.Writer, spec string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "workload\t%s\n", spec)
	fmt.Fprintf(tw, "requests\t%d (%d streamed)\n", s.requests, s.streams)
	if s.requests == 0 {
		return tw.Flush()
	}
	mean := 0.0
	if s.span > 0 {
		mean = float64(s.requests) / s.span.Seconds()
	}
	fmt.Fprintf(tw, "span\t%v\n", s.span.Round(time.Millisecond))
	fmt.Fprintf(tw, "rate\tmean %.2f req/s, peak %d in one second, peak %d in one minute\n", mean, peak(s.perSecond), peak(s.perMin))
	for _, h := range []struct {
		name string
		h    *hdrhistogram.Histogram
	}{{"prompt tokens", s.prompt}, {"output tokens", s.output}} {
		fmt.Fprintf(tw, "%s\tmean %.0f  p50 %d  p90 %d  p99 %d  max %d\n", h.name, h.h.Mean(),
			h.h.ValueAtQuantile(50), h.h.ValueAtQuantile(90), h.h.ValueAtQuantile(99), h.h.Max())
	}
	if s.blocks > 0 {
		fmt.Fprintf(tw, "prefix blocks\t%d, %.1f%% repeat an earlier block\n", s.blocks, 100*float64(s.reusedBlock)/float64(s.blocks))
	}
	if len(s.sessions) > 0 {
		fmt.Fprintf(tw, "sessions\t%d\n", len(s.sessions))
	}
	fmt.Fprintf(tw, "models\t%s\n", countsString(s.models))
	if len(s.statuses) > 0 {
		st := map[string]int{}
		for code, n := range s.statuses {
			st[fmt.Sprint(code)] = n
		}
		fmt.Fprintf(tw, "status\t%s\n", countsString(st))
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
	out := ""
	for i, e := range l {
		if i == 8 {
			out += fmt.Sprintf(", ... %d more", len(l)-8)
			break
		}
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %d", e.k, e.n)
	}
	return out
}
