package cli

import "testing"

// A base URL that already ends in /v1 (or a whole endpoint path) is
// refused with the flag and the URL to use instead; a gateway's own path
// prefix is not.
func TestCheckBaseURL(t *testing.T) {
	for _, c := range []struct{ flag, label, raw, want string }{
		{"--target", "", "http://h:8000/v1", "--target http://h:8000/v1: Reprise adds /v1/... itself; use --target http://h:8000"},
		{"--target", "", "http://h:8000/v1/", "--target http://h:8000/v1/: Reprise adds /v1/... itself; use --target http://h:8000"},
		{"--upstream", "", "https://gw.example/openai/v1", "--upstream https://gw.example/openai/v1: Reprise adds /v1/... itself; use --upstream https://gw.example/openai"},
		{"--target", "", "http://h:8000/v1/chat/completions", "--target http://h:8000/v1/chat/completions: Reprise adds /v1/... itself; use --target http://h:8000"},
		{"--target", "candidate=", "http://h/v1", "--target candidate=http://h/v1: Reprise adds /v1/... itself; use --target candidate=http://h"},
		{"--shadow", "", "http://user:secret@h/v1?api-key=k", "--shadow http://xxxxx@h/v1?api-key=xxxxx: Reprise adds /v1/... itself; use --shadow http://xxxxx@h?api-key=xxxxx"},
		{"--target", "", "http://h:8000", ""},
		{"--target", "", "http://h:8000/", ""},
		{"--target", "", "http://h:8000/gateway", ""},
		{"--target", "", "http://h:8000/v1beta", ""},
		{"--target", "", "http://h:8000/apiv1", ""},
		{"--target", "", "http://h:8000/v2", ""},
	} {
		err := CheckBaseURL(c.flag, c.label, c.raw)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("CheckBaseURL(%q, %q, %q) = %q, want %q", c.flag, c.label, c.raw, got, c.want)
		}
	}
}
