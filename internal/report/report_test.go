package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/stats"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// results makes n deterministic streamed requests, one every 250 ms, with
// TTFT and token gaps scaled by slow; request 13 fails with a 500.
func results(n int, slow float64) []engine.Result {
	var out []engine.Result
	for i := range n {
		sent := ms(float64(i) * 250)
		r := engine.Result{
			Index: i, Endpoint: "chat", Stream: true, Status: 200,
			Intended: sent, Sent: sent + ms(float64(i%3)*0.5), FirstByte: sent + ms(20*slow),
			PromptTokens: 100 + 10*i, OutputTokens: 20, RequestedPromptTokens: 100 + 10*i, RequestedOutputTokens: 20,
			TokensFromUsage: true, FinishReason: "length",
		}
		t := r.Sent + ms((80+float64(i%7)*15)*slow)
		r.FirstToken = t
		for range 20 {
			r.Chunks = append(r.Chunks, t)
			r.ChunkTokens = append(r.ChunkTokens, 1)
			r.LastToken = t
			t += ms((12 + float64(i%3)) * slow)
		}
		r.End = r.LastToken + ms(2)
		if i == 13 {
			r = engine.Result{Index: i, Endpoint: "chat", Stream: true, Status: 500, Err: "http 500", Intended: sent, Sent: sent, End: sent + ms(5)}
		}
		out = append(out, r)
	}
	return out
}

func fixtureFile() *File {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	prod := results(40, 1)
	cand := results(40, 1.5)
	return &File{
		Tool: "reprise", Created: time.Date(2025, 3, 1, 12, 5, 0, 0, time.UTC),
		Command: []string{"replay", "run", "--target", "http://candidate:8000", "--api-key", "sk-secret", "--header", "Authorization: Bearer sk-secret"},
		Labels:  map[string]string{"env": "staging", "gpu": "H100"},
		Benchmarks: []Benchmark{
			{
				Name: "production (captured)", Target: "http://vllm:8000", Profile: "captured", Baseline: true,
				Config: RunConfig{Capture: "/data/cap"}, Start: start, DurationS: 10.5,
				Metrics: stats.Summarize(prod, stats.Options{}),
			},
			{
				Name: "candidate <script>alert(1)</script>", Target: "http://candidate:8000", Profile: "trace",
				Config: RunConfig{TimeScale: 1, Seed: Ptr[int64](42), Transforms: &TransformsConfig{ModelMap: map[string]string{"a": "b"}}},
				Start:  start.Add(time.Minute), DurationS: 11.25,
				Metrics:  stats.Summarize(cand, stats.Options{SLO: &stats.SLO{TTFTMs: 150, ITLMs: 20}, RequestedRate: 4, OpenLoop: true}),
				Requests: RequestRecords(cand[:3]),
			},
		},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	f := fixtureFile()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, f); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "sk-secret") {
		t.Error("credential written to JSON")
	}
	got, err := ReadJSON(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := *f
	want.Format, want.Version = FormatName, Version
	want.Command = RedactCommand(f.Command)
	if !reflect.DeepEqual(got, &want) {
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(&want)
		t.Errorf("round trip differs:\n got %s\nwant %s", a, b)
	}

	// The snippet users write: data["benchmarks"][0]["metrics"]["time_to_first_token_ms"]["p99"].
	var data map[string]any
	if err := json.Unmarshal(buf.Bytes(), &data); err != nil {
		t.Fatal(err)
	}
	p99 := data["benchmarks"].([]any)[0].(map[string]any)["metrics"].(map[string]any)["time_to_first_token_ms"].(map[string]any)["p99"]
	if p99 != f.Benchmarks[0].Metrics.TimeToFirstToken.P99 || p99.(float64) <= 0 {
		t.Errorf("p99 via the documented path = %v, want %v", p99, f.Benchmarks[0].Metrics.TimeToFirstToken.P99)
	}
	if data["format"] != FormatName || data["version"] != 1.0 {
		t.Errorf("header = %v %v", data["format"], data["version"])
	}
}

