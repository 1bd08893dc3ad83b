package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

func newUsageProxy(t *testing.T, upstream string, ensure bool, out RecordWriter) (*Proxy, *httptest.Server) {
	t.Helper()
	p, err := New(Config{Upstream: upstream, EnsureUsage: ensure}, out, capture.NewHasher([]byte("k"), 64), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func postPath(t *testing.T, url, path, body string) []byte {
	t.Helper()
	resp, err := testClient.Post(url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var createdRE = regexp.MustCompile(`"created":\d+`)

// The client sees byte for byte what it would without --ensure-usage,
// against the simulator (which honours include_usage as vLLM does), while
// the record gets the server's usage instead of an estimate.
func TestEnsureUsageAgainstSimIsInvisibleToClient(t *testing.T) {
	requests := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":6,"ignore_eos":true,"messages":[{"role":"user","content":"count to six"}]}`},
		{"/v1/completions", `{"model":"m","stream":true,"max_tokens":4,"ignore_eos":true,"prompt":"once upon a time"}`},
		{"/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":3,"ignore_eos":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}`},
	}
	for attempt := 0; ; attempt++ {
		// Two simulators with the same seed answer request i alike; their
		// "created" second can differ if one starts just after a second
		// boundary: then try again.
		var sims [2]string
		for i := range sims {
			sims[i], _ = simtest.Start(t, func(c *sim.Config) {
				c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq, c.Jitter = time.Millisecond, 0, time.Millisecond, 0, 0
			})
		}
		withOut, plainOut := &memWriter{}, &memWriter{}
		pw, with := newUsageProxy(t, sims[0], true, withOut)
		pp, plain := newUsageProxy(t, sims[1], false, plainOut)
		retry := false
		for _, rq := range requests {
			a, b := postPath(t, with.URL, rq.path, rq.body), postPath(t, plain.URL, rq.path, rq.body)
			pw.Wait() // records in request order
			pp.Wait()
			if bytes.Equal(a, b) {
				continue
			}
			if ca, cb := createdRE.Find(a), createdRE.Find(b); !bytes.Equal(ca, cb) && attempt < 3 {
				retry = true
				break
			}
			t.Fatalf("%s: client bytes differ with --ensure-usage:\n%s\nwithout:\n%s", rq.path, a, b)
		}
		pw.Wait()
		pp.Wait()
		if retry {
			continue
		}
		recs, plainRecs := withOut.records(), plainOut.records()
		for i, want := range []int{6, 4, 3} {
			if r := recs[i]; r.TokensSource != capture.TokensUsage || r.OutputTokens != want || r.PromptTokens == 0 || len(r.ChunksUS) != want {
				t.Errorf("record %d with --ensure-usage: %s output %d prompt %d chunks %d", i, r.TokensSource, r.OutputTokens, r.PromptTokens, len(r.ChunksUS))
			}
			if plainRecs[i].TokensSource != capture.TokensEstimate {
				t.Errorf("record %d without: tokens_source %s (the sim sent no usage)", i, plainRecs[i].TokensSource)
			}
		}
		return
	}
}

// openaiStyle streams like api.openai.com: with include_usage every chunk
// carries "usage":null and a usage-only chunk precedes [DONE]. eol is the
// line ending. It records the bodies it received.
func openaiStyle(eol string, bodies *bodyLog) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies.add(string(b))
		info, _ := openai.ParseRequest(r.URL.Path, b)
		null := ""
		if info.IncludeUsage {
			null = `,"usage":null`
		}
		if !info.Stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"a b"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":2}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		fl := w.(http.Flusher)
		ev := func(data string) {
			// Split every event over two writes: the filter must rejoin it.
			half := len(data) / 2
			fmt.Fprint(w, "data: "+data[:half])
			fl.Flush()
			fmt.Fprint(w, data[half:]+eol+eol)
			fl.Flush()
		}
		fmt.Fprint(w, ": keep-alive"+eol+eol)
		ev(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]` + null + `,"obfuscation":"x"}`)
		for _, tok := range []string{"a", " b", " \"usage\":null"} {
			ev(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":` + fmt.Sprintf("%q", tok) + `},"finish_reason":null}]` + null + `}`)
		}
		ev(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]` + null + `}`)
		if info.IncludeUsage {
			ev(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`)
		}
		fmt.Fprint(w, "data: [DONE]"+eol+eol)
	}
}

