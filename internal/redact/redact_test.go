package redact

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestURLHidesUserinfoAndQueryValues(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://gw:8080/v1", "http://gw:8080/v1"},
		{"https://user:s3cr3t@gw/v1?api-key=K1&x=2#frag", "https://xxxxx@gw/v1?api-key=xxxxx&x=xxxxx"},
		{"https://sk-TOKEN123456@gw", "https://xxxxx@gw"},
		{"http://gw/?key=a;b", "http://gw/?xxxxx"},
		{"http://gw/%zz?token=T", "(unparseable URL)"},
	} {
		got := URL(tc.in)
		if got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for _, secret := range []string{"s3cr3t", "K1", "TOKEN123456", "frag"} {
			if strings.Contains(got, secret) {
				t.Errorf("URL(%q) = %q keeps %q", tc.in, got, secret)
			}
		}
	}
}

func TestTextRemovesCredentials(t *testing.T) {
	const secret = "PLANTEDabc123XYZ"
	for _, in := range []string{
		"Authorization: Bearer " + secret,
		"invalid header authorization=" + secret,
		`{"error":{"message":"bad key sk-` + secret + `"}}`,
		"Basic " + "dXNlcjo" + secret + "==",
		"GET /v1/x?api_key=" + secret + "&y=1 failed",
		"api-key: " + secret,
		`"x-api-key":"` + secret + `"`,
		"token=" + secret,
		"GET /x?sig=" + secret,
		"invalid access_token: " + secret,
		"password: " + secret,
		"dial https://bob:" + secret + "@host/ failed",
		"jwt eyJhbGciOi.eyJzdWIi" + secret + ".sig rejected",
		"hf_" + secret + "0000",
	} {
		got := Text(in)
		if strings.Contains(got, secret) || !strings.Contains(got, Mask) {
			t.Errorf("Text(%q) = %q", in, got)
		}
	}
	// Ordinary messages survive.
	for _, in := range []string{
		"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
		"Incorrect API key provided. You can find your API key at the dashboard.",
		"upstream connect error: connection refused",
		"Missing required key: messages",
		"max_tokens: must be at most 4096",
	} {
		if got := Text(in); got != in {
			t.Errorf("Text(%q) = %q, want it unchanged", in, got)
		}
	}
}

func TestTextTruncatesOnACharacterBoundary(t *testing.T) {
	in := strings.Repeat("é", MaxText) + " Bearer PLANTED-late"
	got := Text(in)
	if len(got) > MaxText+len("…") || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("len %d valid %v suffix %q", len(got), utf8.ValidString(got), got[len(got)-4:])
	}
	huge := strings.Repeat("a", 1<<20) + "sk-PLANTEDsecretvalue"
	if got := Text(huge); strings.Contains(got, "PLANTED") || len(got) > MaxText+len("…") {
		t.Fatalf("huge text: %d bytes", len(got))
	}
}

func FuzzText(f *testing.F) {
	f.Add("Bearer sk-abcdefgh12345")
	f.Add("api_key=1&x=2")
	f.Fuzz(func(t *testing.T, s string) {
		got := Text(s)
		if len(got) > MaxText+len("…") {
			t.Fatalf("%d bytes", len(got))
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 from valid input: %q", got)
		}
	})
}
