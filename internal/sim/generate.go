package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

// job is one request's generation plan.
type job struct {
	chat         bool
	id, model    string
	stream       bool
	includeUsage bool // stream_options.include_usage
	continuous   bool // stream_options.continuous_usage_stats
	ids          []uint
	cached       int // prompt tokens served from the prefix cache
	tokens       int // tokens to generate
	finish       string
	rng          *rand.Rand
}

// extraFields are the request fields openai.ParseRequest does not keep.
type extraFields struct {
	StreamOptions *struct {
		ContinuousUsageStats bool `json:"continuous_usage_stats"`
	} `json:"stream_options"`
	Prompt json.RawMessage `json:"prompt"`
}

// plan reads and validates a request and draws its output length.
func (s *Server) plan(r *http.Request) (*job, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("body larger than %d bytes", maxBody)
	}
	info, err := openai.ParseRequest(r.URL.Path, body)
	if err != nil {
		return nil, err
	}
	var ex extraFields
	if err := json.Unmarshal(body, &ex); err != nil {
		return nil, fmt.Errorf("parsing stream_options and prompt: %w", err)
	}
	j := &job{chat: info.Endpoint == openai.Chat, model: info.Model, stream: info.Stream,
		includeUsage: info.Stream && info.IncludeUsage}
	// vLLM honours continuous_usage_stats only together with include_usage.
	j.continuous = j.includeUsage && ex.StreamOptions != nil && ex.StreamOptions.ContinuousUsageStats
	if j.model == "" {
		j.model = s.cfg.Model
	}
	if j.chat && info.NMessages == 0 {
		return nil, errors.New("messages: at least one message is required")
	}
	if info.MaxTokens < 0 || info.MaxTokens > maxOutputTokens {
		return nil, fmt.Errorf("max_tokens %d: want 1..%d", info.MaxTokens, maxOutputTokens)
	}
	isIDs := false
	if !j.chat {
		if j.ids, isIDs, err = tokenIDPrompt(ex.Prompt); err != nil {
			return nil, err
		}
	}
	if !isIDs {
		if j.ids, err = s.promptIDs(info.Prompt, j.chat); err != nil {
			return nil, err
		}
	}
	n := s.seq.Add(1)
	j.id = strconv.FormatUint(n, 36)
	j.rng = rand.New(rand.NewPCG(uint64(s.cfg.Seed), n))
	limit := info.MaxTokens
	if limit == 0 {
		limit = s.cfg.DefaultMaxTokens
	}
	j.tokens, j.finish = limit, "length"
	if !info.IgnoreEOS {
		if natural := naturalLength(j.rng, s.cfg.NaturalOutputMean); natural < limit {
			j.tokens, j.finish = natural, "stop"
		}
	}
	return j, nil
}

// promptIDs tokenises a canonical prompt from openai.ParseRequest with
// cl100k_base: for chat each message's content on its own, without roles,
// separators or template overhead; for completions each prompt string.
func (s *Server) promptIDs(prompt string, chat bool) ([]uint, error) {
	var ids []uint
	for _, part := range strings.Split(prompt, "\x1e") {
		if chat {
			_, part, _ = strings.Cut(part, "\x1f")
		}
		if part == "" {
			continue
		}
		pids, _, err := s.codec.Encode(part)
		if err != nil {
			return nil, fmt.Errorf("tokenizing prompt: %w", err)
		}
		ids = append(ids, pids...)
	}
	return ids, nil
}

// maxTokenID bounds the token ids a completions prompt may carry.
const maxTokenID = 1<<31 - 1

// tokenIDPrompt reads a completions prompt given as token ids, [1,2,3], or
// as a batch of them, [[1,2],[3]], which the simulator treats as one prompt
// (it answers a batch with one choice). ok is false for any other shape,
// which then goes through the tokenizer as text.
func tokenIDPrompt(raw json.RawMessage) (ids []uint, ok bool, err error) {
	var flat []int64
	var batch [][]int64
	switch {
	case len(raw) == 0 || raw[0] != '[':
		return nil, false, nil
	case json.Unmarshal(raw, &flat) == nil:
		batch = [][]int64{flat}
	case json.Unmarshal(raw, &batch) == nil:
	default:
		return nil, false, nil
	}
	for _, p := range batch {
		for _, id := range p {
			if id < 0 || id > maxTokenID {
				return nil, false, fmt.Errorf("prompt: token id %d out of range 0..%d", id, maxTokenID)
			}
			ids = append(ids, uint(id))
		}
	}
	return ids, true, nil
}