func TestReadJSONRejects(t *testing.T) {
	for name, in := range map[string]string{
		"newer version": `{"format":"reprise-benchmarks","version":2,"benchmarks":[]}`,
		"other format":  `{"format":"guidellm","version":1,"benchmarks":[]}`,
		"no version":    `{"format":"reprise-benchmarks","benchmarks":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadJSON(strings.NewReader(in))
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("err = %v, want ErrFormat", err)
			}
			if name == "newer version" && !strings.Contains(err.Error(), "newer") {
				t.Errorf("error %q does not say the file is newer", err)
			}
		})
	}
	if _, err := ReadJSON(strings.NewReader("{not json")); err == nil {
		t.Error("malformed JSON accepted")
	}
}

func TestWriteJSONNeverWritesNaN(t *testing.T) {
	f := fixtureFile()
	f.Benchmarks[0].Config.Rate = math.NaN()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, f); err == nil {
		t.Error("NaN in config was encoded")
	}
	if strings.Contains(buf.String(), "NaN") {
		t.Error("output contains NaN")
	}
	// Metrics of an empty benchmark are all finite.
	empty := &File{Benchmarks: []Benchmark{{Name: "empty", Metrics: stats.Summarize(nil, stats.Options{})}}}
	buf.Reset()
	if err := WriteJSON(&buf, empty); err != nil {
		t.Fatal(err)
	}
	for _, w := range []func(*bytes.Buffer, *File) error{
		func(b *bytes.Buffer, f *File) error { return WriteCSV(b, f) },
		func(b *bytes.Buffer, f *File) error { return WriteTable(b, f) },
		func(b *bytes.Buffer, f *File) error { return WriteHTML(b, f) },
	} {
		var b bytes.Buffer
		if err := w(&b, empty); err != nil {
			t.Error(err)
		}
		if s := b.String(); strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
			t.Errorf("non-finite number in output:\n%s", s)
		}
	}
}

func TestRedactCommand(t *testing.T) {
	in := []string{"replay", "run", "--api-key", "k1", "-api-key=k2", "--header", "Authorization: Bearer k3",
		"--header=x-api-key: k4", "--header", "X-Team: infra", "--target", "http://x", "--header", "Cookie:k5"}
	got := strings.Join(RedactCommand(in), " ")
	for _, secret := range []string{"k1", "k2", "k3", "k4", "k5"} {
		if strings.Contains(got, secret) {
			t.Errorf("%s survived: %s", secret, got)
		}
	}
	for _, keep := range []string{"X-Team: infra", "http://x", "--api-key REDACTED", "-api-key=REDACTED", "Authorization: REDACTED"} {
		if !strings.Contains(got, keep) {
			t.Errorf("%q missing from %s", keep, got)
		}
	}
	if in[3] != "k1" {
		t.Error("input modified")
	}
}

func TestDistributionsCoverMetrics(t *testing.T) {
	var keys []string
	mt := reflect.TypeFor[stats.Metrics]()
	for i := range mt.NumField() {
		if f := mt.Field(i); f.Type == reflect.TypeFor[stats.Distribution]() {
			keys = append(keys, strings.Split(f.Tag.Get("json"), ",")[0])
		}
	}
	var have []string
	for _, d := range distributions {
		have = append(have, d.Key)
	}
	if !slices.Equal(keys, have) {
		t.Errorf("distributions = %v\nmetrics JSON = %v", have, keys)
	}
	m := fixtureFile().Benchmarks[0].Metrics
	raw, _ := json.Marshal(m)
	var generic map[string]any
	_ = json.Unmarshal(raw, &generic)
	for _, d := range distributions {
		if d.Get(&m) != mustDist(t, generic[d.Key]) {
			t.Errorf("%s getter does not read the field with that JSON key", d.Key)
		}
	}
}

func mustDist(t *testing.T, v any) stats.Distribution {
	t.Helper()
	b, _ := json.Marshal(v)
	var d stats.Distribution
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCSV(t *testing.T) {
	f := fixtureFile()
	var buf bytes.Buffer
	if err := WriteCSV(&buf, f); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+len(f.Benchmarks) {
		t.Fatalf("%d rows, want header + %d", len(rows), len(f.Benchmarks))
	}
	header := rows[0]
	col := map[string]int{}
	for i, h := range header {
		if _, dup := col[h]; dup {
			t.Errorf("duplicate column %s", h)
		}
		col[h] = i
	}
	want := 33 + len(distributions)*len(distStats) + len(f.Labels)
	if len(header) != want {
		t.Errorf("%d columns, want %d", len(header), want)
	}
	for i, b := range f.Benchmarks {
		row := rows[i+1]
		if len(row) != len(header) {
			t.Fatalf("row %d has %d cells", i, len(row))
		}
		for name, v := range map[string]string{
			"name":                                       b.Name,
			"time_to_first_token_ms_p99":                 fmtExact(b.Metrics.TimeToFirstToken.P99),
			"inter_token_latency_ms_mean":                fmtExact(b.Metrics.InterTokenLatency.Mean),
			"send_lag_ms_count":                          fmtExact(float64(b.Metrics.SendLag.Count)),
			"requests_errored":                           "1",
			"output_tokens_per_second":                   fmtExact(b.Metrics.OutputTokensPerSecond),
			"label_gpu":                                  "H100",
			"request_latency_ms_p999":                    fmtExact(b.Metrics.RequestLatency.P999),
			"normalized_time_per_output_token_ms_median": fmtExact(b.Metrics.NormalizedTimePerOutputToken.Median),
			"prompt_token_mismatch_compared":             strconv.FormatInt(b.Metrics.PromptTokenMismatch.Compared, 10),
			"prompt_token_mismatch_exact":                strconv.FormatInt(b.Metrics.PromptTokenMismatch.Exact, 10),
			"output_token_mismatch_mean_diff":            fmtExact(b.Metrics.OutputTokenMismatch.MeanDiff),
		} {
			j, ok := col[name]
			if !ok {
				t.Errorf("no column %s", name)
				continue
			}
			if row[j] != v {
				t.Errorf("benchmark %d %s = %q, want %q", i, name, row[j], v)
			}
		}
	}
	if rows[1][col["goodput_attainment"]] != "" || rows[2][col["goodput_attainment"]] == "" {
		t.Errorf("goodput cells: %q, %q", rows[1][col["goodput_attainment"]], rows[2][col["goodput_attainment"]])
	}
}

func TestTableGolden(t *testing.T) {
	f := fixtureFile()
	var buf bytes.Buffer
	if err := WriteTable(&buf, f); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, b := range f.Benchmarks {
		m := b.Metrics
		for _, v := range []float64{m.TimeToFirstToken.P50, m.TimeToFirstToken.P99, m.InterTokenLatency.P99, m.RequestLatency.P50, m.OutputTokensPerSecond} {
			if !strings.Contains(got, fmtNum(v)) {
				t.Errorf("table lacks %s:\n%s", fmtNum(v), got)
			}
		}
	}
	if !strings.Contains(got, "production (captured) (baseline)") || !strings.Contains(got, "goodput req/s") {
		t.Errorf("table lacks headings:\n%s", got)
	}
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("table differs from %s (rerun with -update if intended):\n got:\n%s\nwant:\n%s", golden, got, want)
	}
}

// externalRef finds attributes or CSS that would make a browser fetch
// something: src=, href=, url(...) or @import pointing off the page.
var externalRef = regexp.MustCompile(`(?i)((src|href|xlink:href|action|srcset)\s*=\s*["']?\s*(https?:|//))|url\(\s*["']?\s*(https?:|//)|@import`)

func TestHTML(t *testing.T) {
	f := fixtureFile()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, f); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if m := externalRef.FindString(page); m != "" {
		t.Errorf("external reference %q in report", m)
	}
	for _, bad := range []string{"<script", "<link", "<iframe", "<img", "fetch("} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("report contains %s", bad)
		}
	}
	if !strings.Contains(page, "candidate &lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("benchmark name not escaped")
	}
	if strings.Contains(page, "sk-secret") {
		t.Error("credential in report")
	}
	if pm := f.Benchmarks[0].Metrics.PromptTokenMismatch; !strings.Contains(page, fmt.Sprintf("%d/%d exact", pm.Exact, pm.Compared)) {
		t.Error("no prompt token mismatch line in the summary table")
	}
	// Four CDFs, four time series and the candidate's SLO attainment bar.
	if n := strings.Count(page, `<svg class="chart"`); n != 9 {
		t.Errorf("%d charts, want 9", n)
	}
	if n := strings.Count(page, "<polyline"); n != 16 {
		t.Errorf("%d lines, want 8 charts × 2 benchmarks", n)
	}
	for _, title := range []string{"Time to first token", "Inter-token latency", "Output throughput", "Requests in flight"} {
		if !strings.Contains(page, "<figcaption>"+title+"</figcaption>") {
			t.Errorf("no chart %q", title)
		}
	}
	if !strings.Contains(page, fmtNum(f.Benchmarks[1].Metrics.TimeToFirstToken.P99)) {
		t.Error("summary table lacks the candidate's TTFT p99")
	}
	if err := wellFormed(page); err != nil {
		t.Error(err)
	}

	// An empty file still renders, with no charts.
	buf.Reset()
	if err := WriteHTML(&buf, &File{}); err != nil {
		t.Fatal(err)
	}
	if err := wellFormed(buf.String()); err != nil {
		t.Error(err)
	}
	if strings.Contains(buf.String(), "<polyline") {
		t.Error("empty file drew lines")
	}
}

var (
	tagRE     = regexp.MustCompile(`<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*?)(/?)>`)
	voidElems = map[string]bool{"meta": true, "br": true, "hr": true, "img": true, "input": true, "link": true, "wbr": true}
)

// wellFormed checks that every element is closed in order: a small stand-in
// for an HTML parser, enough for generated markup.
func wellFormed(page string) error {
	if !strings.HasPrefix(page, "<!DOCTYPE html>") {
		return errors.New("no doctype")
	}
	var stack []string
	for _, m := range tagRE.FindAllStringSubmatch(page, -1) {
		closing, name, selfClose := m[1] == "/", strings.ToLower(m[2]), m[4] == "/"
		switch {
		case voidElems[name] || selfClose:
		case !closing:
			stack = append(stack, name)
		case len(stack) == 0 || stack[len(stack)-1] != name:
			return errors.New("unexpected </" + name + "> with open " + strings.Join(stack, ">"))
		default:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return errors.New("unclosed: " + strings.Join(stack, ">"))
	}
	if strings.Count(page, "<") != len(tagRE.FindAllString(page, -1))+1 { // +1: the doctype
		return errors.New("stray '<' outside a tag")
	}
	return nil
}

func TestWriteAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results", "run1")
	f := fixtureFile()
	if err := WriteAll(dir, f); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{CSVFile, JSONFile, HTMLFile}; !slices.Equal(names, want) {
		t.Errorf("files = %v, want %v (no temporaries left)", names, want)
	}
	r, err := os.Open(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	back, err := ReadJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	// The HTML re-rendered from the JSON equals the one written from memory.
	var a, b bytes.Buffer
	if err := WriteHTML(&a, back); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&b, f); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Error("report rendered from benchmarks.json differs from the original")
	}

	// A failing write leaves no temporary behind and reports the file.
	f.Benchmarks[0].Config.Rate = math.Inf(1)
	err = WriteAll(dir, f)
	if err == nil || !strings.Contains(err.Error(), JSONFile) {
		t.Errorf("err = %v, want a failure naming %s", err, JSONFile)
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%d entries after a failed write", len(entries))
	}
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteAll(filepath.Join(blocker, "sub"), fixtureFile()); err == nil {
		t.Error("WriteAll under a regular file succeeded")
	}
}

