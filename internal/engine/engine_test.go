package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

func TestConstantScheduleTable(t *testing.T) {
	c := &Constant{Rate: 4}
	want := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond, time.Second}
	for i, w := range want {
		if got, _ := c.Next(); got != w {
			t.Fatalf("request %d at %v, want %v", i, got, w)
		}
	}
	c = &Constant{Rate: 3} // no drift: offset i is i/3 s, computed, not accumulated
	for i := 0; i < 300000; i++ {
		c.Next()
	}
	if got, _ := c.Next(); got != 100000*time.Second {
		t.Fatalf("request 300000 at %v, want 100000s", got)
	}
}

func TestPoissonScheduleIsSeededAndExponential(t *testing.T) {
	a, b := NewPoisson(50, 7), NewPoisson(50, 7)
	var prev time.Duration
	var gaps []float64
	for i := 0; i < 20000; i++ {
		x, _ := a.Next()
		y, _ := b.Next()
		if x != y {
			t.Fatal("same seed, different schedules")
		}
		if i == 0 && x != 0 {
			t.Fatal("first arrival must be at 0")
		}
		if i > 0 {
			gaps = append(gaps, (x - prev).Seconds())
		}
		prev = x
	}
	var sum, sq float64
	for _, g := range gaps {
		sum += g
	}
	mean := sum / float64(len(gaps))
	for _, g := range gaps {
		sq += (g - mean) * (g - mean)
	}
	sd := math.Sqrt(sq / float64(len(gaps)))
	// exponential(rate 50): mean = sd = 20 ms; with 20,000 gaps the standard
	// error of the mean is 0.14 ms, so 5% bounds are > 7 standard errors
	if math.Abs(mean-0.02) > 0.001 || math.Abs(sd-0.02) > 0.001 {
		t.Fatalf("gaps mean %.4f sd %.4f, want 0.02 and 0.02", mean, sd)
	}
	// Kolmogorov–Smirnov distance to the exponential CDF
	ks := 0.0
	sorted := append([]float64(nil), gaps...)
	sortFloats(sorted)
	for i, g := range sorted {
		cdf := 1 - math.Exp(-50*g)
		ks = math.Max(ks, math.Max(math.Abs(cdf-float64(i)/float64(len(sorted))), math.Abs(cdf-float64(i+1)/float64(len(sorted)))))
	}
	if ks > 1.63/math.Sqrt(float64(len(sorted))) { // 1% critical value
		t.Fatalf("KS distance %.4f rejects the exponential", ks)
	}
}

func sortFloats(a []float64) { slices.Sort(a) }

// sliceSource yields a fixed list of requests.
type sliceSource struct {
	reqs []workload.Request
	i    int
	err  error // returned after the list when set
}

func (s *sliceSource) Next() (workload.Request, error) {
	if s.i >= len(s.reqs) {
		if s.err != nil {
			return workload.Request{}, s.err
		}
		return workload.Request{}, io.EOF
	}
	s.i++
	return s.reqs[s.i-1], nil
}

func traceOf(offsets ...time.Duration) *sliceSource {
	s := &sliceSource{}
	for i, o := range offsets {
		s.reqs = append(s.reqs, workload.Request{Index: i, Offset: o, Endpoint: openai.Chat, Stream: true, PromptTokens: 10, OutputTokens: 3})
	}
	return s
}

// fakeSend takes d of fake time per request and reports success.
func fakeSend(d time.Duration, origin time.Time) sendFunc {
	return func(ctx context.Context, req *workload.Request, intended time.Duration) Result {
		sent := time.Since(origin)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return Result{Index: req.Index, Intended: intended, Sent: sent, End: time.Since(origin), Err: errDrained.Error()}
		}
		return Result{Index: req.Index, Intended: intended, Sent: sent, FirstToken: sent + d/2, LastToken: time.Since(origin), End: time.Since(origin), Status: 200}
	}
}

func TestTraceDispatchUnderSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Target: "http://x", Profile: ProfileTrace, TimeScale: 0.5, MaxConcurrency: 2}
		c := cfg.withDefaults()
		origin := time.Now()
		run, err := execute(context.Background(), c, traceOf(0, 100*time.Millisecond, 100*time.Millisecond, 400*time.Millisecond, time.Second), origin, fakeSend(200*time.Millisecond, origin))
		if err != nil {
			t.Fatal(err)
		}
		// offsets × 0.5; two slots of 200 ms each: the third request (due at
		// 50 ms) waits for the first to end at 200 ms
		wantIntended := []time.Duration{0, 50, 50, 200, 500}
		wantSent := []time.Duration{0, 50, 200, 250, 500}
		if len(run.Results) != 5 || run.Late != 2 { // requests 2 and 3 found both slots busy
			t.Fatalf("%d results, %d late", len(run.Results), run.Late)
		}
		for i, r := range run.Results {
			if r.Intended != wantIntended[i]*time.Millisecond || r.Sent != wantSent[i]*time.Millisecond {
				t.Errorf("request %d: intended %v sent %v, want %v %v", i, r.Intended, r.Sent, wantIntended[i]*time.Millisecond, wantSent[i]*time.Millisecond)
			}
		}
		if run.Duration != 700*time.Millisecond {
			t.Errorf("duration %v", run.Duration)
		}
	})
}

func TestLimitsAndDrainUnderSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		origin := time.Now()
		many := make([]time.Duration, 1000)
		for i := range many {
			many[i] = time.Duration(i) * 10 * time.Millisecond
		}
		c := (&Config{Target: "http://x", Profile: ProfileTrace, MaxRequests: 7}).withDefaults()
		run, _ := execute(context.Background(), c, traceOf(many...), origin, fakeSend(time.Millisecond, origin))
		if len(run.Results) != 7 {
			t.Fatalf("max-requests: %d results", len(run.Results))
		}
		origin = time.Now()
		c = (&Config{Target: "http://x", Profile: ProfileTrace, MaxSeconds: 1, Drain: 300 * time.Millisecond}).withDefaults()
		run, _ = execute(context.Background(), c, traceOf(many...), origin, fakeSend(2*time.Second, origin))
		if len(run.Results) != 100 {
			t.Fatalf("max-seconds 1 at 100 req/s: %d results", len(run.Results))
		}
		cancelled := 0
		for _, r := range run.Results {
			if strings.HasPrefix(r.Err, "cancelled") {
				cancelled++
			}
		}
		if cancelled != 100 || run.Duration > 1300*time.Millisecond {
			t.Fatalf("drain: %d cancelled, duration %v", cancelled, run.Duration)
		}
	})
}

func TestClosedLoopProfilesUnderSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			profile string
			conc    int
			want    time.Duration // run duration for 6 requests of 100 ms
		}{{ProfileSynchronous, 0, 600 * time.Millisecond}, {ProfileConcurrent, 3, 200 * time.Millisecond}, {ProfileThroughput, 0, 100 * time.Millisecond}} {
			origin := time.Now()
			c := (&Config{Target: "http://x", Profile: tc.profile, Concurrency: tc.conc, MaxConcurrency: 6}).withDefaults()
			run, err := execute(context.Background(), c, traceOf(0, 0, 0, 0, 0, 0), origin, fakeSend(100*time.Millisecond, origin))
			if err != nil || len(run.Results) != 6 || run.Duration != tc.want {
				t.Errorf("%s: err %v, %d results, duration %v, want %v", tc.profile, err, len(run.Results), run.Duration, tc.want)
			}
			for _, r := range run.Results {
				if r.Sent != r.Intended {
					t.Errorf("%s: a closed loop sends when it intends to", tc.profile)
				}
			}
		}
	})
}

func TestSourceErrorStopsAndIsReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		origin := time.Now()
		src := traceOf(0, 10*time.Millisecond)
		src.err = errors.New("mooncake f.jsonl line 3: bad")
		c := (&Config{Target: "http://x", Profile: ProfileTrace}).withDefaults()
		run, err := execute(context.Background(), c, src, origin, fakeSend(time.Millisecond, origin))
		if err == nil || !strings.Contains(err.Error(), "line 3") || len(run.Results) != 2 {
			t.Fatalf("err %v, %d results", err, len(run.Results))
		}
	})
}

// bodies builds minimal request bodies.
type bodies struct{}

func (bodies) Body(req *workload.Request, model string) ([]byte, error) {
	if model == "" {
		model = req.Model
	}
	return []byte(fmt.Sprintf(`{"model":%q,"stream":%v,"max_tokens":%d,"messages":[{"role":"user","content":"x"}]}`, model, req.Stream, req.OutputTokens)), nil
}

