// Package cli holds what both programs' command lines share: flag parsing
// with REPRISE_* environment fallbacks, usage errors, and logging setup.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ErrUsage marks errors in how a program was called; mains exit 2 for them.
var ErrUsage = errors.New("usage")

// UsageError wraps err so that errors.Is(err, ErrUsage) holds.
func UsageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// AsUsage marks err, a list of problems with the command line (several
// joined by newlines), as a usage error on one line; nil stays nil.
func AsUsage(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrUsage, strings.ReplaceAll(err.Error(), "\n", "; "))
}

// EnvName is the environment variable that sets a flag:
// REPRISE_ + the flag name in upper snake case (--capture-dir → REPRISE_CAPTURE_DIR).
func EnvName(flagName string) string {
	return "REPRISE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then sets every flag not given on the command
// line from its environment variable (ParseLookup with os.LookupEnv: a
// variable set to "" counts as set).
func Parse(fs *flag.FlagSet, args []string) error {
	return ParseLookup(fs, args, os.LookupEnv)
}

// ParseLookup parses args into fs, then sets every flag not given on the
// command line from its environment variable when lookup reports it set
// (os.LookupEnv semantics): a variable set to "" sets the flag to "", so
// REPRISE_ADMIN_LISTEN= turns a listener off. A repeatable flag (its value
// is a Repeatable) takes one value per line of its variable; empty lines
// are skipped. An unknown flag or a bad value, from either place, is
// a usage error naming it. lookup nil means os.LookupEnv.
func ParseLookup(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		// The flag package names flags with one dash; these programs'
		// help and synopses use two.
		msg := strings.NewReplacer("for flag -", "for flag --", "not defined: -", "not defined: --").Replace(err.Error())
		return UsageError("%s: %s", fs.Name(), msg)
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		env := EnvName(f.Name)
		v, ok := lookup(env)
		if !ok {
			return
		}
		values := []string{v}
		if IsRepeatable(f) {
			values = values[:0]
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSuffix(line, "\r"); line != "" {
					values = append(values, line)
				}
			}
		}
		for _, val := range values {
			if err := fs.Set(f.Name, val); err != nil {
				errs = append(errs, UsageError("%s=%q: %v", env, val, err))
			}
		}
	})
	return errors.Join(errs...)
}

// Repeatable is a flag value that takes several values, one per use
// (List is one).
type Repeatable interface {
	flag.Value
	Repeatable() bool
}

// IsRepeatable reports whether a flag takes several values, one per use.
func IsRepeatable(f *flag.Flag) bool {
	r, ok := f.Value.(Repeatable)
	return ok && r.Repeatable()
}

// List is a repeatable string flag: each use adds a value.
type List []string

func (l *List) String() string     { return strings.Join(*l, ",") }
func (l *List) Set(v string) error { *l = append(*l, v); return nil }
func (l *List) Repeatable() bool   { return true }

// PrintUsage writes a flag set's usage with its defaults and env names,
// in one list.
func PrintUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "usage: %s\n\nflags (each also from the environment variable shown):\n", synopsis)
	fs.VisitAll(func(f *flag.Flag) { printFlag(w, f) })
}

func printFlag(w io.Writer, f *flag.Flag) {
	name, usage := flag.UnquoteUsage(f)
	dashes := "--"
	if len(f.Name) == 1 {
		dashes = "-" // -o FILE, as synopses write one-letter flags
	}
	fmt.Fprintf(w, "  %s%s %s\n    \t%s", dashes, f.Name, name, strings.ReplaceAll(usage, "\n", "\n    \t"))
	if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
		fmt.Fprintf(w, " (default %s)", f.DefValue)
	}
	if IsRepeatable(f) {
		fmt.Fprintf(w, " [%s, repeatable; one value per line]\n", EnvName(f.Name))
	} else {
		fmt.Fprintf(w, " [%s]\n", EnvName(f.Name))
	}
}

// Logger returns a zap logger writing to w: human-readable console lines at
// level ("debug", "info", "warn", "error"), or JSON when json is true (for
// log collectors in Kubernetes).
func Logger(w io.Writer, level string, json bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, UsageError("--log-level %q: want debug, info, warn or error", level)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if json {
		enc = zapcore.NewJSONEncoder(encCfg)
	} else {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(w), lvl)
	return zap.New(core), nil
}

// DialAddress is host:port of a URL, with the scheme's default port.
func DialAddress(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
