package sim

import (
	"encoding/json"
	"io"
	"net/http"
)

// tokenize answers vLLM's POST /tokenize: {"model", "prompt"} →
// {"count", "max_model_len", "tokens"}, counted with the sim's encoding, so
// that `replay run --tokenizer server` has a real endpoint to calibrate on.
// Chat "messages" are counted as the sim counts them for generation: each
// content alone, no template.
func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "reading body: "+err.Error())
		return
	}
	var in struct {
		Prompt   *string `json:"prompt"`
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "body: "+err.Error())
		return
	}
	var texts []string
	switch {
	case in.Prompt != nil:
		texts = []string{*in.Prompt}
	case in.Messages != nil:
		for _, m := range in.Messages {
			texts = append(texts, m.Content)
		}
	default:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "prompt or messages is required")
		return
	}
	tokens := []uint{}
	for _, t := range texts {
		ids, _, err := s.codec.Encode(t)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "tokenizing: "+err.Error())
			return
		}
		tokens = append(tokens, ids...)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"count": len(tokens), "max_model_len": maxOutputTokens, "tokens": tokens})
}
