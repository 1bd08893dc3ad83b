package openai

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// decodeSplits feeds in to a fresh Decoder in the pieces given by cuts
// (ascending offsets), draining Next after every Feed and Flush at the end.
func decodeSplits(in []byte, cuts []int, maxLine int) ([]Event, int) {
	d := Decoder{MaxLine: maxLine}
	var out []Event
	prev := 0
	drain := func() {
		for {
			ev, ok := d.Next()
			if !ok {
				return
			}
			out = append(out, cloneEvent(ev))
		}
	}
	for _, c := range append(cuts, len(in)) {
		if c < prev || c > len(in) {
			continue
		}
		d.Feed(in[prev:c])
		prev = c
		drain()
	}
	for {
		ev, ok := d.Flush()
		if !ok {
			break
		}
		out = append(out, cloneEvent(ev))
	}
	return out, d.Overflows
}

// cloneEvent copies Data so a test can compare events after later Feeds.
// A nil Data stays nil so that "no data field" and "empty data" differ.
func cloneEvent(ev Event) Event {
	if ev.Data != nil {
		ev.Data = append([]byte{}, ev.Data...)
	}
	return ev
}

func decodeWhole(in []byte) []Event {
	evs, _ := decodeSplits(in, nil, 0)
	return evs
}

func byteByByte(n int) []int {
	cuts := make([]int, n)
	for i := range cuts {
		cuts[i] = i
	}
	return cuts
}

func randomCuts(r *rand.Rand, n int) []int {
	var cuts []int
	for i := 0; i < n; i++ {
		if r.IntN(4) == 0 {
			cuts = append(cuts, i)
		}
	}
	return cuts
}

func ev(event, data, id string) Event {
	e := Event{Event: event, ID: id}
	if data != "\x00" {
		e.Data = []byte(data)
	}
	return e
}

func TestDecoderEvents(t *testing.T) {
	const noData = "\x00"
	tests := []struct {
		name string
		in   string
		want []Event
	}{
		{"lf", "data: a\n\ndata: b\n\n", []Event{ev("", "a", ""), ev("", "b", "")}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []Event{ev("", "a", ""), ev("", "b", "")}},
		{"cr", "data: a\r\rdata: b\r\r", []Event{ev("", "a", ""), ev("", "b", "")}},
		{"mixed endings", "data: a\r\n\ndata: b\r\r\nevent: e\n\n", []Event{ev("", "a", ""), ev("", "b", ""), ev("e", noData, "")}},
		{"comments ignored", ": keep-alive\n\n:another\ndata: x\n: mid\n\n", []Event{ev("", "x", "")}},
		{"multi-line data", "data: line1\ndata: line2\ndata:\ndata:  two spaces\n\n",
			[]Event{ev("", "line1\nline2\n\n two spaces", "")}},
		{"event and id", "event: response.output_text.delta\nid: 7\ndata: {}\n\n", []Event{ev("response.output_text.delta", "{}", "7")}},
		{"no space after colon", "data:{\"a\":1}\n\n", []Event{ev("", `{"a":1}`, "")}},
		{"field without colon", "data\n\n", []Event{ev("", "", "")}},
		{"unknown fields ignored", "foo: bar\ndata: x\n\n", []Event{ev("", "x", "")}},
		{"retry alone is an event", "retry: 100\n\n", []Event{ev("", noData, "")}},
		{"blank lines between events", "\n\n\ndata: a\n\n\n\n", []Event{ev("", "a", "")}},
		{"event without data after one with data", "data: a\n\nevent: ping\n\n", []Event{ev("", "a", ""), ev("ping", noData, "")}},
		{"unterminated final event flushed", "data: a\n\ndata: partial", []Event{ev("", "a", ""), ev("", "partial", "")}},
		{"unterminated after one newline", "data: a\n", []Event{ev("", "a", "")}},
		{"unterminated after cr", "data: a\r", []Event{ev("", "a", "")}},
		{"only newlines", "\n\r\n\r", nil},
		{"done sentinel", "data: [DONE]\n\n", []Event{ev("", "[DONE]", "")}},
		{"colon in value kept", "data: a: b\n\n", []Event{ev("", "a: b", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			whole := decodeWhole(in)
			if !reflect.DeepEqual(whole, tt.want) {
				t.Fatalf("whole input:\n got %q\nwant %q", whole, tt.want)
			}
			bb, _ := decodeSplits(in, byteByByte(len(in)), 0)
			if !reflect.DeepEqual(bb, tt.want) {
				t.Fatalf("byte by byte:\n got %q\nwant %q", bb, tt.want)
			}
			// Every single split point.
			for i := 0; i <= len(in); i++ {
				got, _ := decodeSplits(in, []int{i}, 0)
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("split at %d:\n got %q\nwant %q", i, got, tt.want)
				}
			}
		})
	}
}

