package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/tracestest"
)

func TestMooncakeTrace(t *testing.T) {
	src, err := Open("mooncake:"+filepath.Join(tracestest.Dir(t), tracestest.Mooncake), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.(io.Closer).Close()
	reqs := drain(t, src)
	if len(reqs) != 12031 {
		t.Fatalf("%d requests, want 12031", len(reqs))
	}
	// first line: {"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0, ..., 13]}
	if r := reqs[0]; r.Offset != 0 || r.PromptTokens != 6758 || r.OutputTokens != 500 || len(r.HashIDs) != 14 || r.HashIDs[13] != 13 || r.BlockTokens != 512 || !r.Stream {
		t.Errorf("first request %+v", r)
	}
	shared := 0
	seen := map[uint32]bool{}
	for i, r := range reqs {
		if want := (r.PromptTokens + 511) / 512; len(r.HashIDs) != want {
			t.Fatalf("request %d: %d hash ids for %d tokens, want %d", i, len(r.HashIDs), r.PromptTokens, want)
		}
		if i > 0 && r.Offset < reqs[i-1].Offset {
			t.Fatalf("request %d goes back in time", i)
		}
		if r.Offset%time.Millisecond != 0 {
			t.Fatalf("request %d: offset %v is not whole milliseconds", i, r.Offset)
		}
		for _, id := range r.HashIDs {
			if seen[id] {
				shared++
			}
			seen[id] = true
		}
	}
	// timestamps are milliseconds: the trace spans about an hour
	if span := reqs[len(reqs)-1].Offset; span < 50*time.Minute || span > 70*time.Minute {
		t.Errorf("span %v; Mooncake timestamps are ms and the trace is about an hour", span)
	}
	// README: about a third of all prefix blocks repeat an earlier block
	if frac := float64(shared) / float64(shared+len(seen)); frac < 0.25 || frac > 0.45 {
		t.Errorf("%.2f of blocks repeat; the README says about a third", frac)
	}
	if w := warnings(src); len(w) != 0 {
		t.Errorf("unexpected warnings %v", w)
	}
	// hash ids are cut from shared slabs: they must not alias
	a, b := reqs[0].HashIDs, reqs[1].HashIDs
	_ = append(a, 999)
	if b[0] != 0 || b[1] != 14 {
		t.Errorf("appending to one request's ids changed the next one's: %v", b)
	}
}

func TestMooncakeAIPerfRows(t *testing.T) {
	p := write(t, "a.jsonl", strings.Join([]string{
		`{"session_id":"s1","timestamp":1000,"input_length":600,"output_length":4,"hash_ids":[1,2]}`,
		`{"session_id":"s2","timestamp":1500.25,"text_input":"Hello \"world\"","output_length":3}`,
		`{"session_id":"s1","delay":2500.5,"input_length":900,"hash_ids":[1,2],"extra":{"nested":[1,{"x":null}]}}`,
		`  {"session_id": "s2", "messages": [{"role": "user", "content": "hi"}], "timestamp": null, "delay": 10}  `,
	}, "\n"))
	src, err := OpenMooncake(p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, src)
	want := []Request{
		{Index: 0, Offset: time.Second, Endpoint: "chat", Stream: true, PromptTokens: 600, OutputTokens: 4, HashIDs: []uint32{1, 2}, BlockTokens: 512, Session: "s1", History: true},
		{Index: 1, Offset: 1500250 * time.Microsecond, Endpoint: "chat", Stream: true, OutputTokens: 3, Prompt: `Hello "world"`, Session: "s2", History: true},
		// turn 0's partial block (id 2) stands again unchanged: the same text
		// repeated, so a delta row, sent with history as AIPerf sends it
		{Index: 2, Offset: 1500250 * time.Microsecond, Endpoint: "chat", Stream: true, PromptTokens: 900, HashIDs: []uint32{1, 2}, BlockTokens: 512, Session: "s1", Turn: 1, Delay: 2500500 * time.Microsecond, History: true, Convention: ConventionDelta},
		{Index: 3, Offset: 1500250 * time.Microsecond, Endpoint: "chat", Stream: true, Messages: []byte(`[{"role": "user", "content": "hi"}]`), Session: "s2", Turn: 1, Delay: 10 * time.Millisecond, History: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	// ceil(900/512) = 2 ids: fine; a mismatch is warned about
	p = write(t, "b.jsonl", `{"timestamp":0,"input_length":5000,"output_length":1,"hash_ids":[1]}`+"\n")
	src, _ = OpenMooncake(p, OpenOptions{})
	drain(t, src)
	if w := src.Warnings(); len(w) != 1 || !strings.Contains(w[0], "ceil(input_length/512)") {
		t.Errorf("warnings %v", w)
	}
}

// AIPerf messages rows are checked as prompt files' messages are (a
// message without content is an error, bar an assistant's tool call), and
// the error names the file and line.
func TestMooncakeMessagesWithoutContent(t *testing.T) {
	p := write(t, "m.jsonl", `{"timestamp":0,"messages":[{"role":"user","content":"hi"}]}`+"\n"+`{"timestamp":1,"messages":[{"role":"user"}]}`+"\n")
	src, err := OpenMooncake(p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(); err != nil {
		t.Fatal(err)
	}
	_, err = src.Next()
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "without content") {
		t.Errorf("err = %v, want file, line 2 and the reason", err)
	}
}

func TestMooncakeMalformedLines(t *testing.T) {
	for line, reason := range map[string]string{
		`{"timestamp":"x","input_length":1}`:                        "timestamp",
		`{"timestamp":-1,"input_length":1}`:                         "timestamp",
		`{"timestamp":1,"input_length":1.5}`:                        "whole number",
		`{"timestamp":1,"input_length":-4}`:                         "input_length",
		`{"timestamp":1,"output_length":4}`:                         "exactly one of",
		`{"timestamp":1,"input_length":4,"text_input":"x"}`:         "exactly one of",
		`{"timestamp":1,"input_length":4,"hash_ids":[1,-2]}`:        "hash_ids",
		`{"timestamp":1,"input_length":4,"hash_ids":[4294967296]}`:  "hash_ids",
		`{"timestamp":1,"input_length":4,"hash_ids":[1,]}`:          "hash_ids",
		`{"timestamp":1,"text_input":"x","hash_ids":[1]}`:           "hash_ids needs input_length",
		`{"timestamp":1,"input_length":4} trailing`:                 "text after",
		`{"timestamp":1,"input_length":4`:                           "end of line",
		`{"timestamp":1,"messages":{"role":"user"}}`:                "array",
		`{"timestamp":1,"input_length":4,"x":tru}`:                  "unexpected",
		`{"timestamp":1,"input_length":4,"x":"bad \q escape"}`:      "escape",
		`["not an object"]`:                                         "want '{'",
		`{"timestamp":1e999,"input_length":4}`:                      "out of range",
		`{"timestamp":1,"input_length":4,"session_id":7}`:           "session_id",
		`{"timestamp":1,"input_length":99999999999999999999999999}`: "whole number",
	} {
		p := write(t, "m.jsonl", `{"timestamp":0,"input_length":10,"output_length":2}`+"\n\n"+line+"\n")
		src, _ := OpenMooncake(p, OpenOptions{})
		if _, err := src.Next(); err != nil {
			t.Fatal(err)
		}
		_, err := src.Next()
		if err == nil || !strings.Contains(err.Error(), "mooncake "+p+" line 3: ") || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: err = %v, want line 3 and %q", line, err, reason)
		}
		src.Close()
		skip, _ := OpenMooncake(p, OpenOptions{SkipInvalid: true})
		if got := drain(t, skip); len(got) != 1 || skip.Skipped() != 1 {
			t.Errorf("%s: skip-invalid gave %d requests, %d skipped", line, len(got), skip.Skipped())
		}
	}
}

// A huge timestamp is out of range, not negative.
func TestMooncakeTimestampOutOfRange(t *testing.T) {
	for line, reason := range map[string]string{
		`{"timestamp":1e300,"input_length":1,"output_length":1}`:                           "timestamp 1e+300: out of range",
		`{"timestamp":-1,"input_length":1,"output_length":1}`:                              "timestamp -1: want milliseconds >= 0",
		`{"timestamp":0,"delay":1e20,"input_length":1,"output_length":1,"session_id":"s"}`: "delay 1e+20: out of range",
	} {
		src, err := OpenMooncake(write(t, "m.jsonl", line+"\n"), OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Next(); err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: err = %v, want %q", line, err, reason)
		}
		src.Close()
	}
}

func TestMooncakeSecondsWarning(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 2000; i++ {
		sb.WriteString(`{"timestamp":` + strconv.Itoa(i) + `,"input_length":10,"output_length":2,"hash_ids":[1]}` + "\n")
	}
	var early []string
	src, _ := OpenMooncake(write(t, "s.jsonl", sb.String()), OpenOptions{Warn: func(m string) { early = append(early, m) }})
	for range 1000 {
		if _, err := src.Next(); err != nil {
			t.Fatal(err)
		}
	}
	// said after 1,000 rows, before the replay has gone far
	if len(early) != 1 || !strings.Contains(early[0], "look like seconds") || !strings.Contains(early[0], "--time-scale 1000") {
		t.Fatalf("early warnings %v", early)
	}
	drain(t, src)
	if w := src.Warnings(); len(w) != 1 || !strings.Contains(w[0], "seconds") {
		t.Fatalf("warnings %v", w)
	}
}

// The seconds warning shows the span with 4 significant digits, not a
// float's full binary expansion.
func TestMooncakeSecondsWarningFormat(t *testing.T) {
	var sb strings.Builder
	for i := range 1000 {
		sb.WriteString(`{"timestamp":` + strconv.FormatFloat(float64(i)*0.0447, 'f', 4, 64) + `,"input_length":10,"output_length":2}` + "\n")
	}
	src, err := OpenMooncake(write(t, "s.jsonl", sb.String()), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	drain(t, src)
	w := src.Warnings()
	if len(w) != 1 || !regexp.MustCompile(`within 44\.\d\d timestamp units`).MatchString(w[0]) {
		t.Errorf("warnings %q", w)
	}
}

func TestMooncakeUnitCheck(t *testing.T) {
	gen := func(n int, ts func(i int) string) string {
		var sb strings.Builder
		for i := range n {
			sb.WriteString(`{"timestamp":` + ts(i) + `,"input_length":10,"output_length":2}` + "\n")
		}
		return sb.String()
	}
	for name, c := range map[string]struct {
		data string
		warn bool
	}{
		// 12,000 requests an hour, in milliseconds: the public trace's shape
		"milliseconds": {gen(500, func(i int) string { return strconv.Itoa(i * 300) }), false},
		// the same in seconds with fractions: 3.3 req/s read as 3,300
		"seconds": {gen(500, func(i int) string { return strconv.FormatFloat(float64(i)*0.3+0.001, 'f', 3, 64) }), true},
		// fractional seconds at a modest 30 req/s read as ms (0.03 per ms)
		"fractional": {gen(500, func(i int) string { return strconv.FormatFloat(float64(i)*33.3+0.5, 'f', 1, 64) }), true},
		// sub-millisecond precision at a normal rate is fine
		"sub-ms": {gen(500, func(i int) string { return strconv.FormatFloat(float64(i)*250.5+0.25, 'f', 2, 64) }), false},
		// too few rows to judge, all at one instant: a batch, not a unit mistake
		"few":     {gen(50, func(i int) string { return strconv.FormatFloat(float64(i)*0.01, 'f', 2, 64) }), false},
		"instant": {gen(500, func(int) string { return "0" }), false},
	} {
		src, _ := OpenMooncake(write(t, "u.jsonl", c.data), OpenOptions{})
		drain(t, src)
		if got := len(src.Warnings()) > 0; got != c.warn {
			t.Errorf("%s: warned %v, want %v (%v)", name, got, c.warn, src.Warnings())
		}
	}
}

// referenceRow decodes a line with encoding/json into the row the scanner
// should produce; ok is false when encoding/json rejects the line.
func referenceRow(line []byte) (row mooncakeRow, ok bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(line, &m) != nil {
		return row, false
	}
	whole := func(raw json.RawMessage) (int64, bool) {
		var f float64
		if json.Unmarshal(raw, &f) != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, false
		}
		return int64(f), true
	}
	for k, raw := range m {
		if string(raw) == "null" {
			continue
		}
		var err error
		ok := true
		switch k {
		case "timestamp":
			err, row.hasTS = json.Unmarshal(raw, &row.ts), true
		case "delay":
			err, row.hasDelay = json.Unmarshal(raw, &row.delay), true
		case "input_length":
			row.in, ok = whole(raw)
			row.hasIn = true
		case "output_length":
			row.out, ok = whole(raw)
			row.hasOut = true
		case "hash_ids":
			var fs []json.RawMessage
			err = json.Unmarshal(raw, &fs)
			for _, f := range fs {
				v, isWhole := whole(f)
				ok = ok && isWhole && v >= 0 && v <= math.MaxUint32
				row.ids = append(row.ids, uint32(v))
			}
		case "session_id":
			err = json.Unmarshal(raw, &row.session)
		case "text_input":
			err, row.hasText = json.Unmarshal(raw, &row.text), true
		case "messages":
			if raw[0] != '[' {
				return row, false
			}
			if _, err := checkMessages(raw); err != nil {
				return row, false
			}
			row.messages = raw
		}
		if err != nil || !ok {
			return row, false
		}
	}
	return row, row.check() == nil
}

// FuzzMooncake checks the reflection-free scanner against encoding/json:
// a line is accepted by one exactly when it is by the other, with the same
// values.
func FuzzMooncake(f *testing.F) {
	f.Add([]byte(`{"timestamp":0,"input_length":10,"output_length":2,"hash_ids":[1]}`))
	f.Add([]byte(`{"timestamp": 1.5e3, "input_length": 12.0, "hash_ids": [], "x": [true, false, null, {"a": "\u00e9"}]}`))
	f.Add([]byte(`{"session_id":"a\"b","delay":3,"text_input":"caf\xc3\xa9 \xff"}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":"hi"}],"timestamp":null,"timestamp":4}`))
	f.Add([]byte(`{"input_length":1,"input_length":null}`))
	f.Add([]byte(`{"time\u0073tamp":1,"input_length":-0}`))
	// the hash-id fast path's edges: leading zeros, 2^32, fractions, exponents, 11 digits
	f.Add([]byte(`{"input_length":5,"hash_ids":[0,01]}`))
	f.Add([]byte(`{"input_length":5,"hash_ids":[4294967295, 4294967296]}`))
	f.Add([]byte(`{"input_length":5,"hash_ids":[1.0,2e1,3E0,-0,12345678901]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.ContainsAny(line, "\n") || bytes.Count(line, []byte("[")) > 1000 || bytes.Count(line, []byte("{")) > 1000 {
			return
		}
		var got mooncakeRow
		m := &Mooncake{}
		err := m.parse(line, &got)
		if err == nil {
			err = got.check()
		}
		want, ok := referenceRow(line)
		if ok != (err == nil) {
			t.Fatalf("%q: scanner err %v, encoding/json accepts: %v", line, err, ok)
		}
		if !ok {
			return
		}
		if len(got.ids) == 0 {
			got.ids = nil
		}
		if len(want.ids) == 0 {
			want.ids = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nscanner      %+v\nencoding/json %+v", line, got, want)
		}
	})
}

// FuzzMooncakeFile reads whole files, valid or not, with and without
// SkipInvalid: never a panic, never a negative length or offset.
func FuzzMooncakeFile(f *testing.F) {
	f.Add([]byte(`{"timestamp":0,"input_length":10,"output_length":2,"hash_ids":[1]}` + "\n"))
	f.Add([]byte("{\"timestamp\":1.5}\n\n{]\r\n{\"input_length\":3}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := write(t, "f.jsonl", string(data))
		for _, skip := range []bool{false, true} {
			src, err := OpenMooncake(p, OpenOptions{SkipInvalid: skip})
			if err != nil {
				t.Fatal(err)
			}
			for {
				r, err := src.Next()
				if err != nil {
					if !skip || errors.Is(err, io.EOF) {
						break
					}
					t.Fatalf("skip-invalid still failed: %v", err)
				}
				if r.PromptTokens < 0 || r.OutputTokens < 0 || r.Offset < 0 || r.Delay < 0 {
					t.Fatalf("negative fields accepted: %+v", r)
				}
			}
			src.Close()
		}
	})
}
