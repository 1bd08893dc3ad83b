package stats

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func msList(vs ...float64) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = ms(v)
	}
	return out
}

// fixture is five requests whose every metric is computed by hand in the
// comments of TestSummarizeHandComputed.
func fixture() []engine.Result {
	return []engine.Result{
		{ // A: streamed, 5 one-token chunks 20 ms apart.
			Index: 0, Stream: true, Status: 200,
			Intended: ms(0), Sent: ms(1), FirstByte: ms(50), FirstToken: ms(101), LastToken: ms(181), End: ms(191),
			Chunks: msList(101, 121, 141, 161, 181), ChunkTokens: []int{1, 1, 1, 1, 1},
			PromptTokens: 100, OutputTokens: 5, TokensFromUsage: true,
		},
		{ // B: streamed, 2 chunks of 2 tokens.
			Index: 1, Stream: true, Status: 200,
			Intended: ms(1000), Sent: ms(1000), FirstToken: ms(1200), LastToken: ms(1250), End: ms(1300),
			Chunks: msList(1200, 1250), ChunkTokens: []int{2, 2},
			PromptTokens: 200, OutputTokens: 4, CachedTokens: 64, TokensFromUsage: true,
		},
		{ // C: not streamed; first token = last token = end.
			Index: 2, Status: 200,
			Intended: ms(2000), Sent: ms(2010), FirstToken: ms(2410), LastToken: ms(2410), End: ms(2410),
			PromptTokens: 300, OutputTokens: 10,
		},
		{ // D: server error, overlaps C.
			Index: 3, Status: 500, Intended: ms(2300), Sent: ms(2300), End: ms(2600),
		},
		{ // E: cancelled by the drain deadline.
			Index: 4, Stream: true, Status: 200, Err: "context canceled",
			Intended: ms(2600), Sent: ms(2700), End: ms(3001),
		},
	}
}

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	tol := 1e-3 * math.Abs(want) // HDR percentiles: within 0.1%
	if want == 0 {
		tol = 1e-9
	}
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func checkDist(t *testing.T, name string, d Distribution, count int64, mean, min, max, std, p50, p90, p99 float64) {
	t.Helper()
	if d.Count != count {
		t.Errorf("%s count = %d, want %d", name, d.Count, count)
	}
	near(t, name+" mean", d.Mean, mean)
	near(t, name+" min", d.Min, min)
	near(t, name+" max", d.Max, max)
	if std >= 0 {
		near(t, name+" std_dev", d.StdDev, std)
	}
	near(t, name+" p50", d.P50, p50)
	near(t, name+" median", d.Median, p50)
	near(t, name+" p90", d.P90, p90)
	near(t, name+" p99", d.P99, p99)
}

