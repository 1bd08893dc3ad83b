package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/reprise-llm/reprise/internal/testenv"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tinyJSON is a byte-level BPE tokenizer small enough to reason about:
// "low" and "lower" merge, everything else falls back to single bytes.
func tinyJSON(t *testing.T, merges string) string {
	t.Helper()
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteRunes[b])] = b
	}
	for i, tok := range []string{"lo", "low", "er", "lower", "Ġlow"} {
		vocab[tok] = 256 + i
	}
	v, _ := json.Marshal(vocab)
	return fmt.Sprintf(`{"version":"1.0","added_tokens":[{"id":300,"content":"<|end|>","special":true}],
	  "normalizer":null,
	  "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},
	  "model":{"type":"BPE","vocab":%s,"merges":%s}}`, v, merges)
}

func TestTinyBPE(t *testing.T) {
	for _, merges := range []string{
		`["l o","lo w","e r","low er","Ġ low"]`,
		`[["l","o"],["lo","w"],["e","r"],["low","er"],["Ġ","low"]]`,
	} {
		tok, err := Load(strings.NewReader(tinyJSON(t, merges)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			text string
			want []int
		}{
			{"lower", []int{259}},
			{"low low", []int{257, 260}},
			{"lowx", []int{257, 'x'}},
			{"lower<|end|>low", []int{259, 300, 257}},
			{"", nil},
		} {
			got, err := tok.Encode(c.text)
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("merges %s: Encode(%q) = %v, %v; want %v", merges[:8], c.text, got, err, c.want)
			}
			n, err := tok.Count(c.text)
			if err != nil || n != len(c.want) {
				t.Errorf("Count(%q) = %d, %v; want %d", c.text, n, err, len(c.want))
			}
		}
	}
}

