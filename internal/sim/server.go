package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiktoken-go/tokenizer"

	"github.com/reprise-llm/reprise/internal/openai"
)

// maxOutputTokens is the largest max_tokens accepted (a model's context bound).
const maxOutputTokens = 131072

// Server is the simulator; it is an http.Handler.
type Server struct {
	cfg     Config
	codec   tokenizer.Codec
	sched   *scheduler
	cache   *prefixCache
	created int64
	seq     atomic.Uint64
	metrics http.Handler // vLLM-named Prometheus metrics (metrics.go)

	// life ends when the simulator is closed: requests held after their
	// client went away (Config.HoldCancelled) stop then, and the
	// connections kept to be closed under the next request (idle,
	// Config.KeepAliveCloseRate) are closed. held counts both; closed
	// (under mu) refuses new ones once Close has begun.
	life   context.Context
	stop   context.CancelFunc
	mu     sync.Mutex
	closed bool
	idle   map[net.Conn]struct{}
	held   sync.WaitGroup

	served, rejected, errored, cancelled, promptTokens, genTokens, cacheHitTokens, cacheQueryTokens atomic.Int64
	keepAliveCloses                                                                                 atomic.Int64
}

// Stats are the simulator's counters.
type Stats struct {
	// Running and Waiting are the sequences in slots and in the queue,
	// requests held after their client went away included.
	Running, Waiting          int
	Served, Rejected, Errored int64
	// Cancelled counts requests whose client went away before their
	// response ended (held afterwards or not).
	Cancelled int64
	// PromptTokens counts the prompt tokens of admitted requests;
	// PrefixHitTokens those of them found in the prefix cache, and
	// PrefixQueryTokens those looked up (every admitted prompt token
	// while the cache is on).
	PromptTokens, GenerationTokens     int64
	PrefixHitTokens, PrefixQueryTokens int64
	// KeepAliveCloses counts connections closed as a request arrived on
	// them (Config.KeepAliveCloseRate).
	KeepAliveCloses int64
}

var _ http.Handler = (*Server)(nil)

// New returns a simulator for cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	codec, err := tokenizer.Get(tokenizer.Cl100kBase)
	if err != nil {
		return nil, fmt.Errorf("loading tokenizer: %w", err)
	}
	s := &Server{
		cfg: cfg, codec: codec, sched: &scheduler{slots: cfg.Slots, maxWaiting: cfg.MaxWaiting},
		cache: newPrefixCache(cfg.PrefixCacheBlocks), created: time.Now().Unix(),
		idle: map[net.Conn]struct{}{},
	}
	s.life, s.stop = context.WithCancel(context.Background())
	s.metrics = metricsHandler(s)
	return s, nil
}

// Close ends the requests held after their clients went away
// (Config.HoldCancelled) and closes the connections awaiting a request to
// close under (Config.KeepAliveCloseRate), and waits for both; requests
// with a client end with it. Serve no request after Close.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.closeIdle()
	s.held.Wait()
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	r, w := s.sched.load()
	return Stats{Running: r, Waiting: w, Served: s.served.Load(), Rejected: s.rejected.Load(), Errored: s.errored.Load(),
		Cancelled: s.cancelled.Load(), PromptTokens: s.promptTokens.Load(), GenerationTokens: s.genTokens.Load(),
		PrefixHitTokens: s.cacheHitTokens.Load(), PrefixQueryTokens: s.cacheQueryTokens.Load(),
		KeepAliveCloses: s.keepAliveCloses.Load()}
}

