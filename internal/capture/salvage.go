package capture

import (
	"bytes"
	"encoding/json"

	"github.com/reprise-llm/reprise/internal/openai"
)

// salvageRequest reads the top-level scalar fields (model, stream, token
// limits, sampling, user) from the prefix of a request body that was cut at
// the parse cap. Huge bodies are usually huge because of their messages, and
// clients put fields in any order, so whatever scalars precede the cut are
// kept and the rest are zero. It stops at the first syntax error, which is
// the cut. Prompt fields stay empty: a prefix of the prompt would give
// misleading hash ids and estimates.
func salvageRequest(body []byte) openai.RequestInfo {
	var info openai.RequestInfo
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return info
	}
	var maxTokens, maxCompletion, maxOutput int
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := tok.(string)
		if !scalarField(key) {
			if skipValue(dec) != nil {
				break
			}
			continue
		}
		val, err := dec.Token()
		if err != nil {
			break
		}
		if _, ok := val.(json.Number); ok && dec.InputOffset() >= int64(len(body)) {
			break // a number at the cut may itself be cut: 12 of 128
		}
		if d, ok := val.(json.Delim); ok {
			// An object or array where a scalar belongs: skip it.
			if d == '{' || d == '[' {
				if skipNested(dec) != nil {
					break
				}
			}
			continue
		}
		switch key {
		case "model":
			info.Model, _ = val.(string)
		case "stream":
			info.Stream, _ = val.(bool)
		case "user":
			info.User, _ = val.(string)
		case "max_tokens":
			maxTokens = intOf(val)
		case "max_completion_tokens":
			maxCompletion = intOf(val)
		case "max_output_tokens":
			maxOutput = intOf(val)
		case "n":
			info.N = intOf(val)
		case "temperature":
			info.Temperature = floatPtr(val)
		case "top_p":
			info.TopP = floatPtr(val)
		}
	}
	// The same precedence as openai.ParseRequest.
	switch {
	case maxCompletion > 0:
		info.MaxTokens = maxCompletion
	case maxTokens > 0:
		info.MaxTokens = maxTokens
	default:
		info.MaxTokens = maxOutput
	}
	return info
}

func scalarField(key string) bool {
	switch key {
	case "model", "stream", "user", "max_tokens", "max_completion_tokens", "max_output_tokens", "n", "temperature", "top_p":
		return true
	}
	return false
}

// skipValue consumes one JSON value of any kind.
func skipValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
		return skipNested(dec)
	}
	return nil
}

// skipNested consumes tokens until the object or array just opened closes.
func skipNested(dec *json.Decoder) error {
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

func intOf(v json.Token) int {
	n, ok := v.(json.Number)
	if !ok {
		return 0
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > 1<<31 {
		return 0
	}
	return int(i)
}

func floatPtr(v json.Token) *float64 {
	n, ok := v.(json.Number)
	if !ok {
		return nil
	}
	f, err := n.Float64()
	if err != nil {
		return nil
	}
	return &f
}