func TestRequestRecords(t *testing.T) {
	rs := results(14, 1)
	recs := RequestRecords(rs)
	r := recs[1]
	if r.Index != 1 || r.SentMs != 250.5 || r.TTFTMs != 95 || r.Chunks != 20 || r.OutputTokens != 20 || !r.Stream || r.Endpoint != "chat" {
		t.Errorf("record 1 = %+v", r)
	}
	if want := 95 + 19*13 + 2.0; math.Abs(r.LatencyMs-want) > 1e-9 {
		t.Errorf("latency = %v, want %v", r.LatencyMs, want)
	}
	if e := recs[13]; e.Status != 500 || e.Error != "http 500" || e.TTFTMs != 0 || e.LatencyMs != 5 {
		t.Errorf("errored record = %+v", e)
	}
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		max, bound float64
		n, dec     int
	}{
		{11, 12, 7, 0}, {255, 300, 7, 0}, {0.9, 1, 6, 1}, {2.3, 2.5, 6, 1}, {100, 100, 6, 0}, {101, 120, 7, 0}, {7.2e6, 8e6, 5, 0},
	} {
		ticks, bound, dec := niceTicks(c.max)
		if math.Abs(bound-c.bound) > 1e-9*c.bound || len(ticks) != c.n || dec != c.dec || ticks[0] != 0 {
			t.Errorf("niceTicks(%v) = %v, %v, %d; want bound %v, %d ticks, %d decimals", c.max, ticks, bound, dec, c.bound, c.n, c.dec)
		}
	}
}
