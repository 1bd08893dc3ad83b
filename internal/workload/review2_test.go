package workload

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// An assistant message that calls tools may omit its content, as in
// OpenAI's chat API.
func TestMessagesAssistantToolCallWithoutContent(t *testing.T) {
	p := write(t, "p.jsonl", `{"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}]}`+"\n")
	src, err := Open(p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, src); len(got) != 1 || len(got[0].Messages) == 0 {
		t.Fatalf("got %+v", got)
	}
}

// AIPerf messages rows are checked the same way, with file and line.
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

// Leading blank lines do not hide a .jsonl's format.
func TestDetectSkipsLeadingBlankLines(t *testing.T) {
	p := write(t, "t.jsonl", "\n  \n\r\n"+`{"timestamp":0,"input_length":10,"output_length":2,"hash_ids":[1]}`+"\n")
	src, err := Open(p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(*Mooncake); !ok {
		t.Fatalf("opened as %T, want *Mooncake", src)
	}
	if got := drain(t, src); len(got) != 1 || got[0].PromptTokens != 10 {
		t.Errorf("got %+v", got)
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