// ServeHTTP routes the OpenAI-compatible surface.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && (r.URL.Path == "/health" || r.URL.Path == "/healthz"):
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"model","created":%d,"owned_by":"reprise-sim"}]}`, s.cfg.Model, s.created)
	case r.Method == http.MethodGet && r.URL.Path == "/metrics":
		s.metrics.ServeHTTP(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/tokenize":
		s.tokenize(w, r)
	case r.Method == http.MethodPost && (r.URL.Path == "/v1/chat/completions" || r.URL.Path == "/v1/completions"):
		s.generate(w, r)
	default:
		writeError(w, http.StatusNotFound, "not_found_error", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	}
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": status}})
	_, _ = w.Write(b)
}

type streamOpts struct {
	StreamOptions *struct {
		ContinuousUsageStats bool `json:"continuous_usage_stats"`
	} `json:"stream_options"`
}

// job is one request's generation plan.
type job struct {
	chat           bool
	id, model      string
	stream         bool
	includeUsage   bool
	continuous     bool
	prompt, cached int
	ids            []uint // the prompt's tokens, until admission looks them up in the prefix cache
	reportCached   bool   // usage carries prompt_tokens_details (the prefix cache is on)
	tokens         int
	finish         string
	rng            *rand.Rand
}

func (s *Server) plan(r *http.Request) (*job, int, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %w", err)
	}
	info, err := openai.ParseRequest(r.URL.Path, body)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	var so streamOpts
	_ = json.Unmarshal(body, &so)
	j := &job{chat: info.Endpoint == openai.Chat, model: info.Model, stream: info.Stream, includeUsage: info.IncludeUsage,
		continuous: so.StreamOptions != nil && so.StreamOptions.ContinuousUsageStats}
	if j.model == "" {
		j.model = s.cfg.Model
	}
	if j.chat && info.NMessages == 0 {
		return nil, http.StatusBadRequest, errors.New("messages: at least one message is required")
	}
	if info.MaxTokens < 0 || info.MaxTokens > maxOutputTokens {
		return nil, http.StatusBadRequest, fmt.Errorf("max_tokens %d: want 1..%d", info.MaxTokens, maxOutputTokens)
	}
	// Prompt tokens: each message's content counted on its own (no chat
	// template), as the replayer measures what it synthesises.
	var ids []uint
	for _, part := range strings.Split(info.Prompt, "\x1e") {
		if _, content, ok := strings.Cut(part, "\x1f"); ok {
			part = content
		}
		if part == "" {
			continue
		}
		pids, _, err := s.codec.Encode(part)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("tokenizing prompt: %w", err)
		}
		ids = append(ids, pids...)
	}
	j.prompt = len(ids)
	j.ids, j.reportCached = ids, s.cfg.PrefixCache
	n := s.seq.Add(1)
	j.id = strconv.FormatUint(n, 36)
	j.rng = rand.New(rand.NewPCG(uint64(s.cfg.Seed), n))
	limit := info.MaxTokens
	if limit == 0 {
		limit = s.cfg.DefaultMaxTokens
	}
	j.tokens, j.finish = limit, "length"
	if !info.IgnoreEOS {
		// geometric with the configured mean: P(stop after each token) = 1/mean
		p := 1 / float64(s.cfg.NaturalOutputMean)
		natural := 1 + int(math.Floor(math.Log(1-j.rng.Float64())/math.Log(1-p+1e-12)))
		if natural < limit {
			j.tokens, j.finish = max(natural, 1), "stop"
		}
	}
	return j, 0, nil
}

func (s *Server) jitter(rng *rand.Rand, d time.Duration) time.Duration {
	if s.cfg.Jitter == 0 || d == 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + s.cfg.Jitter*(2*rng.Float64()-1)))
}

// sleep waits d on t or returns false when the client went away.
func sleep(r *http.Request, t *time.Timer, d time.Duration) bool {
	t.Reset(d)
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// admit runs when j takes a slot: its prompt is processed now, and with
// the prefix cache on, its leading blocks seen before are hits (and all
// its full blocks are cached for later requests), as vLLM caches a
// request's blocks when it schedules it. (vLLM also leaves a prompt's last
// token to compute even when all of it is cached, reporting a 256-token
// prompt seen before as 240 cached tokens; the simulator reports all 256,
// which tests of whole-prompt reuse rely on.)
func (s *Server) admit(j *job) {
	s.promptTokens.Add(int64(j.prompt))
	if s.cfg.PrefixCache {
		hit, _ := s.cache.lookupAndInsert(j.ids, s.cfg.PrefixBlock)
		j.cached = hit * s.cfg.PrefixBlock
		s.cacheHitTokens.Add(int64(j.cached))
		s.cacheQueryTokens.Add(int64(j.prompt))
	}
	j.ids = nil
}

// delay is the wait before j's output token i: the prefill of its
// uncached prompt tokens before the first, the inter-token time at the
// current batch size before the others.
func (s *Server) delay(j *job, i int) time.Duration {
	if i == 0 {
		return s.jitter(j.rng, s.cfg.TTFTBase+time.Duration(j.prompt-j.cached)*s.cfg.PrefillPerToken)
	}
	running, _ := s.sched.load()
	return s.jitter(j.rng, s.cfg.ITLBase+time.Duration(running)*s.cfg.ITLPerSeq)
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request) {
	j, status, err := s.plan(r)
	if err != nil {
		writeError(w, status, "invalid_request_error", err.Error())
		return
	}
	if s.cfg.ErrorRate > 0 && j.rng.Float64() < s.cfg.ErrorRate {
		s.errored.Add(1)
		writeError(w, http.StatusInternalServerError, "internal_error", "simulated failure (--error-rate)")
		return
	}
	t, err := s.sched.enqueue()
	if err != nil {
		s.rejected.Add(1)
		writeError(w, http.StatusTooManyRequests, "rate_limit_error", "the simulator's waiting queue is full (--max-waiting)")
		return
	}
	select {
	case <-t.admitted:
	case <-r.Context().Done():
		s.cancelled.Add(1)
		if !s.hold(j, t, 0, -1) {
			s.sched.leave(t)
		}
		return
	}
	s.admit(j)
	held := false // the slot passed to a held remainder, which frees it
	defer func() {
		if !held {
			s.sched.release()
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var fl http.Flusher
	var text strings.Builder
	for i := 0; i < j.tokens; i++ {
		d := s.delay(j, i)
		due := time.Now().Add(d)
		if !sleep(r, timer, d) {
			s.cancelled.Add(1)
			held = s.hold(j, nil, i, time.Until(due))
			return
		}
		if i == 0 && j.stream {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
			fl, _ = w.(http.Flusher)
		}
		tok := words[j.rng.IntN(len(words))]
		s.genTokens.Add(1)
		if !j.stream {
			text.WriteString(tok)
			continue
		}
		var usage *usageJSON
		if j.continuous {
			usage = j.usage(i + 1)
		}
		if _, err := w.Write(j.chunk(tok, i == 0, "", usage, s.created)); err != nil {
			s.cancelled.Add(1)
			held = s.hold(j, nil, i+1, -1)
			return
		}
		if fl != nil {
			fl.Flush()
		}
	}
	s.served.Add(1)
	if !j.stream {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(j.response(text.String(), s.created))
		return
	}
	var usage *usageJSON
	if j.continuous {
		usage = j.usage(j.tokens)
	}
	_, _ = w.Write(j.chunk("", false, j.finish, usage, s.created))
	if j.includeUsage {
		_, _ = w.Write(j.usageChunk(s.created))
	}
	_, _ = w.Write([]byte("data: [DONE]\n\n"))
	if fl != nil {
		fl.Flush()
	}
	// Chunked (HTTP/1.1, kept alive, flushed without a length): the
	// connection can be closed under the next request (keepalive.go).
	if r.ProtoMajor == 1 && r.ProtoMinor >= 1 && !r.Close && s.cfg.KeepAliveCloseRate > 0 && j.rng.Float64() < s.cfg.KeepAliveCloseRate {
		s.keepAliveClose(w)
	}
}

// hold keeps j in the engine after its client went away, when
// Config.HoldCancelled says so (else it returns false and the caller lets
// j go). With t, j is still queued on t: the remainder waits for its slot,
// is admitted, and generates everything. Without, j holds a slot: the
// remainder generates tokens from next on, the first after wait (< 0: its
// usual delay). Either way the slot is released when the last token would
// have been sent, or when the simulator is closed.
func (s *Server) hold(j *job, t *ticket, next int, wait time.Duration) bool {
	if !s.cfg.HoldCancelled {
		return false
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.held.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.held.Done()
		if t != nil {
			select {
			case <-t.admitted:
			case <-s.life.Done():
				s.sched.leave(t)
				return
			}
			s.admit(j)
		}
		defer s.sched.release()
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for i := next; i < j.tokens; i++ {
			d := wait
			if i != next || d < 0 {
				d = s.delay(j, i)
			}
			timer.Reset(max(d, 0))
			select {
			case <-timer.C:
			case <-s.life.Done():
				return
			}
			s.genTokens.Add(1)
		}
	}()
	return true
}

type usageJSON struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details,omitempty"`
}

