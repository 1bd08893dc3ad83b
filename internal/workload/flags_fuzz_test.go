package workload

import (
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
)

// FuzzTransformFlags feeds the transform flags' parsers — --window,
// --shard, --model-map and --filter-status terms — arbitrary text: none
// may panic, and what they accept must be usable.
func FuzzTransformFlags(f *testing.F) {
	for _, s := range []string{"10m:20m", ":30", "600:", "1h30m:2h", "0/4", "3/4", " 1 / 2 ", "a=b", "*=m,x=y", "200", "5xx", "!error", "aborted",
		"9223372036.854775:", "1e300:", "-1:", "4/4", "=", "1xx", "!999", "NaN:", "0x10:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if start, end, err := ParseWindow(s); err == nil {
			if start < 0 || end < 0 || (end > 0 && end <= start) {
				t.Errorf("ParseWindow(%q) = %v, %v", s, start, end)
			}
		} else if !strings.HasPrefix(err.Error(), "Window ") {
			t.Errorf("ParseWindow(%q): error %q does not name the field", s, err)
		}
		if i, n, err := ParseShard(s); err == nil {
			if n < 1 || i < 0 || i >= n {
				t.Errorf("ParseShard(%q) = %d/%d", s, i, n)
			}
		} else if !strings.HasPrefix(err.Error(), "Shard ") {
			t.Errorf("ParseShard(%q): error %q does not name the field", s, err)
		}
		if m, err := ParseModelMap([]string{s}); err == nil {
			for from, to := range m {
				if from == "" || to == "" || strings.TrimSpace(from) != from || strings.TrimSpace(to) != to {
					t.Errorf("ParseModelMap(%q): %q -> %q", s, from, to)
				}
			}
		}
		term, err := parseStatusTerm(s)
		if err != nil {
			return
		}
		// An accepted term must match without panicking, on any record.
		for _, rec := range []capture.Record{{Status: 200}, {Status: 503, Error: "x"}, {Aborted: true}} {
			term.match(&Request{Recorded: &rec})
		}
		if !term.class && term.word == "" && (term.code < 0 || term.code > 999) {
			t.Errorf("parseStatusTerm(%q) = %+v", s, term)
		}
	})
}