// naturalLength draws an output length ≥ 1 from a geometric distribution
// with the given mean (tokens): the chance to stop after each token is 1/mean.
func naturalLength(rng *rand.Rand, mean int) int {
	if mean <= 1 {
		return 1
	}
	p := 1 / float64(mean)
	n := 1 + math.Floor(math.Log(1-rng.Float64())/math.Log1p(-p))
	if n > maxOutputTokens || math.IsNaN(n) {
		return maxOutputTokens
	}
	return int(n)
}

// prefillDelay is the time from admission to the first token.
func (s *Server) prefillDelay(uncached int, rng *rand.Rand) time.Duration {
	return s.jitter(rng, s.cfg.TTFTBase+time.Duration(uncached)*s.cfg.PrefillPerToken)
}

// itl is the time to the next token while running sequences hold slots.
func (s *Server) itl(running int, rng *rand.Rand) time.Duration {
	return s.jitter(rng, s.cfg.ITLBase+time.Duration(running)*s.cfg.ITLPerSeq)
}

func (s *Server) jitter(rng *rand.Rand, d time.Duration) time.Duration {
	if s.cfg.Jitter == 0 || d == 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + s.cfg.Jitter*(2*rng.Float64()-1)))
}

// pause waits d on t (one reused timer per request); it returns false when
// ctx ends first. A zero delay does not touch the timer.
func pause(ctx context.Context, t *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t.Reset(d)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// generate serves one completion request through the capacity model.
func (s *Server) generate(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	j, err := s.plan(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	if s.ctx.Err() != nil {
		writeError(w, http.StatusServiceUnavailable, "server_error", "the simulator is shutting down")
		return
	}
	if s.cfg.ErrorRate > 0 && j.rng.Float64() < s.cfg.ErrorRate {
		s.errored.Add(1)
		writeError(w, http.StatusInternalServerError, "server_error", "simulated failure (--error-rate)")
		return
	}
	fl, _ := w.(http.Flusher)
	accepted := func() {
		if !j.stream {
			return
		}
		// Like vLLM, a stream's headers go out before it is scheduled.
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		if fl != nil {
			fl.Flush()
		}
	}
	if err := s.sched.acquire(ctx, accepted); err != nil {
		if errors.Is(err, errQueueFull) {
			s.rejected.Add(1)
			writeError(w, http.StatusTooManyRequests, "rate_limit_error", "the simulator's waiting queue is full (--max-waiting)")
			return
		}
		s.cancelled.Add(1)
		return
	}
	defer s.sched.release()
	if !s.run(ctx, w, fl, j) {
		s.cancelled.Add(1)
		return
	}
	s.served.Add(1)
}

// run prefills and decodes an admitted job, writing its response. It
// returns false when the client went away first.
func (s *Server) run(ctx context.Context, w http.ResponseWriter, fl http.Flusher, j *job) bool {
	prompt := len(j.ids)
	if s.cfg.PrefixCache {
		hit, _ := s.cache.lookupAndInsert(j.ids, s.cfg.PrefixBlock)
		j.cached = hit * s.cfg.PrefixBlock
		s.cacheHitTokens.Add(int64(j.cached))
		s.cacheQueryTokens.Add(int64(prompt))
	}
	s.promptTokens.Add(int64(prompt))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	if !pause(ctx, timer, s.prefillDelay(prompt-j.cached, j.rng)) {
		return false
	}
	var text strings.Builder
	for i := range j.tokens {
		if i > 0 {
			running, _ := s.sched.load()
			if !pause(ctx, timer, s.itl(running, j.rng)) {
				return false
			}
		}
		tok := words[j.rng.IntN(len(words))]
		s.genTokens.Add(1)
		if !j.stream {
			text.WriteString(tok)
			continue
		}
		var u *usage
		if j.continuous {
			u = j.usage(i + 1)
		}
		if _, err := w.Write(j.chunk(tok, i == 0, "", u, s.created)); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
	}
	if !j.stream {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(j.response(text.String(), s.created))
		return err == nil
	}
	var u *usage
	if j.continuous {
		u = j.usage(j.tokens)
	}
	out := j.chunk("", false, j.finish, u, s.created)
	if j.includeUsage {
		out = append(out, j.usageChunk(s.created)...)
	}
	out = append(out, "data: [DONE]\n\n"...)
	_, err := w.Write(out)
	if fl != nil {
		fl.Flush()
	}
	return err == nil
}