func (j *job) usage(completion int) *usageJSON {
	u := &usageJSON{PromptTokens: j.prompt, CompletionTokens: completion, TotalTokens: j.prompt + completion}
	if j.reportCached {
		u.PromptTokensDetails = &struct {
			CachedTokens int `json:"cached_tokens"`
		}{j.cached}
	}
	return u
}

func (j *job) object() (string, string) {
	if j.chat {
		return "chatcmpl-sim-" + j.id, "chat.completion"
	}
	return "cmpl-sim-" + j.id, "text_completion"
}

// chunk renders one SSE event: a token, or the final finish_reason event.
func (j *job) chunk(tok string, first bool, finish string, usage *usageJSON, created int64) []byte {
	id, obj := j.object()
	if j.chat {
		obj += ".chunk"
	}
	choice := map[string]any{"index": 0, "finish_reason": nil}
	if finish != "" {
		choice["finish_reason"] = finish
	}
	if j.chat {
		delta := map[string]any{}
		if tok != "" {
			delta["content"] = tok
		}
		if first {
			delta["role"] = "assistant"
		}
		choice["delta"] = delta
	} else {
		choice["text"] = tok
	}
	ev := map[string]any{"id": id, "object": obj, "created": created, "model": j.model, "choices": []any{choice}}
	if usage != nil {
		ev["usage"] = usage
	}
	return sse(ev)
}

func (j *job) usageChunk(created int64) []byte {
	id, obj := j.object()
	if j.chat {
		obj += ".chunk"
	}
	return sse(map[string]any{"id": id, "object": obj, "created": created, "model": j.model, "choices": []any{}, "usage": j.usage(j.tokens)})
}

func sse(v any) []byte {
	b, _ := json.Marshal(v)
	var buf bytes.Buffer
	buf.Grow(len(b) + 8)
	buf.WriteString("data: ")
	buf.Write(b)
	buf.WriteString("\n\n")
	return buf.Bytes()
}

func (j *job) response(text string, created int64) []byte {
	id, obj := j.object()
	choice := map[string]any{"index": 0, "finish_reason": j.finish}
	if j.chat {
		choice["message"] = map[string]any{"role": "assistant", "content": text}
	} else {
		choice["text"] = text
	}
	b, _ := json.Marshal(map[string]any{"id": id, "object": obj, "created": created, "model": j.model,
		"choices": []any{choice}, "usage": j.usage(j.tokens)})
	return b
}
