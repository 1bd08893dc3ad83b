package workload

import (
	"fmt"
	"io"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

// Azure reads the Azure LLM inference traces (Azure/AzurePublicDataset):
// CSV with TIMESTAMP, ContextTokens, GeneratedTokens, found by header name.
// Timestamps are date strings, 2023 with 7 fractional digits and no zone
// (2023-11-16 18:17:03.9799600), 2024 with a zone offset and varying
// precision (2024-05-10 00:00:00.0071+00:00); every digit down to the
// nanosecond is kept. Offsets are from the first row; a timestamp earlier
// than a row above it is kept as it is (its offset is clamped at 0 when it
// precedes the first row) and warned about (see timeOrder).
type Azure struct {
	*csvFile
	n               int
	cTS, cCtx, cGen int
	zeroOut         int // rows with GeneratedTokens 0, sent with max_tokens 1
	first           time.Time
	clamped         int // rows before the first row, sent at offset 0
	done            bool
}

var _ Source = (*Azure)(nil)

// OpenAzure opens an Azure trace CSV and reads its header.
func OpenAzure(path string, opts OpenOptions) (*Azure, error) {
	c, err := openCSV("azure", path, opts)
	if err != nil {
		return nil, err
	}
	a := &Azure{csvFile: c, cTS: c.col("TIMESTAMP"), cCtx: c.col("ContextTokens"), cGen: c.col("GeneratedTokens")}
	if err := c.require([]int{a.cTS, a.cCtx, a.cGen}, "TIMESTAMP", "ContextTokens", "GeneratedTokens"); err != nil {
		return nil, err
	}
	return a, nil
}

// Next returns the next request.
func (a *Azure) Next() (Request, error) {
	for {
		fields, ok, err := a.row()
		if err != nil {
			return Request{}, err
		}
		if !ok {
			note := "are all its dates in one time zone?"
			if a.clamped > 0 {
				note = fmt.Sprintf("%d before the first row, sent at offset 0; %s", a.clamped, note)
			}
			if !a.done {
				a.orderSummary(note)
			}
			if a.zeroOut > 0 && !a.done {
				a.addWarning(zeroOutputWarning("azure", a.path, "GeneratedTokens", a.zeroOut))
			}
			a.done = true
			return Request{}, io.EOF
		}
		req, err := a.parse(fields)
		if err != nil {
			if err := a.invalid("azure", err); err != nil {
				return Request{}, err
			}
			continue
		}
		return req, nil
	}
}

func (a *Azure) parse(f [][]byte) (Request, error) {
	if len(f) != len(a.header) {
		return Request{}, fmt.Errorf("%d fields, the header has %d", len(f), len(a.header))
	}
	ts, err := parseAzureTime(f[a.cTS])
	if err != nil {
		return Request{}, err
	}
	ctx, err := count("ContextTokens", f[a.cCtx])
	if err != nil {
		return Request{}, err
	}
	gen, err := count("GeneratedTokens", f[a.cGen])
	if err != nil {
		return Request{}, err
	}
	if a.n == 0 {
		a.first = ts
	}
	off := ts.Sub(a.first)
	a.timestamp(off, f[a.cTS])
	if off < 0 {
		off = 0
		a.clamped++
	}
	if gen == 0 {
		gen = 1
		a.zeroOut++
	}
	req := Request{Index: a.n, Offset: off, Endpoint: openai.Chat, Stream: true, PromptTokens: ctx, OutputTokens: gen}
	a.n++
	return req, nil
}

// parseAzureTime parses "YYYY-MM-DD HH:MM:SS[.fraction][Z|±HH:MM|±HHMM]"
// ('T' may replace the space) by hand: it keeps every fractional digit up
// to nanoseconds, and is several times faster than trying time.Parse
// layouts in turn. Anything else is tried as RFC 3339.
func parseAzureTime(b []byte) (time.Time, error) {
	if t, ok := parseDateTime(b); ok {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, string(b)); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("timestamp %q: want a date like 2023-11-16 18:17:03.9799600", b)
}

func parseDateTime(b []byte) (time.Time, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != ' ' && b[10] != 'T') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		v := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 {
		return time.Time{}, false
	}
	rest, ns := b[19:], 0
	if len(rest) > 0 && rest[0] == '.' {
		digits := 0
		for rest = rest[1:]; len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9'; rest = rest[1:] {
			if digits < 9 { // finer digits than a nanosecond are dropped
				ns = ns*10 + int(rest[0]-'0')
				digits++
			}
		}
		if digits == 0 {
			return time.Time{}, false
		}
		for ; digits < 9; digits++ {
			ns *= 10
		}
	}
	zone := 0
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && rest[0] == 'Z':
	case (len(rest) == 6 && rest[3] == ':' || len(rest) == 5 || len(rest) == 3) && (rest[0] == '+' || rest[0] == '-'):
		zh, ok := num(rest[1:3])
		zm := 0
		if len(rest) > 3 {
			var okm bool
			zm, okm = num(rest[len(rest)-2:])
			ok = ok && okm && (len(rest) == 6 || rest[3] != ':')
		}
		if !ok || zh > 23 || zm > 59 {
			return time.Time{}, false
		}
		zone = (zh*60 + zm) * 60
		if rest[0] == '-' {
			zone = -zone
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC)
	if t.Day() != d { // 31 April
		return time.Time{}, false
	}
	return t.Add(-time.Duration(zone) * time.Second), true
}
