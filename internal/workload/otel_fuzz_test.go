package workload

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// addLines seeds f with every line of the test files (each file whole
// too, when whole is set).
func addLines(f *testing.F, whole bool, paths ...string) {
	f.Helper()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if whole {
			f.Add(b)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f.Add(append([]byte(nil), sc.Bytes()...))
		}
	}
}

// errorNamesLine matches the way every reader error starts: the kind, the
// file and the line.
var errorNamesLine = regexp.MustCompile(`^(otel|weka) \S+ line \d+: `)

// checkSource reads a whole source and checks what any reader promises:
// no panic; an error names its file and line; with SkipInvalid, no error
// at all (malformed input is counted); indices count from 0; offsets,
// delays and lengths are not negative; offsets never go back when the
// reader did not warn; recorded messages are valid JSON.
func checkSource(t *testing.T, open func(skip bool) (Source, error)) {
	t.Helper()
	for _, skip := range []bool{false, true} {
		src, err := open(skip)
		if err != nil {
			if !strings.Contains(err.Error(), "f.jsonl") {
				t.Fatalf("open: %v", err)
			}
			continue
		}
		var last Request
		for i := 0; ; i++ {
			r, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if skip {
					if !strings.Contains(err.Error(), "line ") {
						t.Fatalf("skip-invalid still failed without naming a line: %v", err)
					}
				} else if !errorNamesLine.MatchString(err.Error()) {
					t.Fatalf("error does not name file and line: %v", err)
				}
				break
			}
			if r.Index != i || r.Offset < 0 || r.Delay < 0 || r.PromptTokens < 0 || r.OutputTokens < 0 || r.Turn < 0 {
				t.Fatalf("request %d: %+v", i, r)
			}
			if len(r.Messages) > 0 && !json.Valid(r.Messages) {
				t.Fatalf("request %d: messages %q are not JSON", i, r.Messages)
			}
			if i > 0 && r.Offset < last.Offset && len(warnings(src)) == 0 && !warnedSoFar(src) {
				t.Fatalf("request %d at %v after %v without a warning", i, r.Offset, last.Offset)
			}
			last = r
		}
		closeSource(src)
	}
}

// warnedSoFar reports whether a source counted a backwards start it will
// warn about at the end.
func warnedSoFar(src Source) bool {
	switch s := src.(type) {
	case *OTel:
		return s.backwards > 0
	case *WEKA:
		return s.backwards > 0
	}
	return false
}

// FuzzOTel reads arbitrary files as OTel spans: span lines, session
// lines and OTLP documents, seeded with the test files whole and line by
// line.
func FuzzOTel(f *testing.F) {
	addLines(f, true, filepath.Join("testdata", "otel", "spans.jsonl"), filepath.Join("testdata", "otel", "sessions.jsonl"))
	otlp, err := os.ReadFile(filepath.Join("testdata", "otel", "otlp.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(otlp)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"a","spanId":"b","startTimeUnixNano":"1","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"5"}}]}]}]}]}`))
	f.Add([]byte(`{"trace_id":1,"start_time":"2025-01-01 00:00:00","attributes":{"gen_ai.usage.input_tokens":"3","gen_ai.usage.output_tokens":2.0,"gen_ai.input.messages":"[{\"role\":\"tool\",\"result\":{\"a\":1}}]"}}`))
	f.Add([]byte(`{"spans":[1,{"span_id":"x","parent_span_id":"x","start_time":"2025-01-01T00:00:00+02:00","attributes":{"gen_ai.operation.name":"invoke_agent"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		p := filepath.Join(t.TempDir(), "f.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		checkSource(t, func(skip bool) (Source, error) { return OpenOTel(p, OpenOptions{SkipInvalid: skip}) })
	})
}

// FuzzOTelMessages normalises arbitrary gen_ai.*.messages values: no
// panic, valid JSON out, and a round trip: normalising the output again
// gives the same messages (the OpenAI shape is a fixed point).
func FuzzOTelMessages(f *testing.F) {
	for _, s := range []string{
		`[{"role":"user","parts":[{"type":"text","content":"hi"},{"type":"tool_call","id":"c","name":"f","arguments":{"x":1}}]}]`,
		`"[{\"role\":\"tool\",\"parts\":[{\"type\":\"tool_call_response\",\"id\":\"c\",\"result\":[1,2]}]}]"`,
		`[{"role":"assistant","content":null,"tool_calls":[{"id":"1","function":{"name":"g","arguments":"{}"}}]}]`,
		`[{"content":[{"type":"image_url","image_url":{"url":"x"}}]},{"role":"tool","id":7,"name":"n"}]`,
		`[{"parts":[{"type":"blob"},3,{"type":"text","text":null}]}]`, `""`, `null`, `[]`, `"not json"`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := parseOTelMessages(raw)
		if err != nil {
			return
		}
		out := appendChatMessages(nil, m.msgs)
		if !json.Valid(out) {
			t.Fatalf("%q → %q: not JSON", raw, out)
		}
		again, err := parseOTelMessages(out)
		if err != nil {
			t.Fatalf("%q → %q: does not read back: %v", raw, out, err)
		}
		if back := appendChatMessages(nil, again.msgs); !bytes.Equal(back, out) {
			t.Fatalf("%q → %q → %q: not a fixed point", raw, out, back)
		}
	})
}
