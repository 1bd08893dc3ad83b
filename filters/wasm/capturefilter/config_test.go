package capturefilter

import (
	"bytes"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
)

func TestParseConfig(t *testing.T) {
	full := DefaultConfig()
	full.CollectorCluster, full.CollectorAuthority = "outbound|9092||c.ns.svc.cluster.local", "c.ns:9092"
	full.Sample, full.Content, full.FlushMS, full.MaxBatch, full.MaxQueue = 0.25, capture.ContentFull, 500, 64, 1024
	full.SessionHeader, full.UpstreamHeader, full.TimeoutMS, full.MaxParseBytes, full.Gzip = "x-session", "x-ep", 2000, 1<<20, true

	withCluster := DefaultConfig()
	withCluster.CollectorCluster = "c"
	noneContent := withCluster
	noneContent.Content = capture.ContentNone

	for _, tc := range []struct {
		name, json string
		want       Config
		errs       []string // substrings of the joined error; none: no error
	}{
		{"minimal", `{"collector_cluster":"c"}`, withCluster, nil},
		{"every key", `{"collector_cluster":"outbound|9092||c.ns.svc.cluster.local","collector_authority":"c.ns:9092",
			"sample":0.25,"content":"full","flush_ms":500,"max_batch":64,"max_queue":1024,"session_header":"X-Session",
			"upstream_header":"X-EP","timeout_ms":2000,"max_parse_bytes":1048576,"gzip":true}`, full, nil},
		{"empty", ``, DefaultConfig(), []string{"collector_cluster is required"}},
		{"not an object", `["c"]`, func() Config { c := DefaultConfig(); c.Content = capture.ContentNone; return c }(),
			[]string{"not a JSON object"}},
		{"typo in content falls back to none", `{"collector_cluster":"c","content":"hashd"}`, noneContent,
			[]string{`content: "hashd"`}},
		{"every problem at once, defaults kept", `{"collector_cluster":"c","sampel":1,"sample":2,"flush_ms":"fast","max_batch":0,
			"max_queue":1e9,"timeout_ms":1,"max_parse_bytes":10,"session_header":"bad header","gzip":"yes","content":7}`, noneContent,
			[]string{`unknown key "sampel"`, "sample: want a number from 0 to 1", "flush_ms: want an integer", "max_batch: want an integer",
				"max_queue: want an integer", "timeout_ms: want an integer", "max_parse_bytes: want an integer",
				`session_header: "bad header" is not a header name`, "gzip:", "content: want a string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.json))
			if got != tc.want {
				t.Errorf("config\n got %+v\nwant %+v", got, tc.want)
			}
			if len(tc.errs) == 0 {
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.errs)
			}
			for _, s := range tc.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
		})
	}
}

func TestQueue(t *testing.T) {
	q := newQueue(3, 10)
	line := func(s string) []byte { return []byte(s) }
	for _, tc := range []struct {
		push string
		ok   bool
	}{{"aaa", true}, {"bbb", true}, {"cccc", true}, {"d", false}} { // a fourth line passes maxLines
		if got := q.push(line(tc.push)); got != tc.ok {
			t.Errorf("push %q = %v, want %v", tc.push, got, tc.ok)
		}
	}
	if q.push(line("e")) {
		t.Error("push past the line bound succeeded")
	}
	body, n := q.take(nil, 2, 100)
	if string(body) != "aaabbb" || n != 2 || q.len() != 1 || q.bytes != 4 {
		t.Errorf("take 2 = %q, %d; left %d lines, %d bytes", body, n, q.len(), q.bytes)
	}
	if !q.push(line("ffffff")) || q.push(line("g")) { // 10 bytes: full by bytes
		t.Error("byte bound not applied")
	}
	// A batch byte bound smaller than the first line still takes it.
	body, n = q.take(body[:0], 10, 2)
	if string(body) != "cccc" || n != 1 {
		t.Errorf("take under a small byte bound = %q, %d", body, n)
	}
	body, n = q.take(body[:0], 10, 100)
	if string(body) != "ffffff" || n != 1 || q.len() != 0 || q.bytes != 0 {
		t.Errorf("take rest = %q, %d; left %d, %d bytes", body, n, q.len(), q.bytes)
	}
	// Compaction keeps the backing array from growing with the total.
	q = newQueue(4, 1<<20)
	for i := range 1000 {
		if !q.push(bytes.Repeat([]byte{'x'}, i%7+1)) {
			t.Fatalf("push %d refused", i)
		}
		if i%3 == 2 {
			q.take(nil, 3, 1<<20)
		}
	}
	if cap(q.lines) > 16 {
		t.Errorf("backing array grew to %d lines for a queue of 4", cap(q.lines))
	}
}
