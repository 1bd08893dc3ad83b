package cli

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseEnvFallbackAndPrecedence(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	dir := fs.String("capture-dir", "", "")
	wait := fs.Duration("drain-timeout", time.Second, "")
	listen := fs.String("listen", "a", "")
	env := map[string]string{"REPRISE_CAPTURE_DIR": "/from/env", "REPRISE_DRAIN_TIMEOUT": "5s", "REPRISE_LISTEN": "env"}
	if err := Parse(fs, []string{"--listen", "flag"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *dir != "/from/env" || *wait != 5*time.Second || *listen != "flag" {
		t.Fatalf("dir=%q wait=%v listen=%q", *dir, *wait, *listen)
	}
}

func TestParseErrorsAreUsageErrorsNamingTheSource(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Duration("drain-timeout", time.Second, "")
	err := Parse(fs, nil, func(k string) string {
		if k == "REPRISE_DRAIN_TIMEOUT" {
			return "soon"
		}
		return ""
	})
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "REPRISE_DRAIN_TIMEOUT") {
		t.Fatalf("err = %v", err)
	}
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	err = Parse(fs2, []string{"--nope"}, func(string) string { return "" })
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("capture-dir"); got != "REPRISE_CAPTURE_DIR" {
		t.Fatal(got)
	}
}

func TestLoggerRejectsUnknownLevel(t *testing.T) {
	if _, err := Logger(&strings.Builder{}, "loud", false); !errors.Is(err, ErrUsage) {
		t.Fatalf("err = %v", err)
	}
	var sb strings.Builder
	log, err := Logger(&sb, "info", true)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello")
	_ = log.Sync()
	if !strings.Contains(sb.String(), `"msg":"hello"`) {
		t.Fatalf("json log: %q", sb.String())
	}
}
