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
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := ParseLookup(fs, []string{"--listen", "flag"}, lookup); err != nil {
		t.Fatal(err)
	}
	if *dir != "/from/env" || *wait != 5*time.Second || *listen != "flag" {
		t.Fatalf("dir=%q wait=%v listen=%q", *dir, *wait, *listen)
	}
}

func TestParseErrorsAreUsageErrorsNamingTheSource(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Duration("drain-timeout", time.Second, "")
	err := ParseLookup(fs, nil, func(k string) (string, bool) {
		if k == "REPRISE_DRAIN_TIMEOUT" {
			return "soon", true
		}
		return "", false
	})
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "REPRISE_DRAIN_TIMEOUT") {
		t.Fatalf("err = %v", err)
	}
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	err = Parse(fs2, []string{"--nope"})
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

// A variable set to "" sets the flag to "" (os.LookupEnv semantics): an
// operator can turn a listener off from the environment. An unset
// variable leaves the default.
func TestParseLookupSetButEmptyVariable(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	admin := fs.String("admin-listen", "127.0.0.1:8091", "")
	listen := fs.String("listen", "127.0.0.1:8080", "")
	env := map[string]string{"REPRISE_ADMIN_LISTEN": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := ParseLookup(fs, nil, lookup); err != nil {
		t.Fatal(err)
	}
	if *admin != "" || *listen != "127.0.0.1:8080" {
		t.Fatalf("admin-listen %q listen %q", *admin, *listen)
	}
	// A bad empty value is a usage error naming the variable.
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	fs2.Duration("drain-timeout", time.Second, "")
	err := ParseLookup(fs2, nil, func(k string) (string, bool) { return "", k == "REPRISE_DRAIN_TIMEOUT" })
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "REPRISE_DRAIN_TIMEOUT") {
		t.Fatalf("err = %v", err)
	}
}

// Parse reads the process environment with LookupEnv: set but empty is set.
func TestParseHonoursSetButEmpty(t *testing.T) {
	t.Setenv("REPRISE_ADMIN_LISTEN", "")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	admin := fs.String("admin-listen", "127.0.0.1:8091", "")
	if err := Parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	if *admin != "" {
		t.Fatalf("admin-listen %q, want it turned off", *admin)
	}
}

// A repeatable flag takes one value per line of its variable (LF or CRLF,
// empty lines skipped); the command line still wins over the environment.
func TestParseLookupRepeatableFlagFromLines(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var hdrs, labels List
	fs.Var(&hdrs, "shadow-header", "header (repeatable)")
	fs.Var(&labels, "label", "key=value (repeatable)")
	single := fs.String("name", "", "one value")
	env := map[string]string{
		"REPRISE_SHADOW_HEADER": "Authorization: Bearer x\r\n\nX-Team: infra\n",
		"REPRISE_LABEL":         "from=env",
		"REPRISE_NAME":          "a\nb",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := ParseLookup(fs, []string{"--label", "from=flag"}, lookup); err != nil {
		t.Fatal(err)
	}
	if strings.Join(hdrs, "|") != "Authorization: Bearer x|X-Team: infra" {
		t.Errorf("shadow-header %q", hdrs)
	}
	if strings.Join(labels, "|") != "from=flag" {
		t.Errorf("label %q: the command line must win", labels)
	}
	if *single != "a\nb" {
		t.Errorf("a plain flag's value is not split: %q", *single)
	}
}

// AsUsage puts a list of command-line problems on one line, as a usage
// error; no problem stays no error.
func TestAsUsage(t *testing.T) {
	if AsUsage(nil) != nil {
		t.Error("AsUsage(nil) is not nil")
	}
	err := AsUsage(errors.Join(errors.New("--rate: negative"), errors.New("--seed: not a number")))
	if !errors.Is(err, ErrUsage) || err.Error() != "usage: --rate: negative; --seed: not a number" {
		t.Errorf("AsUsage: %v", err)
	}
}