func TestSummarizeHandComputed(t *testing.T) {
	m := Summarize(fixture(), Options{RequestedRate: 1.5, Dropped: 2})

	if want := (RequestCounts{Total: 5, Successful: 3, Errored: 1, Cancelled: 1}); m.Requests != want {
		t.Errorf("requests = %+v, want %+v", m.Requests, want)
	}
	near(t, "error_rate", m.ErrorRate, 0.25) // 1 errored / (3 ok + 1 errored)
	near(t, "window_s", m.WindowS, 3.0)      // first send 1 ms → last end 3001 ms
	near(t, "requests_per_second", m.RequestsPerSecond, 1)
	near(t, "input_tokens_per_second", m.InputTokensPerSecond, 600.0/3)
	near(t, "output_tokens_per_second", m.OutputTokensPerSecond, 19.0/3)
	near(t, "total_tokens_per_second", m.TotalTokensPerSecond, 619.0/3)
	if m.InputTokensTotal != 600 || m.OutputTokensTotal != 19 {
		t.Errorf("token totals = %d, %d; want 600, 19", m.InputTokensTotal, m.OutputTokensTotal)
	}
	// Busy time 190+300+400+300+301 = 1491 ms over 3000 ms; C and D overlap.
	near(t, "concurrency_mean", m.ConcurrencyMean, 1.491/3)
	if m.ConcurrencyMax != 2 {
		t.Errorf("concurrency_max = %d, want 2", m.ConcurrencyMax)
	}
	near(t, "tokens_from_usage_fraction", m.TokensFromUsageFraction, 2.0/3)

	// Nearest rank: p50 of 3 values is the 2nd, p90 and p99 the 3rd.
	// TTFT 100, 200, 400: mean 233.33, population std √(46666.67/3).
	checkDist(t, "ttft", m.TimeToFirstToken, 3, 700.0/3, 100, 400, math.Sqrt(140000.0/9), 200, 400, 400)
	checkDist(t, "ttft_from_intended", m.TimeToFirstTokenFromIntended, 3, 711.0/3, 101, 410, -1, 200, 410, 410)
	// ITL: A (181−101)/4 = 20; B (1250−1200)/3 = 16.667; C not streamed.
	checkDist(t, "itl", m.InterTokenLatency, 2, (20+50.0/3)/2, 50.0/3, 20, (20-50.0/3)/2, 50.0/3, 20, 20)
	// Inter-chunk gaps: A 20,20,20,20; B 50.
	checkDist(t, "icl", m.InterChunkLatency, 5, 26, 20, 50, 12, 20, 50, 50)
	// NTPOT e2e/out: A 190/5=38, B 300/4=75, C 400/10=40.
	checkDist(t, "ntpot", m.NormalizedTimePerOutputToken, 3, 153.0/3, 38, 75, -1, 40, 75, 75)
	// TPOT (legacy) (last−sent)/out: A 180/5=36, B 250/4=62.5, C 400/10=40.
	checkDist(t, "tpot", m.TimePerOutputToken, 3, 138.5/3, 36, 62.5, -1, 40, 62.5, 62.5)
	checkDist(t, "e2e", m.RequestLatency, 3, 890.0/3, 190, 400, -1, 300, 400, 400)
	checkDist(t, "e2e_from_intended", m.RequestLatencyFromIntended, 3, 901.0/3, 191, 410, -1, 300, 410, 410)
	checkDist(t, "ttfb", m.TimeToFirstByte, 1, 49, 49, 49, 0, 49, 49, 49)
	// Send lag over every request: 1, 0, 10, 0, 100 → sorted 0,0,1,10,100.
	checkDist(t, "send_lag", m.SendLag, 5, 22.2, 0, 100, -1, 1, 100, 100)
	checkDist(t, "prompt_tokens", m.PromptTokens, 3, 200, 100, 300, -1, 200, 300, 300)
	checkDist(t, "output_tokens", m.OutputTokens, 3, 19.0/3, 4, 10, -1, 5, 10, 10)
	checkDist(t, "cached_tokens", m.CachedTokens, 3, 64.0/3, 0, 64, -1, 0, 64, 64)

	near(t, "requested_rate", m.RequestedRate, 1.5)
	near(t, "scheduled_rate", m.ScheduledRate, 4/2.6) // intended 0 → 2600 ms
	near(t, "achieved_rate", m.AchievedRate, 4/2.699) // sent 1 → 2700 ms
	if m.DroppedRequests != 2 {
		t.Errorf("dropped = %d, want 2", m.DroppedRequests)
	}
	if m.Goodput != nil {
		t.Errorf("goodput without an SLO: %+v", m.Goodput)
	}

	// 1 s buckets from the origin: 0 s holds A; 1 s holds B; 2 s starts C,
	// D, E and ends C, D; 3 s ends E (1 ms into it).
	want := []Bucket{
		{T: 0, Started: 1, Completed: 1, InFlight: 0.190, OutputTokensPerS: 5, MeanTTFTMs: 100, TTFTCount: 1},
		{T: 1, Started: 1, Completed: 1, InFlight: 0.300, OutputTokensPerS: 4, MeanTTFTMs: 200, TTFTCount: 1},
		{T: 2, Started: 3, Completed: 2, Errored: 1, InFlight: 1.000, OutputTokensPerS: 10, MeanTTFTMs: 400, TTFTCount: 1},
		{T: 3, Completed: 1, InFlight: 0.001},
	}
	if m.SeriesBucketS != 1 {
		t.Errorf("series_bucket_s = %v, want 1", m.SeriesBucketS)
	}
	if len(m.Series) != len(want) {
		t.Fatalf("series has %d buckets, want %d: %+v", len(m.Series), len(want), m.Series)
	}
	for i, w := range want {
		g := m.Series[i]
		near(t, "series in_flight", g.InFlight, w.InFlight)
		near(t, "series tok/s", g.OutputTokensPerS, w.OutputTokensPerS)
		g.InFlight, g.OutputTokensPerS = w.InFlight, w.OutputTokensPerS
		if g != w {
			t.Errorf("bucket %d = %+v, want %+v", i, m.Series[i], w)
		}
	}

	cdf := m.CDF[CDFTimeToFirstToken]
	if len(cdf.Q) != 103 || len(cdf.V) != 103 || cdf.V[0] != 100 || cdf.V[102] != 400 || !slices.IsSorted(cdf.V) {
		t.Errorf("ttft cdf = %+v", cdf)
	}
	for _, k := range []string{CDFInterTokenLatency, CDFInterChunkLatency, CDFRequestLatency} {
		if len(m.CDF[k].V) != 103 {
			t.Errorf("cdf %s has %d points", k, len(m.CDF[k].V))
		}
	}
}

