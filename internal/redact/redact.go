// Package redact removes credentials from what the programs show or store:
// URLs given on the command line (a key in the userinfo or the query) and
// error text copied from servers (bearer tokens, API keys, key=value
// pairs). Every place that prints, logs or records such a string goes
// through here, so there is one rule to audit.
package redact

import (
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Mask replaces what was removed.
const Mask = "xxxxx"

// URL returns raw fit for logs, manifests and status output: the userinfo
// (user and password) and every query value replaced by Mask, the
// fragment dropped; scheme, host, path and query parameter names stay, so
// an operator still sees where traffic goes. A string that does not parse
// as a URL is not shown at all.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		u.User = url.User(Mask)
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = Mask
		} else {
			for _, vs := range q {
				for i := range vs {
					vs[i] = Mask // in place: q[k] shares vs
				}
			}
			u.RawQuery = q.Encode()
		}
	}
	u.Fragment, u.RawFragment = "", ""
	if u.Opaque != "" {
		u.Opaque = Mask
	}
	return u.String()
}

// MaxText is the length in bytes Text truncates to.
const MaxText = 1024

// scanCap bounds how much of a text Text scans: anything past it would be
// truncated anyway.
const scanCap = 64 << 10

var secretPatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	// Authorization schemes: "Bearer sk-…", "Basic dXNlcjpwYXNz".
	{regexp.MustCompile(`(?i)\b(bearer)(\s+)[^\s"',;]+`), "${1}${2}" + Mask},
	{regexp.MustCompile(`(?i)\b(basic)(\s+)[A-Za-z0-9+/]{8,}=*`), "${1}${2}" + Mask},
	// name=value and name: value pairs naming a credential, as in query
	// strings, headers and JSON ("api_key":"…").
	{regexp.MustCompile(`(?i)((?:x-)?api[_-]?key|(?:access|refresh|id|auth)[_-]?token|(?:client[_-]?)?secret|password|passwd|authorization|(?:set-)?cookie)("?\s*[=:]\s*"?)(?:bearer\s+|basic\s+)?[^\s&"',;]+`), "${1}${2}" + Mask},
	// Bare key=, token=, sig= only in query-string form: "key: messages"
	// in an error about a missing JSON key stays readable.
	{regexp.MustCompile(`(?i)\b(key|token|sig|signature)(=)[^\s&"',;]+`), "${1}${2}" + Mask},
	// Well-known key shapes: OpenAI/Anthropic sk-…, Hugging Face hf_…,
	// GitHub ghp_…/gho_…, AWS access key ids, Google AIza…, JWTs.
	{regexp.MustCompile(`\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}`), Mask},
	{regexp.MustCompile(`\bhf_[A-Za-z0-9]{16,}`), Mask},
	{regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{16,}`), Mask},
	{regexp.MustCompile(`\bAKIA[0-9A-Z]{16}\b`), Mask},
	{regexp.MustCompile(`\bAIza[0-9A-Za-z_\-]{20,}`), Mask},
	{regexp.MustCompile(`\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*`), Mask},
	// Credentials in a URL's userinfo: scheme://user:pass@host.
	{regexp.MustCompile(`(://)[^/\s@"']+@`), "${1}" + Mask + "@"},
}

// Text returns s, an error message from a server or a transport, fit to
// be logged or recorded: bearer/basic credentials, key=value pairs naming
// a key, token, secret or password, common API-key shapes (sk-…, hf_…,
// JWTs…) and URL userinfo replaced by Mask, then truncated to MaxText
// bytes (on a character boundary, marked "…").
func Text(s string) string {
	if s == "" {
		return s
	}
	if len(s) > scanCap {
		s = s[:scanCap]
	}
	for _, p := range secretPatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	if len(s) > MaxText {
		cut := MaxText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimRight(s[:cut], " ") + "…"
	}
	return s
}
