package workload

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

// Azure reads the Azure LLM inference traces (Azure/AzurePublicDataset):
// CSV with TIMESTAMP, ContextTokens, GeneratedTokens, found by header name.
// Timestamps are date strings, 2023 with 7 fractional digits and no zone
// (2023-11-16 18:17:03.9799600), 2024 with a zone offset; all 100 ns digits
// are kept. Offsets are from the first row.
type Azure struct {
	*lineFile
	n                      int
	cTS, cCtx, cGen, width int
	first, prev            time.Time
	backwards              int
}

var _ Source = (*Azure)(nil)

// OpenAzure opens an Azure trace CSV and reads its header.
func OpenAzure(path string, opts OpenOptions) (*Azure, error) {
	l, err := openLines("azure", path, opts)
	if err != nil {
		return nil, err
	}
	a := &Azure{lineFile: l, cTS: -1, cCtx: -1, cGen: -1}
	head, ok, err := l.next()
	if err != nil || !ok {
		l.Close()
		if err == nil {
			err = errors.New("empty file")
		}
		return nil, fmt.Errorf("azure %s: %w", path, err)
	}
	cols := strings.Split(strings.TrimSpace(strings.TrimPrefix(string(head), "\ufeff")), ",")
	a.width = len(cols)
	for i, c := range cols {
		switch strings.ToLower(strings.TrimSpace(c)) {
		case "timestamp":
			a.cTS = i
		case "contexttokens":
			a.cCtx = i
		case "generatedtokens":
			a.cGen = i
		}
	}
	if a.cTS < 0 || a.cCtx < 0 || a.cGen < 0 {
		l.Close()
		return nil, fmt.Errorf("azure %s line 1: header %q lacks TIMESTAMP, ContextTokens or GeneratedTokens", path, head)
	}
	return a, nil
}

var azureLayouts = []string{
	"2006-01-02 15:04:05Z07:00", // 2024: "2024-05-10 00:00:00.014+00:00" (fraction parsed implicitly)
	"2006-01-02 15:04:05",       // 2023: "2023-11-16 18:17:03.9799600"
	time.RFC3339Nano,
}

func parseAzureTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range azureLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q: want a date like 2023-11-16 18:17:03.9799600", s)
}

// Next returns the next request.
func (a *Azure) Next() (Request, error) {
	for {
		line, ok, err := a.next()
		if err != nil {
			return Request{}, err
		}
		if !ok {
			if a.backwards > 0 {
				a.warnings = append(a.warnings, fmt.Sprintf("azure %s: timestamps go backwards %d times; those requests were sent at the earlier offset (is the file sorted?)", a.path, a.backwards))
			}
			return Request{}, io.EOF
		}
		fields := strings.Split(string(bytes.TrimRight(line, "\r")), ",")
		req, err := a.row(fields)
		if err != nil {
			if err := a.invalid("azure", err); err != nil {
				return Request{}, err
			}
			continue
		}
		return req, nil
	}
}

func (a *Azure) row(f []string) (Request, error) {
	if len(f) != a.width {
		return Request{}, fmt.Errorf("%d fields, the header has %d", len(f), a.width)
	}
	ts, err := parseAzureTime(f[a.cTS])
	if err != nil {
		return Request{}, err
	}
	ctx, err := strconv.Atoi(strings.TrimSpace(f[a.cCtx]))
	if err != nil || ctx < 0 {
		return Request{}, fmt.Errorf("ContextTokens %q: want a non-negative integer", f[a.cCtx])
	}
	gen, err := strconv.Atoi(strings.TrimSpace(f[a.cGen]))
	if err != nil || gen < 0 {
		return Request{}, fmt.Errorf("GeneratedTokens %q: want a non-negative integer", f[a.cGen])
	}
	if a.n == 0 {
		a.first, a.prev = ts, ts
	}
	if ts.Before(a.prev) {
		a.backwards++
	}
	a.prev = ts
	off := max(ts.Sub(a.first), 0)
	req := Request{Index: a.n, Offset: off, Endpoint: openai.Chat, Stream: true, PromptTokens: ctx, OutputTokens: gen}
	a.n++
	return req, nil
}