// chatStream is a realistic vLLM chat stream with continuous usage.
func chatStream(n int, eol string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, ": connected%s%s", eol, eol)
	fmt.Fprintf(&b, `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}%s%s`, eol, eol)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok%d "},"finish_reason":null}],"usage":{"prompt_tokens":9,"completion_tokens":%d,"total_tokens":%d}}%s%s`, i, i+1, i+10, eol, eol)
	}
	fmt.Fprintf(&b, `data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}%s%s`, eol, eol)
	fmt.Fprintf(&b, "data: [DONE]%s%s", eol, eol)
	return b.Bytes()
}

func TestDecoderEveryFragmentation(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		in := chatStream(20, eol)
		want := decodeWhole(in)
		if len(want) != 23 {
			t.Fatalf("eol %q: got %d events, want 23", eol, len(want))
		}
		if got, _ := decodeSplits(in, byteByByte(len(in)), 0); !reflect.DeepEqual(got, want) {
			t.Fatalf("eol %q: byte-by-byte events differ", eol)
		}
		for trial := 0; trial < 200; trial++ {
			if got, _ := decodeSplits(in, randomCuts(r, len(in)), 0); !reflect.DeepEqual(got, want) {
				t.Fatalf("eol %q trial %d: random split events differ", eol, trial)
			}
		}
	}
}

func TestDecoderSameEventsAcrossLineEndings(t *testing.T) {
	lf := decodeWhole(chatStream(5, "\n"))
	for _, eol := range []string{"\r\n", "\r"} {
		if got := decodeWhole(chatStream(5, eol)); !reflect.DeepEqual(got, lf) {
			t.Errorf("eol %q gives different events than LF", eol)
		}
	}
}

func TestDecoderOverlongLinesDroppedWhole(t *testing.T) {
	long := strings.Repeat("x", 100)
	in := []byte("data: short\n\ndata: " + long + "\ndata: after\n\n")
	want := []Event{ev("", "short", ""), ev("", "after", "")}
	got, over := decodeSplits(in, nil, 50)
	if !reflect.DeepEqual(got, want) || over != 1 {
		t.Fatalf("whole: got %q overflows %d", got, over)
	}
	got, over = decodeSplits(in, byteByByte(len(in)), 50)
	if !reflect.DeepEqual(got, want) || over != 1 {
		t.Fatalf("byte by byte: got %q overflows %d", got, over)
	}
	// An overlong unterminated tail is dropped by Flush too.
	got, over = decodeSplits([]byte("data: "+long), nil, 50)
	if len(got) != 0 || over != 1 {
		t.Fatalf("unterminated: got %q overflows %d", got, over)
	}
}

// Many short data lines whose joined data outgrows MaxLine do not
// accumulate: the event is dropped (counted once), in any fragmentation,
// and the events around it survive.
func TestDecoderOverlongMultiLineDataDropped(t *testing.T) {
	var in strings.Builder
	in.WriteString("data: before\n\nevent: big\n")
	for i := 0; i < 20; i++ {
		in.WriteString("data: 0123456789\n") // each line well under the cap
	}
	in.WriteString("\ndata: a\ndata: b\n\n")
	want := []Event{ev("", "before", ""), ev("", "a\nb", "")}
	for name, cuts := range map[string][]int{"whole": nil, "byte by byte": byteByByte(in.Len())} {
		got, over := decodeSplits([]byte(in.String()), cuts, 50)
		if !reflect.DeepEqual(got, want) || over != 1 {
			t.Fatalf("%s: got %q overflows %d", name, got, over)
		}
	}
	// Unterminated at the end of the stream: Flush drops it too.
	tail := "data: 0123456789\ndata: 0123456789\ndata: 0123456789\ndata: 0123456789\ndata: 0123456789"
	if got, over := decodeSplits([]byte(tail), nil, 50); len(got) != 0 || over != 1 {
		t.Fatalf("unterminated: got %q overflows %d", got, over)
	}
	// At the cap exactly, the event is kept.
	exact := "data: 0123456789\ndata: 0123456789\n\n" // 21 bytes joined
	if got, over := decodeSplits([]byte(exact), nil, 21); len(got) != 1 || over != 0 {
		t.Fatalf("at the cap: got %q overflows %d", got, over)
	}
	// The default cap bounds memory against a stream of small data lines.
	var d Decoder
	line := []byte("data: " + strings.Repeat("z", 1000) + "\n")
	for i := 0; i < 3000; i++ { // 3 MB of data in one event
		d.Feed(line)
		if _, ok := d.Next(); ok {
			t.Fatal("an event before its blank line")
		}
	}
	if cap(d.data) > 1<<20+2048 || d.Overflows != 1 {
		t.Fatalf("held %d bytes of data, %d overflows", cap(d.data), d.Overflows)
	}
}

