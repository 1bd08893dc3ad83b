package workload

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

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

func write(t testing.TB, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func warnings(src Source) []string {
	if w, ok := src.(interface{ Warnings() []string }); ok {
		return w.Warnings()
	}
	return nil
}

func TestCaptureSource(t *testing.T) {
	dir := capturetest.Write(t, []capture.Record{
		{ID: "a", T: 1000, Path: "/v1/models", Status: 200},
		{ID: "b", T: 2000, Path: "/v1/chat/completions", Model: "m", Stream: true, PromptTokens: 50, OutputTokens: 7, HashIDs: []uint32{0, 1}, Block: 2048, Session: "s1", Status: 200},
		{ID: "b", T: 2500, Path: "/v1/chat/completions", Shadow: true, Status: 200},
		{ID: "d", T: 7000, Path: "/v1/chat/completions", Status: 200, Messages: []byte(`[{"role":"user","content":"hi"}]`)},
		// written after d because it ran longer: replay must still send it second
		{ID: "c", T: 5000, Path: "/v1/completions", MaxTokens: 9, PromptTokens: 3, Status: 200},
	})
	for _, spec := range []string{dir, "capture:" + dir} {
		src, err := Open(spec, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		reqs := drain(t, src)
		shadow, other := src.(*Capture).NotReplayable()
		if len(reqs) != 3 || src.(*Capture).Skipped() != 0 || shadow != 1 || other != 1 || reqs[2].ID != "d" {
			t.Fatalf("%d requests, %d skipped, %d shadow, %d other paths", len(reqs), src.(*Capture).Skipped(), shadow, other)
		}
		if r := reqs[0]; r.Offset != 0 || r.Model != "m" || !r.Stream || r.PromptTokens != 50 || r.OutputTokens != 7 ||
			r.BlockTokens != 512 || len(r.HashIDs) != 2 || r.Session != "s1" || r.Recorded == nil || r.Recorded.ID != "b" {
			t.Errorf("%+v", r)
		}
		if r := reqs[1]; r.Offset != 3000 || r.OutputTokens != 9 || r.Endpoint != openai.Completions {
			t.Errorf("%+v", r)
		}
		if r := reqs[2]; string(r.Messages) != `[{"role":"user","content":"hi"}]` {
			t.Errorf("recorded messages not kept: %+v", r)
		}
		if err := src.(io.Closer).Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestOpenDetectsFormats(t *testing.T) {
	dir := tracestest.Dir(t)
	for spec, want := range map[string]string{
		filepath.Join(dir, tracestest.Mooncake):     "*workload.Mooncake",
		filepath.Join(dir, tracestest.Azure):        "*workload.Azure",
		write(t, "b.csv", burstFixture):             "*workload.BurstGPT",
		"synthetic:prompt_tokens=3,output_tokens=2": "*workload.Synthetic",
	} {
		src, err := Open(spec, OpenOptions{})
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if got := typeName(src); got != want {
			t.Errorf("%s opened as %s, want %s", spec, got, want)
		}
		closeSource(src)
	}
	for spec, wantErr := range map[string]string{
		filepath.Join(t.TempDir(), "nope.csv"): "nope.csv",
		"tsv:x":                                "unknown kind",
		write(t, "x.jsonl", `{"a":1}`):         "cannot tell its format",
		t.TempDir():                            "not a capture",
	} {
		if _, err := Open(spec, OpenOptions{}); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: err = %v, want %q", spec, err, wantErr)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *Mooncake:
		return "*workload.Mooncake"
	case *Azure:
		return "*workload.Azure"
	case *BurstGPT:
		return "*workload.BurstGPT"
	case *Synthetic:
		return "*workload.Synthetic"
	case *Capture:
		return "*workload.Capture"
	}
	return "other"
}

func TestOpenOverridesEndpointAndStream(t *testing.T) {
	p := write(t, "m.jsonl", "{\"timestamp\":0,\"input_length\":10,\"output_length\":2}\n{\"timestamp\":5,\"input_length\":3,\"output_length\":1}\n{]\n")
	off := false
	src, err := Open("mooncake:"+p, OpenOptions{Endpoint: openai.Completions, Stream: &off, SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, src)
	if len(reqs) != 2 || reqs[1].Endpoint != openai.Completions || reqs[1].Stream {
		t.Fatalf("%+v", reqs)
	}
	// the wrapper still reports what the reader saw, and closes it
	if src.(interface{ Skipped() int }).Skipped() != 1 {
		t.Error("skipped lines not forwarded")
	}
	if err := src.(io.Closer).Close(); err != nil {
		t.Error(err)
	}
	if _, err := Open("mooncake:"+p, OpenOptions{Endpoint: "embeddings"}); err == nil || !strings.Contains(err.Error(), "embeddings") {
		t.Errorf("bad endpoint: %v", err)
	}
}

func TestLimitAndTimeScale(t *testing.T) {
	p := write(t, "m.jsonl", `{"timestamp":1000,"input_length":10,"output_length":2,"session_id":"a","delay":300}`+"\n"+
		`{"timestamp":2000.5,"input_length":3,"output_length":1}`+"\n"+`{"timestamp":3000,"input_length":3,"output_length":1}`+"\n")
	src, _ := OpenMooncake(p, OpenOptions{})
	reqs := drain(t, Limit(TimeScale(src, 0.5), 2))
	if len(reqs) != 2 || reqs[0].Offset != 500*time.Millisecond || reqs[0].Delay != 150*time.Millisecond ||
		reqs[1].Offset != 1000250*time.Microsecond {
		t.Fatalf("%+v", reqs)
	}
	if got := drain(t, Limit(&Synthetic{Spec: SyntheticSpec{Samples: 3}}, 0)); len(got) != 0 {
		t.Errorf("Limit 0 gave %d", len(got))
	}
	if scaleDuration(time.Duration(1<<62), 1e9) <= 0 {
		t.Error("a scaled offset overflowed")
	}
}

func TestCapturePath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte("{}"), 0o644)
	for spec, want := range map[string]string{"capture:/x/cap": "/x/cap", "seg-000001.jsonl.zst": "seg-000001.jsonl.zst", dir: dir} {
		if got, ok := CapturePath(spec); !ok || got != want {
			t.Errorf("CapturePath(%q) = %q, %v; want %q", spec, got, ok, want)
		}
	}
	for _, spec := range []string{"mooncake:/x.jsonl", "synthetic:prompt_tokens=1,output_tokens=1", t.TempDir()} {
		if _, ok := CapturePath(spec); ok {
			t.Errorf("CapturePath(%q) says capture", spec)
		}
	}
}
