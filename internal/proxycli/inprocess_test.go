package proxycli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
)

// syncBuffer is an io.Writer Run can write while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// program is Run in this process, as the tests drive the proxy program:
// its output kept, stopped by cancelling its context (what SIGTERM does;
// the test's cleanup does it too).
type program struct {
	stop           context.CancelFunc
	done           chan error // Run's result
	stdout, stderr *syncBuffer
}

// startProgram calls Run(args) in a goroutine and waits until its stdout
// matches ready, returning the submatches. It fails the test if Run returns
// first or nothing matches within 30 s.
func startProgram(t *testing.T, ready *regexp.Regexp, args ...string) (*program, []string) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	p := &program{stop: stop, done: make(chan error, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	go func() { p.done <- Run(ctx, args, p.stdout, p.stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := ready.FindStringSubmatch(p.stdout.String()); m != nil {
			return p, m
		}
		select {
		case err := <-p.done:
			t.Fatalf("Run returned early: %v\n%s", err, p.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not start (no %q on stdout)\n%s", args, ready, p.stderr.String())
		}
	}
}

// wait waits for Run to return (failing the test only if it never does).
func (p *program) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("Run did not return 60s after SIGTERM\n%s", p.stderr.String())
		return nil
	}
}

// usageCase is a command line Run must refuse, and the messages its error
// must carry, each exactly once (every problem said, none twice).
type usageCase struct {
	args []string
	want []string
}

// checkRefused runs each case's command line and checks it ends in a usage
// error with its messages, and that none of them created dir, the capture
// directory the cases name.
func checkRefused(t *testing.T, dir string, cases []usageCase) {
	t.Helper()
	for _, tc := range cases {
		err := Run(context.Background(), tc.args, io.Discard, io.Discard)
		if !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%v: %v, want a usage error", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if strings.Count(err.Error(), w) != 1 {
				t.Errorf("%v: %v: want %q once", tc.args, err, w)
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused command line created the capture directory: %v", err)
	}
}
