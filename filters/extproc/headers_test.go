package extproc

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/reprise-llm/reprise/filters/extproc/extproctest"
	"github.com/reprise-llm/reprise/internal/capture"
)

// The endpoint that served a request: the configured header on the
// response, else on the request (where an InferencePool endpoint picker
// sets it), else Envoy's upstream.address attribute.
func TestUpstreamEndpoint(t *testing.T) {
	c := startCollector(t, Config{UpstreamHeader: "X-Gateway-Destination-Endpoint"}, nil) // matched without regard to case
	e := c.envoy()
	cases := []struct {
		id         string
		reqH, resH []string
		attrs      map[string]string
		want       string
	}{
		{"response", []string{"x-gateway-destination-endpoint", "10.0.0.1:8000"}, []string{"x-gateway-destination-endpoint", "10.0.0.2:8000"},
			map[string]string{"upstream.address": "10.0.0.3:8000"}, "10.0.0.2:8000"},
		{"request", []string{"x-gateway-destination-endpoint", "10.0.0.1:8000"}, nil, map[string]string{"upstream.address": "10.0.0.3:8000"}, "10.0.0.1:8000"},
		{"attribute", nil, nil, map[string]string{"upstream.address": "10.0.0.3:8000"}, "10.0.0.3:8000"},
		{"none", nil, nil, nil, ""},
	}
	for _, tc := range cases {
		s := c.open(e)
		mustSend(t, s.RequestHeaders(extproctest.Request{Method: "GET", Path: "/v1/models", EndOfStream: true, Headers: append([]string{"x-request-id", tc.id}, tc.reqH...)}))
		mustSend(t, s.ResponseHeaders(extproctest.Response{Status: 200, EndOfStream: true, Headers: tc.resH, Attributes: tc.attrs}))
		if err := s.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	recs := byID(t, c.stop(false))
	for _, tc := range cases {
		if r := recs[tc.id]; r == nil || r.Upstream != tc.want {
			t.Errorf("%s: record %+v, want upstream %q", tc.id, r, tc.want)
		}
	}
}

func TestRequestIDAndPath(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"0b9f1a52-7c1e-4f3e-9a55-7e1a9b2c3d4e", true}, {"", false}, {"has space", false}, {"tab\there", false},
		{"ünïcode", false}, {string(make([]byte, 129)), false}, {"x", true},
	} {
		if got := capture.UsableRequestID(tc.id); got != tc.ok {
			t.Errorf("UsableRequestID(%q) = %v", tc.id, got)
		}
	}
	for in, want := range map[string]string{
		"/v1/chat/completions?api-key=secret": "/v1/chat/completions", "/v1/models#frag": "/v1/models", "/v1/x": "/v1/x", "": "",
	} {
		if got := stripQuery(in); got != want {
			t.Errorf("stripQuery(%q) = %q, want %q", in, got, want)
		}
	}
}

// request.time as Envoy prints a timestamp (absl, "+00:00"), in the Z
// form, with and without fractions; anything else is no time.
func TestRequestTimeAttribute(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	attrs := func(key, v string) map[string]*structpb.Struct {
		return map[string]*structpb.Struct{key: {Fields: map[string]*structpb.Value{"request.time": structpb.NewStringValue(v)}}}
	}
	for _, tc := range []struct {
		attrs map[string]*structpb.Struct
		want  time.Time
	}{
		{attrs(filterName, extproctest.FormatTime(want)), want},
		{attrs(filterName, "2026-01-02T03:04:05.123456789Z"), want},
		{attrs(filterName, "2026-01-02T04:04:05.123456789+01:00"), want},
		{attrs(filterName, "2026-01-02T03:04:05Z"), want.Truncate(time.Second)},
		{attrs("my.ext_proc", extproctest.FormatTime(want)), want}, // a single entry under another key
		{attrs(filterName, "yesterday"), time.Time{}},
		{nil, time.Time{}},
	} {
		if got := requestTime(tc.attrs); !got.Equal(tc.want) {
			t.Errorf("requestTime(%v) = %v, want %v", tc.attrs, got, tc.want)
		}
	}
}

// The log limiter lets one line a second through and counts the rest.
func TestLogLimiter(t *testing.T) {
	var l limiter
	sec := int64(time.Second)
	steps := []struct {
		now        int64
		ok         bool
		suppressed int64
	}{
		{0, true, 0}, {1, false, 0}, {sec / 2, false, 0}, {sec, true, 2}, {sec + 1, false, 0}, {5 * sec, true, 1},
	}
	for i, s := range steps {
		ok, n := l.allow(s.now)
		if ok != s.ok || (ok && n != s.suppressed) {
			t.Errorf("step %d at %d: allow %v suppressed %d, want %v %d", i, s.now, ok, n, s.ok, s.suppressed)
		}
	}
}
