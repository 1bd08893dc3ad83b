package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
)

// responsesStream answers POST /v1/responses with stream:true the way the
// OpenAI Responses API does (event names and payloads as in openai-go's
// ResponseStreamEventUnion): typed events, each with an "event:" line and
// a sequence number, text in response.output_text.delta, usage only in
// response.completed. gap separates the deltas.
func responsesStream(deltas []string, gap time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		fl := w.(http.Flusher)
		seq := 0
		ev := func(typ, payload string) {
			fmt.Fprintf(w, "event: %s\ndata: {\"type\":%q,%s,\"sequence_number\":%d}\n\n", typ, typ, payload, seq)
			seq++
			fl.Flush()
		}
		resp := func(status, usage, output string) string {
			return `"response":{"id":"resp_1","object":"response","created_at":1741290958,"status":"` + status +
				`","error":null,"incomplete_details":null,"instructions":"be terse","max_output_tokens":32,"model":"gpt-test",` +
				`"output":[` + output + `],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},` +
				`"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,` +
				`"truncation":"disabled","usage":` + usage + `,"user":null,"metadata":{}}`
		}
		ev("response.created", resp("in_progress", "null", ""))
		ev("response.in_progress", resp("in_progress", "null", ""))
		ev("response.output_item.added", `"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}`)
		ev("response.content_part.added", `"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}`)
		for _, d := range deltas {
			time.Sleep(gap)
			ev("response.output_text.delta", fmt.Sprintf(`"item_id":"msg_1","output_index":0,"content_index":0,"delta":%q,"logprobs":[],"obfuscation":"ab"`, d))
		}
		text := strings.Join(deltas, "")
		ev("response.output_text.done", fmt.Sprintf(`"item_id":"msg_1","output_index":0,"content_index":0,"text":%q,"logprobs":[]`, text))
		ev("response.content_part.done", fmt.Sprintf(`"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":%q,"annotations":[]}`, text))
		msg := fmt.Sprintf(`{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":%q,"annotations":[]}]}`, text)
		ev("response.output_item.done", `"output_index":0,"item":`+msg)
		ev("response.completed", resp("completed",
			`{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}`, msg))
	}
}

const responsesBody = `{"model":"gpt-test","instructions":"be terse","input":[{"role":"user","content":[{"type":"input_text","text":"say hi"}]}],"max_output_tokens":32,"stream":true}`

func TestResponsesAPIStreamRecorded(t *testing.T) {
	backend := httptest.NewServer(responsesStream([]string{"Hi", " there", "!"}, 2*time.Millisecond))
	defer backend.Close()
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, nil)

	// Read up to response.completed and hang up, as SDKs do: not an abort.
	resp, err := testClient.Post(px.URL+"/v1/responses", "application/json", strings.NewReader(responsesBody))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != "event: response.completed" {
	}
	sc.Scan()
	resp.Body.Close()
	p.Wait()

	r := out.records()[0]
	if r.Path != "/v1/responses" || r.Model != "gpt-test" || !r.Stream || r.MaxTokens != 32 || r.NMessages != 1 {
		t.Errorf("request fields: %+v", r)
	}
	if r.PromptTokens != 12 || r.OutputTokens != 3 || r.CachedTokens != 4 || r.TokensSource != capture.TokensUsage {
		t.Errorf("tokens: prompt %d output %d cached %d source %s", r.PromptTokens, r.OutputTokens, r.CachedTokens, r.TokensSource)
	}
	if r.FinishReason != "stop" || r.Aborted || r.Error != "" || r.Status != 200 {
		t.Errorf("end: finish %q aborted %v error %q status %d", r.FinishReason, r.Aborted, r.Error, r.Status)
	}
	// One timed event per text delta; the lifecycle events carry no text.
	if len(r.ChunksUS) != 3 || len(r.ChunkTokens) != 3 || r.TTFTNs < int64(2*time.Millisecond) {
		t.Fatalf("chunks %v tokens %v ttft %v", r.ChunksUS, r.ChunkTokens, time.Duration(r.TTFTNs))
	}
	// Event k cannot reach the proxy before the server's k+1 waits of 2 ms
	// (a gap alone can be shorter: a late arrival shortens the next gap).
	var at int64
	for k, d := range r.ChunksUS {
		at += d
		if want := int64(k+1) * 2000; at < want {
			t.Errorf("event %d recorded at %d µs, before the server's waits of %d µs", k, at, want)
		}
	}
}

func TestResponsesAPINonStreamedRecorded(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"resp_2","object":"response","created_at":1741290958,"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},`+
			`"error":null,"model":"gpt-test","output":[{"type":"reasoning","id":"rs_1","summary":[]},{"id":"msg_2","type":"message","status":"incomplete","role":"assistant",`+
			`"content":[{"type":"output_text","text":"Once upon","annotations":[]}]}],"usage":{"input_tokens":7,"input_tokens_details":{"cached_tokens":0},`+
			`"output_tokens":16,"output_tokens_details":{"reasoning_tokens":14},"total_tokens":23}}`)
	}))
	defer backend.Close()
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, nil)
	postPath(t, px.URL, "/v1/responses", `{"model":"gpt-test","input":"tell a story","max_output_tokens":16}`)
	p.Wait()
	r := out.records()[0]
	if r.PromptTokens != 7 || r.OutputTokens != 16 || r.TokensSource != capture.TokensUsage || r.FinishReason != "length" || r.Stream || r.NMessages != 1 {
		t.Fatalf("record %+v", r)
	}
}

func TestEmbeddingsRecorded(t *testing.T) {
	var noUsage atomic.Bool
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		usage := ""
		if !noUsage.Load() {
			usage = `,"usage":{"prompt_tokens":9,"total_tokens":9}`
		}
		fmt.Fprint(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,-0.0028842222]},`+
			`{"object":"embedding","index":1,"embedding":[0.1,0.2,0.3]}],"model":"text-embedding-3-small"`+usage+`}`)
	}))
	defer backend.Close()
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, nil)
	for _, body := range []string{
		`{"model":"text-embedding-3-small","input":["The food was delicious","and the waiter..."]}`, // usage
	} {
		postPath(t, px.URL, "/v1/embeddings", body)
		p.Wait() // records in request order
	}
	noUsage.Store(true)
	for _, body := range []string{
		`{"model":"e","input":"sixteen chars!!!"}`,      // estimate: 16 characters / 4
		`{"model":"e","input":[1,2,3,4,5]}`,             // token ids: counted
		`{"model":"e","input":[[1,2,3],[4,5],[6,7,8]]}`, // batches of token ids
	} {
		postPath(t, px.URL, "/v1/embeddings", body)
		p.Wait()
	}
	recs := out.records()
	want := []struct {
		prompt int
		source string
	}{{9, capture.TokensUsage}, {4, capture.TokensEstimate}, {5, capture.TokensEstimate}, {8, capture.TokensEstimate}}
	for i, w := range want {
		if r := recs[i]; r.PromptTokens != w.prompt || r.TokensSource != w.source || r.OutputTokens != 0 || r.Status != 200 {
			t.Errorf("embeddings record %d: prompt %d source %s output %d, want %d %s", i, r.PromptTokens, r.TokensSource, r.OutputTokens, w.prompt, w.source)
		}
	}
}