func TestEnsureUsageAgainstOpenAIStyleStream(t *testing.T) {
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		t.Run(fmt.Sprintf("%q", eol), func(t *testing.T) {
			var log bodyLog
			up := httptest.NewServer(openaiStyle(eol, &log))
			defer up.Close()
			out := &memWriter{}
			p, px := newUsageProxy(t, up.URL, true, out)
			body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`
			direct := postPath(t, up.URL, "/v1/chat/completions", body)
			via := postPath(t, px.URL, "/v1/chat/completions", body)
			if !bytes.Equal(direct, via) {
				t.Fatalf("client bytes differ:\n%q\ndirect:\n%q", via, direct)
			}
			if bodies := log.all(); len(bodies) != 2 || !strings.Contains(bodies[1], `"stream_options":{"include_usage":true}`) {
				t.Fatalf("upstream bodies %q", log.all())
			}
			p.Wait()
			r := out.records()[0]
			if r.TokensSource != capture.TokensUsage || r.OutputTokens != 3 || r.PromptTokens != 9 || r.FinishReason != "stop" || r.Aborted {
				t.Fatalf("record %+v", r)
			}
		})
	}
}

func TestEnsureUsageLeavesOtherRequestsAlone(t *testing.T) {
	var log bodyLog
	up := httptest.NewServer(openaiStyle("\n", &log))
	defer up.Close()
	p, px := newUsageProxy(t, up.URL, true, &memWriter{})
	asked := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`
	notStreamed := `{"model":"m","messages":[{"role":"user","content":"x"}]}`
	broken := `{"model":"m","stream":true,`
	got := postPath(t, px.URL, "/v1/chat/completions", asked)
	if !bytes.Contains(got, []byte(`"choices":[],"usage":{`)) || !bytes.Contains(got, []byte(`"usage":null`)) {
		t.Errorf("a client that asked for usage must get it unfiltered: %s", got)
	}
	postPath(t, px.URL, "/v1/chat/completions", notStreamed)
	postPath(t, px.URL, "/v1/chat/completions", broken)
	postPath(t, px.URL, "/v1/embeddings", `{"stream":true,"input":"x"}`)
	p.Wait()
	bodies := log.all()
	for i, want := range []string{asked, notStreamed, broken, `{"stream":true,"input":"x"}`} {
		if bodies[i] != want {
			t.Errorf("upstream got %q, client sent %q", bodies[i], want)
		}
	}
}

// The filter returns the same bytes however the stream is cut into reads.
func TestUsageFilterIndependentOfReadSizes(t *testing.T) {
	stream := "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\r\n\r\n" +
		"event: x\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":1}}\n\n" +
		": comment\n\ndata: [DONE]\n\npartial-without-end\r"
	want := "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n" +
		": comment\n\ndata: [DONE]\n\npartial-without-end\r"
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(stream),
		"one byte": iotest.OneByteReader(strings.NewReader(stream)),
		"half":     iotest.HalfReader(strings.NewReader(stream)),
	} {
		got, err := io.ReadAll(newUsageFilter(io.NopCloser(r), nil))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q %v\nwant %q", name, got, err, want)
		}
	}
}

func FuzzUsageFilter(f *testing.F) {
	f.Add([]byte("data: {\"choices\":[],\"usage\":{}}\n\ndata: {\"usage\":null,\"a\":1}\r\n\r\ndata: [DONE]\n\n"), uint8(3))
	f.Add([]byte("data: x\r\rdata: {\"usage\":null}\r"), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		whole, err := io.ReadAll(newUsageFilter(io.NopCloser(bytes.NewReader(stream)), nil))
		if err != nil {
			t.Fatal(err)
		}
		pieces, err := io.ReadAll(newUsageFilter(io.NopCloser(&stepReader{b: stream, step: int(step%16) + 1}), nil))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(whole, pieces) {
			t.Fatalf("read sizes changed the output:\n%q\n%q", whole, pieces)
		}
		if !bytes.Contains(stream, []byte(`"usage"`)) && !bytes.Equal(whole, stream) {
			t.Fatalf("a stream without usage changed:\n%q\n%q", stream, whole)
		}
		if len(whole) > len(stream) {
			t.Fatalf("the filter added bytes")
		}
	})
}

type stepReader struct {
	b    []byte
	step int
}

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.step)], s.b)
	s.b = s.b[n:]
	return n, nil
}

// bodyLog keeps the request bodies a test server received.
type bodyLog struct {
	mu sync.Mutex
	b  []string
}

func (l *bodyLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, s)
}

func (l *bodyLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.b...)
}

// The filter holds back no whole event: the first one reaches the client
// while the upstream is still generating.
func TestEnsureUsageStillStreams(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}],\"usage\":null}\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
	}))
	defer backend.Close()
	defer close(release)
	_, px := newUsageProxy(t, backend.URL, true, &memWriter{})
	resp, err := testClient.Post(px.URL+"/v1/chat/completions", "application/json", strings.NewReader(chatBody))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n" {
		t.Fatalf("first event not streamed (or not filtered): %q %v", line, err)
	}
}

// An --ensure-usage response whose event never ends (no blank line in
// more than maxPendingEvent bytes) is not buffered without bound: the
// filter gives up, passes the rest through as received and counts it.
func TestEnsureUsageOverlongEventPassesThroughUnfiltered(t *testing.T) {
	line := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 1000) + "\"}}],\"usage\":null}\n"
	var stream strings.Builder
	for stream.Len() <= 3*maxPendingEvent {
		stream.WriteString(line) // single newlines only: one endless event
	}
	stream.WriteString("\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		s := stream.String()
		for len(s) > 0 { // in pieces, flushed, as a server streams
			n := min(len(s), 7000)
			if _, err := io.WriteString(w, s[:n]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			s = s[n:]
		}
	}))
	defer backend.Close()
	p, px := newUsageProxy(t, backend.URL, true, &memWriter{})
	got := postPath(t, px.URL, "/v1/chat/completions", chatBody)
	if string(got) != stream.String() {
		t.Fatalf("client got %d bytes, want the upstream's %d unchanged", len(got), stream.Len())
	}
	p.Wait()
	if st := p.Stats(); st.UsageBypassed != 1 {
		t.Fatalf("UsageBypassed = %d, want 1", st.UsageBypassed)
	}

	// Below the bound the filter still works on the same kind of stream.
	small := strings.Repeat(line, 10) + "\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"
	out, err := io.ReadAll(newUsageFilter(io.NopCloser(iotest.HalfReader(strings.NewReader(small))), func() { t.Error("bypassed") }))
	if err != nil || string(out) != strings.Repeat(line, 10)+"\ndata: [DONE]\n\n" {
		t.Fatalf("small stream: %q %v", out, err)
	}
}
