package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
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

	served, rejected, errored, promptTokens, genTokens, cacheHitTokens, cacheQueryTokens atomic.Int64
}

// Stats are the simulator's counters.
type Stats struct {
	Running, Waiting                   int
	Served, Rejected, Errored          int64
	PromptTokens, GenerationTokens     int64
	PrefixHitTokens, PrefixQueryTokens int64
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
	}
	s.metrics = metricsHandler(s)
	return s, nil
}

// Close releases the simulator. In-flight requests end with their clients.
func (s *Server) Close() {}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	r, w := s.sched.load()
	return Stats{Running: r, Waiting: w, Served: s.served.Load(), Rejected: s.rejected.Load(), Errored: s.errored.Load(),
		PromptTokens: s.promptTokens.Load(), GenerationTokens: s.genTokens.Load(),
		PrefixHitTokens: s.cacheHitTokens.Load(), PrefixQueryTokens: s.cacheQueryTokens.Load()}
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
	n := s.seq.Add(1)
	j.id = strconv.FormatUint(n, 36)
	j.rng = rand.New(rand.NewPCG(uint64(s.cfg.Seed), n))
	if s.cfg.PrefixCache {
		hit, _ := s.cache.lookupAndInsert(ids, s.cfg.PrefixBlock)
		j.cached = hit * s.cfg.PrefixBlock
		s.cacheHitTokens.Add(int64(j.cached))
		s.cacheQueryTokens.Add(int64(j.prompt))
	}
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
	if err := s.sched.acquire(r.Context()); err != nil {
		if errors.Is(err, errQueueFull) {
			s.rejected.Add(1)
			writeError(w, http.StatusTooManyRequests, "rate_limit_error", "the simulator's waiting queue is full (--max-waiting)")
		}
		return
	}
	defer s.sched.release()
	s.promptTokens.Add(int64(j.prompt))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	prefill := s.cfg.TTFTBase + time.Duration(j.prompt-j.cached)*s.cfg.PrefillPerToken
	if !sleep(r, timer, s.jitter(j.rng, prefill)) {
		return
	}
	var fl http.Flusher
	if j.stream {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		fl, _ = w.(http.Flusher)
	}
	var text strings.Builder
	for i := 0; i < j.tokens; i++ {
		if i > 0 {
			running, _ := s.sched.load()
			if !sleep(r, timer, s.jitter(j.rng, s.cfg.ITLBase+time.Duration(running)*s.cfg.ITLPerSeq)) {
				return
			}
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
	if j.cached > 0 {
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
