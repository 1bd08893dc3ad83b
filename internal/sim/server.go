package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiktoken-go/tokenizer"
)

// maxOutputTokens is the largest max_tokens accepted (a model's context bound).
const maxOutputTokens = 131072

// maxBody is the largest request body read, in bytes.
const maxBody = 64 << 20

// cl100k is the cl100k_base codec, built once per process and shared by all
// Servers: building one compiles its split regexp (the vocabulary is shared
// by the tokenizer package itself). A Codec is safe for concurrent use.
var cl100k = sync.OnceValues(func() (tokenizer.Codec, error) { return tokenizer.Get(tokenizer.Cl100kBase) })

// Server is the simulator; it is an http.Handler serving POST
// /v1/chat/completions and /v1/completions, GET /v1/models, /health and
// /metrics.
type Server struct {
	cfg     Config
	codec   tokenizer.Codec
	sched   *scheduler
	cache   *prefixCache
	created int64 // Unix seconds, reported as "created"
	seq     atomic.Uint64

	// ctx is cancelled by Close; in-flight generations end with it.
	ctx    context.Context
	cancel context.CancelFunc

	served, rejected, errored, cancelled atomic.Int64
	promptTokens, genTokens              atomic.Int64
	cacheHitTokens, cacheQueryTokens     atomic.Int64
}

// Stats are the simulator's gauges and counters since New.
type Stats struct {
	Running int // sequences holding a slot
	Waiting int // requests queued for a slot

	Served    int64 // requests generated to the end
	Rejected  int64 // requests answered 429 because the queue was full
	Errored   int64 // requests answered 500 by ErrorRate
	Cancelled int64 // requests whose client went away (or Close) before the end

	PromptTokens      int64 // prompt tokens of admitted requests
	GenerationTokens  int64 // tokens generated, including those of cancelled requests
	PrefixHitTokens   int64 // prompt tokens served from the prefix cache
	PrefixQueryTokens int64 // prompt tokens looked up in the prefix cache
}

var _ http.Handler = (*Server)(nil)

// New returns a simulator for cfg, which must be valid.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	codec, err := cl100k()
	if err != nil {
		return nil, fmt.Errorf("loading cl100k_base tokenizer: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, codec: codec, sched: &scheduler{slots: cfg.Slots, maxWaiting: cfg.MaxWaiting},
		cache: newPrefixCache(cfg.PrefixCacheBlocks), created: time.Now().Unix(),
		ctx: ctx, cancel: cancel,
	}, nil
}

// Close ends in-flight generations (their slots are freed as they notice)
// and makes later generation requests fail with 503. It is idempotent.
func (s *Server) Close() { s.cancel() }

// Stats returns the current gauges and counters.
func (s *Server) Stats() Stats {
	r, w := s.sched.load()
	return Stats{Running: r, Waiting: w,
		Served: s.served.Load(), Rejected: s.rejected.Load(), Errored: s.errored.Load(), Cancelled: s.cancelled.Load(),
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
		b, _ := json.Marshal(modelList{Object: "list", Data: []modelCard{{ID: s.cfg.Model, Object: "model", Created: s.created, OwnedBy: "reprise-sim"}}})
		_, _ = w.Write(b)
	case r.Method == http.MethodGet && r.URL.Path == "/metrics":
		s.metrics(w)
	case r.URL.Path == "/v1/chat/completions" || r.URL.Path == "/v1/completions":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "use POST")
			return
		}
		s.generate(w, r)
	default:
		writeError(w, http.StatusNotFound, "not_found_error", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	}
}

type modelCard struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelCard `json:"data"`
}

type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	} `json:"error"`
}

// writeError answers with an OpenAI-style error object.
func writeError(w http.ResponseWriter, status int, typ, msg string) {
	var e errorBody
	e.Error.Message, e.Error.Type, e.Error.Code = msg, typ, status
	b, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// metrics writes vLLM-named gauges and counters in Prometheus text format.
func (s *Server) metrics(w http.ResponseWriter) {
	st := s.Stats()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m := s.cfg.Model
	put := func(name, typ, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s{model_name=%q} %s\n", name, help, name, typ, name, m, strconv.FormatFloat(v, 'f', -1, 64))
	}
	put("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", float64(st.Running))
	put("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", float64(st.Waiting))
	// vLLM V1 renamed gpu_cache_usage_perc to kv_cache_usage_perc; scrapers
	// and gateway endpoint pickers of either era find the one they know.
	kv := float64(st.Running) / float64(s.cfg.Slots)
	put("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage, 1 means 100 percent (the simulator uses the fraction of slots in use).", kv)
	put("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage, 1 means 100 percent (the older name of vllm:kv_cache_usage_perc).", kv)
	put("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.", float64(st.PrefixQueryTokens))
	put("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.", float64(st.PrefixHitTokens))
	put("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", float64(st.PromptTokens))
	put("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", float64(st.GenerationTokens))
	put("vllm:request_success_total", "counter", "Count of successfully processed requests.", float64(st.Served))
}
