package engine

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"

	"github.com/reprise-llm/reprise/internal/workload"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tick is a clock that advances 1 µs per reading, so every read of a
// stream gets a distinct offset.
func tick() func() time.Time {
	t := time.Unix(0, 0)
	return func() time.Time { t = t.Add(time.Microsecond); return t }
}

func readAll(r io.Reader) Result {
	c := &client{now: tick(), origin: time.Unix(0, 0)}
	var res Result
	c.readStream(context.Background(), r, &res)
	return res
}

// FuzzReadStream checks the stream reader's invariants on arbitrary bytes,
// and that what it counts does not depend on how the bytes were split into
// reads (only when they were read).
func FuzzReadStream(f *testing.F) {
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n"), 3)
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"completion_tokens\":3}}\r\n\r\n"+
		"data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"completion_tokens\":5}}\r\n\r\n"), 17)
	f.Add([]byte("data: {\"choices\":[{\"text\":\"x\",\"finish_reason\":\"length\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1}}\n\n"), 1)
	f.Add([]byte("data: {\"error\":{\"message\":\"boom\"}}\n\n"), 0)
	f.Add([]byte(": ping\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"unterminated\"}}]}"), 5)
	f.Add([]byte("data: {not json}\n\nevent: x\ndata: \n\n"), 2)
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\"}}]}}]}\n\ndata: [DONE]\n\n"), 9)
	f.Fuzz(func(t *testing.T, stream []byte, split int) {
		whole := readAll(strings.NewReader(string(stream)))
		bytewise := readAll(iotest.OneByteReader(strings.NewReader(string(stream))))
		for _, r := range []Result{whole, bytewise} {
			if len(r.Chunks) != len(r.ChunkTokens) {
				t.Fatalf("%d chunks, %d token counts", len(r.Chunks), len(r.ChunkTokens))
			}
			if !slices.IsSorted(r.Chunks) {
				t.Fatalf("chunk offsets go back: %v", r.Chunks)
			}
			for _, n := range r.ChunkTokens {
				if n < 1 {
					t.Fatalf("a content event with %d tokens", n)
				}
			}
			if r.Events < len(r.Chunks) || (r.Events > 0 && r.FirstEvent == 0) || (len(r.Chunks) > 0 && r.FirstEvent > r.FirstToken) {
				t.Fatalf("%d events from %v, %d chunks from %v", r.Events, r.FirstEvent, len(r.Chunks), r.FirstToken)
			}
			if len(r.Chunks) > 0 && (r.FirstToken != r.Chunks[0] || r.LastToken != r.Chunks[len(r.Chunks)-1] || r.End < r.LastToken) {
				t.Fatalf("first/last/end %v %v %v, chunks %v", r.FirstToken, r.LastToken, r.End, r.Chunks)
			}
			if !r.TokensFromUsage {
				sum := 0
				for _, n := range r.ChunkTokens {
					sum += n
				}
				if r.OutputTokens != sum {
					t.Fatalf("output tokens %d, chunks sum to %d", r.OutputTokens, sum)
				}
			}
		}
		if split < 0 {
			split = -split
		}
		split %= len(stream) + 1
		halves := readAll(io.MultiReader(strings.NewReader(string(stream[:split])), strings.NewReader(string(stream[split:]))))
		for _, r := range []Result{bytewise, halves} {
			if !slices.Equal(r.ChunkTokens, whole.ChunkTokens) || r.Events != whole.Events || r.OutputTokens != whole.OutputTokens || r.PromptTokens != whole.PromptTokens ||
				r.CachedTokens != whole.CachedTokens || r.FinishReason != whole.FinishReason || r.Err != whole.Err {
				t.Fatalf("depends on read boundaries:\nwhole %+v\nsplit %+v", whole, r)
			}
		}
	})
}

// streamBody is a 128-event chat stream as OpenAI and vLLM send it.
func streamBody() string {
	var sb strings.Builder
	for range 128 {
		sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}` + "\n\n")
	}
	sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":128}}` + "\n\n")
	sb.WriteString("data: [DONE]\n\n")
	return sb.String()
}

// BenchmarkReadStream measures the client's per-event cost on a 128-event
// stream read in one piece (the parsing, not the network).
func BenchmarkReadStream(b *testing.B) {
	stream := streamBody()
	c := &client{now: time.Now, origin: time.Now()}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		res := Result{Chunks: make([]time.Duration, 0, 128), ChunkTokens: make([]int, 0, 128)}
		c.readStream(context.Background(), strings.NewReader(stream), &res)
		if len(res.Chunks) != 128 {
			b.Fatal(len(res.Chunks))
		}
	}
}

// BenchmarkSend measures whole requests over loopback: body, HTTP/1.1
// keep-alive round trip, and the 128-event stream, from parallel workers
// (the server shares the machine, so this is a lower bound).
func BenchmarkSend(b *testing.B) {
	stream := streamBody()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, stream)
	}))
	defer srv.Close()
	cfg := (&Config{Target: srv.URL, Profile: ProfileThroughput, MaxConcurrency: 64}).withDefaults()
	c, err := newClient(&cfg, bodies{}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	defer c.hc.CloseIdleConnections()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := workload.Request{Stream: true, OutputTokens: 128}
		for pb.Next() {
			if r := c.send(context.Background(), &req, nil, 0); !r.OK() || len(r.Chunks) != 128 {
				b.Fatalf("%+v", r)
			}
		}
	})
}
