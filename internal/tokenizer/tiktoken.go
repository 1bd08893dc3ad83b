package tokenizer

import (
	"fmt"

	"github.com/tiktoken-go/tokenizer"
)

// TiktokenEncodings are the encodings embedded in the binary.
var TiktokenEncodings = []string{"cl100k_base", "o200k_base", "p50k_base", "r50k_base"}

type tiktoken struct {
	name  string
	codec tokenizer.Codec
}

// Tiktoken returns the embedded tiktoken encoding name.
func Tiktoken(name string) (Tokenizer, error) {
	codec, err := tokenizer.Get(tokenizer.Encoding(name))
	if err != nil {
		return nil, fmt.Errorf("tiktoken encoding %q: %w", name, err)
	}
	return &tiktoken{name: name, codec: codec}, nil
}

func (t *tiktoken) Name() string { return t.name }

func (t *tiktoken) Count(text string) (int, error) { return t.codec.Count(text) }
