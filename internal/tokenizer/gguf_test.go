package tokenizer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/reprise-llm/reprise/internal/testenv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// engineDir is where `make engine` (scripts/engine.sh) keeps llama.cpp's
// tokenizer test vocabularies (vocab/) and the models llama-server serves.
func engineDir(t *testing.T) string {
	t.Helper()
	return testenv.Need(t, "REPRISE_ENGINE", "`make engine` provides llama.cpp's vocabularies and `make test` sets it")
}

// vocabCases reads llama.cpp's tokenizer test corpus for a vocabulary: the
// .inp file's texts, separated by "\n__ggml_vocab_test__\n", and the .out
// file's ids, one line per text (what Hugging Face's tokenizers give, and
// llama.cpp's test-tokenizer-0 checks llama_tokenize against).
func vocabCases(t *testing.T, gguf string) (texts []string, want [][]int) {
	t.Helper()
	inp, err := os.ReadFile(gguf + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(gguf + ".out")
	if err != nil {
		t.Fatal(err)
	}
	// The file ends with a separator, after which there is no text.
	texts = strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	if texts[len(texts)-1] == "" {
		texts = texts[:len(texts)-1]
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d texts but %d lines of ids", gguf, len(texts), len(lines))
	}
	for i, l := range lines {
		var ids []int
		for _, f := range strings.Fields(l) {
			id, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", gguf, i+1, err)
			}
			ids = append(ids, id)
		}
		want = append(want, ids)
	}
	return texts, want
}

// TestGGUFAgainstLlamaCppCorpus encodes llama.cpp's own tokenizer test
// corpus with the vocabularies it ships (SentencePiece: Llama 2, Phi-3;
// byte-level BPE: Llama 3, Qwen 2, GPT-2) and requires the ids llama.cpp's
// test expects, text for text. The corpus is read with special tokens as
// text (parse_special=false), as that test does; the same texts through
// Encode (parse_special=true) are checked against the engine itself in
// test/e2e.
func TestGGUFAgainstLlamaCppCorpus(t *testing.T) {
	dir := filepath.Join(engineDir(t), "vocab")
	files, _ := filepath.Glob(filepath.Join(dir, "ggml-vocab-*.gguf"))
	if len(files) < 5 {
		t.Fatalf("%d vocabularies under %s, want the 5 scripts/engine.sh copies", len(files), dir)
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "ggml-vocab-"), ".gguf")
		t.Run(name, func(t *testing.T) {
			tok, err := LoadGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			texts, want := vocabCases(t, f)
			bad, tokens := 0, 0
			for i, text := range texts {
				got, err := tok.encode(text, false)
				if err != nil {
					t.Fatalf("text %d %q: %v", i, text, err)
				}
				tokens += len(want[i])
				if !slices.Equal(got, want[i]) {
					bad++
					if bad <= 5 {
						t.Errorf("text %d %q:\n got  %v\n want %v", i, text, got, want[i])
					}
				}
			}
			if bad > 0 {
				t.Fatalf("%s (%s): %d of %d texts differ", name, tok.Kind(), bad, len(texts))
			}
			t.Logf("%s (%s): %d texts, %d tokens: identical ids", name, tok.Kind(), len(texts), tokens)
		})
	}
}

// ggufBuilder writes GGUF metadata for tests: the encoder the reader's
// round-trip property and seed corpus need.
type ggufBuilder struct {
	bytes.Buffer
}

func newGGUFBuilder(version uint32, tensors uint64, kvs int) *ggufBuilder {
	b := &ggufBuilder{}
	b.u32(ggufMagic)
	b.u32(version)
	b.u64(tensors)
	b.u64(uint64(kvs))
	return b
}

func (b *ggufBuilder) u32(v uint32) { _ = binary.Write(b, binary.LittleEndian, v) }
func (b *ggufBuilder) u64(v uint64) { _ = binary.Write(b, binary.LittleEndian, v) }
func (b *ggufBuilder) str(s string) { b.u64(uint64(len(s))); b.WriteString(s) }

