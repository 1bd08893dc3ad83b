package workload

import (
	"strings"
	"testing"
)

// A recorded output length of 0 is sent as max_tokens 1 (never left to the
// server, which would generate freely), counted in a warning.
func TestZeroOutputLengthSentAsOne(t *testing.T) {
	moon := write(t, "m.jsonl", `{"timestamp":0,"input_length":10,"output_length":0}`+"\n"+
		`{"timestamp":5,"input_length":10,"output_length":7}`+"\n"+`{"timestamp":6,"input_length":10}`+"\n")
	az := write(t, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,0\n2023-11-16 18:15:47.0000000,10,3\n")
	for _, tc := range []struct {
		path string
		want []int
	}{{moon, []int{1, 7, 0}}, {az, []int{1, 3}}} {
		src, err := Open(tc.path, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		reqs := drain(t, src)
		var got []int
		for _, r := range reqs {
			got = append(got, r.OutputTokens)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: outputs %v, want %v", tc.path, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: outputs %v, want %v (absent output_length stays 0: left to the server)", tc.path, got, tc.want)
			}
		}
		if w := warnings(src); len(w) != 1 || !strings.Contains(w[0], "1 rows record") || !strings.Contains(w[0], "max_tokens 1") {
			t.Errorf("%s: warnings %q", tc.path, w)
		}
		closeSource(src)
	}
}
