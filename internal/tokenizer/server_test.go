package tokenizer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// llamaCppTokenize answers as llama.cpp's llama-server does: a body with
// "content" is tokenized (here: one token per word, plus BOS with
// add_special), any other body gets an empty list — including vLLM's.
func llamaCppTokenize(bodies *[]map[string]any, mu *sync.Mutex) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tokenize" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var in map[string]any
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		mu.Lock()
		*bodies = append(*bodies, in)
		mu.Unlock()
		tokens := []int{}
		if content, ok := in["content"].(string); ok {
			if in["add_special"] == true {
				tokens = append(tokens, 1)
			}
			for i := range strings.Fields(content) {
				tokens = append(tokens, 100+i)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"tokens": tokens})
	})
}

// TestServerSpeaksLlamaCpp: a target that answers vLLM's request with no
// tokens is asked again in llama.cpp's dialect, which it then keeps; its
// counts exclude BOS and parse special tokens.
func TestServerSpeaksLlamaCpp(t *testing.T) {
	var (
		bodies []map[string]any
		mu     sync.Mutex
	)
	srv := httptest.NewServer(llamaCppTokenize(&bodies, &mu))
	defer srv.Close()
	tok, err := Open("server", Options{Target: srv.URL, Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	s := tok.(*Server)
	if s.Dialect() != DialectLlamaCpp {
		t.Fatalf("dialect %q, want %q", s.Dialect(), DialectLlamaCpp)
	}
	if n, err := tok.Count("the quick brown fox"); err != nil || n != 4 {
		t.Errorf("Count = %d, %v; want 4", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 3 {
		t.Fatalf("%d requests, want the vLLM probe, the llama.cpp probe and the count: %v", len(bodies), bodies)
	}
	if _, ok := bodies[0]["prompt"]; !ok {
		t.Errorf("first probe %v: want vLLM's request first", bodies[0])
	}
	last := bodies[2]
	if last["content"] != "the quick brown fox" || last["add_special"] != false || last["parse_special"] != true {
		t.Errorf("count request %v", last)
	}
}

// TestServerNeitherDialect: a /tokenize that gives no tokens in either
// dialect is refused at Open, naming both attempts.
func TestServerNeitherDialect(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"tokens":[]}`))
	}))
	defer srv.Close()
	_, err := Open("server", Options{Target: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "vllm dialect: no tokens") || !strings.Contains(err.Error(), "llama.cpp dialect: no tokens") {
		t.Fatalf("err = %v, want both dialects named", err)
	}
}