// kv writes key and v (a ggufValue as readGGUF returns it).
func (b *ggufBuilder) kv(key string, v ggufValue) {
	b.str(key)
	b.u32(uint32(v.Type))
	b.value(v)
}

func (b *ggufBuilder) scalar(t ggufType, v any) {
	switch t {
	case ggufUint8:
		b.WriteByte(byte(v.(uint64)))
	case ggufInt8:
		b.WriteByte(byte(int8(v.(int64))))
	case ggufUint16:
		_ = binary.Write(b, binary.LittleEndian, uint16(v.(uint64)))
	case ggufInt16:
		_ = binary.Write(b, binary.LittleEndian, int16(v.(int64)))
	case ggufUint32:
		b.u32(uint32(v.(uint64)))
	case ggufInt32:
		_ = binary.Write(b, binary.LittleEndian, int32(v.(int64)))
	case ggufFloat32:
		b.u32(math.Float32bits(float32(v.(float64))))
	case ggufBool:
		if v.(bool) {
			b.WriteByte(1)
		} else {
			b.WriteByte(0)
		}
	case ggufUint64:
		b.u64(v.(uint64))
	case ggufInt64:
		b.u64(uint64(v.(int64)))
	case ggufFloat64:
		b.u64(math.Float64bits(v.(float64)))
	}
}

func (b *ggufBuilder) value(v ggufValue) {
	switch v.Type {
	case ggufString:
		b.str(v.V.(string))
	case ggufArray:
		b.u32(uint32(v.Elem))
		switch xs := v.V.(type) {
		case []string:
			b.u64(uint64(len(xs)))
			for _, s := range xs {
				b.str(s)
			}
		case []ggufValue:
			b.u64(uint64(len(xs)))
			for _, x := range xs {
				b.value(x)
			}
		case []bool:
			b.u64(uint64(len(xs)))
			for _, x := range xs {
				b.scalar(ggufBool, x)
			}
		case []float64:
			b.u64(uint64(len(xs)))
			for _, x := range xs {
				b.scalar(v.Elem, x)
			}
		case []int64:
			b.u64(uint64(len(xs)))
			for _, x := range xs {
				switch v.Elem {
				case ggufUint8, ggufUint16, ggufUint32, ggufUint64:
					b.scalar(v.Elem, uint64(x))
				default:
					b.scalar(v.Elem, x)
				}
			}
		}
	default:
		b.scalar(v.Type, v.V)
	}
}

// encodeMeta writes m back as GGUF bytes, keys sorted.
func encodeMeta(m *ggufMeta) []byte {
	b := newGGUFBuilder(m.Version, m.TensorCount, len(m.KV))
	keys := make([]string, 0, len(m.KV))
	for k := range m.KV {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.kv(k, m.KV[k])
	}
	return b.Bytes()
}

func str(s string) ggufValue                 { return ggufValue{Type: ggufString, V: s} }
func strs(s ...string) ggufValue             { return ggufValue{Type: ggufArray, Elem: ggufString, V: s} }
func f32s(v ...float64) ggufValue            { return ggufValue{Type: ggufArray, Elem: ggufFloat32, V: v} }
func i32s(v ...int64) ggufValue              { return ggufValue{Type: ggufArray, Elem: ggufInt32, V: v} }
func boolean(v bool) ggufValue               { return ggufValue{Type: ggufBool, V: v} }
func u32v(v uint64) ggufValue                { return ggufValue{Type: ggufUint32, V: v} }
func meta(kv map[string]ggufValue) *ggufMeta { return &ggufMeta{Version: 3, KV: kv} }