// sseServer streams n tokens 2 ms apart with per-chunk (vLLM continuous)
// usage on every third request, and a usage chunk at the end.
func sseServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"model":"fail"`) {
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
			return
		}
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"choices":[{"message":{"content":"a b c"},"finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":3}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= 4; i++ {
			time.Sleep(2 * time.Millisecond)
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":%d}}\n\n", i, 2*i)
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":8,\"prompt_tokens_details\":{\"cached_tokens\":2}}}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClientAgainstRealServer(t *testing.T) {
	srv := sseServer(t)
	src := &sliceSource{reqs: []workload.Request{
		{Index: 0, Endpoint: openai.Chat, Stream: true, PromptTokens: 4, OutputTokens: 8},
		{Index: 1, Endpoint: openai.Chat, Stream: false, PromptTokens: 4, OutputTokens: 3},
		{Index: 2, Endpoint: openai.Chat, Stream: true, Model: "fail"},
	}}
	run, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileSynchronous}, src, bodies{})
	if err != nil {
		t.Fatal(err)
	}
	s := run.Results[0]
	if !s.OK() || len(s.Chunks) != 4 || s.OutputTokens != 8 || s.CachedTokens != 2 || !s.TokensFromUsage || s.FinishReason != "length" {
		t.Fatalf("stream result %+v", s)
	}
	for i, n := range s.ChunkTokens { // continuous usage: 2 tokens per event
		if n != 2 {
			t.Errorf("chunk %d: %d tokens, want 2", i, n)
		}
	}
	if !(s.Sent <= s.FirstByte && s.FirstByte <= s.FirstToken && s.FirstToken < s.LastToken && s.LastToken <= s.End) {
		t.Errorf("times out of order: %+v", s)
	}
	if j := run.Results[1]; !j.OK() || j.OutputTokens != 3 || j.FirstToken != j.End {
		t.Errorf("json result %+v", j)
	}
	if f := run.Results[2]; f.OK() || f.Status != 503 || !strings.Contains(f.Err, "http 503") || !strings.Contains(f.Err, "overloaded") {
		t.Errorf("error result %+v", f)
	}
}

func TestUnreachableTargetIsRecordedNotFatal(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	run, err := Execute(context.Background(), Config{Target: "http://" + addr, Profile: ProfileConstant, Rate: 100, MaxRequests: 5},
		traceOf(0, 0, 0, 0, 0), bodies{})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 5 {
		t.Fatalf("%d results", len(run.Results))
	}
	for _, r := range run.Results {
		if r.OK() || !strings.Contains(r.Err, "refused") {
			t.Errorf("result %+v", r)
		}
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	err := (&Config{Target: "ftp://x", Profile: "poisson", MaxConcurrency: -1}).Validate()
	for _, want := range []string{"--target", "--rate", "--max-concurrency"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not name %s", err, want)
		}
	}
	if err := (&Config{Target: "http://x", Profile: "bursty"}).Validate(); err == nil || !strings.Contains(err.Error(), "--profile") {
		t.Errorf("unknown profile: %v", err)
	}
	if _, err := Execute(context.Background(), Config{Target: "::", Profile: ProfileTrace}, traceOf(0), bodies{}); err == nil {
		t.Error("malformed target accepted")
	}
}

func TestProgressIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []Progress
		origin := time.Now()
		c := (&Config{Target: "http://x", Profile: ProfileTrace, Progress: func(p Progress) { mu.Lock(); got = append(got, p); mu.Unlock() }}).withDefaults()
		_, _ = execute(context.Background(), c, traceOf(0, time.Second, 2*time.Second, 3*time.Second), origin, fakeSend(10*time.Millisecond, origin))
		mu.Lock()
		defer mu.Unlock()
		if len(got) < 3 || got[len(got)-1].Done < 3 {
			t.Fatalf("progress %+v", got)
		}
	})
}

// BenchmarkReadStream measures the client's per-event cost on a 128-event stream.
func BenchmarkReadStream(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 128; i++ {
		sb.WriteString(`data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}` + "\n\n")
	}
	sb.WriteString("data: [DONE]\n\n")
	stream := sb.String()
	c := &client{now: time.Now, origin: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		var res Result
		c.readStream(context.Background(), strings.NewReader(stream), &res)
		if len(res.Chunks) != 128 {
			b.Fatal(len(res.Chunks))
		}
	}
}