func TestDecoderDataStaysValidAcrossNext(t *testing.T) {
	var d Decoder
	d.Feed([]byte("data: first\n\ndata: second\n\n"))
	a, _ := d.Next()
	b, _ := d.Next()
	if string(a.Data) != "first" || string(b.Data) != "second" {
		t.Fatalf("got %q, %q", a.Data, b.Data)
	}
}

func TestDecoderBufferCompaction(t *testing.T) {
	// Many events through one decoder must not grow its buffer without bound.
	var d Decoder
	frame := []byte("data: " + strings.Repeat("y", 1000) + "\n\n")
	for i := 0; i < 5000; i++ {
		d.Feed(frame[:500])
		d.Feed(frame[500:])
		n := 0
		for {
			if _, ok := d.Next(); !ok {
				break
			}
			n++
		}
		if n != 1 {
			t.Fatalf("iteration %d: %d events", i, n)
		}
	}
	if cap(d.buf) > 64<<10 {
		t.Fatalf("buffer grew to %d bytes", cap(d.buf))
	}
}

// FuzzDecoder checks that splitting the input arbitrarily never changes the
// events (nor the overflow count), and that nothing panics. The first byte
// of the split spec seeds the cut positions.
func FuzzDecoder(f *testing.F) {
	f.Add(chatStream(3, "\n"), uint64(1), 0)
	f.Add(chatStream(2, "\r\n"), uint64(2), 16)
	f.Add(chatStream(2, "\r"), uint64(3), 0)
	f.Add([]byte("data: a\r\n\r\n: c\rdata: b\n\ndata"), uint64(4), 4)
	f.Add([]byte("event: x\n\ndata: y\n\nevent: z\n\n"), uint64(5), 0)
	f.Add([]byte("data: a\n\ndata: partial"), uint64(6), 3)
	f.Add([]byte("\r\n\r\r\n\n"), uint64(7), 1)
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, maxLine int) {
		if maxLine < 0 || maxLine > 1<<16 {
			maxLine = 0
		}
		want, wantOver := decodeSplits(in, nil, maxLine)
		r := rand.New(rand.NewPCG(seed, 7))
		got, over := decodeSplits(in, randomCuts(r, len(in)), maxLine)
		if !reflect.DeepEqual(got, want) || over != wantOver {
			t.Fatalf("random split changed events:\n got %q (%d)\nwant %q (%d)", got, over, want, wantOver)
		}
		if len(in) < 4096 {
			got, over = decodeSplits(in, byteByByte(len(in)), maxLine)
			if !reflect.DeepEqual(got, want) || over != wantOver {
				t.Fatalf("byte-by-byte changed events:\n got %q (%d)\nwant %q (%d)", got, over, want, wantOver)
			}
		}
	})
}

// BenchmarkDecoder feeds a 128-event chat stream one event per Feed, as an
// upstream flushing every token delivers it.
func BenchmarkDecoder(b *testing.B) {
	ev := []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok\"}}]}\n\n")
	b.ReportAllocs()
	b.SetBytes(int64(128 * len(ev)))
	for b.Loop() {
		var d Decoder
		for range 128 {
			d.Feed(ev)
			for {
				if _, ok := d.Next(); !ok {
					break
				}
			}
		}
	}
}
