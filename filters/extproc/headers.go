package extproc

import (
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// filterName is the key Envoy files request_attributes and
// response_attributes under in ProcessingRequest.attributes.
const filterName = "envoy.filters.http.ext_proc"

// Attributes the collector reads when Envoy is configured to send them.
const (
	// attrRequestTime (request_attributes) is when Envoy received the
	// request's first byte: the record's wall time. A timestamp attribute
	// reaches the processor printed as RFC 3339 with nanoseconds.
	attrRequestTime = "request.time"
	// attrUpstreamAddress (response_attributes) is the address of the
	// upstream host that served the request.
	attrUpstreamAddress = "upstream.address"
)

// headerValue is a header's value: Envoy sends it in raw_value (bytes);
// older versions, and hand-written clients, in value.
func headerValue(hv *corev3.HeaderValue) string {
	if raw := hv.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return hv.GetValue()
}

// stripQuery cuts a :path at its query string: query values may hold
// credentials (?api-key=...), and the record keeps the path only, as the
// proxy's does.
func stripQuery(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		return path[:i]
	}
	return path
}

// encoded reports whether a Content-Encoding value means the body is not
// as written (gzip, br...): such bodies are not parsed.
func encoded(enc string) bool {
	enc = strings.TrimSpace(enc)
	return enc != "" && !strings.EqualFold(enc, "identity")
}

// attribute returns a string attribute Envoy sent, "" when absent. Envoy
// files them under filterName whatever the filter's configured name; a
// map with one entry under another key is read too, should that change.
func attribute(attrs map[string]*structpb.Struct, name string) string {
	st := attrs[filterName]
	if st == nil && len(attrs) == 1 {
		for _, v := range attrs {
			st = v
		}
	}
	return st.GetFields()[name].GetStringValue()
}

// requestTime parses the request.time attribute; zero when absent or not
// a time.
func requestTime(attrs map[string]*structpb.Struct) time.Time {
	v := attribute(attrs, attrRequestTime)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}
