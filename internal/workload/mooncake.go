package workload

import (
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/reprise-llm/reprise/internal/jsonscan"
	"github.com/reprise-llm/reprise/internal/openai"
)

// Mooncake reads the Mooncake trace format (kvcache-ai/Mooncake FAST'25
// traces): one JSON object a line with timestamp in MILLISECONDS from the
// start, input_length and output_length in tokens, and hash_ids, one per
// 512-token block, equal ids meaning a reusable KV prefix.
//
// It also reads AIPerf's extensions of the format (its mooncake_trace
// dataset type): session_id groups rows into a conversation (Session, with
// Turn counted from 0 in file order, each turn sent after the previous one
// ended); delay is the think time in ms before
// a turn (Delay); text_input or messages replace input_length with a
// prompt sent verbatim; timestamp and output_length are optional. A row
// without timestamp keeps the previous row's offset; one whose timestamp
// is earlier than a row above it is kept where it is in the file and
// warned about (see timeOrder). Other keys are ignored.
//
// A session's rows follow one of two conventions, told apart per session
// from its previous row (see traceSession): delta rows (AIPerf's) hold the
// turn's new text and are sent after the conversation so far, the target's
// own replies included (History, as AIPerf does); whole-context rows
// (hash_ids or input_length growing over the previous turn, as in
// Mooncake's own traces) are sent at exactly their length, without history
// (Convention).
type Mooncake struct {
	*lineFile
	n        int
	maxTS    float64
	prev     time.Duration
	sessions map[string]*traceSession
	slab     []uint32 // hash ids are cut from shared slabs: one allocation per ~16k ids
	mismatch int      // rows whose hash_ids length is not ceil(input_length/512)
	zeroOut  int      // rows with output_length 0, sent with max_tokens 1
	// tsRows and fracTS count rows with a timestamp and those whose
	// timestamp has a fractional part, for the unit-mistake check.
	tsRows, fracTS int
	tsText         []byte // the current line's timestamp as written, for warnings
	warnedUnits    bool
	done           bool
}

var _ Source = (*Mooncake)(nil)

// MooncakeBlockTokens is the tokens per hash id in Mooncake traces.
const MooncakeBlockTokens = 512

// OpenMooncake opens a Mooncake JSONL trace.
func OpenMooncake(path string, opts OpenOptions) (*Mooncake, error) {
	l, err := openLines("mooncake", path, opts)
	if err != nil {
		return nil, err
	}
	return &Mooncake{lineFile: l, sessions: map[string]*traceSession{}}, nil
}

// mooncakeRow is one line; has* say which keys were present and not null.
type mooncakeRow struct {
	ts, delay                      float64
	in, out                        int64
	ids                            []uint32
	session, text                  string
	messages                       []byte
	hasTS, hasIn, hasOut, hasDelay bool
	hasText                        bool
}

// Next returns the next request.
func (m *Mooncake) Next() (Request, error) {
	for {
		line, ok, err := m.next()
		if err != nil {
			return Request{}, err
		}
		if !ok {
			m.finish()
			return Request{}, io.EOF
		}
		var row mooncakeRow
		err = m.parse(line, &row)
		if err == nil {
			err = row.check()
		}
		if err != nil {
			if err := m.invalid("mooncake", err); err != nil {
				return Request{}, err
			}
			continue
		}
		return m.request(&row), nil
	}
}

func (m *Mooncake) finish() {
	if m.done {
		return
	}
	m.done = true
	m.checkUnits()
	m.orderSummary("")
	if m.zeroOut > 0 {
		m.addWarning(zeroOutputWarning("mooncake", m.path, "output_length", m.zeroOut))
	}
	if m.mismatch > 0 {
		m.addWarning(fmt.Sprintf("mooncake %s: %d rows have a hash_ids length other than ceil(input_length/%d); prefix sharing is replayed as if blocks were %d tokens", m.path, m.mismatch, MooncakeBlockTokens, MooncakeBlockTokens))
	}
}

