package inspect

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// row is one line of the summary, shared by the terminal and the page.
type row struct{ Label, Value string }

// rows is the summary as label/value lines.
func (s *Summary) rows() []row {
	out := []row{{"workload", s.spec}, {"requests", fmt.Sprintf("%d (%d streamed)", s.requests, s.streams)}}
	if s.skipped > 0 {
		out = append(out, row{"skipped", fmt.Sprintf("%d invalid lines (--skip-invalid)", s.skipped)})
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
	if fine, coarse := s.capReuse.Fine(), s.capReuse.Coarse(); fine.Requests > 0 {
		at := "mixed block sizes"
		if fine.BlockChars > 0 {
			at = fmt.Sprintf("%d-character blocks", fine.BlockChars)
		}
		out = append(out, row{"captured reuse", fmt.Sprintf("%.1f%% of prompt characters (%.1f%% of tokens) in blocks an earlier request had, at the capture's %s; %.1f%% (%.1f%%) at Mooncake's %d characters (512 tokens)",
			100*fine.CharShare(), 100*fine.TokenShare(), at, 100*coarse.CharShare(), 100*coarse.TokenShare(), coarse.BlockChars)})
	}
	if s.reuseErr != nil {
		out = append(out, row{"", fmt.Sprintf("captured reuse not counted past a record: %v", s.reuseErr)})
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
func (s *Summary) conventionCounts() string {
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

// Print writes the summary as label/value lines, the values aligned.
func (s *Summary) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range s.rows() {
		fmt.Fprintf(tw, "%s\t%s\n", r.Label, r.Value)
	}
	return tw.Flush()
}

// countsString lists counts by key, most frequent first, at most eight.
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
