package cli

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/reprise-llm/reprise/internal/redact"
)

// apiPathSuffixes are the API paths Reprise appends to a base URL itself,
// longest first so the whole one is cut: replay sends to
// BASE/v1/chat/completions, and the proxy forwards a client's
// /v1/chat/completions to BASE/v1/chat/completions.
var apiPathSuffixes = []string{"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings", "/v1"}

// CheckBaseURL reports a base URL given to flag (e.g. "--target") whose
// path already ends in an API path Reprise adds itself — /v1, or a whole
// endpoint such as /v1/chat/completions — which would send every request
// to BASE/v1/v1/... and get a bare 404. The error names the flag and the
// corrected URL. label is what precedes the URL in the flag's value
// ("candidate=" for compare's --target NAME=URL, else ""). A URL that does
// not parse is left to the caller's own check (nil). Userinfo and query
// values are shown as redact.Mask.
func CheckBaseURL(flag, label, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	path := strings.TrimRight(u.Path, "/")
	for _, suffix := range apiPathSuffixes {
		if !strings.HasSuffix(path, suffix) {
			continue
		}
		fixed := *u
		fixed.Path, fixed.RawPath = strings.TrimSuffix(path, suffix), ""
		return fmt.Errorf("%s %s%s: Reprise adds /v1/... itself; use %s %s%s",
			flag, label, redact.URL(raw), flag, label, redact.URL(fixed.String()))
	}
	return nil
}
