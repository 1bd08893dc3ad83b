// Package tokenizer counts tokens the way a served model does, so that the
// replayer can synthesise prompts of an exact length. Three kinds exist:
// tiktoken encodings embedded in the binary (cl100k_base, o200k_base, …),
// Hugging Face tokenizer.json files (byte-level and metaspace BPE, as
// Llama 3, Qwen, Mistral and GPT-2 ship them) and the tokenizer a GGUF
// model file embeds (llama.cpp's SentencePiece and byte-level BPE
// vocabularies), read from disk with no network access, and the target's
// own /tokenize endpoint (vLLM's, SGLang's or llama.cpp's llama-server's).
package tokenizer

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Tokenizer counts tokens in text. Counts never include the special tokens a
// chat template or post-processor adds (BOS, role markers): those are the
// server's, constant per request, and reported apart.
type Tokenizer interface {
	// Name identifies the tokenizer in results: "cl100k_base",
	// "hf:/path/tokenizer.json", "gguf:/path/model.gguf",
	// "server:http://host/tokenize".
	Name() string
	// Count returns the number of tokens in text.
	Count(text string) (int, error)
}

// Options configures Open for specs that need more than a name.
type Options struct {
	// Target is the base URL of the deployment, for the "server" spec.
	Target string
	// Model is sent with /tokenize requests (vLLM requires one when it
	// serves several).
	Model string
	// Client is the HTTP client for "server" (nil: a client with a 30 s
	// timeout).
	Client *http.Client
	// Header is added to /tokenize requests (Authorization for gateways).
	Header http.Header
}

// Open returns the tokenizer spec names:
//   - a tiktoken encoding: cl100k_base, o200k_base, p50k_base, r50k_base;
//   - a Hugging Face tokenizer.json: "hf:PATH", or any PATH ending in .json;
//   - the tokenizer a GGUF model file embeds: "gguf:PATH", or any PATH
//     ending in .gguf;
//   - "server": the target's /tokenize endpoint (opts.Target), vLLM's,
//     SGLang's or llama.cpp's.
func Open(spec string, opts Options) (Tokenizer, error) {
	switch {
	case spec == "":
		return nil, errors.New("empty tokenizer spec")
	case spec == "server":
		return NewServer(opts)
	case strings.HasPrefix(spec, "hf:"):
		return LoadFile(strings.TrimPrefix(spec, "hf:"))
	case strings.HasSuffix(spec, ".json"):
		return LoadFile(spec)
	case strings.HasPrefix(spec, "gguf:"):
		return LoadGGUF(strings.TrimPrefix(spec, "gguf:"))
	case strings.HasSuffix(spec, ".gguf"):
		return LoadGGUF(spec)
	}
	t, err := Tiktoken(spec)
	if err != nil {
		return nil, fmt.Errorf("%w (want a tiktoken encoding %s, hf:PATH/tokenizer.json, PATH.gguf or server)", err, strings.Join(TiktokenEncodings, ", "))
	}
	return t, nil
}
