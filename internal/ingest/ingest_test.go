package ingest_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest"
	"github.com/reprise-llm/reprise/internal/ingest/wire"
)

var key = []byte("ingest-test-key-of-thirty-two-by")

// sink keeps records; full refuses them.
type sink struct {
	mu   sync.Mutex
	recs []*capture.Record
	full bool
}

func (s *sink) Write(r *capture.Record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return false
	}
	s.recs = append(s.recs, r)
	return true
}

var _ ingest.RecordWriter = (*sink)(nil)

var origin = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// serve starts a collector: cfg's zero fields get the test key, origin,
// hashed content and a clock at origin+1m.
func serve(t *testing.T, cfg ingest.Config) (*httptest.Server, *ingest.Handler, *sink) {
	t.Helper()
	if cfg.Hasher == nil {
		cfg.Hasher, cfg.Key = capture.NewHasher(key, 0), key
	}
	if cfg.Origin.IsZero() {
		cfg.Origin = origin
	}
	if cfg.Content == "" {
		cfg.Content = capture.ContentHashed
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return origin.Add(time.Minute) }
	}
	s := &sink{}
	h, err := ingest.New(cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h, s
}

// line encodes a record line as the filter does.
func line(t *testing.T, rec capture.Record, chain []uint64, keyID string) string {
	t.Helper()
	b, err := json.Marshal(wire.Line{Record: &rec, HashChain: wire.Chains(chain), KeyID: keyID})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// good is a valid filter record arriving at origin+d.
func good(id string, d time.Duration) capture.Record {
	return capture.Record{ID: id, Wall: origin.Add(d), Source: capture.SourceWasm, Method: "POST", Path: "/v1/chat/completions",
		Model: "m", Status: 200, PromptChars: 10, Block: capture.DefaultBlockChars, TTFBNs: 5, E2ENs: 9}
}

func post(t *testing.T, url string, body io.Reader, encoding string) (int, wire.Result) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+wire.RecordsPath, body)
	req.Header.Set("Content-Type", wire.ContentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res wire.Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("status %d: answer is not a result: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, res
}

// TestRecordsWritten: t comes from the wall time, chains become ids that
// agree across lines (and senders), the key id is answered.
func TestRecordsWritten(t *testing.T) {
	srv, h, s := serve(t, ingest.Config{})
	kid := capture.NewHasher(key, 0).KeyID()
	a, b := good("vm1-1", 2*time.Second), good("vm2-1", -3*time.Second) // b: before the collector started
	a.Session = "feedfacefeedface"
	body := line(t, a, []uint64{11, 22, 33}, kid) + "\n\n" + line(t, b, []uint64{11, 22, 44}, kid) + "\r\n"
	status, res := post(t, srv.URL, strings.NewReader(body), "")
	if status != 200 || res.Received != 2 || res.Written != 2 || res.Rejected != 0 || res.KeyID != kid {
		t.Fatalf("status %d, result %+v", status, res)
	}
	ra, rb := s.recs[0], s.recs[1]
	if ra.T != int64(2*time.Second) || rb.T != int64(-3*time.Second) {
		t.Errorf("t = %d, %d; want 2s and -3s from the origin", ra.T, rb.T)
	}
	if fmt.Sprint(ra.HashIDs) != "[0 1 2]" || fmt.Sprint(rb.HashIDs) != "[0 1 3]" || ra.Block != capture.DefaultBlockChars {
		t.Errorf("hash ids %v, %v (block %d)", ra.HashIDs, rb.HashIDs, ra.Block)
	}
	if ra.Session != a.Session || ra.Source != capture.SourceWasm || ra.Model != "m" {
		t.Errorf("record a: %+v", ra)
	}
	if st := h.Stats(); st.Batches != 1 || st.Received != 2 || st.Written != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestLinesRefused: each bad line is refused alone, reported by its line
// number and counted by reason; the good lines around it are written.
func TestLinesRefused(t *testing.T) {
	srv, h, s := serve(t, ingest.Config{MaxLineBytes: 4096})
	ok := line(t, good("ok", 0), nil, "")
	mod := func(f func(*capture.Record)) string {
		r := good("bad", 0)
		f(&r)
		return line(t, r, nil, "")
	}
	lines := []struct {
		text, err, reason string
	}{
		{ok, "", ""},
		{`{"id": "x", "wall": `, "not JSON", "json"},
		{`not json at all`, "not JSON", "json"},
		{`{"id": 7}`, `member "id"`, "json"},
		{`{"id":"c","hash_chain":["xyz"]}`, "", "json"},
		{mod(func(r *capture.Record) { r.ID = "" }), "id:", "invalid"},
		{mod(func(r *capture.Record) { r.ID = strings.Repeat("i", 129) }), "id:", "invalid"},
		{mod(func(r *capture.Record) { r.Path = "" }), "path missing", "invalid"},
		{mod(func(r *capture.Record) { r.Source = "" }), "source", "invalid"},
		{mod(func(r *capture.Record) { r.Shadow = true }), "shadow", "invalid"},
		{mod(func(r *capture.Record) { r.Wall = time.Time{} }), "wall missing", "invalid"},
		{mod(func(r *capture.Record) { r.E2ENs = -1 }), "negative", "invalid"},
		{mod(func(r *capture.Record) { r.ChunksUS = []int64{1} }), "chunks_us", "invalid"},
		{mod(func(r *capture.Record) { r.Wall = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC) }), "wrong clock", "clock"},
		{mod(func(r *capture.Record) { r.Wall = origin.Add(time.Hour) }), "wrong clock", "clock"},
		{`{"id":"` + strings.Repeat("l", 5000) + `"}`, "longer than 4096 bytes", "too_long"},
		{ok, "", ""},
	}
	var body strings.Builder
	for _, l := range lines {
		body.WriteString(l.text + "\n")
	}
	status, res := post(t, srv.URL, strings.NewReader(body.String()), "")
	if status != 200 || res.Received != len(lines) || res.Written != 2 || len(s.recs) != 2 || res.Rejected != len(lines)-2 {
		t.Fatalf("status %d, result %+v", status, res)
	}
	if len(res.Errors) != len(lines)-2 {
		t.Fatalf("%d errors listed, want %d: %+v", len(res.Errors), len(lines)-2, res.Errors)
	}
	reasons := map[string]float64{}
	for i, e := range res.Errors {
		want := lines[e.Line-1]
		if want.reason == "" || !strings.Contains(e.Error, want.err) {
			t.Errorf("error %d: line %d %q, want %q", i, e.Line, e.Error, want.err)
		}
		if strings.Contains(e.Error, "llll") || strings.Contains(e.Error, "not json at all") {
			t.Errorf("an error quotes the line: %q", e.Error)
		}
	}
	for _, l := range lines {
		if l.reason != "" {
			reasons[l.reason]++
		}
	}
	got := gather(t, h, "reprise_ingest_records_rejected_total")
	for r, n := range reasons {
		if got[r] != n {
			t.Errorf("rejected{reason=%q} = %v, want %v", r, got[r], n)
		}
	}
}

// gather returns a metric's values by its reason label ("" unlabelled).
func gather(t *testing.T, c prometheus.Collector, name string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[label(m)] = m.GetCounter().GetValue()
		}
	}
	return out
}