func TestLoadRejectsWhatItCannotCount(t *testing.T) {
	for name, c := range map[string]struct{ json, want string }{
		"wordpiece":   {`{"model":{"type":"WordPiece","vocab":{"a":0}}}`, `"WordPiece"`},
		"unigram":     {`{"model":{"type":"Unigram","vocab":[["a",0]]}}`, `"Unigram"`},
		"normalizer":  {`{"normalizer":{"type":"BertNormalizer"},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`, `"BertNormalizer"`},
		"pretok":      {`{"pre_tokenizer":{"type":"BertPreTokenizer"},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`, `"BertPreTokenizer"`},
		"merge":       {`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`, `merges[0]`},
		"merge form":  {`{"model":{"type":"BPE","vocab":{"a":0},"merges":["ab"]}}`, `two tokens`},
		"not json":    {`{"model":`, `parsing tokenizer.json`},
		"empty vocab": {`{"model":{"type":"BPE","vocab":{},"merges":[]}}`, `empty vocab`},
	} {
		_, err := Load(strings.NewReader(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %s", name, err, c.want)
		}
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestOpen(t *testing.T) {
	tok, err := Open("cl100k_base", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tok.Count("hello world"); err != nil || n != 2 {
		t.Errorf("cl100k Count = %d, %v; want 2", n, err)
	}
	if _, err := Open("nonsense", Options{}); err == nil || !strings.Contains(err.Error(), "o200k_base") {
		t.Errorf("unknown spec: err = %v, want the list of encodings", err)
	}
	if _, err := Open("server", Options{}); err == nil {
		t.Error("server without a target: no error")
	}
}

// TestServer talks to a real HTTP server answering in vLLM's /tokenize
// format, counting with cl100k, and checks what is sent.
func TestServer(t *testing.T) {
	cl, _ := Tiktoken("cl100k_base")
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tokenize" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		auth = r.Header.Get("Authorization")
		var in struct {
			Model            string `json:"model"`
			Prompt           string `json:"prompt"`
			AddSpecialTokens *bool  `json:"add_special_tokens"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.AddSpecialTokens == nil || *in.AddSpecialTokens || in.Model != "m" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		n, _ := cl.Count(in.Prompt)
		json.NewEncoder(w).Encode(map[string]any{"count": n, "max_model_len": 8192})
	}))
	defer srv.Close()
	tok, err := Open("server", Options{Target: srv.URL + "/", Model: "m", Header: http.Header{"Authorization": {"Bearer k"}}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tok.Count("the quick brown fox"); err != nil || n != 4 {
		t.Errorf("Count = %d, %v; want 4", n, err)
	}
	if auth != "Bearer k" {
		t.Errorf("Authorization = %q", auth)
	}
	if !strings.HasPrefix(tok.Name(), "server:"+srv.URL+"/tokenize") {
		t.Errorf("Name = %q", tok.Name())
	}
	// A target without /tokenize fails at Open, saying why.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	if _, err := Open("server", Options{Target: plain.URL}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("no /tokenize: err = %v", err)
	}
}

// corpus is text of every kind a prompt holds: prose, code, numbers,
// whitespace runs, accents, CJK, emoji, contractions and special tokens.
func corpus() []string {
	texts := []string{
		"Hello world, it's 2026! Über 12345 naïve  spaces\n\ttabs",
		"def f(x):\n    return x**2  # square\n\n\nprint(f(3))",
		"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>",
		"    leading spaces and trailing   ",
		"日本語のテキストと中文混合 text, 한국어도.",
		"emoji 😀👍🏽 and ZWJ 👩‍👩‍👧 sequences",
		"I'M SHOUTING, YOU'RE NOT, WE'LL SEE, THEY'VE, SHE'D",
		"1234567890 3.14159 -42 1e10 0x1F 1,000,000",
		"line1\r\nline2\rline3\n\n\n\nline4",
		"\u00a0nbsp\u2003em space\u200bzero width",
		strings.Repeat("abc ", 300),
		strings.Repeat("a", 2000),
		" the of and to in is was for that on with as by at from",
	}
	rng := rand.New(rand.NewPCG(7, 7))
	pieces := []string{"the", " model", "ing", "!", "?", "...", " ", "  ", "\n", "\t", "42", "2026", "é", "ß", "中", "😀", "'s", "'ll", "(", ")", "{", "}", "=", "->", "::", "über", "ÇA", "x", "Z"}
	for i := 0; i < 300; i++ {
		var sb strings.Builder
		for n := rng.IntN(40); n >= 0; n-- {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		texts = append(texts, sb.String())
	}
	return texts
}

// TestAgainstHuggingFace encodes the corpus with real tokenizer.json files
// (downloaded by make, in REPRISE_TOKENIZERS) here and with the Hugging Face
// tokenizers library (from the GuideLLM virtualenv, REPRISE_GUIDELLM), and
// requires identical ids.
func TestAgainstHuggingFace(t *testing.T) {
	dir := testenv.Need(t, "REPRISE_TOKENIZERS", "`make test` fetches the tokenizer.json files and sets it")
	guidellm := testenv.Need(t, "REPRISE_GUIDELLM", "`make test` installs GuideLLM and sets it")
	python := filepath.Join(filepath.Dir(guidellm), "python")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "tokenizer.json"))
	if len(files) == 0 {
		t.Fatalf("no */tokenizer.json under %s", dir)
	}
	texts := corpus()
	in, _ := json.Marshal(texts)
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			cmd := exec.Command(python, "testdata/compare.py", f)
			cmd.Stdin = bytes.NewReader(in)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("python: %v\n%s", err, stderr.String())
			}
			var want [][]int
			if err := json.Unmarshal(out, &want); err != nil {
				t.Fatal(err)
			}
			tok, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i, text := range texts {
				got, err := tok.Encode(text)
				if err != nil {
					t.Fatalf("Encode(%q): %v", text, err)
				}
				n, _ := tok.Count(text)
				if !slices.Equal(got, want[i]) || n != len(want[i]) {
					bad++
					if bad <= 5 {
						t.Errorf("text %d %q:\n got  %v (count %d)\n want %v", i, text, got, n, want[i])
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d texts differ from Hugging Face tokenizers", bad, len(texts))
			} else {
				t.Logf("%d texts, %d tokens: identical ids", len(texts), total(want))
			}
		})
	}
}

func TestErrUnsupportedIsWrapped(t *testing.T) {
	_, err := Load(strings.NewReader(`{"model":{"type":"WordPiece","vocab":{"a":0}}}`))
	if !errors.Is(err, errUnsupported) {
		t.Errorf("err = %v, want errUnsupported", err)
	}
}

func total(ids [][]int) (n int) {
	for _, x := range ids {
		n += len(x)
	}
	return n
}

// TestMergeLongMatchesShort checks the heap merge against the quadratic one
// on long words, where encode switches to it.
func TestMergeLongMatchesShort(t *testing.T) {
	tok, err := Load(strings.NewReader(tinyJSON(t, `["l o","lo w","e r","low er","Ġ low"]`)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("loweĠrx")
	for i := 0; i < 500; i++ {
		syms := make([]int, 1+rng.IntN(200))
		for j := range syms {
			syms[j] = tok.bpe.vocab[string(alphabet[rng.IntN(len(alphabet))])]
		}
		short := tok.bpe.mergeShort(slices.Clone(syms))
		long := tok.bpe.mergeLong(slices.Clone(syms))
		if !slices.Equal(short, long) {
			t.Fatalf("symbols %v: mergeShort %v, mergeLong %v", syms, short, long)
		}
	}
}

// FuzzLoad: no tokenizer.json, however malformed, panics the loader, and a
// loaded tokenizer counts what it encodes.
func FuzzLoad(f *testing.F) {
	f.Add(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}`, "abab a")
	f.Add(`{"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},"model":{"type":"BPE","byte_fallback":true,"vocab":{"<0x61>":0,"▁":1},"merges":[]}}`, "a a")
	f.Add(`{"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"Isolated"},{"type":"Digits","individual_digits":true},{"type":"Metaspace"}]},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`, "a 12 a")
	f.Fuzz(func(t *testing.T, js, text string) {
		tok, err := Load(strings.NewReader(js))
		if err != nil {
			return
		}
		ids, err := tok.Encode(text)
		if err != nil {
			return
		}
		if n, err := tok.Count(text); err != nil || n != len(ids) {
			t.Fatalf("Count = %d, %v; Encode gave %d ids", n, err, len(ids))
		}
	})
}
