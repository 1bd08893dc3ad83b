package workload

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

// BurstGPT reads the BurstGPT traces (HPMLL/BurstGPT): CSV with Timestamp
// (seconds from the trace's start), Model (ChatGPT or GPT-4), Request
// tokens, Response tokens, Total tokens and Log Type (Conversation log or
// API log), found by header name; other columns (later releases add
// session and timing ones) are ignored, except a session or conversation
// id, which becomes Session.
//
// Offsets are from the first row; a row earlier than a row above it is
// kept where it is in the file (sent at offset 0 when it precedes the
// first row) and warned about (see timeOrder). BurstGPT marks requests that failed in
// production with 0 response tokens; they are left out (a replay cannot
// reproduce the failure, and without a length the server would generate
// until its own limit) and counted in Warnings. The trace's model is kept
// in TraceModel, never sent.
type BurstGPT struct {
	*csvFile
	n                        int
	cTS, cModel, cReq, cResp int
	cSession                 int
	first                    float64
	failed                   int
	turns                    map[string]int
	done                     bool
}

var _ Source = (*BurstGPT)(nil)

// OpenBurstGPT opens a BurstGPT trace CSV and reads its header.
func OpenBurstGPT(path string, opts OpenOptions) (*BurstGPT, error) {
	c, err := openCSV("burstgpt", path, opts)
	if err != nil {
		return nil, err
	}
	g := &BurstGPT{csvFile: c, cTS: c.col("Timestamp"), cModel: c.col("Model"),
		cReq: c.col("Request tokens"), cResp: c.col("Response tokens"),
		cSession: c.col("Session ID", "Conversation ID", "session_id"), turns: map[string]int{}}
	if err := c.require([]int{g.cTS, g.cReq, g.cResp}, "Timestamp", "Request tokens", "Response tokens"); err != nil {
		return nil, err
	}
	return g, nil
}

// Next returns the next request.
func (g *BurstGPT) Next() (Request, error) {
	for {
		fields, ok, err := g.row()
		if err != nil {
			return Request{}, err
		}
		if !ok {
			g.finish()
			return Request{}, io.EOF
		}
		req, keep, err := g.parse(fields)
		if err != nil {
			if err := g.invalid("burstgpt", err); err != nil {
				return Request{}, err
			}
			continue
		}
		if keep {
			return req, nil
		}
	}
}

func (g *BurstGPT) finish() {
	if g.done {
		return
	}
	g.done = true
	if g.failed > 0 {
		g.addWarning(fmt.Sprintf("burstgpt %s: left out %d requests that failed in production (Response tokens 0)", g.path, g.failed))
	}
	g.orderSummary("")
}

func (g *BurstGPT) parse(f [][]byte) (req Request, keep bool, err error) {
	if len(f) != len(g.header) {
		return req, false, fmt.Errorf("%d fields, the header has %d", len(f), len(g.header))
	}
	ts, err := strconv.ParseFloat(string(f[g.cTS]), 64)
	if err != nil || !(ts >= 0 && ts < 1e12) {
		return req, false, fmt.Errorf("Timestamp %q: want seconds >= 0", f[g.cTS])
	}
	in, err := count("Request tokens", f[g.cReq])
	if err != nil {
		return req, false, err
	}
	out, err := count("Response tokens", f[g.cResp])
	if err != nil {
		return req, false, err
	}
	if g.n+g.failed == 0 {
		g.first = ts
	}
	if out == 0 {
		g.failed++
		return req, false, nil
	}
	// Only rows that are sent take part in the order check: a left-out row
	// holds nothing back.
	off := secondsOffset(ts - g.first)
	g.timestamp(off, f[g.cTS])
	req = Request{
		Index: g.n, Offset: max(off, 0),
		Endpoint: openai.Chat, Stream: true, PromptTokens: in, OutputTokens: out,
	}
	if g.cModel >= 0 {
		req.TraceModel = string(f[g.cModel])
	}
	if g.cSession >= 0 && len(f[g.cSession]) > 0 {
		req.Session = string(f[g.cSession])
		req.Turn = g.turns[req.Session]
		g.turns[req.Session]++
	}
	g.n++
	return req, true, nil
}

// secondsOffset is s seconds as a duration, rounded to the nanosecond and
// held within time.Duration's range (a conversion out of range would give
// an arbitrary value).
func secondsOffset(s float64) time.Duration {
	ns := math.Round(s * float64(time.Second))
	switch {
	case ns >= math.MaxInt64:
		return math.MaxInt64
	case ns <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(ns)
}
