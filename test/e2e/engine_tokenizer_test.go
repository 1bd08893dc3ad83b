package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/tokenizer"
)

// engineCorpus is what the tokenizers are compared on: llama.cpp's own
// tokenizer test texts for the vocabulary (accents, CJK, emoji, code,
// whitespace runs), special tokens written in text as a chat template
// writes them, and the kind of prompt Reprise synthesises.
func engineCorpus(t *testing.T, vocab string) []string {
	t.Helper()
	inp, err := os.ReadFile(filepath.Join(engineDir(t), "vocab", "ggml-vocab-"+vocab+".gguf.inp"))
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.Split(strings.TrimSuffix(string(inp), "\n__ggml_vocab_test__\n"), "\n__ggml_vocab_test__\n")
	return append(texts,
		"<s>[INST] hello [/INST]</s>",
		"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
		"<|im_start|>user\n the river model<|im_end|>\n<|im_start|>assistant\n",
		" the model river of time and the long"+strings.Repeat(" quiet", 300),
		"def f(x):\n\treturn x ** 2  # 😀 naïve café 日本語\r\n",
	)
}

// TestEngineTokenizerMatchesGGUF: Reprise's reading of the tokenizer a GGUF
// model embeds (--tokenizer FILE.gguf) gives llama-server's ids token for
// token — SentencePiece (Llama 2's vocabulary) and byte-level BPE (Llama
// 3's) — and --tokenizer server finds llama.cpp's /tokenize dialect and
// counts what the engine counts.
func TestEngineTokenizerMatchesGGUF(t *testing.T) {
	engineDir(t)
	for _, c := range []struct{ model, vocab, kind string }{
		{"tiny-spm", "llama-spm", "llama"},
		{"tiny-bpe", "llama-bpe", "gpt2/llama-bpe"},
	} {
		t.Run(c.model, func(t *testing.T) {
			path := engineModel(t, c.model)
			srv := startLlamaServer(t, path, 1, 2048)
			gg, err := tokenizer.LoadGGUF(path)
			if err != nil {
				t.Fatal(err)
			}
			if gg.Kind() != c.kind {
				t.Errorf("kind %q, want %q", gg.Kind(), c.kind)
			}
			viaServer, err := tokenizer.Open("server", tokenizer.Options{Target: srv.url})
			if err != nil {
				t.Fatal(err)
			}
			if d := viaServer.(*tokenizer.Server).Dialect(); d != tokenizer.DialectLlamaCpp {
				t.Fatalf("server dialect %q, want %q", d, tokenizer.DialectLlamaCpp)
			}
			texts := engineCorpus(t, c.vocab)
			bad, tokens := 0, 0
			for i, text := range texts {
				want := srv.tokenize(t, text, false)
				got, err := gg.Encode(text)
				if err != nil {
					t.Fatalf("text %d: %v", i, err)
				}
				n, err := viaServer.Count(text)
				if err != nil {
					t.Fatalf("server count of text %d: %v", i, err)
				}
				tokens += len(want)
				if !slices.Equal(got, want) || n != len(want) {
					bad++
					if bad <= 5 {
						t.Errorf("text %d %q:\n gguf   %v\n engine %v (server count %d)", i, text, got, want, n)
					}
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d texts tokenized differently from llama-server", bad, len(texts))
			}
			t.Logf("%s: %d texts, %d tokens: identical ids from the GGUF file and the engine", c.model, len(texts), tokens)
		})
	}
}