// Thresholds of the unit-mistake check. Production LLM traces run at a few
// to a few tens of requests per second (the public ones: 2.6 and 3.4 req/s
// on average); read as milliseconds, a trace written in seconds runs a
// thousand times faster.
const (
	unitCheckRows    = 100   // rows needed before judging
	implausibleRate  = 200.0 // mean req/s that only a seconds trace reaches
	fractionalShare  = 0.9   // share of fractional timestamps that hints at seconds ...
	fractionalRate   = 20.0  // ... together with a mean rate above this
	earlyUnitCheckAt = 1000  // rows after which the check runs once mid-file
)

// checkUnits warns, once, when the timestamps look like seconds: a mean
// rate no LLM service sustains when they are read as milliseconds, or
// timestamps that nearly all have fractions (Mooncake's milliseconds are
// whole numbers; seconds need fractions to order requests) at a high rate.
func (m *Mooncake) checkUnits() {
	if m.warnedUnits || m.tsRows < unitCheckRows || m.maxTS <= 0 {
		return
	}
	rate := float64(m.tsRows) / (m.maxTS / 1000) // req/s if the unit is ms
	frac := float64(m.fracTS) / float64(m.tsRows)
	if rate < implausibleRate && !(frac >= fractionalShare && rate >= fractionalRate) {
		return
	}
	m.warnedUnits = true
	m.addWarning(fmt.Sprintf("mooncake %s: %d requests within %.4g timestamp units, a mean of %.0f req/s if they are milliseconds (%.0f%% of the timestamps have fractions): "+
		"Mooncake timestamps are milliseconds and these look like seconds; convert them, or replay with --time-scale 1000",
		m.path, m.tsRows, m.maxTS, rate, 100*frac))
}

func (m *Mooncake) request(row *mooncakeRow) Request {
	if row.hasTS {
		m.tsRows++
		if row.ts != math.Trunc(row.ts) {
			m.fracTS++
		}
		if m.tsRows == earlyUnitCheckAt {
			m.checkUnits()
		}
		m.maxTS = max(m.maxTS, row.ts)
		m.prev = time.Duration(math.Round(row.ts * float64(time.Millisecond)))
		m.timestamp(m.prev, m.tsText)
	}
	req := Request{
		Index: m.n, Offset: m.prev, Endpoint: openai.Chat, Stream: true,
		PromptTokens: int(row.in), OutputTokens: int(row.out), Prompt: row.text, Messages: row.messages,
		Session: row.session, Delay: time.Duration(math.Round(row.delay * float64(time.Millisecond))),
	}
	if row.hasOut && row.out == 0 {
		req.OutputTokens = 1
		m.zeroOut++
	}
	if len(row.ids) > 0 {
		req.HashIDs, req.BlockTokens = row.ids, MooncakeBlockTokens
		if row.hasIn && len(row.ids) != int((row.in+MooncakeBlockTokens-1)/MooncakeBlockTokens) {
			m.mismatch++
		}
	}
	if row.session != "" {
		s := m.sessions[row.session]
		if s == nil {
			s = &traceSession{}
			m.sessions[row.session] = s
		}
		req.Turn = s.turn
		req.Convention = s.next(row.in, row.hasIn, row.out, row.hasOut, row.ids, MooncakeBlockTokens)
		req.History = req.Convention != ConventionWhole
	}
	m.n++
	return req
}

// maxTokens bounds token counts: larger ones are typos, and they would
// overflow durations derived from them.
const maxTokens = 1 << 40

// parse reads one line into row.
func (m *Mooncake) parse(line []byte, row *mooncakeRow) error {
	s := jsonscan.NewLine(line)
	empty, ok := s.OpenObject()
	for ok && !empty {
		var k jsonscan.String
		if k, ok = s.Key(); !ok {
			break
		}
		key := k.Raw()
		if k.Escaped() {
			// Invalid UTF-8 in a plain key is left as it is: no
			// key this reads has any, so it matches the same.
			key = k.AppendTo(nil)
		}
		if err := m.field(&s, key, row); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		var more bool
		more, ok = s.NextMember()
		empty = !more
	}
	if !ok || !s.End() {
		return s.Err()
	}
	return nil
}

