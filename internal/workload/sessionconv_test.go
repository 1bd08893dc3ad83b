package workload

import (
	"fmt"
	"strings"
	"testing"
)

// Issue 16, defect 3: a session's convention is told from its previous row
// while reading, and kept for the rest of the session. Each case is one
// session's rows (session_id added) and the convention of each row.
func TestMooncakeSessionConventions(t *testing.T) {
	const (
		u = ConventionUndecided
		d = ConventionDelta
		w = ConventionWhole
	)
	for _, tc := range []struct {
		name string
		rows []string
		want []SessionConvention
	}{
		{"ids extend the previous whole blocks, the partial last block re-hashed", []string{
			`"input_length":1300,"output_length":100,"hash_ids":[1,2,3]`,
			`"input_length":1900,"output_length":80,"hash_ids":[1,2,4,5]`,
			`"input_length":2600,"output_length":80,"hash_ids":[1,2,4,5,6,7]`,
		}, []SessionConvention{u, w, w}},
		{"delta turns sharing a system prompt: whole blocks shared, too short for the context", []string{
			`"input_length":1100,"output_length":100,"hash_ids":[1,2,3]`,
			`"input_length":1090,"output_length":100,"hash_ids":[1,2,4]`,
		}, []SessionConvention{u, d}},
		{"the previous partial block unchanged: the same text repeated, not extended", []string{
			`"input_length":600,"output_length":4,"hash_ids":[1,2]`,
			`"input_length":900,"output_length":4,"hash_ids":[1,2]`,
		}, []SessionConvention{u, d}},
		{"ids decide over lengths: a long delta turn with new ids", []string{
			`"input_length":1024,"output_length":10,"hash_ids":[1,2]`,
			`"input_length":1500,"output_length":10,"hash_ids":[7,8,9]`,
		}, []SessionConvention{u, d}},
		{"ids shorter than the previous whole blocks", []string{
			`"input_length":1024,"output_length":10,"hash_ids":[1,2]`,
			`"input_length":1100,"output_length":10,"hash_ids":[1]`,
		}, []SessionConvention{u, d}},
		{"a previous prompt under one block: the lengths decide", []string{
			`"input_length":300,"output_length":100,"hash_ids":[1]`,
			`"input_length":450,"output_length":10,"hash_ids":[2]`,
		}, []SessionConvention{u, w}},
		{"lengths: prompt and reply covered", []string{
			`"input_length":100,"output_length":50`,
			`"input_length":160,"output_length":50`,
			`"input_length":20,"output_length":50`, // a cut context stays whole-context
		}, []SessionConvention{u, w, w}},
		{"lengths: within the 2% tolerance", []string{
			`"input_length":1000,"output_length":200`,
			`"input_length":1176,"output_length":5`,
		}, []SessionConvention{u, w}},
		{"lengths: just past the tolerance", []string{
			`"input_length":1000,"output_length":200`,
			`"input_length":1175,"output_length":5`,
			`"input_length":5000,"output_length":5`, // a long delta turn stays delta
		}, []SessionConvention{u, d, d}},
		{"no output_length: undecided until a reply length is known", []string{
			`"input_length":500`,
			`"input_length":600,"output_length":40`,
			`"input_length":660,"output_length":40`,
		}, []SessionConvention{u, u, w}},
		{"no output_length, shorter: delta", []string{
			`"input_length":500`,
			`"input_length":300`,
		}, []SessionConvention{u, d}},
		{"verbatim rows cannot be told", []string{
			`"text_input":"hello"`,
			`"input_length":600,"output_length":40`,
			`"messages":[{"role":"user","content":"hi"}]`,
			`"input_length":900,"output_length":40`,
		}, []SessionConvention{u, u, u, u}},
		{"single turn", []string{`"input_length":600,"output_length":40,"hash_ids":[1,2]`}, []SessionConvention{u}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sb strings.Builder
			for i, r := range tc.rows {
				// another session's rows in between must not disturb it
				fmt.Fprintf(&sb, "{\"session_id\":\"s\",\"timestamp\":%d,%s}\n", i, r)
				fmt.Fprintf(&sb, "{\"session_id\":\"o\",\"timestamp\":%d,\"input_length\":%d,\"output_length\":1}\n", i, 10000-i)
			}
			src, err := OpenMooncake(write(t, "s.jsonl", sb.String()), OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []SessionConvention
			for _, r := range drain(t, src) {
				if r.Session != "s" {
					continue
				}
				if r.History != (r.Convention != ConventionWhole) || r.Turn != len(got) {
					t.Errorf("row %d: History %v, Turn %d with convention %s", len(got), r.History, r.Turn, r.Convention)
				}
				got = append(got, r.Convention)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("conventions %v, want %v", got, tc.want)
			}
		})
	}
}

// Rows without a session are not session rows: no history, no convention;
// the public Mooncake trace (no session ids) reads as before.
func TestMooncakeRowsWithoutSession(t *testing.T) {
	src, err := OpenMooncake(write(t, "n.jsonl", `{"timestamp":0,"input_length":600,"output_length":4,"hash_ids":[1,2]}
{"timestamp":1,"input_length":1300,"output_length":4,"hash_ids":[1,2,3]}
`), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range drain(t, src) {
		if r.History || r.Convention != ConventionUndecided || r.Session != "" || r.Turn != 0 {
			t.Errorf("row %d: %+v", r.Index, r)
		}
	}
}