// tinySPM is a SentencePiece vocabulary small enough to reason about:
// the byte tokens, ▁, and pieces of "the" and "then" whose scores make
// ▁the win over ▁t+he.
func tinySPM() *ggufMeta {
	tokens := []string{"<unk>", "<s>", "</s>"}
	types := []int64{ggufTokUnknown, ggufTokControl, ggufTokControl}
	for b := 0; b < 256; b++ {
		tokens = append(tokens, fmt.Sprintf("<0x%02X>", b))
		types = append(types, ggufTokByte)
	}
	words := []string{"▁", "t", "h", "e", "n", "▁t", "he", "▁the", "▁then", "<|user|>"}
	scores := make([]float64, len(tokens))
	for i, w := range words {
		tokens = append(tokens, w)
		types = append(types, ggufTokNormal)
		scores = append(scores, -float64(i))
	}
	types[len(types)-1] = ggufTokUserDefined
	return meta(map[string]ggufValue{
		"general.architecture":        str("llama"),
		"tokenizer.ggml.model":        str("llama"),
		"tokenizer.ggml.tokens":       strs(tokens...),
		"tokenizer.ggml.scores":       f32s(scores...),
		"tokenizer.ggml.token_type":   i32s(types...),
		"tokenizer.ggml.bos_token_id": u32v(1),
	})
}