func label(m *dto.Metric) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == "reason" {
			return l.GetValue()
		}
	}
	return ""
}

// TestFieldsStripped: the capture's content mode caps what is kept; keyed
// fields of another key and chains of another block size are removed;
// hash_ids sent directly mean nothing and are replaced; errors are
// scrubbed again.
func TestFieldsStripped(t *testing.T) {
	kid := capture.NewHasher(key, 0).KeyID()
	full := good("full", 0)
	full.Prompt, full.Messages, full.Session = "the prompt", []byte(`[{"role":"user"}]`), "0011223344556677"
	full.HashIDs = []uint32{99}
	full.Error = "upstream said: Authorization: Bearer abc.def.ghi"
	otherBlock := good("block", 0)
	otherBlock.Block = 512
	for _, tc := range []struct {
		content      string
		rec          capture.Record
		keyID        string
		prompt, ids  bool
		session      bool
		strippedWhy  string
		strippedWant float64
	}{
		{capture.ContentFull, full, kid, true, true, true, "", 0},
		{capture.ContentHashed, full, kid, false, true, true, "content", 1},
		{capture.ContentNone, full, kid, false, false, true, "content", 1},
		{capture.ContentFull, full, "0000000000000000", true, false, false, "key", 1},
		{capture.ContentFull, otherBlock, kid, false, false, false, "block", 1},
	} {
		t.Run(tc.content+"/"+tc.rec.ID+"/"+tc.keyID, func(t *testing.T) {
			srv, h, s := serve(t, ingest.Config{Content: tc.content})
			if status, res := post(t, srv.URL, strings.NewReader(line(t, tc.rec, []uint64{5, 6}, tc.keyID)), ""); status != 200 || res.Written != 1 {
				t.Fatalf("status %d, result %+v", status, res)
			}
			r := s.recs[0]
			if (r.Prompt != "") != tc.prompt || (len(r.Messages) > 0) != tc.prompt {
				t.Errorf("prompt %q, messages %q", r.Prompt, r.Messages)
			}
			if (len(r.HashIDs) > 0) != tc.ids || (tc.ids && fmt.Sprint(r.HashIDs) != "[0 1]") || (r.Block != 0) != tc.ids {
				t.Errorf("hash ids %v, block %d", r.HashIDs, r.Block)
			}
			if (r.Session != "") != tc.session {
				t.Errorf("session %q", r.Session)
			}
			if strings.Contains(r.Error, "abc.def") {
				t.Errorf("error not scrubbed: %q", r.Error)
			}
			if tc.strippedWhy != "" {
				if got := gather(t, h, "reprise_ingest_records_stripped_total")[tc.strippedWhy]; got != tc.strippedWant {
					t.Errorf("stripped{reason=%q} = %v, want %v", tc.strippedWhy, got, tc.strippedWant)
				}
			}
		})
	}
}

