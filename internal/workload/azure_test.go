package workload

import (
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/tracestest"
)

func TestAzureTraceKeepsSubMillisecondPrecision(t *testing.T) {
	src, err := Open("azure:"+filepath.Join(tracestest.Dir(t), tracestest.Azure), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.(io.Closer).Close()
	reqs := drain(t, src)
	// shared/traces/README.md says 8,818 rows; the file has 8,819 data rows
	// after its header (the last line has no newline; python's csv module
	// agrees).
	if len(reqs) != 8819 {
		t.Fatalf("%d requests, want 8819", len(reqs))
	}
	// 2023-11-16 18:17:03.9799600,4808,10 then 2023-11-16 18:17:04.0319600,3180,8
	if r := reqs[0]; r.Offset != 0 || r.PromptTokens != 4808 || r.OutputTokens != 10 {
		t.Errorf("first request %+v", r)
	}
	if r := reqs[1]; r.Offset != 52*time.Millisecond || r.PromptTokens != 3180 {
		t.Errorf("second request %+v", r)
	}
	sub := 0
	for i, r := range reqs {
		if r.Offset%time.Millisecond != 0 {
			sub++
		}
		if r.Offset%(100*time.Nanosecond) != 0 {
			t.Fatalf("request %d: offset %v finer than the trace's 100 ns", i, r.Offset)
		}
	}
	if sub < len(reqs)/2 {
		t.Errorf("only %d of %d offsets keep sub-millisecond digits", sub, len(reqs))
	}
	if span := reqs[len(reqs)-1].Offset; span < 50*time.Minute || span > 70*time.Minute {
		t.Errorf("span %v, the README says about an hour", span)
	}
	if w := warnings(src); len(w) != 0 {
		t.Errorf("warnings %v", w)
	}
}

func TestAzureTimestamps(t *testing.T) {
	base := time.Date(2023, 11, 16, 18, 17, 3, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2023-11-16 18:17:03.9799600":        base.Add(979960 * time.Microsecond),
		"2023-11-16 18:17:03.0000001":        base.Add(100),
		"2023-11-16T18:17:03.123456789":      base.Add(123456789),
		"2023-11-16 18:17:03.1234567891":     base.Add(123456789),
		"2023-11-16 18:17:03":                base,
		"2023-11-16 18:17:03Z":               base,
		"2023-11-16 19:17:03.5+01:00":        base.Add(500 * time.Millisecond),
		"2023-11-16 17:17:03-0100":           base,
		"2023-11-16 20:17:03.014+02":         base.Add(14 * time.Millisecond),
		"2023-11-16T18:17:03.25Z":            base.Add(250 * time.Millisecond),
		"2023-11-16T18:47:03.000001+00:30":   base.Add(time.Microsecond),
		"2024-02-29 00:00:00":                time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		"2023-11-16T18:17:03.9799600+00:00 ": {}, // trailing space: rejected by both parsers
	} {
		got, err := parseAzureTime([]byte(in))
		if want.IsZero() {
			if err == nil {
				t.Errorf("%q accepted as %v", in, got)
			}
			continue
		}
		if err != nil || !got.Equal(want) {
			t.Errorf("%q = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"2023-02-30 00:00:00", "2023-11-16 24:00:00", "2023-11-16 18:17:03.", "2023-13-01 00:00:00", "18:17:03", "2023-11-16 18:17:03+1:00", "2023-11-16 18:17:03 +00:00"} {
		if _, err := parseAzureTime([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestAzureLayoutsAndWarnings(t *testing.T) {
	p := write(t, "a.csv", "\ufeffTIMESTAMP,ContextTokens,GeneratedTokens\r\n2024-05-10 00:00:00.0141+00:00,10,2\r\n2024-05-10 00:00:01.5+00:00,20,3\r\n2024-05-10 00:00:01+00:00,5,1\r\n2024-05-09 23:59:59+00:00,5,1\r\n")
	var early []string
	src, err := OpenAzure(p, OpenOptions{Warn: func(msg string) { early = append(early, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(); err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, src)
	if len(reqs) != 3 || reqs[0].Offset != 1500*time.Millisecond-14100*time.Microsecond || reqs[2].Offset != 0 {
		t.Fatalf("%+v", reqs)
	}
	// the first backwards step is reported with its line as soon as it is
	// read; the count at the end
	w := src.Warnings()
	if len(w) != 2 || !strings.Contains(w[0], "line 4: timestamp 2024-05-10 00:00:01+00:00 is 500ms before") ||
		!strings.Contains(w[1], "backwards 2 times (1 before the first row") {
		t.Errorf("warnings %v", w)
	}
	if !slices.Equal(early, w) {
		t.Errorf("Warn saw %v, Warnings %v", early, w)
	}
	if _, err := src.Next(); err != io.EOF || len(src.Warnings()) != 2 {
		t.Errorf("a second EOF repeated the summary: %v", src.Warnings())
	}
	// columns are found by name, in any order
	p = write(t, "b.csv", "GeneratedTokens,TIMESTAMP,ContextTokens\n7,2023-11-16 18:17:03.9799600,12\n")
	src, _ = OpenAzure(p, OpenOptions{})
	if reqs := drain(t, src); len(reqs) != 1 || reqs[0].PromptTokens != 12 || reqs[0].OutputTokens != 7 {
		t.Fatalf("%+v", reqs)
	}
}

func TestAzureMalformedLines(t *testing.T) {
	if _, err := OpenAzure(write(t, "h.csv", "time,ctx,gen\n"), OpenOptions{}); err == nil || !strings.Contains(err.Error(), "lacks TIMESTAMP, ContextTokens, GeneratedTokens") {
		t.Errorf("bad header: %v", err)
	}
	if _, err := OpenAzure(write(t, "e.csv", ""), OpenOptions{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
	for line, reason := range map[string]string{
		"2023-11-16 18:17:04,many,3":  "ContextTokens",
		"2023-11-16 18:17:04,3,-1":    "GeneratedTokens",
		"yesterday,3,1":               "timestamp",
		"2023-11-16 18:17:04,3":       "2 fields",
		"2023-11-16 18:17:04,3,1,9":   "4 fields",
		"2023-11-16 18:17:04,3.5,1":   "whole number",
		"2023-11-16 18:17:04,NaN,1":   "whole number",
		"2023-11-16 18:17:04,1e99,1":  "whole number",
		"2023-11-16 18:17:04,,1":      "ContextTokens",
		"2023-11-16 18:17:04,3,1\x00": "GeneratedTokens",
	} {
		p := write(t, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,12,3\n"+line+"\n")
		src, _ := OpenAzure(p, OpenOptions{})
		_, _ = src.Next()
		if _, err := src.Next(); err == nil || !strings.Contains(err.Error(), "azure "+p+" line 3: ") || !strings.Contains(err.Error(), reason) {
			t.Errorf("%q: err = %v, want line 3 and %q", line, err, reason)
		}
		skip, _ := OpenAzure(p, OpenOptions{SkipInvalid: true})
		if got := drain(t, skip); len(got) != 1 || skip.Skipped() != 1 {
			t.Errorf("%q: skip-invalid gave %d, skipped %d", line, len(got), skip.Skipped())
		}
	}
}

// FuzzAzure reads arbitrary CSV files: never a panic, never a negative
// value; and a timestamp the hand parser accepts is one time.Parse reads
// the same way.
func FuzzAzure(f *testing.F) {
	f.Add([]byte("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,12,3\n"))
	f.Add([]byte("ContextTokens,TIMESTAMP,GeneratedTokens\n1,2024-05-10 00:00:00+00:00,3\n,,\n1,2024-05-09 00:00:00.5-07:00,3\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := OpenAzure(write(t, "f.csv", string(data)), OpenOptions{SkipInvalid: true})
		if err != nil {
			return // a missing header is reported, not a panic
		}
		defer src.Close()
		for {
			r, err := src.Next()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("skip-invalid still failed: %v", err)
				}
				break
			}
			if r.Offset < 0 || r.PromptTokens < 0 || r.OutputTokens < 0 {
				t.Fatalf("%+v", r)
			}
		}
	})
}

func FuzzAzureTime(f *testing.F) {
	f.Add("2023-11-16 18:17:03.9799600")
	f.Add("2024-05-10 00:00:00.014+00:00")
	f.Add("2024-05-10T00:00:00-0730")
	f.Add("2024-05-10T00:00:00.1234567890123+05")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseDateTime([]byte(s))
		if !ok {
			return
		}
		// time.Parse accepts a fraction after the seconds in any of these
		// layouts; whichever layout fits must give the same instant.
		fits := 0
		for _, sep := range []string{" ", "T"} {
			for _, zone := range []string{"", "Z07:00", "Z0700", "Z07"} {
				want, err := time.Parse("2006-01-02"+sep+"15:04:05"+zone, s)
				if err != nil {
					continue
				}
				fits++
				if !got.Equal(want) {
					t.Fatalf("%q = %v, time.Parse gives %v", s, got, want)
				}
			}
		}
		if fits == 0 {
			t.Fatalf("%q accepted, time.Parse refuses it", s)
		}
	})
}
