package replaycli

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/inspect/inspecttest"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

// wholeContextTrace is sessions × turns Mooncake-style rows: each row's
// input_length is the whole context (the previous prompt, its reply and
// 300 new tokens) and its hash_ids grow turn by turn, whole blocks keeping
// their ids and the partial last block re-hashed once filled, as
// Mooncake's block hashes do.
func wholeContextTrace(sessions, turns int) string {
	var sb strings.Builder
	next := uint32(1 << 20) // ids of partial blocks
	for j := range turns {
		for k := range sessions {
			in := 700 + j*(20+300)
			ids := make([]string, 0, in/512+1)
			for b := range in / 512 {
				ids = append(ids, fmt.Sprint(k*1000+b))
			}
			if in%512 != 0 {
				ids = append(ids, fmt.Sprint(next))
				next++
			}
			fmt.Fprintf(&sb, `{"session_id":"w%d","timestamp":%d,"input_length":%d,"output_length":20,"hash_ids":[%s]}`+"\n",
				k, 10*k+20*j, in, strings.Join(ids, ","))
		}
	}
	return sb.String()
}

// deltaTrace is sessions × turns AIPerf-style rows: each row's
// input_length is the turn's new text only, with ids of its own.
func deltaTrace(sessions, turns int) string {
	var sb strings.Builder
	for j := range turns {
		for k := range sessions {
			fmt.Fprintf(&sb, `{"session_id":"d%d","timestamp":%d,"input_length":%d,"output_length":20,"hash_ids":[%d]}`+"\n",
				k, 10*k+20*j, 200-3*j, 5000+k*10+j)
		}
	}
	return sb.String()
}

// Issue 16, defect 3: replayed against the simulator, a whole-context
// trace's prompts are sent exactly as long as the trace says, first and
// later turns (before: later turns carried the history on top, 2.44× the
// trace's tokens), while an AIPerf-style delta trace keeps sending the
// conversation before each later turn; inspect names the convention.
func TestSessionConventionsReplayedAndInspected(t *testing.T) {
	url := fastSim(t)
	for _, tc := range []struct {
		name, trace     string
		requests, exact int64
		sessionRows     string
	}{
		{"whole-context", wholeContextTrace(6, 4), 24, 24, "6 sessions whole-context (.*), 0 delta (.*), 0 single-turn or undecided (.*)"},
		// only first turns are exact: later ones carry the history
		{"delta", deltaTrace(5, 3), 15, 5, "0 sessions whole-context (.*), 5 delta (.*), 0 single-turn or undecided (.*)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tracestest.Write(t, "t.jsonl", tc.trace)
			dir := t.TempDir()
			var out, errb bytes.Buffer
			if err := Run(context.Background(), []string{"run", "--target", url, "--workload", "mooncake:" + path,
				"--profile", "trace", "--output-dir", dir, "--quiet"}, &out, &errb); err != nil {
				t.Fatalf("%v\n%s", err, errb.String())
			}
			m := reporttest.Read(t, dir).Benchmarks[0].Metrics
			p := m.PromptTokenMismatch
			if m.Requests.Successful != tc.requests || p == nil || p.Compared != tc.requests || p.Exact != tc.exact {
				t.Fatalf("%d requests succeeded, prompt tokens as requested: %+v, want %d of %d exact", m.Requests.Successful, p, tc.exact, tc.requests)
			}
			insp, _, err := inspect(t, "mooncake:"+path)
			if err != nil {
				t.Fatal(err)
			}
			if got := inspecttest.Field(t, insp, "session rows"); !regexp.MustCompile("^" + tc.sessionRows + "$").MatchString(got) {
				t.Errorf("session rows %q, want %q", got, tc.sessionRows)
			}
		})
	}
}

// Session rows that cannot be told apart (verbatim prompts) and single
// turns are counted apart; traces without sessions, like the public
// Mooncake trace, and captures print no convention line.
func TestInspectSessionRowsUndecided(t *testing.T) {
	path := tracestest.Write(t, "t.jsonl", `{"session_id":"a","text_input":"hello","output_length":3}
{"session_id":"a","text_input":"again","output_length":3}
{"session_id":"b","input_length":100,"output_length":3}
{"session_id":"c","input_length":100,"output_length":30}
{"session_id":"c","input_length":140,"output_length":3}
`)
	out, _, err := inspect(t, "mooncake:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if got := inspecttest.Field(t, out, "session rows"); !strings.HasPrefix(got, "1 sessions whole-context") || !strings.Contains(got, ", 0 delta") || !strings.Contains(got, ", 2 single-turn or undecided") {
		t.Errorf("session rows %q", got)
	}
	out, _, err = inspect(t, "mooncake:"+filepath.Join(tracestest.Dir(t), tracestest.Mooncake))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "session rows") || inspecttest.Field(t, out, "sessions") != "none (every request stands alone)" {
		t.Errorf("the public trace has no sessions:\n%s", out)
	}
}