// field reads key's value into row.
func (m *Mooncake) field(s *jsonscan.Scanner, key []byte, row *mooncakeRow) error {
	if isNull, ok := s.Null(); !ok {
		return s.Err()
	} else if isNull {
		row.clear(key) // null is absent, as for a later duplicate key
		return nil
	}
	var err error
	switch string(key) {
	case "timestamp":
		row.ts, m.tsText, err = number(s)
		row.hasTS = true
	case "input_length":
		row.in, err = wholeNumber(s)
		row.hasIn = true
	case "output_length":
		row.out, err = wholeNumber(s)
		row.hasOut = true
	case "hash_ids":
		if len(m.slab) > cap(m.slab)-4096 {
			m.slab = make([]uint32, 0, 16384)
		}
		start := len(m.slab)
		m.slab, err = readHashIDs(s, m.slab)
		// the full slice expression keeps a later row's ids from
		// appending into this one's
		row.ids = m.slab[start:len(m.slab):len(m.slab)]
		if len(row.ids) == 0 {
			row.ids = nil
		}
	case "session_id":
		row.session, err = str(s)
	case "delay":
		row.delay, _, err = number(s)
		row.hasDelay = true
	case "text_input":
		row.text, err = str(s)
		row.hasText = true
	case "messages":
		raw, ok := s.Value()
		if !ok {
			return s.Err()
		}
		if raw[0] != '[' {
			return errors.New("want an array of messages")
		}
		if _, err = checkMessages(raw); err == nil {
			row.messages = append([]byte(nil), raw...) // the line buffer is reused
		}
	default:
		if !s.Skip() {
			err = s.Err()
		}
	}
	return err
}

// clear forgets key's value.
func (r *mooncakeRow) clear(key []byte) {
	switch string(key) {
	case "timestamp":
		r.ts, r.hasTS = 0, false
	case "input_length":
		r.in, r.hasIn = 0, false
	case "output_length":
		r.out, r.hasOut = 0, false
	case "hash_ids":
		r.ids = nil
	case "session_id":
		r.session = ""
	case "delay":
		r.delay, r.hasDelay = 0, false
	case "text_input":
		r.text, r.hasText = "", false
	case "messages":
		r.messages = nil
	}
}

// checkMillis checks a millisecond field: negative, or at or past 2^40 ms
// (about 35 years: no trace spans that; a typo or another unit), each with
// its own reason.
func checkMillis(name string, has bool, v float64) error {
	switch {
	case !has:
		return nil
	case v < 0 || math.IsNaN(v):
		return fmt.Errorf("%s %v: want milliseconds >= 0", name, v)
	case v >= maxTokens:
		return fmt.Errorf("%s %v: out of range (want milliseconds below 2^40, about 35 years)", name, v)
	}
	return nil
}

func (r *mooncakeRow) check() error {
	var errs []error
	errs = append(errs, checkMillis("timestamp", r.hasTS, r.ts), checkMillis("delay", r.hasDelay, r.delay))
	inputs := 0
	for _, has := range []bool{r.hasIn, r.hasText, r.messages != nil} {
		if has {
			inputs++
		}
	}
	if inputs != 1 {
		errs = append(errs, errors.New("want exactly one of input_length, text_input and messages"))
	}
	if r.hasIn && (r.in < 0 || r.in > maxTokens) {
		errs = append(errs, fmt.Errorf("input_length %d: want a token count >= 0", r.in))
	}
	if r.hasOut && (r.out < 0 || r.out > maxTokens) {
		errs = append(errs, fmt.Errorf("output_length %d: want a token count >= 0", r.out))
	}
	if len(r.ids) > 0 && !r.hasIn {
		errs = append(errs, errors.New("hash_ids needs input_length"))
	}
	return errors.Join(errs...)
}