// TestBatchBounds: a batch over the size bound, a gzip bomb, bad gzip, an
// unknown encoding and too many lines are refused with a result saying
// how far the collector read; what it read is written.
func TestBatchBounds(t *testing.T) {
	ok := line(t, good("ok", 0), nil, "")
	zip := func(s string) *bytes.Buffer {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = io.WriteString(zw, s)
		_ = zw.Close()
		return &b
	}
	t.Run("gzip", func(t *testing.T) {
		srv, _, s := serve(t, ingest.Config{})
		if status, res := post(t, srv.URL, zip(ok+"\n"+ok+"\n"), "gzip"); status != 200 || res.Written != 2 || len(s.recs) != 2 {
			t.Errorf("status %d, result %+v", status, res)
		}
	})
	t.Run("too large", func(t *testing.T) {
		srv, h, s := serve(t, ingest.Config{MaxBodyBytes: int64(3*len(ok) + 10)})
		status, res := post(t, srv.URL, strings.NewReader(strings.Repeat(ok+"\n", 10)), "")
		if status != http.StatusRequestEntityTooLarge || res.Written != 3 || len(s.recs) != 3 || h.Stats().Refused != 1 {
			t.Errorf("status %d, result %+v, %d written", status, res, len(s.recs))
		}
	})
	t.Run("gzip bomb", func(t *testing.T) {
		srv, _, s := serve(t, ingest.Config{MaxBodyBytes: 1 << 20})
		bomb := zip(ok + "\n" + strings.Repeat(" ", 64<<20)) // 64 MiB of spaces: a few KiB compressed
		status, res := post(t, srv.URL, bomb, "gzip")
		if status != http.StatusRequestEntityTooLarge || res.Written != 1 || len(s.recs) != 1 {
			t.Errorf("status %d, result %+v", status, res)
		}
	})
	t.Run("bad gzip", func(t *testing.T) {
		srv, _, _ := serve(t, ingest.Config{})
		if status, _ := post(t, srv.URL, strings.NewReader(ok), "gzip"); status != http.StatusBadRequest {
			t.Errorf("status %d, want 400", status)
		}
	})
	t.Run("unknown encoding", func(t *testing.T) {
		srv, _, _ := serve(t, ingest.Config{})
		if status, _ := post(t, srv.URL, strings.NewReader(ok), "br"); status != http.StatusUnsupportedMediaType {
			t.Errorf("status %d, want 415", status)
		}
	})
	t.Run("too many lines", func(t *testing.T) {
		srv, _, s := serve(t, ingest.Config{MaxLines: 4})
		status, res := post(t, srv.URL, strings.NewReader(strings.Repeat(ok+"\n", 6)), "")
		if status != http.StatusRequestEntityTooLarge || res.Received != 4 || len(s.recs) != 4 {
			t.Errorf("status %d, result %+v", status, res)
		}
	})
	t.Run("writer full", func(t *testing.T) {
		srv, h, s := serve(t, ingest.Config{})
		s.full = true
		if status, res := post(t, srv.URL, strings.NewReader(ok+"\n"+ok), ""); status != 200 || res.Dropped != 2 || h.Stats().Dropped != 2 {
			t.Errorf("status %d, result %+v", status, res)
		}
	})
}

// TestKeyEndpoint: the key is served as the filter expects it, only by
// GET, and not at all without one.
func TestKeyEndpoint(t *testing.T) {
	srv, _, _ := serve(t, ingest.Config{})
	resp, err := http.Get(srv.URL + wire.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	var k wire.Key
	if err := json.NewDecoder(resp.Body).Decode(&k); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !bytes.Equal(k.Key, key) || k.Block != capture.DefaultBlockChars || k.KeyID != capture.NewHasher(key, 0).KeyID() ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("key answer %+v, cache-control %q", k, resp.Header.Get("Cache-Control"))
	}
	if resp, err := http.Post(srv.URL+wire.KeyPath, "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST key: %v %v", resp.StatusCode, err)
	}
	noKey, _, _ := serve(t, ingest.Config{Hasher: capture.NewHasher(nil, 0)})
	if resp, err := http.Get(noKey.URL + wire.KeyPath); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET key without one: %v %v", resp.StatusCode, err)
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := ingest.New(ingest.Config{Content: "most", MaxLines: -1}, &sink{}, nil)
	for _, want := range []string{`content "most"`, "hasher is required", "origin is required", "negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