func TestGoodput(t *testing.T) {
	tests := []struct {
		name             string
		slo              SLO
		met              int64
		attainment, rate float64
	}{
		// Attainment is over all 5 requests: D errored and E was cancelled
		// by the drain, so both missed the SLO.
		// A fails ITL (20 > 18), B meets both, C fails TTFT (400 > 250).
		{"ttft and itl", SLO{TTFTMs: 250, ITLMs: 18}, 1, 0.2, 1.0 / 3},
		// From intended: A 191, B 300 meet; C 410 fails.
		{"e2e from intended", SLO{E2EMs: 300, FromIntended: true}, 2, 0.4, 2.0 / 3},
		// From sent: C's e2e is 400, still > 300.
		{"e2e", SLO{E2EMs: 400}, 3, 0.6, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.slo.Validate(); err != nil {
				t.Fatal(err)
			}
			m := Summarize(fixture(), Options{SLO: &tt.slo})
			if m.Goodput == nil {
				t.Fatal("no goodput")
			}
			if m.Goodput.Met != tt.met {
				t.Errorf("met = %d, want %d", m.Goodput.Met, tt.met)
			}
			near(t, "attainment", m.Goodput.Attainment, tt.attainment)
			near(t, "goodput req/s", m.Goodput.RequestsPerSecond, tt.rate)
			if m.Goodput.SLO != tt.slo {
				t.Errorf("slo = %+v, want %+v", m.Goodput.SLO, tt.slo)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	bad := Options{SLO: &SLO{TTFTMs: -1}, RequestedRate: math.NaN(), Dropped: -1, BucketWidth: -1, MaxBuckets: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid options accepted")
	}
	for _, want := range []string{"ttft_ms", "requested rate", "dropped", "bucket width", "max buckets"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := (&SLO{}).Validate(); err == nil {
		t.Error("empty SLO accepted")
	}
	if err := (&Options{SLO: &SLO{E2EMs: 1000}}).Validate(); err != nil {
		t.Errorf("valid options rejected: %v", err)
	}
}

func TestMergeEqualsSummarize(t *testing.T) {
	all := fixture()
	opts := Options{SLO: &SLO{TTFTMs: 250}}
	want := Summarize(all, opts)
	parts := []*Recorder{NewRecorder(opts), NewRecorder(opts), NewRecorder(opts)}
	for i := range all {
		parts[i%3].Record(&all[i])
	}
	merged := NewRecorder(opts)
	for _, p := range parts {
		merged.Merge(p)
	}
	merged.Merge(NewRecorder(opts)) // merging an empty recorder changes nothing
	got := merged.Metrics()
	if g, w := roundedJSON(t, got), roundedJSON(t, want); g != w {
		t.Errorf("merged metrics differ:\n got %s\nwant %s", g, w)
	}
}

// roundedJSON is m as JSON with every number rounded to 6 decimals:
// Welford merges can differ in the last bits.
func roundedJSON(t *testing.T, m Metrics) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	_ = json.Unmarshal(b, &v)
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case float64:
			return math.Round(x*1e6) / 1e6
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return x
	}
	out, _ := json.Marshal(walk(v))
	return string(out)
}

func TestEmptyAndDegenerate(t *testing.T) {
	cases := map[string][]engine.Result{
		"empty":     nil,
		"one error": {{Status: 503, Sent: ms(5), End: ms(5)}},
		"instant":   {{Status: 200, Sent: ms(5), End: ms(5), FirstToken: ms(5), LastToken: ms(5)}},
		"zero tokens and negative lag": {{Status: 200, Stream: true, Intended: ms(10), Sent: ms(9), End: ms(30),
			Chunks: msList(20), ChunkTokens: []int{0}}},
		"end before sent": {{Status: 200, Sent: ms(50), End: ms(10), FirstToken: ms(20), OutputTokens: 3}},
	}
	for name, results := range cases {
		t.Run(name, func(t *testing.T) {
			m := Summarize(results, Options{SLO: &SLO{TTFTMs: 100}})
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			for _, bad := range []string{"NaN", "Inf", "null"} {
				if strings.Contains(string(b), bad) {
					t.Errorf("JSON contains %s: %s", bad, b)
				}
			}
			assertFinite(t, reflect.ValueOf(m), "metrics")
			if m.Requests.Total != int64(len(results)) {
				t.Errorf("total = %d, want %d", m.Requests.Total, len(results))
			}
		})
	}
	m := Summarize(nil, Options{})
	if m.TimeToFirstToken != (Distribution{}) || m.WindowS != 0 || m.Requests != (RequestCounts{}) || len(m.Series) != 0 {
		t.Errorf("empty input gave %+v", m)
	}
}

// assertFinite walks every float in v.
func assertFinite(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			t.Errorf("%s = %v", path, f)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			assertFinite(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		for i := range v.Len() {
			assertFinite(t, v.Index(i), path)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			assertFinite(t, v.MapIndex(k), path+"["+k.String()+"]")
		}
	case reflect.Pointer:
		if !v.IsNil() {
			assertFinite(t, v.Elem(), path)
		}
	}
}

func TestSeriesCoarsening(t *testing.T) {
	// One 100 ms request starting every second for 10 s, 10 tokens each.
	var rs []engine.Result
	for i := range 10 {
		s := ms(float64(i) * 1000)
		rs = append(rs, engine.Result{Status: 200, Intended: s, Sent: s, FirstToken: s + ms(50), LastToken: s + ms(100), End: s + ms(100), OutputTokens: 10})
	}
	m := Summarize(rs, Options{MaxBuckets: 3})
	// 10 one-second buckets (0..9 s) > 3: width ⌈10/3⌉ = 4 s → buckets at 0, 4, 8 s.
	if m.SeriesBucketS != 4 || len(m.Series) != 3 {
		t.Fatalf("bucket %v s × %d, want 4 s × 3: %+v", m.SeriesBucketS, len(m.Series), m.Series)
	}
	wantStarted := []int64{4, 4, 2}
	for i, b := range m.Series {
		if b.T != float64(4*i) || b.Started != wantStarted[i] || b.Completed != wantStarted[i] {
			t.Errorf("bucket %d = %+v", i, b)
		}
		near(t, "tok/s", b.OutputTokensPerS, float64(wantStarted[i])*10/4)
		near(t, "in flight", b.InFlight, float64(wantStarted[i])*0.1/4)
		near(t, "mean ttft", b.MeanTTFTMs, 50)
	}
}

func TestHistogramAccuracy(t *testing.T) {
	// 10 000 latencies spread over five decades, 0.05 ms .. 5 000 ms.
	h, o := NewLatencyHistogram(), NewLatencyHistogram()
	var vals []float64
	for i := range 10000 {
		v := 0.05 * math.Pow(10, 5*float64(i)/9999)
		vals = append(vals, v)
		if i%2 == 0 {
			h.Record(v)
		} else {
			o.Record(v)
		}
	}
	h.Merge(o)
	slices.Sort(vals)
	// Nearest rank: the k-th smallest, k = ⌈p·n⌉.
	rank := func(k int) float64 { return vals[k-1] }
	d := h.Distribution()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"p50", d.P50, rank(5000)}, {"p90", d.P90, rank(9000)}, {"p95", d.P95, rank(9500)},
		{"p99", d.P99, rank(9900)}, {"p999", d.P999, rank(9990)}, {"min", d.Min, vals[0]}, {"max", d.Max, vals[len(vals)-1]},
	} {
		// 3 significant digits plus the 1 µs storage unit.
		if math.Abs(c.got-c.want) > 1e-3*c.want+1e-3 {
			t.Errorf("%s = %v, want %v ± 0.1%%", c.name, c.got, c.want)
		}
	}
	if d.Count != 10000 {
		t.Errorf("count = %d", d.Count)
	}
	// Past the one-hour range: exact max, quantiles clamped but ≤ max.
	big := NewLatencyHistogram()
	big.RecordDuration(2 * time.Hour)
	if bd := big.Distribution(); bd.Max != 7.2e6 || bd.P99 > bd.Max || bd.P99 < 3.6e6*0.999 {
		t.Errorf("2 h value: %+v", bd)
	}
}

func TestDistributionJSONKeys(t *testing.T) {
	b, err := json.Marshal(Distribution{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"count", "max", "mean", "median", "min", "p50", "p90", "p95", "p99", "p999", "std_dev"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
}

func TestIsCancelled(t *testing.T) {
	for _, c := range []struct {
		r    engine.Result
		want bool
	}{
		{engine.Result{Status: 200}, false},
		{engine.Result{Status: 200, Err: "context canceled"}, true},
		{engine.Result{Err: "aborted"}, true},
		{engine.Result{Err: "context deadline exceeded"}, false},
		{engine.Result{Err: "net/http: request canceled (Client.Timeout exceeded while awaiting headers)"}, false},
		{engine.Result{Err: `Post "http://x/v1/chat/completions": context canceled`}, true},
		{engine.Result{Status: 500}, false},
	} {
		if got := IsCancelled(&c.r); got != c.want {
			t.Errorf("IsCancelled(%+v) = %v", c.r, got)
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	rs := fixture()
	rec := NewRecorder(Options{SLO: &SLO{TTFTMs: 250}})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := rs[i%len(rs)]
		shift := time.Duration(i) * time.Millisecond
		r.Sent += shift
		r.End += shift
		rec.Record(&r)
	}
}
