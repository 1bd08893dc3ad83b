package workload

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEveryReaderWarnsOfBackwardsTimestampsAlike: the same trace, rows at
// 0, 2, 1.5, 3 and 2.75 s, in each timestamped format. Every reader sends
// the rows in file order and warns in the same words: at once for the
// first backwards row (its line and its timestamp as the file writes it),
// and with the count at the end (issue 16: Mooncake said nothing, BurstGPT
// only counted, Azure showed a reformatted timestamp).
func TestEveryReaderWarnsOfBackwardsTimestampsAlike(t *testing.T) {
	for _, tc := range []struct {
		kind, name, data string
		open             func(string, OpenOptions) (Source, error)
		firstLine        int    // line of the first backwards row
		prevLine         int    // line of the row it goes back from
		text             string // its timestamp as written
	}{
		{
			kind: "azure", name: "a.csv",
			data: "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00+00:00,1,1\n2024-05-10 00:00:02+00:00,1,1\n" +
				"2024-05-10 00:00:01.5+00:00,1,1\n2024-05-10 00:00:03+00:00,1,1\n2024-05-10 00:00:02.75+00:00,1,1\n",
			open:      func(p string, o OpenOptions) (Source, error) { return OpenAzure(p, o) },
			firstLine: 4, prevLine: 3, text: "2024-05-10 00:00:01.5+00:00",
		},
		{
			kind: "burstgpt", name: "b.csv",
			data:      "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,ChatGPT,1,1,2,API log\n2,ChatGPT,1,1,2,API log\n1.50,ChatGPT,1,1,2,API log\n3,ChatGPT,1,1,2,API log\n2.75,ChatGPT,1,1,2,API log\n",
			open:      func(p string, o OpenOptions) (Source, error) { return OpenBurstGPT(p, o) },
			firstLine: 4, prevLine: 3, text: "1.50",
		},
		{
			kind: "mooncake", name: "m.jsonl",
			data: `{"timestamp":0,"input_length":1,"output_length":1}` + "\n" + `{"timestamp":2000,"input_length":1,"output_length":1}` + "\n" +
				`{"timestamp":1.5e3,"input_length":1,"output_length":1}` + "\n" + `{"timestamp":3000,"input_length":1,"output_length":1}` + "\n" +
				`{"timestamp":2750,"input_length":1,"output_length":1}` + "\n",
			open:      func(p string, o OpenOptions) (Source, error) { return OpenMooncake(p, o) },
			firstLine: 3, prevLine: 2, text: "1.5e3",
		},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			p := write(t, tc.name, tc.data)
			var early []string
			src, err := tc.open(p, OpenOptions{Warn: func(msg string) { early = append(early, msg) }})
			if err != nil {
				t.Fatal(err)
			}
			reqs := drain(t, src)
			var got []time.Duration
			for _, r := range reqs {
				got = append(got, r.Offset)
			}
			// File order, each row at its own offset.
			if want := []time.Duration{0, 2 * time.Second, 1500 * time.Millisecond, 3 * time.Second, 2750 * time.Millisecond}; !slices.Equal(got, want) {
				t.Errorf("offsets %v, want %v", got, want)
			}
			first := fmt.Sprintf("%s %s line %d: timestamp %s is 500ms before line %d's; rows are sent in file order, so it goes out late (a summary follows at the end)",
				tc.kind, p, tc.firstLine, tc.text, tc.prevLine)
			summary := fmt.Sprintf("%s %s: timestamps go backwards 2 times", tc.kind, p)
			where := fmt.Sprintf(", first at line %d (%s, 500ms before an earlier row): rows are sent in file order", tc.firstLine, tc.text)
			w := warnings(src)
			if len(w) != 2 || w[0] != first || !strings.HasPrefix(w[1], summary) || !strings.Contains(w[1], where) ||
				!strings.Contains(w[1], "order wait, not client lag") {
				t.Errorf("warnings:\n%s\nwant:\n%s\n%s…%s…", strings.Join(w, "\n"), first, summary, where)
			}
			if !slices.Equal(early, w) {
				t.Errorf("Warn saw %v, Warnings %v", early, w)
			}
		})
	}
}

// TestEmptyWorkloadFileSaysSo: an empty file (or one of blank lines) is
// named as empty, not as a file whose format cannot be told (issue 16).
func TestEmptyWorkloadFileSaysSo(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"empty.jsonl": "", "blank.csv": "\n  \r\n\n"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(p, OpenOptions{})
		if err == nil || err.Error() != "workload "+p+" is empty" {
			t.Errorf("%s: %v, want \"workload %s is empty\"", name, err, p)
		}
	}
}