func TestGGUFRoundTrip(t *testing.T) {
	m := tinySPM()
	m.TensorCount = 7
	m.KV["x.u8"] = ggufValue{Type: ggufUint8, V: uint64(200)}
	m.KV["x.i8"] = ggufValue{Type: ggufInt8, V: int64(-5)}
	m.KV["x.u16"] = ggufValue{Type: ggufUint16, V: uint64(60000)}
	m.KV["x.i16"] = ggufValue{Type: ggufInt16, V: int64(-30000)}
	m.KV["x.i64"] = ggufValue{Type: ggufInt64, V: int64(-1 << 40)}
	m.KV["x.u64"] = ggufValue{Type: ggufUint64, V: uint64(1 << 63)}
	m.KV["x.f64"] = ggufValue{Type: ggufFloat64, V: 2.5}
	m.KV["x.bools"] = ggufValue{Type: ggufArray, Elem: ggufBool, V: []bool{true, false}}
	m.KV["x.nested"] = ggufValue{Type: ggufArray, Elem: ggufArray, V: []ggufValue{strs("a", "b"), i32s(1, -2)}}
	m.KV["x.u16s"] = ggufValue{Type: ggufArray, Elem: ggufUint16, V: []int64{1, 65535}}
	got, err := readGGUF(bytes.NewReader(encodeMeta(m)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip differs:\n got  %+v\n want %+v", got, m)
	}
}

// TestGGUFMalformed: every malformed header is an error naming what is
// wrong and where, never a panic or an allocation of what a length claims.
func TestGGUFMalformed(t *testing.T) {
	good := encodeMeta(tinySPM())
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "file ends in the magic at offset 0"},
		{"not gguf", []byte("PK\x03\x04rest of a zip file"), `magic "PK\x03\x04" at offset 0`},
		{"version 1", newGGUFBuilder(1, 0, 0).Bytes(), "GGUF version 1"},
		{"version 9", newGGUFBuilder(9, 0, 0).Bytes(), "GGUF version 9"},
		{"too many keys", newGGUFBuilder(3, 0, 1<<40).Bytes(), "1099511627776 key-value pairs at offset 16"},
		{"truncated", good[:len(good)-3], "file ends in the"},
		{"huge string", func() []byte {
			b := newGGUFBuilder(3, 0, 1)
			b.u64(1 << 50)
			return b.Bytes()
		}(), "string of 1125899906842624 bytes at offset 24"},
		{"string past the end", func() []byte {
			b := newGGUFBuilder(3, 0, 1)
			b.u64(1 << 20)
			b.WriteString("short")
			return b.Bytes()
		}(), "file ends in the key 0 at offset"},
		{"huge array", func() []byte {
			b := newGGUFBuilder(3, 0, 1)
			b.str("tokenizer.ggml.tokens")
			b.u32(uint32(ggufArray))
			b.u32(uint32(ggufString))
			b.u64(1 << 40)
			return b.Bytes()
		}(), "array of 1099511627776 elements"},
		{"unknown type", func() []byte {
			b := newGGUFBuilder(3, 0, 1)
			b.str("k")
			b.u32(99)
			return b.Bytes()
		}(), `key "k" (offset 24): not a valid GGUF file: unknown value type 99`},
		{"bad bool", func() []byte {
			b := newGGUFBuilder(3, 0, 1)
			b.str("k")
			b.u32(uint32(ggufBool))
			b.WriteByte(7)
			return b.Bytes()
		}(), "bool byte 7"},
		{"duplicate key", func() []byte {
			b := newGGUFBuilder(3, 0, 2)
			b.kv("k", str("a"))
			b.kv("k", str("b"))
			return b.Bytes()
		}(), `key "k" appears twice`},
		{"deep nesting", func() []byte {
			b := newGGUFBuilder(3, 0, 1)
			b.str("k")
			b.u32(uint32(ggufArray))
			for range 5 {
				b.u32(uint32(ggufArray))
				b.u64(1)
			}
			return b.Bytes()
		}(), "nested deeper than 4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := readGGUF(bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	// Every truncation of a good file fails cleanly.
	for n := range len(good) {
		if _, err := readGGUF(bytes.NewReader(good[:n])); err == nil || !errors.Is(err, errGGUF) {
			t.Fatalf("truncated to %d bytes: err = %v, want errGGUF", n, err)
		}
	}
}

// TestGGUFVocabularyErrors: metadata that is GGUF but no usable tokenizer
// is refused, naming the key.
func TestGGUFVocabularyErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(kv map[string]ggufValue)
		want string
	}{
		{"no tokenizer", func(kv map[string]ggufValue) { delete(kv, "tokenizer.ggml.model") }, "no tokenizer.ggml.model"},
		{"wordpiece", func(kv map[string]ggufValue) { kv["tokenizer.ggml.model"] = str("bert") }, `tokenizer.ggml.model "bert": unsupported`},
		{"model not a string", func(kv map[string]ggufValue) { kv["tokenizer.ggml.model"] = u32v(1) }, "tokenizer.ggml.model is a uint32, want a string"},
		{"tokens not strings", func(kv map[string]ggufValue) { kv["tokenizer.ggml.tokens"] = i32s(1, 2) }, "tokenizer.ggml.tokens is an array of int32, want an array of strings"},
		{"no tokens", func(kv map[string]ggufValue) { kv["tokenizer.ggml.tokens"] = strs() }, "tokenizer.ggml.tokens: missing or empty"},
		{"short types", func(kv map[string]ggufValue) { kv["tokenizer.ggml.token_type"] = i32s(1) }, "tokenizer.ggml.token_type: 1 entries for 269 tokens"},
		{"short scores", func(kv map[string]ggufValue) { kv["tokenizer.ggml.scores"] = f32s(0) }, "tokenizer.ggml.scores: 1 entries for 269 tokens"},
		{"prefix not bool", func(kv map[string]ggufValue) { kv["tokenizer.ggml.add_space_prefix"] = str("yes") }, "add_space_prefix is a string, want a bool"},
		{"unknown pre", func(kv map[string]ggufValue) {
			kv["tokenizer.ggml.model"] = str("gpt2")
			kv["tokenizer.ggml.pre"] = str("falcon")
		}, `tokenizer.ggml.pre "falcon": unsupported (pre-tokenizers read: deepseek-r1-qwen, gpt-2, llama-bpe, llama-v3, llama3, phi-2, qwen2)`},
		{"no merges", func(kv map[string]ggufValue) {
			kv["tokenizer.ggml.model"] = str("gpt2")
			kv["tokenizer.ggml.pre"] = str("gpt-2")
		}, "no tokenizer.ggml.merges"},
		{"bad merge", func(kv map[string]ggufValue) {
			kv["tokenizer.ggml.model"] = str("gpt2")
			kv["tokenizer.ggml.pre"] = str("gpt-2")
			kv["tokenizer.ggml.merges"] = strs("t h", "nospace")
		}, `tokenizer.ggml.merges[1] "nospace": want two tokens separated by a space`},
		{"merge outside the vocabulary", func(kv map[string]ggufValue) {
			kv["tokenizer.ggml.model"] = str("gpt2")
			kv["tokenizer.ggml.pre"] = str("gpt-2")
			kv["tokenizer.ggml.merges"] = strs("t h")
		}, `merges[0] "t" "h": token not in vocab`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := tinySPM()
			c.edit(m.KV)
			_, err := newGGUF(m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := LoadGGUF(filepath.Join(t.TempDir(), "missing.gguf")); err == nil || !strings.Contains(err.Error(), "missing.gguf") {
		t.Errorf("missing file: err = %v, want the path", err)
	}
}

// TestTinySPM checks the SentencePiece merge on a vocabulary small enough
// to work out by hand.
func TestTinySPM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := os.WriteFile(path, encodeMeta(tinySPM()), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := tok.(*GGUF)
	id := func(s string) int { return g.ids[s] }
	for _, c := range []struct {
		text string
		want []int
	}{
		// A space prefix, then ▁the beats ▁t+he on score.
		{"the", []int{id("▁the")}},
		{"then the", []int{id("▁then"), id("▁the")}},
		// " the": the prefix space and the text's own make ▁▁the.
		{" the", []int{id("▁"), id("▁the")}},
		// No piece covers é: its two UTF-8 bytes fall back.
		{"é", []int{id("▁"), id("<0xC3>"), id("<0xA9>")}},
		// Control tokens in text are tokens; a space prefix follows them.
		{"<s>the</s>", []int{1, id("▁the"), 2}},
		// User-defined tokens too.
		{"the<|user|>then", []int{id("▁the"), id("<|user|>"), id("▁then")}},
		{"", nil},
	} {
		got, err := tok.(*GGUF).Encode(c.text)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, %v; want %v", c.text, got, err, c.want)
		}
		if n, err := tok.Count(c.text); err != nil || n != len(c.want) {
			t.Errorf("Count(%q) = %d, %v; want %d", c.text, n, err, len(c.want))
		}
	}
	// Without parse_special, control tokens are text, user-defined ones
	// still tokens (llama.cpp's rule).
	got, _ := g.encode("<s><|user|>", false)
	if slices.Contains(got, 1) || !slices.Contains(got, id("<|user|>")) {
		t.Errorf("parse_special=false: %v", got)
	}
	if g.Name() != "gguf:"+path || g.Kind() != "llama" {
		t.Errorf("Name %q Kind %q", g.Name(), g.Kind())
	}
}

// FuzzReadGGUF: no input panics the reader or the vocabulary loader; what
// reads, re-encodes to bytes that read the same; a loaded vocabulary
// counts what it encodes.
func FuzzReadGGUF(f *testing.F) {
	f.Add(encodeMeta(tinySPM()), "the then é <s>")
	bpe := tinySPM()
	bpe.KV["tokenizer.ggml.model"] = str("gpt2")
	bpe.KV["tokenizer.ggml.pre"] = str("gpt-2")
	bpe.KV["tokenizer.ggml.merges"] = strs("t he", "▁ the")
	f.Add(encodeMeta(bpe), "the the")
	f.Add(newGGUFBuilder(3, 0, 0).Bytes(), "")
	f.Add([]byte("GGUF\x03\x00\x00\x00"), "x")
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		m, err := readGGUF(bytes.NewReader(data))
		if err != nil {
			return
		}
		again, err := readGGUF(bytes.NewReader(encodeMeta(m)))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encoded metadata reads differently: %v", err)
		}
		tok, err := newGGUF(m)
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
