package workload

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
)

// lineFile reads a text trace line by line, streaming, and names file and
// line in every error.
type lineFile struct {
	kind     string // "mooncake", "azure", ...: how errors and warnings name the file
	path     string
	f        *os.File
	sc       *bufio.Scanner
	line     int
	skip     bool
	skipped  int
	warnings []string
	warn     func(string) // OpenOptions.Warn
	order    timeOrder    // timestamps going backwards (order.go)
}

func openLines(kind, path string, opts OpenOptions) (*lineFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s trace: %w", kind, err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	return &lineFile{kind: kind, path: path, f: f, sc: sc, skip: opts.SkipInvalid, warn: opts.Warn}, nil
}

// next returns the next non-empty line; ok is false at the end.
func (l *lineFile) next() (line []byte, ok bool, err error) {
	for l.sc.Scan() {
		l.line++
		if b := l.sc.Bytes(); len(bytes.TrimSpace(b)) > 0 { // blank lines (spaces, CRLF) are skipped
			return b, true, nil
		}
	}
	if err := l.sc.Err(); err != nil {
		return nil, false, fmt.Errorf("%s line %d: %w", l.path, l.line+1, err)
	}
	return nil, false, nil
}

// invalid reports a bad line: an error, or a count when skipping.
func (l *lineFile) invalid(kind string, reason error) error {
	if l.skip {
		l.skipped++
		return nil
	}
	return fmt.Errorf("%s %s line %d: %w", kind, l.path, l.line, reason)
}

// addWarning records msg and passes it to OpenOptions.Warn.
func (l *lineFile) addWarning(msg string) {
	l.warnings = append(l.warnings, msg)
	if l.warn != nil {
		l.warn(msg)
	}
}

func (l *lineFile) Skipped() int       { return l.skipped }
func (l *lineFile) Warnings() []string { return l.warnings }
func (l *lineFile) Close() error       { return l.f.Close() }
