package workload

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
)

func traces(t testing.TB) string {
	dir := os.Getenv("REPRISE_TRACES")
	if dir == "" {
		dir = "../../../shared/traces"
	}
	if _, err := os.Stat(filepath.Join(dir, "mooncake-conversation.jsonl")); err != nil {
		t.Fatalf("public traces not found in %s (set REPRISE_TRACES): %v", dir, err)
	}
	return dir
}

func drain(t testing.TB, src Source) []Request {
	t.Helper()
	var out []Request
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
}

func TestMooncakeTrace(t *testing.T) {
	src, err := Open("mooncake:"+filepath.Join(traces(t), "mooncake-conversation.jsonl"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.(io.Closer).Close()
	reqs := drain(t, src)
	if len(reqs) != 12031 {
		t.Fatalf("%d requests, want 12031", len(reqs))
	}
	for i, r := range reqs {
		if want := (r.PromptTokens + 511) / 512; len(r.HashIDs) != want {
			t.Fatalf("request %d: %d hash ids for %d tokens, want %d", i, len(r.HashIDs), r.PromptTokens, want)
		}
		if i > 0 && r.Offset < reqs[i-1].Offset {
			t.Fatalf("request %d goes back in time", i)
		}
	}
	// timestamps are milliseconds: the trace spans about an hour
	if span := reqs[len(reqs)-1].Offset; span < 50*time.Minute || span > 70*time.Minute {
		t.Errorf("span %v; Mooncake timestamps are ms and the trace is about an hour", span)
	}
	if w := src.(interface{ Warnings() []string }).Warnings(); len(w) != 0 {
		t.Errorf("unexpected warnings %v", w)
	}
}

func TestAzureTraceKeepsSubMillisecondPrecision(t *testing.T) {
	src, err := Open("azure:"+filepath.Join(traces(t), "azure-2023-code.csv"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.(io.Closer).Close()
	reqs := drain(t, src)
	if len(reqs) != 8819 { // shared/traces/README.md says 8,818; the file has 8,819 data rows (python csv agrees)
		t.Fatalf("%d requests, want 8819", len(reqs))
	}
	sub := 0
	for _, r := range reqs {
		if r.Offset%time.Millisecond != 0 {
			sub++
		}
	}
	if sub < len(reqs)/2 {
		t.Errorf("only %d of %d offsets keep sub-millisecond digits", sub, len(reqs))
	}
	if reqs[0].Offset != 0 || reqs[0].PromptTokens <= 0 {
		t.Errorf("first request %+v", reqs[0])
	}
}

func TestAzureLayoutsAndWarnings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.csv")
	os.WriteFile(p, []byte("TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00.0141+00:00,10,2\n2024-05-10 00:00:01.5+00:00,20,3\n2024-05-10 00:00:01+00:00,5,1\n"), 0o644)
	src, err := OpenAzure(p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, src)
	if len(reqs) != 3 || reqs[1].Offset != 1500*time.Millisecond-14100*time.Microsecond {
		t.Fatalf("%+v", reqs)
	}
	if w := src.Warnings(); len(w) != 1 || !strings.Contains(w[0], "backwards") {
		t.Errorf("warnings %v", w)
	}
}

func TestMalformedLinesNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	mp := filepath.Join(dir, "m.jsonl")
	os.WriteFile(mp, []byte(`{"timestamp":0,"input_length":10,"output_length":2,"hash_ids":[1]}`+"\n"+`{"timestamp":"x"}`+"\n"+`{"timestamp":5,"input_length":3,"output_length":1}`+"\n"), 0o644)
	src, _ := OpenMooncake(mp, OpenOptions{})
	_, _ = src.Next()
	_, err := src.Next()
	if err == nil || !strings.Contains(err.Error(), "m.jsonl line 2") {
		t.Fatalf("err = %v", err)
	}
	skip, _ := OpenMooncake(mp, OpenOptions{SkipInvalid: true})
	if got := drain(t, skip); len(got) != 2 || skip.Skipped() != 1 {
		t.Fatalf("skip-invalid: %d requests, %d skipped", len(got), skip.Skipped())
	}
	ap := filepath.Join(dir, "a.csv")
	os.WriteFile(ap, []byte("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,12,3\n2023-11-16 18:17:04,many,3\n"), 0o644)
	asrc, _ := OpenAzure(ap, OpenOptions{})
	_, _ = asrc.Next()
	if _, err := asrc.Next(); err == nil || !strings.Contains(err.Error(), "a.csv line 3") || !strings.Contains(err.Error(), "ContextTokens") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Open(filepath.Join(dir, "nope.csv"), OpenOptions{}); err == nil || !strings.Contains(err.Error(), "nope.csv") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := Open("tsv:"+ap, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestMooncakeSecondsWarning(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.jsonl")
	var sb strings.Builder
	for i := 0; i < 2000; i++ {
		sb.WriteString(`{"timestamp":` + itoa(i) + `,"input_length":10,"output_length":2,"hash_ids":[1]}` + "\n")
	}
	os.WriteFile(p, []byte(sb.String()), 0o644)
	src, _ := OpenMooncake(p, OpenOptions{})
	drain(t, src)
	if w := src.Warnings(); len(w) != 1 || !strings.Contains(w[0], "seconds") {
		t.Fatalf("warnings %v", w)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestSynthetic(t *testing.T) {
	s, err := ParseSynthetic("prompt_tokens=100,prompt_tokens_stdev=30,prompt_tokens_min=80,prompt_tokens_max=120,output_tokens=10,samples=500,seed=3")
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, s)
	if len(reqs) != 500 {
		t.Fatal(len(reqs))
	}
	sum := 0
	for _, r := range reqs {
		if r.PromptTokens < 80 || r.PromptTokens > 120 || r.OutputTokens != 10 {
			t.Fatalf("%+v", r)
		}
		sum += r.PromptTokens
	}
	if mean := float64(sum) / 500; mean < 95 || mean > 105 {
		t.Errorf("mean %v", mean)
	}
	_, err = ParseSynthetic("prompt_tokens=1,output_tokns=2")
	if err == nil || !strings.Contains(err.Error(), `"output_tokns"`) || !strings.Contains(err.Error(), "output_tokens is required") {
		t.Fatalf("err = %v", err)
	}
}

func TestCaptureSource(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	w, err := capture.NewWriter(dir, capture.WriterOptions{Manifest: capture.Manifest{Format: capture.FormatName, Version: capture.FormatVersion, Start: time.Now(), Block: 2048}})
	if err != nil {
		t.Fatal(err)
	}
	recs := []capture.Record{
		{ID: "a", T: 1000, Path: "/v1/models", Status: 200},
		{ID: "b", T: 2000, Path: "/v1/chat/completions", Model: "m", Stream: true, PromptTokens: 50, OutputTokens: 7, HashIDs: []uint32{0, 1}, Block: 2048, Status: 200},
		{ID: "b", T: 2500, Path: "/v1/chat/completions", Shadow: true, Status: 200},
		{ID: "d", T: 7000, Path: "/v1/chat/completions", Status: 200},
		// written after d because it ran longer: replay must still send it second
		{ID: "c", T: 5000, Path: "/v1/completions", MaxTokens: 9, PromptTokens: 3, Status: 200},
	}
	for i := range recs {
		if !w.Write(&recs[i]) {
			t.Fatal("write refused")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, src)
	if len(reqs) != 3 || src.(*Capture).Skipped() != 2 || reqs[2].ID != "d" {
		t.Fatalf("%d requests, %d skipped", len(reqs), src.(*Capture).Skipped())
	}
	if r := reqs[0]; r.Offset != 0 || r.Model != "m" || !r.Stream || r.PromptTokens != 50 || r.OutputTokens != 7 || r.BlockTokens != 512 || r.Recorded == nil {
		t.Errorf("%+v", r)
	}
	if r := reqs[1]; r.Offset != 3000 || r.OutputTokens != 9 || r.Endpoint != "completions" {
		t.Errorf("%+v", r)
	}
}

func FuzzMooncake(f *testing.F) {
	f.Add([]byte(`{"timestamp":0,"input_length":10,"output_length":2,"hash_ids":[1]}` + "\n"))
	f.Add([]byte("{\"timestamp\":1.5}\n\n{]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.jsonl")
		os.WriteFile(p, data, 0o644)
		for _, skip := range []bool{false, true} {
			src, err := OpenMooncake(p, OpenOptions{SkipInvalid: skip})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 10000; i++ {
				r, err := src.Next()
				if err != nil {
					break
				}
				if r.PromptTokens < 0 || r.OutputTokens < 0 || r.Offset < 0 {
					t.Fatalf("negative fields accepted: %+v", r)
				}
			}
			src.Close()
		}
	})
}

func FuzzAzure(f *testing.F) {
	f.Add([]byte("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,12,3\n"))
	f.Add([]byte("ContextTokens,TIMESTAMP,GeneratedTokens\n1,2024-05-10 00:00:00+00:00,3\n,,\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.csv")
		os.WriteFile(p, data, 0o644)
		src, err := OpenAzure(p, OpenOptions{SkipInvalid: true})
		if err != nil {
			return // a missing header is reported, not a panic
		}
		defer src.Close()
		for i := 0; i < 10000; i++ {
			r, err := src.Next()
			if err != nil {
				break
			}
			if r.Offset < 0 || r.PromptTokens < 0 {
				t.Fatalf("%+v", r)
			}
		}
	})
}

func FuzzSyntheticSpec(f *testing.F) {
	f.Add("prompt_tokens=256,output_tokens=128,samples=3")
	f.Add("prompt_tokens=1,prompt_tokens_stdev=1e9,output_tokens=1,samples=2")
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSynthetic(spec)
		if err != nil || s.Spec.Samples > 1000 {
			return
		}
		for _, r := range drain(t, s) {
			if r.PromptTokens < 1 || r.OutputTokens < 1 {
				t.Fatalf("%q gave %+v", spec, r)
			}
		}
	})
}
