package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Server counts tokens with the target's own tokenizer through its
// /tokenize endpoint, in either of the two dialects real engines speak:
//   - vLLM's, which SGLang shares: POST {"model", "prompt",
//     "add_special_tokens": false} → {"count": n, "tokens": [...]};
//   - llama.cpp's llama-server: POST {"content", "add_special": false,
//     "parse_special": true} → {"tokens": [...]}.
//
// NewServer finds which one the target speaks. It is exact for whatever
// model the target serves, at the price of one request per count: the
// synthesiser calls it only while it chooses its vocabulary, never per
// replayed request.
type Server struct {
	url     string
	model   string
	dialect string // DialectVLLM or DialectLlamaCpp
	client  *http.Client
	header  http.Header
}

// The /tokenize dialects.
const (
	DialectVLLM     = "vllm"      // vLLM and SGLang
	DialectLlamaCpp = "llama.cpp" // llama-server
)

// probeText is counted to find the dialect: any engine gives it at least
// one token, and llama-server answers vLLM's request (which has no
// "content") with none, so an empty answer means "not this dialect".
const probeText = "hello"

// NewServer returns a Server for opts.Target, after finding which dialect
// its /tokenize speaks: vLLM's first (so a vLLM or SGLang target never sees
// a malformed request), then llama.cpp's.
func NewServer(opts Options) (*Server, error) {
	if opts.Target == "" {
		return nil, errors.New("tokenizer server: no target URL")
	}
	s := &Server{url: strings.TrimRight(opts.Target, "/") + "/tokenize", model: opts.Model, client: opts.Client, header: opts.Header}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	var errs []error
	for _, d := range []string{DialectVLLM, DialectLlamaCpp} {
		s.dialect = d
		n, err := s.Count(probeText)
		if err == nil && n > 0 {
			return s, nil
		}
		if err == nil {
			err = fmt.Errorf("no tokens for %q", probeText)
		}
		errs = append(errs, fmt.Errorf("%s dialect: %w", d, err))
	}
	return nil, fmt.Errorf("tokenizer server: %w (the target must serve /tokenize as vLLM, SGLang or llama.cpp's llama-server do)", errors.Join(errs...))
}

// Name implements Tokenizer.
func (s *Server) Name() string { return "server:" + s.url }

// Dialect is the /tokenize dialect the target speaks: DialectVLLM (vLLM,
// SGLang) or DialectLlamaCpp.
func (s *Server) Dialect() string { return s.dialect }

// Count implements Tokenizer. Special tokens written in text are counted as
// the engine parses them in a prompt; the BOS or template tokens a request
// gets are not counted.
func (s *Server) Count(text string) (int, error) {
	var req any
	if s.dialect == DialectLlamaCpp {
		req = map[string]any{"content": text, "add_special": false, "parse_special": true}
	} else {
		req = map[string]any{"model": s.model, "prompt": text, "add_special_tokens": false}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	hreq, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range s.header {
		hreq.Header[k] = v
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(hreq)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST %s: %s: %.200s", s.url, resp.Status, data)
	}
	var out struct {
		Count  *int              `json:"count"`
		Tokens []json.RawMessage `json:"tokens"` // ids, or {"id", "piece"} objects with with_pieces
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, fmt.Errorf("POST %s: reading the answer: %w", s.url, err)
	}
	switch {
	case out.Count != nil:
		return *out.Count, nil
	case out.Tokens != nil:
		return len(out.Tokens), nil
	}
	return 0, fmt.Errorf("POST %s: answer has neither count nor tokens", s.url)
}
