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

// Server counts tokens with the target's own tokenizer through vLLM's
// /tokenize endpoint (POST {"model", "prompt", "add_special_tokens": false}
// → {"count": n}). It is exact for whatever model the target serves, at the
// price of one request per count: the synthesiser calls it only while it
// chooses its vocabulary, never per replayed request.
type Server struct {
	url    string
	model  string
	client *http.Client
	header http.Header
}

// NewServer returns a Server for opts.Target and checks that it answers.
func NewServer(opts Options) (*Server, error) {
	if opts.Target == "" {
		return nil, errors.New("tokenizer server: no target URL")
	}
	s := &Server{url: strings.TrimRight(opts.Target, "/") + "/tokenize", model: opts.Model, client: opts.Client, header: opts.Header}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	if _, err := s.Count("hello"); err != nil {
		return nil, fmt.Errorf("tokenizer server: %w (the target must serve vLLM's /tokenize)", err)
	}
	return s, nil
}

// Name implements Tokenizer.
func (s *Server) Name() string { return "server:" + s.url }

// Count implements Tokenizer.
func (s *Server) Count(text string) (int, error) {
	body, err := json.Marshal(map[string]any{"model": s.model, "prompt": text, "add_special_tokens": false})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range s.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
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
		Count  *int  `json:"count"`
		Tokens []int `json:"tokens"`
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
